"""`hanseek images`: Image collection: add, search."""

from __future__ import annotations

import typer

app = typer.Typer(help="Image collection: add, search.", no_args_is_help=True)
