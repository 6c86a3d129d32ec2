"""`hanseek db`: Database: init, migrate, status, backup, restore."""

from __future__ import annotations

import typer

app = typer.Typer(help="Database: init, migrate, status, backup, restore.", no_args_is_help=True)
