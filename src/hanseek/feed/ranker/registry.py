"""Trained re-rankers: files under <data_dir>/feed/rankers/, catalogue in `feed_rankers`, one active.

Every serving process asks the database which model is active at most every `poll_seconds`, so
activating another model swaps it in everywhere without a restart.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hanseek.encoders.model_store import NAME_PATTERN
from hanseek.feed.ranker.model import RankerModel, blend_model

if TYPE_CHECKING:
    from hanseek.store.db import Database

log = logging.getLogger(__name__)
_NAME = re.compile(NAME_PATTERN)


def rankers_dir(data_dir: Path) -> Path:
    return data_dir / "feed" / "rankers"


class RankerNameError(ValueError):
    pass


def check_name(name: str) -> str:
    """A ranker name is a file name under rankers/: letters, digits, '.', '_', '-' (the catalogue's
    CHECK), checked before anything is written."""
    if not _NAME.match(name):
        raise RankerNameError(
            f"bad ranker name {name!r}: up to 100 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return name


def register(db: Database, data_dir: Path, name: str, model: RankerModel, *, activate: bool = True) -> Path:
    check_name(name)
    if not activate:
        with db.connection() as conn:
            row = conn.execute("SELECT active FROM feed_rankers WHERE name = %s", (name,)).fetchone()
        if row is not None and row[0]:
            # Its file would be replaced under the servers while the catalogue said "not active".
            raise RankerNameError(
                f"{name!r} is the serving ranker: save the new model under another name, or activate it"
            )
    path = rankers_dir(data_dir) / f"{name}.joblib"
    model.meta["name"] = name
    model.save(path)
    with db.connection() as conn:
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
    return path


def activate(db: Database, name: str | None) -> None:
    """Make `name` the serving model (None: no model, serve the hand-tuned blend)."""
    with db.connection() as conn:
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
        # (name, created_at) of the model served: retraining under the same name is a new model.
        self._version: tuple[str, Any] | None = None
        self._checked = float("-inf")
        self._lock = threading.Lock()

    def get(self) -> RankerModel:
        if time.monotonic() - self._checked >= self.poll_seconds:
            self.refresh()
        return self._model

    def refresh(self) -> None:
        with self._lock:
            self._checked = time.monotonic()
            try:
                with self.db.connection() as conn:
                    row = conn.execute(
                        "SELECT name, path, created_at FROM feed_rankers WHERE active"
                    ).fetchone()
            except Exception as exc:  # keep serving the current model when the catalogue is unreachable
                log.warning("feed ranker catalogue: %s", exc)
                return
            version = (row[0], row[2]) if row else None
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
            except Exception:
                current = self._version[0] if self._version else "the blend"
                log.exception("could not load feed ranker %s; keeping %s", name, current)
