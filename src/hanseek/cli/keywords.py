"""`hanseek keywords`: Word weights, corpora and blanks."""

from __future__ import annotations

import typer

app = typer.Typer(help="Word weights, corpora and blanks.", no_args_is_help=True)
