"""Shared CLI plumbing: settings, an open database, console and progress bars."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import typer
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
