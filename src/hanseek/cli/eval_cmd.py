"""`hanseek eval`: Evaluate models (STS, retrieval)."""

from __future__ import annotations

import typer

app = typer.Typer(help="Evaluate models (STS, retrieval).", no_args_is_help=True)
