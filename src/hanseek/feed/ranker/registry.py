"""Trained re-rankers: files under <data_dir>/feed/rankers/, catalogue in `feed_rankers`, one active.

Every serving process asks the database which model is active at most every `poll_seconds`, so
activating another model swaps it in everywhere without a restart.

Every registration writes a file of its own (`versions/NAME/<time>-<random>.joblib`) and points the
catalogue row at it in the same transaction that updates the row; the previous file is deleted only
after the commit. A file a row points at is never rewritten, so whatever a crash interrupts, the row
and the file it names describe one model, and every process loads the model the row describes
(rows written before this layout point at `NAME.joblib` and load as they are).
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import re
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hanseek.encoders.model_store import NAME_PATTERN, file_lock
from hanseek.feed.ranker.model import RankerModel, blend_model

if TYPE_CHECKING:
    from hanseek.store.db import Database

log = logging.getLogger(__name__)
_NAME = re.compile(NAME_PATTERN)


def rankers_dir(data_dir: Path) -> Path:
    return data_dir / "feed" / "rankers"


def versions_dir(data_dir: Path, name: str) -> Path:
    """Where `name`'s model files go. A folder per name, apart from the older `NAME.joblib` files: a
    name may contain '-' and '.', so neither `NAME-<version>` nor `NAME/` beside `NAME.joblib` could
    tell one name's files from another's."""
    return rankers_dir(data_dir) / "versions" / name


_LOCK = ".lock"
# An older version's `NAME.joblib.partial` this old belongs to a writer that is not coming back.
_LEGACY_PARTIAL_STALE_S = 600.0


class RankerNameError(ValueError):
    pass


def check_name(name: str) -> str:
    """A ranker name is a folder name under rankers/versions/: letters, digits, '.', '_', '-' (the
    catalogue's CHECK), checked before anything is written."""
    if not _NAME.match(name):
        raise RankerNameError(
            f"bad ranker name {name!r}: up to 100 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return name


def register(db: Database, data_dir: Path, name: str, model: RankerModel, *, activate: bool = True) -> Path:
    """Save `model` as `name` (a new file), point the catalogue at it (and by default activate it),
    then delete the file it replaces. Returns the new file's path."""
    check_name(name)
    if not activate:
        with db.connection() as conn:
            row = conn.execute("SELECT active FROM feed_rankers WHERE name = %s", (name,)).fetchone()
        if row is not None and row[0]:
            # Checked again in the transaction; here it only spares the writing of the file.
            raise _serving(name)
    folder = versions_dir(data_dir, name)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{datetime.now(UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:12]}.joblib"
    model.meta["name"] = name
    # Writers of one name take turns from the file's creation to the clean-up after the commit: so a
    # file in the folder that the row does not name, seen under the lock, is a killed writer's.
    with file_lock(folder / _LOCK):
        try:
            model.save(path)
            previous = _point_row_at(db, name, path, model, activate)
        except BaseException:
            _remove(path)
            raise
        # After the commit only: until then the row still names the previous file.
        if previous is not None and previous != path and _is_under(previous, rankers_dir(data_dir)):
            _remove(previous)
        _remove_leftovers(data_dir, name, keep=path)
    try:
        remove_dead_writers_files(db, data_dir)
    except Exception as exc:  # the model is registered; a leftover only costs disk
        log.warning("feed rankers: clean-up skipped: %s", exc)
    return path


def _serving(name: str) -> RankerNameError:
    # Its file would be replaced under the servers while the catalogue said "not active".
    return RankerNameError(
        f"{name!r} is the serving ranker: save the new model under another name, or activate it"
    )


# Every catalogue write (a registration, `activate`) takes it first: they lock the named row and the
# active one, and in two orders they deadlocked; "hsrankr".
_CATALOGUE_LOCK = 0x687372616E6B72


def _point_row_at(db: Database, name: str, path: Path, model: RankerModel, activate: bool) -> Path | None:
    """Insert or update `name`'s row to describe `model` at `path`, in one transaction; the path of
    the file the row named before (None for a new name)."""
    with db.connection() as conn:
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_CATALOGUE_LOCK,))
        row = conn.execute(
            "SELECT path, active FROM feed_rankers WHERE name = %s FOR UPDATE", (name,)
        ).fetchone()
        if not activate and row is not None and row[1]:
            raise _serving(name)
        if activate:
            conn.execute("UPDATE feed_rankers SET active = false WHERE active")
        conn.execute(
            "INSERT INTO feed_rankers (name, path, kind, features, metrics, active) "
            "VALUES (%s, %s, %s, %s, %s, %s) "
            "ON CONFLICT (name) DO UPDATE SET path = EXCLUDED.path, kind = EXCLUDED.kind, "
            "features = EXCLUDED.features, metrics = EXCLUDED.metrics, active = EXCLUDED.active, "
            "created_at = now()",
            (name, str(path), model.kind, model.features, json.dumps(model.meta, default=str), activate),
        )
    return Path(row[0]) if row is not None else None


def _is_under(path: Path, folder: Path) -> bool:
    # A row may name a file of another data dir (a copied database): never delete outside ours.
    return path.resolve().is_relative_to(folder.resolve())


def _remove(model_file: Path) -> None:
    for p in (model_file, model_file.with_suffix(".json")):
        try:
            p.unlink(missing_ok=True)
        except OSError as exc:  # the catalogue is already right; a leftover only costs disk
            log.warning("could not remove %s: %s", p, exc)


def remove_dead_writers_files(db: Database, data_dir: Path) -> list[str]:
    """Clean up after killed writers of every other name too (a name never registered again would
    keep them for good): a name whose lock is free has no writer between creating a file and
    cleaning up, so whatever its row does not name is a leftover. Names being written are skipped.
    Returns the names cleaned."""
    root = rankers_dir(data_dir) / "versions"
    try:
        folders = [p for p in root.iterdir() if p.is_dir() and _NAME.match(p.name)]
    except FileNotFoundError:
        return []
    cleaned: list[str] = []
    for folder in folders:
        with _try_lock(folder / _LOCK) as locked:
            if not locked:
                continue
            with db.connection() as conn:
                row = conn.execute("SELECT path FROM feed_rankers WHERE name = %s", (folder.name,)).fetchone()
            _remove_leftovers(data_dir, folder.name, keep=Path(row[0]) if row else None)
            cleaned.append(folder.name)
    return cleaned


@contextmanager
def _try_lock(path: Path) -> Iterator[bool]:
    """The lock `register` holds for a name, if it is free now (never waits)."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError:
        yield False
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)  # also releases the lock


def _remove_leftovers(data_dir: Path, name: str, keep: Path | None) -> None:
    """Delete what killed writers of `name` left: temporaries cut short, files written but never
    committed, a previous file the clean-up did not reach; and the older layout's `NAME.joblib`
    (+ sidecar) that the row no longer names. Called under the name's lock, after the commit."""
    folder = versions_dir(data_dir, name)
    wanted = {_LOCK}
    if keep is not None and keep.parent == folder:
        wanted |= {keep.name, keep.with_suffix(".json").name}
    for p in folder.iterdir():
        if p.name not in wanted and p.is_file():
            _remove(p)
    legacy = rankers_dir(data_dir) / f"{name}.joblib"
    if keep is not None and legacy != keep:
        _remove(legacy)
    partial = legacy.with_name(legacy.name + ".partial")
    try:
        if time.time() - partial.stat().st_mtime > _LEGACY_PARTIAL_STALE_S:
            partial.unlink(missing_ok=True)
    except OSError:
        pass


def activate(db: Database, name: str | None) -> None:
    """Make `name` the serving model (None: no model, serve the hand-tuned blend)."""
    with db.connection() as conn:
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_CATALOGUE_LOCK,))
        if (
            name is not None
            and conn.execute("SELECT 1 FROM feed_rankers WHERE name = %s", (name,)).fetchone() is None
        ):
            raise KeyError(name)
        conn.execute("UPDATE feed_rankers SET active = false WHERE active")
        if name is not None:
            conn.execute("UPDATE feed_rankers SET active = true WHERE name = %s", (name,))


def listing(db: Database) -> list[dict[str, Any]]:
    with db.connection() as conn:
        rows = conn.execute(
            "SELECT name, kind, active, created_at, metrics FROM feed_rankers ORDER BY created_at DESC"
        ).fetchall()
    return [{"name": r[0], "kind": r[1], "active": r[2], "created_at": r[3], "metrics": r[4]} for r in rows]


class ActiveRanker:
    """The model to serve with: the active registered one, else the blend."""

    def __init__(self, db: Database, poll_seconds: float = 10.0) -> None:
        self.db = db
        self.poll_seconds = poll_seconds
        self._model = blend_model()
        # (name, created_at, path) of the model served: retraining under the same name is a new
        # model (a new row time and a new file).
        self._version: tuple[str, Any, str] | None = None
        self._checked = float("-inf")
        self._lock = threading.Lock()

    def get(self) -> RankerModel:
        if time.monotonic() - self._checked >= self.poll_seconds:
            self.refresh()
        return self._model

    def refresh(self) -> None:
        with self._lock:
            self._checked = time.monotonic()
            # Twice at most: a retrain that commits after the row is read deletes the file it named,
            # and the row read again names the new one.
            for attempt in range(2):
                try:
                    with self.db.connection() as conn:
                        row = conn.execute(
                            "SELECT name, path, created_at FROM feed_rankers WHERE active"
                        ).fetchone()
                except Exception as exc:  # keep serving the current model when the catalogue is unreachable
                    log.warning("feed ranker catalogue: %s", exc)
                    return
                version = (row[0], row[2], row[1]) if row else None
                if version == self._version:
                    return
                if row is None:
                    self._model, self._version = blend_model(), None
                    return
                name = row[0]
                try:
                    self._model = RankerModel.load(Path(row[1]))
                    self._version = version
                    log.info("feed ranker %s loaded", name)
                    return
                except Exception as exc:
                    if isinstance(exc, FileNotFoundError) and attempt == 0:
                        continue
                    current = self._version[0] if self._version else "the blend"
                    log.exception("could not load feed ranker %s; keeping %s", name, current)
                    return
