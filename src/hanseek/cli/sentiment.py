"""`hanseek sentiment`: Review sentiment: train, predict, experiment."""

from __future__ import annotations

import typer

app = typer.Typer(help="Review sentiment: train, predict, experiment.", no_args_is_help=True)
