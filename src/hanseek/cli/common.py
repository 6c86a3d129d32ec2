"""Shared CLI plumbing: settings, an open database, console and progress bars."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from rich.console import Console
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
        yield db
    finally:
        db.close()


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
