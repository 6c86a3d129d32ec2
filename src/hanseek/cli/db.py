"""`hanseek db`: Database: init, migrate, status, backup, restore, url."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.markup import escape
from rich.table import Table

from hanseek.cli.common import console, err_console, open_db, settings
from hanseek.store.db import Database, redact_url
from hanseek.store.errors import StoreError

app = typer.Typer(help="Database: init, migrate, status, backup, restore, url.", no_args_is_help=True)

F = TypeVar("F", bound=Callable[..., Any])


def _store_errors(fn: F) -> F:
    """A StoreError is the user's to fix (bad URL, no pgvector ...): a red message, exit 1, no traceback."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except StoreError as exc:
            err_console.print(f"[bold red]error:[/] {escape(str(exc))}", markup=True, highlight=False)
            raise typer.Exit(1) from None

    return wrapper  # type: ignore[return-value]


def _where(db: Database) -> str:
    if db.server is not None:
        return f"embedded PostgreSQL (pid {db.server.pid}, data {db.server.pgdata})"
    return f"external PostgreSQL at {redact_url(db.url)}"


def _print_status(db: Database) -> None:
    table = Table(title="migrations", title_justify="left")
    table.add_column("version", justify="right")
    table.add_column("name")
    table.add_column("state")
    table.add_column("applied at")
    colours = {
        "applied": "green",
        "pending": "yellow",
        "changed": "bold red",
        "missing": "red",
        "newer": "bold red",
    }
    for s in db.migration_status():
        when = s.applied_at.strftime("%Y-%m-%d %H:%M:%S %Z") if s.applied_at else ""
        table.add_row(f"{s.version:04d}", s.name, f"[{colours[s.state]}]{s.state}[/]", when)
    console.print(table)


@app.command()
@_store_errors
def init() -> None:
    """Create the database (embedded: initialise the data dir) and apply all migrations."""
    s = settings()
    with open_db(s, migrate=False) as db:
        applied = db.migrate()
        console.print(f"[green]ready[/]: {escape(_where(db))}")
        console.print(f"applied {len(applied)} migration(s)" + (f": {', '.join(applied)}" if applied else ""))


@app.command()
@_store_errors
def migrate() -> None:
    """Apply pending migrations."""
    with open_db(settings(), migrate=False) as db:
        applied = db.migrate()
        if applied:
            console.print(f"[green]applied[/] {', '.join(applied)}")
        else:
            console.print("up to date")


@app.command()
@_store_errors
def status() -> None:
    """Where the database is and which migrations are applied or pending."""
    with open_db(settings(), migrate=False) as db:
        console.print(_where(db), markup=False)
        with db.connection() as conn:
            row = conn.execute(
                "SELECT current_setting('server_version'), "
                "(SELECT extversion FROM pg_extension WHERE extname = 'vector'), "
                "pg_size_pretty(pg_database_size(current_database()))"
            ).fetchone()
        if row:
            console.print(f"PostgreSQL {row[0]}, pgvector {row[1]}, database size {row[2]}")
        _print_status(db)


@app.command()
@_store_errors
def backup(
    file: Annotated[
        Path, typer.Argument(dir_okay=False, help="Archive to write (pg_dump custom format; media beside it)")
    ],
) -> None:
    """Back the database up to FILE and the media files (images, thumbnails) to FILE.media.tar.

    Model directories are not backed up: they are large and can be downloaded or trained again."""
    from hanseek.store.backup import backup as run_backup
    from hanseek.store.backup import media_archive

    s = settings()
    with open_db(s, migrate=False) as db:
        with err_console.status(f"dumping to {escape(str(file))} ..."):
            info = run_backup(db.url, file, media_dir=s.media_dir)
        console.print(
            f"[green]backed up[/] to {escape(str(file))} ({info.size / 2**20:.1f} MiB), "
            f"{info.media_files} media file(s) to {escape(str(media_archive(file)))}",
            highlight=False,
        )


@app.command()
@_store_errors
def restore(
    file: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, help="Archive written by `hanseek db backup`")
    ],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation")] = False,
) -> None:
    """Replace ALL data in the database with the contents of FILE (atomic), then migrate; the media
    files of FILE.media.tar, when there, go back into the media directory just before the commit."""
    from hanseek.store.backup import media_archive
    from hanseek.store.backup import restore as run_restore

    s = settings()
    with open_db(s, migrate=False) as db:
        if not yes:
            typer.confirm(f"Replace everything in {_where(db)} with {file}?", abort=True)
        with err_console.status(f"restoring {escape(str(file))} ..."):
            media_files = run_restore(db.url, file, media_dir=s.media_dir)
        applied = db.migrate()
        then = f"; then applied {', '.join(applied)}" if applied else ""
        media = "" if media_files is None else f" and {media_files} media file(s)"
        console.print(f"[green]restored[/] {escape(str(file))}{media}{then}", highlight=False)
        if media_files is None:
            err_console.print(
                f"[yellow]warning:[/] media files were not in the backup (no "
                f"{escape(str(media_archive(file)))}): stored images have no files until added again",
                highlight=False,
            )


@app.command()
@_store_errors
def url() -> None:
    """Print the connection URL (e.g. for psql)."""
    with open_db(settings(), migrate=False) as db:
        print(db.url)  # plain stdout, for $(hanseek db url)
        if db.server is not None:
            err_console.print(
                "note: the embedded server runs only while a hanseek process (e.g. `hanseek serve`) holds it"
            )
