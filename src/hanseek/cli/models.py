"""`hanseek models`: Text encoder models: prepare, list, use."""

from __future__ import annotations

import typer

app = typer.Typer(help="Text encoder models: prepare, list, use.", no_args_is_help=True)
