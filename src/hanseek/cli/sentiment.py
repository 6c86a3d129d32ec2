"""`hanseek sentiment`: Review sentiment: train, predict, experiment."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from hanseek.cli.common import console, err_console, progress, settings

if TYPE_CHECKING:
    from hanseek.sentiment.datasets import DomainSource
    from hanseek.sentiment.training import Say, TrainOptions

app = typer.Typer(help="Review sentiment: train, predict, experiment.", no_args_is_help=True)

KindOpt = Annotated[str, typer.Option("--model", "-m", help="baseline | transformer")]
DataOpt = Annotated[
    Path | None,
    typer.Option("--data", help="Shared data folder with nsmc/ and steam_partial/ (default ../shared/data)"),
]
FileOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--file",
        help="Extra domain NAME=PATH, a label<TAB>text file (e.g. shopping=naver_shopping.txt); repeatable",
    ),
]
TrainSizeOpt = Annotated[
    int | None,
    typer.Option(
        "--train-size",
        min=1,
        help="Cap on training reviews (stratified); the baseline also learns from the dev reviews",
    ),
]
DevSizeOpt = Annotated[int | None, typer.Option("--dev-size", min=1, help="Cap on dev reviews (stratified)")]
BaseOpt = Annotated[
    str, typer.Option("--base-model", help="Transformer: a TextEncoder model name, dir or hub id")
]
FreezeOpt = Annotated[
    str,
    typer.Option(
        "--freeze-layers",
        help="Transformer: 'all' = frozen encoder (linear probe); N = embeddings + lowest N layers frozen",
    ),
]
EpochsOpt = Annotated[int, typer.Option("--epochs", min=1, help="Transformer fine-tuning epochs")]
BatchOpt = Annotated[int, typer.Option("--batch-size", min=1, help="Transformer batch size")]
LrOpt = Annotated[float, typer.Option("--lr", help="Transformer encoder learning rate")]
MaxLenOpt = Annotated[
    int, typer.Option("--max-length", min=8, max=512, help="Transformer max tokens per review")
]


def _fail(msg: str, code: int = 1) -> None:
    err_console.print(f"[red]error:[/red] {escape(msg)}")  # names, paths and texts are not markup
    raise typer.Exit(code)


def _sources(data: Path | None, files: list[str] | None, *, uses_shopping: bool = True) -> list[DomainSource]:
    from hanseek.sentiment.datasets import default_sources, shared_data_dir

    extra: dict[str, Path] = {}
    for item in files or []:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            _fail(f"--file expects NAME=PATH, got {item!r}")
        if not Path(path).is_file():
            _fail(f"{path} is not a file")
        extra[name] = Path(path)
    # Set but missing: said so, as --file does (until session 19 the domain was left out silently);
    # only where shopping is used, so a stale variable does not stop training on another domain.
    shopping = os.environ.get("HANSEEK_SHOPPING_REVIEWS")
    if uses_shopping and shopping and "shopping" not in extra and not Path(shopping).is_file():
        _fail(f"HANSEEK_SHOPPING_REVIEWS={shopping} is not a file")
    sources = default_sources(data, extra)
    if not sources:
        where = (
            data if data is not None else f"{shared_data_dir()} (HANSEEK_SHARED_DATA, else ../shared/data)"
        )
        _fail(
            f"no review files found in {where}: pass --data DIR (with nsmc/ or steam_partial/) "
            "or --file NAME=PATH"
        )
    return sources


def _options(
    kind: str,
    train_size: int | None,
    dev_size: int | None,
    base_model: str,
    freeze_layers: str,
    epochs: int,
    batch_size: int,
    lr: float,
    max_length: int,
) -> TrainOptions:
    from hanseek.sentiment.training import TrainOptions
    from hanseek.sentiment.transformer import TransformerConfig

    if kind not in ("baseline", "transformer"):
        _fail(f"--model must be baseline or transformer, not {kind!r}")
    if not lr > 0:  # also refuses NaN
        _fail(f"--lr must be a positive number, not {lr}", code=2)
    freeze: int | None = None
    if freeze_layers != "all":
        try:
            freeze = int(freeze_layers)
        except ValueError:
            _fail(f"--freeze-layers must be 'all' or a number, not {freeze_layers!r}")
        if freeze is not None and freeze < 0:
            _fail("--freeze-layers must be >= 0")
    tcfg = TransformerConfig(
        base_model=base_model,
        freeze_layers=freeze,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        max_length=max_length,
    )
    return TrainOptions(kind=kind, train_size=train_size, dev_size=dev_size, transformer=tcfg)  # type: ignore[arg-type]


@contextmanager
def _progress_say() -> Iterator[Say]:
    with progress() as bar:
        task = bar.add_task("starting", total=None, info="")

        def say(phase: str, done: int, total: int) -> None:
            if total > 0:
                bar.update(task, description=phase, completed=done, total=total)
            else:
                bar.update(task, description=phase, total=None)

        yield say


@app.command("train")
def train(
    domain: Annotated[
        str, typer.Option("--domain", "-d", help="movie | game | shopping | all | a --file NAME")
    ] = ("movie"),
    kind: KindOpt = "baseline",
    name: Annotated[str | None, typer.Option("--name", help="Model name (default DOMAIN-MODEL)")] = None,
    data: DataOpt = None,
    files: FileOpt = None,
    train_size: TrainSizeOpt = None,
    dev_size: DevSizeOpt = None,
    base_model: BaseOpt = "e5-small",
    freeze_layers: FreezeOpt = "all",
    epochs: EpochsOpt = 1,
    batch_size: BatchOpt = 32,
    lr: LrOpt = 3e-5,
    max_length: MaxLenOpt = 128,
    test_size: Annotated[
        int | None,
        typer.Option("--test-size", min=1, help="Cap on test reviews (stratified; for slow models)"),
    ] = None,
    make_default: Annotated[
        bool | None,
        typer.Option(
            "--default/--no-default", help="Make it the served model (default: only if none is set)"
        ),
    ] = None,
) -> None:
    """Train a classifier on a domain's train split and score it on its held-out test split."""
    from hanseek.encoders.base import EncoderError
    from hanseek.sentiment.service import SentimentService

    opts = _options(kind, train_size, dev_size, base_model, freeze_layers, epochs, batch_size, lr, max_length)
    sources = _sources(data, files, uses_shopping=domain in ("shopping", "all"))
    svc = SentimentService(settings())
    try:
        with _progress_say() as say:
            card = svc.train_domain(
                domain, sources, opts, name=name, make_default=make_default, say=say, test_size=test_size
            )
    except UnicodeDecodeError as e:  # a ValueError too, whose message the strip below cut short
        _fail(f"a review file is not UTF-8 text ({e.reason})")
    except (KeyError, ValueError, EncoderError) as e:
        _fail(str(e).strip("'\""))
    console.print(f"[green]saved[/green] {card.name} ({card.kind}) in {escape(str(svc.root / card.name))}")
    console.print(f"trained on {card.train_size:,} reviews in {card.train_seconds:.1f} s")
    for k, v in card.metrics.items():
        console.print(f"  {k}: accuracy {v:.4f}")
    if svc.default_model() == card.name:
        console.print("this is the default model")


@app.command("predict")
def predict(
    texts: Annotated[list[str], typer.Argument(help="Review texts")],
    model: Annotated[
        str | None, typer.Option("--model", "-m", help="Model name (default: the default)")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """Classify reviews as positive or negative."""
    from hanseek.sentiment.registry import ModelLoadError, ModelNotFound, check_name
    from hanseek.sentiment.service import SentimentService
    from hanseek.text import normalize

    if any(not normalize(t).strip() for t in texts):  # zero-width or control characters only: empty too
        _fail("empty review text")
    if model is not None:
        # An empty --model is refused as the API refuses "model": "" (until session 18 it meant the default).
        try:
            check_name(model)
        except ValueError as e:
            _fail(str(e))
    svc = SentimentService(settings())
    try:
        card, preds = svc.predict(texts, model)
    except (ModelNotFound, ModelLoadError, ValueError) as e:
        _fail(str(e))
    if as_json:
        rows = [{"text": t, **p.__dict__, "model": card.name} for t, p in zip(texts, preds, strict=True)]
        console.print_json(json.dumps({"model": card.name, "results": rows}, ensure_ascii=False))
        return
    table = Table("label", "probability", "text", title=f"model: {card.name}")
    for t, p in zip(texts, preds, strict=True):
        colour = "green" if p.label == "positive" else "red"
        table.add_row(f"[{colour}]{p.label}[/{colour}]", f"{p.probability:.3f}", escape(t))
    console.print(table)


@app.command("models")
def models() -> None:
    """List trained sentiment models."""
    from hanseek.sentiment.service import SentimentService

    svc = SentimentService(settings())
    default = svc.default_model()
    table = Table("name", "kind", "domains", "train size", "held-out accuracy", "created")
    for c in svc.cards():
        acc = ", ".join(f"{k.removeprefix('test/')} {v:.4f}" for k, v in c.metrics.items())
        table.add_row(
            c.name + (" (default)" if c.name == default else ""),
            c.kind,
            ",".join(c.domains),
            f"{c.train_size:,}",
            acc,
            c.created,
        )
    console.print(table)


@app.command("default")
def set_default(name: Annotated[str, typer.Argument(help="Model name")]) -> None:
    """Make a trained model the one served when a request names none."""
    from hanseek.sentiment.registry import ModelLoadError, ModelNotFound
    from hanseek.sentiment.service import SentimentService

    try:
        SentimentService(settings()).set_default(name)
    except (ModelNotFound, ModelLoadError, ValueError) as e:
        _fail(str(e))
    console.print(f"default sentiment model: {name}")


@app.command("experiment")
def experiment(
    kind: KindOpt = "baseline",
    data: DataOpt = None,
    files: FileOpt = None,
    train_size: Annotated[
        int | None,
        typer.Option("--train-size", min=1, help="Cap on training reviews per domain (stratified)"),
    ] = None,
    dev_size: Annotated[
        int | None, typer.Option("--dev-size", min=1, help="Cap on dev reviews per domain")
    ] = None,
    test_size: Annotated[
        int | None, typer.Option("--test-size", min=1, help="Cap on test reviews per domain")
    ] = None,
    base_model: BaseOpt = "e5-small",
    freeze_layers: FreezeOpt = "all",
    epochs: EpochsOpt = 1,
    batch_size: BatchOpt = 32,
    lr: LrOpt = 3e-5,
    max_length: MaxLenOpt = 128,
    out: Annotated[Path, typer.Option("--out", help="Report folder")] = Path("docs/reports"),
    stem: Annotated[
        str | None, typer.Option("--stem", help="Report file name (default sentiment-MODEL)")
    ] = None,
) -> None:
    """Cross-domain accuracy matrix: one model per domain and one on all, tested on every domain."""
    from hanseek.encoders.base import EncoderError
    from hanseek.sentiment import experiment as exp
    from hanseek.sentiment.datasets import load_domain
    from hanseek.sentiment.service import SentimentService

    opts = _options(kind, train_size, dev_size, base_model, freeze_layers, epochs, batch_size, lr, max_length)
    sources = _sources(data, files)
    svc = SentimentService(settings())
    name = stem or f"sentiment-{kind}"
    try:
        exp.report_paths(out, name)  # before the run: a bad --out or --stem should not cost it
        data_sets = [load_domain(s, seed=opts.seed) for s in sources]
        with _progress_say() as say:
            res = exp.run(
                data_sets,
                opts,
                analyzer_factory=svc.analyzer,
                base_model_dir=svc.base_model_dir,
                test_size=test_size,
                say=say,
            )
    except (KeyError, ValueError, EncoderError) as e:
        _fail(str(e).strip("'\""))
    paths = exp.write_report(res, out, name)
    console.print(exp.to_markdown(res).split("## Setup")[0], markup=False)
    for p in paths:
        console.print(f"wrote {escape(str(p))}")
