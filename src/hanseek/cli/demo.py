"""`hanseek demo`: Bundled demo data."""

from __future__ import annotations

import typer

app = typer.Typer(help="Bundled demo data.", no_args_is_help=True)
