"""`hanseek eval`: evaluate text encoders (KorSTS Spearman, ParaKQC paraphrase retrieval) as JSON."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.markup import escape

from hanseek.cli.common import console, err_console, parse_range, progress, report_files, settings
from hanseek.encoders.base import EncoderError, TextEncoder
from hanseek.files import write_text_atomic

app = typer.Typer(help="Evaluate models (STS, retrieval).", no_args_is_help=True)


def _baseline(kind: str, fit_texts: Path | None) -> TextEncoder:
    from hanseek.train.baselines import TfidfEncoder
    from hanseek.train.corpus import texts_from_file

    if kind != "tfidf":
        raise typer.BadParameter("the only baseline is tfidf")
    if fit_texts is None:
        raise typer.BadParameter("--fit-texts is required for the tfidf baseline")
    try:
        return TfidfEncoder(texts_from_file(fit_texts))
    except (OSError, UnicodeDecodeError, ValueError) as e:  # e.g. no line long enough to keep
        raise EncoderError(f"{fit_texts}: {e}") from e


@app.command("sts")
def sts(
    model: str | None = typer.Option(None, "--model", "-m", help="Model name, directory or hub id"),
    backend: str | None = typer.Option(None, "--backend", help="torch | onnx | onnx-int8"),
    data_root: Path | None = typer.Option(
        None, exists=True, file_okay=False, help="Shared data folder (default ../shared/data)"
    ),
    korsts: Path | None = typer.Option(
        None, exists=True, dir_okay=False, help="KorSTS TSV (default DATA_ROOT/korsts/sts-dev.tsv)"
    ),
    parakqc: Path | None = typer.Option(
        None, exists=True, dir_okay=False, help="ParaKQC file (default DATA_ROOT/parakqc/paraKQC_v1.txt)"
    ),
    parakqc_sets: str | None = typer.Option(
        None, help="Only paraphrase sets START:END (e.g. held-out 700:1000)"
    ),
    skip_korsts: bool = typer.Option(False, "--skip-korsts"),
    skip_parakqc: bool = typer.Option(False, "--skip-parakqc"),
    limit_pairs: int | None = typer.Option(None, min=1, help="Only the first N KorSTS pairs (quick checks)"),
    # dir_okay=False: refused before the model loads, not after the evaluation ran
    out: Path | None = typer.Option(None, "--out", "-o", dir_okay=False, help="Also write the JSON here"),
    baseline: str | None = typer.Option(None, help="Score a baseline instead of a model: tfidf"),
    fit_texts: Path | None = typer.Option(
        None, exists=True, dir_okay=False, help="Training text for the baseline (one per line)"
    ),
) -> None:
    """KorSTS dev Spearman (x100) and ParaKQC paraphrase retrieval (recall@1/10, MRR), printed as JSON."""
    from hanseek.encoders.registry import load_text_encoder
    from hanseek.train.sts_eval import (
        check_rankable,
        default_data_root,
        evaluate,
        load_korsts,
        load_parakqc,
        texts_to_encode,
    )

    if skip_korsts and skip_parakqc:
        raise typer.BadParameter("--skip-korsts and --skip-parakqc together leave nothing to evaluate")
    if out:
        report_files(out)  # not found out only after the whole evaluation ran
    root = data_root or default_data_root()
    pairs = groups = None
    try:
        if not skip_korsts:
            korsts_file = korsts or root / "korsts" / "sts-dev.tsv"
            pairs = load_korsts(korsts_file)
            if limit_pairs:
                pairs = pairs.head(limit_pairs)
            check_rankable(pairs, korsts_file)
        if not skip_parakqc:
            groups = load_parakqc(parakqc or root / "parakqc" / "paraKQC_v1.txt", parse_range(parakqc_sets))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        # soft_wrap: one line whatever the terminal width (file names and line numbers stay whole)
        err_console.print(f"[red]error:[/red] cannot read evaluation data: {escape(str(e))}", soft_wrap=True)
        raise typer.Exit(2) from e

    s = settings()
    try:
        if baseline:
            encoder = _baseline(baseline, fit_texts)
        else:
            with err_console.status("Loading the text encoder…"):
                encoder = load_text_encoder(s, model, backend)
    except EncoderError as e:
        err_console.print(f"[red]error:[/red] {escape(str(e))}", soft_wrap=True)
        raise typer.Exit(2) from e

    with progress() as bar:
        task = bar.add_task("encoding", total=texts_to_encode(pairs, groups), info=encoder.name)
        result = evaluate(encoder, korsts=pairs, parakqc=groups, on_progress=lambda n: bar.advance(task, n))
    if pairs is not None:
        result["korsts"]["file"] = str(korsts or root / "korsts" / "sts-dev.tsv")
    if groups is not None:
        start = (parse_range(parakqc_sets) or (0, 0))[0]
        result["parakqc"]["set_range"] = [start, start + len(groups)]  # the sets there were, not asked
    text = json.dumps(result, ensure_ascii=False, indent=2)
    if out:
        write_text_atomic(out, text + "\n")
    console.print_json(text)
