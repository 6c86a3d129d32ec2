"""`hanseek train`: Train models (SimCSE, classifiers)."""

from __future__ import annotations

import typer

app = typer.Typer(help="Train models (SimCSE, classifiers).", no_args_is_help=True)
