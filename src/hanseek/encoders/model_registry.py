"""The model catalogue: `models` table (migration 0006) plus the active-model pointer file.

The database is the catalogue (names, kinds, cards with training facts and scores, which one is
active). `models_dir/active.json` mirrors the active name so that encoder resolution, which runs in
processes that may have no database connection, finds it too; an explicit HANSEEK_TEXT_MODEL wins.

The two cannot change in one atomic step, so the catalogue is the authority: the pointer is written
only after the catalogue's change committed, and whoever reads the active model with a database
open (`sync_active_pointer`) rewrites a pointer that a crash between the two left behind.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hanseek.config import Settings
from hanseek.encoders.base import EncoderError
from hanseek.encoders.model_store import NAME_PATTERN, read_marker
from hanseek.files import write_text_atomic

ACTIVE_FILE = "active.json"
# Names other things hold in the models dir, beside the model directories: a model of one of these
# names would stand where the pointer is written ("active.tmp" is the temporary earlier versions
# wrote it through), or, with --overwrite, replace every sentiment model.
RESERVED = {
    ACTIVE_FILE: "the active-model pointer",
    "active.tmp": "the active-model pointer",
    "sentiment": "the sentiment models' folder",
}
RESERVED_NAMES = frozenset(RESERVED)
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RegisteredModel:
    name: str
    kind: str
    path: str
    base_model: str | None
    dim: int
    card: dict[str, Any]
    active: bool


def check_name(name: str) -> str:
    if not re.match(NAME_PATTERN, name):
        raise EncoderError(f"invalid model name {name!r}: letters, digits, '.', '_' and '-' only")
    if name.lower() in RESERVED_NAMES:
        # Lower-cased: on a case-insensitive file system "Active.json" is the pointer file too.
        raise EncoderError(
            f"invalid model name {name!r}: the name of {RESERVED[name.lower()]} in the models "
            "directory; pick another name"
        )
    return name


def register(db: Any, name: str, path: Path, *, kind: str, dim: int, base_model: str | None = None) -> None:
    """Insert or update a model row from its directory (the card is its hanseek.json)."""
    from psycopg.types.json import Jsonb

    card = read_marker(path)
    with db.connection() as conn:
        conn.execute(
            """
            INSERT INTO models (name, kind, path, base_model, dim, card)
            VALUES (%s, %s, %s, %s, %s, %s)
            ON CONFLICT (name) DO UPDATE SET kind = EXCLUDED.kind, path = EXCLUDED.path,
                base_model = EXCLUDED.base_model, dim = EXCLUDED.dim, card = EXCLUDED.card
            """,
            (check_name(name), kind, str(path), base_model, dim, Jsonb(card)),
        )


def register_dir(db: Any, name: str, path: Path, *, default_kind: str = "imported") -> None:
    """Register a model directory using what it says about itself (hanseek.json, config.json)."""
    marker = read_marker(path)
    try:
        config = json.loads((path / "config.json").read_text(encoding="utf-8"))
        dim = int(config["hidden_size"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise EncoderError(f"{path} has no readable config.json with hidden_size") from e
    kind = str(marker.get("kind") or default_kind)
    base = marker.get("base_model")
    register(db, name, path, kind=kind, dim=dim, base_model=str(base) if base else None)


def list_registered(db: Any) -> list[RegisteredModel]:
    with db.connection() as conn:
        rows = conn.execute(
            "SELECT name, kind, path, base_model, dim, card, active FROM models ORDER BY created_at, name"
        ).fetchall()
    return [RegisteredModel(*row) for row in rows]


class ContentAppeared(EncoderError):
    """`set_active(..., require_empty=True)` found stored text vectors: they need a re-embedding."""


def set_active(db: Any, settings: Settings, name: str, *, require_empty: bool = False) -> None:
    """Make `name` the active model in the catalogue (one transaction), then in the pointer file.

    Under the switch lock, as the re-embedding swap: a writer that read the active model under the
    shared lock finishes before the switch, never after it. `require_empty`: refuse (ContentAppeared)
    when anything encoded by the text model is stored by then, e.g. posts written since the caller
    saw an empty database, whose old-model vectors would otherwise stay without a re-embedding."""
    from hanseek.encoders.reembed import SWITCH_LOCK, content_in

    with db.connection() as conn:
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (SWITCH_LOCK,))
        if require_empty and content_in(conn):
            raise ContentAppeared(f"texts were stored meanwhile: switching to {name} re-embeds them")
        found = conn.execute("SELECT 1 FROM models WHERE name = %s", (name,)).fetchone()
        if not found:
            raise EncoderError(f"model {name!r} is not registered (see `hanseek models list`)")
        conn.execute("UPDATE models SET active = false WHERE active AND name <> %s", (name,))
        conn.execute("UPDATE models SET active = true WHERE name = %s", (name,))
    # Only after the commit: a pointer renamed first and a transaction that then died (kill -9, a
    # failed commit) left the pointer on a model the catalogue never made active.
    sync_active_pointer(db, settings)


def sync_active_pointer(db: Any, settings: Settings) -> str | None:
    """The catalogue's active model (None: never switched), with the pointer file rewritten when it
    names another one (a crash between a switch's commit and its pointer write leaves it behind).

    Read and written under the switch lock (shared): a switch commits either before the read, or
    after the pointer is written and then writes its own, so a reader never puts back an older name
    over a newer one. A pointer that cannot be written (a read-only models dir) is logged; the
    caller still gets the catalogue's answer."""
    from hanseek.encoders.reembed import locked_active_model

    with db.connection() as conn:
        name = locked_active_model(conn)
        if name is not None and active_pointer(settings) != name:
            try:
                write_active_pointer(settings, name)
            except OSError as exc:
                log.warning("cannot rewrite %s to %s: %s", settings.models_dir / ACTIVE_FILE, name, exc)
    return name


def write_active_pointer(settings: Settings, name: str) -> None:
    # Through a hidden `.active.json.<random>.tmp`: no model name starts with '.', so a model
    # directory can never stand where the temporary goes, and concurrent writers do not share one.
    write_text_atomic(settings.models_dir / ACTIVE_FILE, json.dumps({"name": check_name(name)}) + "\n")


def active_pointer(settings: Settings) -> str | None:
    try:
        name = json.loads((settings.models_dir / ACTIVE_FILE).read_text(encoding="utf-8")).get("name")
    except (OSError, ValueError, AttributeError):
        return None
    if not isinstance(name, str) or not re.match(NAME_PATTERN, name) or name.lower() in RESERVED_NAMES:
        return None
    return name
