"""`hanseek encode`: embed sentences with the configured text encoder, print norms and similarities."""

from __future__ import annotations

from enum import StrEnum

import numpy as np
import typer
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from hanseek.cli.common import console, err_console, settings


class KindOption(StrEnum):
    query = "query"
    passage = "passage"


def encode(
    texts: list[str] = typer.Argument(..., help="Sentences to embed"),
    kind: KindOption = typer.Option(KindOption.passage, "--kind", "-k", help="query or passage (e5 prefix)"),
    model: str | None = typer.Option(None, "--model", "-m", help="Model name, directory or hub id"),
    backend: str | None = typer.Option(None, "--backend", help="torch | onnx | onnx-int8"),
    dims: int = typer.Option(0, "--dims", min=0, help="Also print the first N dimensions of each vector"),
) -> None:
    """Embed sentences and print each vector's norm and the pairwise cosine matrix."""
    from hanseek.encoders.base import EncoderError
    from hanseek.encoders.registry import load_text_encoder

    s = settings()
    try:
        with err_console.status("Loading the text encoder…"):
            encoder = load_text_encoder(s, model, backend)
        vectors = encoder.encode(texts, kind=kind.value)
    except EncoderError as e:
        err_console.print(f"[red]error:[/red] {escape(str(e))}", highlight=False)
        raise typer.Exit(2) from e

    console.print(f"model [bold]{escape(encoder.name)}[/bold], {encoder.dim} dimensions, kind {kind.value}")
    vec_table = Table("#", "text", "norm", *(["first dims"] if dims else []))
    for i, (text, v) in enumerate(zip(texts, vectors, strict=True)):
        # Text, not str: user sentences like "[notice] …" or "[/x]" are not Rich markup
        row: list[str | Text] = [str(i), Text(text), f"{float(np.linalg.norm(v)):.4f}"]
        if dims:
            row.append(" ".join(f"{x:+.3f}" for x in v[:dims]))
        vec_table.add_row(*row)
    console.print(vec_table)

    sims = vectors @ vectors.T
    sim_table = Table("cosine", *(str(i) for i in range(len(texts))), title="pairwise cosine similarity")
    for i in range(len(texts)):
        sim_table.add_row(str(i), *(f"{sims[i, j]:.3f}" for j in range(len(texts))))
    console.print(sim_table)
