"""`hanseek encode`: embed sentences with the configured text encoder (filled by the encoders work)."""

from __future__ import annotations

import typer


def encode(texts: list[str] = typer.Argument(..., help="Sentences to embed")) -> None:
    """Embed sentences and print norms and pairwise cosine similarities."""
    raise typer.Exit(1)
