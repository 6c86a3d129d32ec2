"""`hanseek feed`: Personalized feed: ingest, events, evaluation."""

from __future__ import annotations

import typer

app = typer.Typer(help="Personalized feed: ingest, events, evaluation.", no_args_is_help=True)
