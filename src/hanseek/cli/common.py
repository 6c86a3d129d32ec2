"""Shared CLI plumbing: settings, an open database, console and progress bars."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from hanseek.config import Settings, load_settings

if TYPE_CHECKING:
    from hanseek.store.db import Database

console = Console()
err_console = Console(stderr=True)


def settings() -> Settings:
    s = load_settings()
    s.ensure_dirs()
    return s


@contextmanager
def open_db(s: Settings, *, migrate: bool = True) -> Iterator[Database]:
    from hanseek.store.db import Database

    db = Database.open(s)
    try:
        if migrate:
            db.migrate()
            _check_embed_dim(db, s)
        yield db
    finally:
        db.close()


def _check_embed_dim(db: Database, s: Settings) -> None:
    """HANSEEK_EMBED_DIM sizes the feed's vectors in memory; the column's size is the migrations'.
    Until session 19 another value passed unnoticed until a feed request failed on a reshape."""
    from hanseek.encoders.reembed import posts_dim
    from hanseek.store.errors import StoreError

    with db.connection() as conn:
        col = posts_dim(conn)
    if col is not None and col != s.embed_dim:
        raise StoreError(
            f"HANSEEK_EMBED_DIM is {s.embed_dim}, but the posts' vector column holds {col}-d vectors "
            "(its size is set by the migrations): unset HANSEEK_EMBED_DIM"
        )


def progress() -> Progress:
    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[info]}"),
        console=err_console,
    )


def parse_range(value: str | None) -> tuple[int, int] | None:
    """A `START:END` option (e.g. which ParaKQC sets to use) as a half-open range; None if unset."""
    if not value:
        return None
    try:
        a, b = (int(x) for x in value.split(":"))
    except ValueError as e:
        raise typer.BadParameter("use START:END, e.g. 600:700") from e
    if not 0 <= a < b:
        raise typer.BadParameter("need 0 <= START < END")
    return a, b


def report_files(*paths: Path) -> None:
    """Make the folders of the report files a long run will write, and refuse a path that cannot be
    one, before the run: until session 18 `keywords eval --out` and `images eval --out` found out
    only after minutes of evaluation (and left a half-written pair)."""
    for path in paths:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            err_console.print(
                f"[red]error:[/red] cannot make the folder of {escape(str(path))}: {escape(str(exc))}",
                soft_wrap=True,  # a path is not broken across lines
            )
            raise typer.Exit(1) from None
        if path.is_dir():
            err_console.print(f"[red]error:[/red] {escape(str(path))} is a directory", soft_wrap=True)
            raise typer.Exit(1)
