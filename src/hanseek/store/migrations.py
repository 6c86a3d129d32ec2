"""Versioned SQL migrations: `migrations/NNNN_name.sql`, applied in version order, once each.

Each file runs in its own transaction together with its row in `schema_migrations`, so a failing
file leaves nothing behind. A session-level advisory lock serialises concurrent migrators (two
processes starting at once). Applied files are fingerprinted (sha256); editing one afterwards is an
error, because the database would silently differ from what the file now says: add a new file.

Files must not contain their own BEGIN/COMMIT, nor statements that cannot run in a transaction
(CREATE INDEX CONCURRENTLY, VACUUM).
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any, Literal

import psycopg

from hanseek.store.errors import MigrationError, StoreError

__all__ = ["Migration", "MigrationStatus", "Migrator", "load_migrations"]

_FILE = re.compile(r"^(\d{4})_([a-z0-9][a-z0-9_]*)\.sql$")
# Any constant shared by every hanseek process; "hanseek" in ASCII.
_LOCK_KEY = 0x68616E7365656B

_BOOTSTRAP = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    integer PRIMARY KEY,
    name       text        NOT NULL,
    checksum   text        NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""

State = Literal["applied", "pending", "changed", "missing", "newer"]


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str  # "0001_core"
    sql: str
    checksum: str


@dataclass(frozen=True, slots=True)
class MigrationStatus:
    version: int
    name: str
    # changed = applied but the file differs; missing = applied, file gone; newer = past the last file
    state: State
    applied_at: datetime | None


def default_migrations_dir() -> Traversable:
    return resources.files("hanseek.store").joinpath("migrations")


def load_migrations(directory: Path | Traversable | None = None) -> list[Migration]:
    """Parse and order the migration files; malformed names and duplicate versions are errors."""
    root = default_migrations_dir() if directory is None else directory
    found: dict[int, Migration] = {}
    for entry in root.iterdir():
        if not entry.name.endswith(".sql"):
            continue
        m = _FILE.match(entry.name)
        if m is None:
            raise MigrationError(f"migration file name {entry.name!r} does not match NNNN_name.sql")
        raw = entry.read_bytes()
        version = int(m.group(1))
        mig = Migration(version, entry.name[:-4], raw.decode("utf-8"), hashlib.sha256(raw).hexdigest())
        if version in found:
            raise MigrationError(
                f"two migrations share version {version:04d}: {found[version].name} and {mig.name}"
            )
        if not mig.sql.strip():
            raise MigrationError(f"migration {mig.name} is empty")
        found[version] = mig
    return [found[v] for v in sorted(found)]


def newer_than(migrations: list[Migration], applied: Mapping[int, tuple[Any, ...]]) -> list[str]:
    """Names of applied migrations past the last file: a newer hanseek migrated the database, and
    this version's code would run against tables it does not know (an applied version below the last
    file whose file is gone stays a `missing` line in the status, as before)."""
    last = migrations[-1].version if migrations else 0
    return [str(applied[v][0]) for v in sorted(applied) if v > last]


def newer_message(what: str, migrations: list[Migration], newer: list[str]) -> str:
    latest = migrations[-1].name if migrations else "none"
    return (
        f"{what} was migrated by a newer hanseek: {', '.join(newer)} "
        f"{'is' if len(newer) == 1 else 'are'} not in this version (its latest migration is {latest}); "
        "upgrade hanseek, or restore a backup made by this version"
    )


class Migrator:
    """Applies the migration files of `directory` (default: the package's) to the database at `url`."""

    def __init__(self, url: str, directory: Path | Traversable | None = None, lock_timeout: float = 300.0):
        self.url = url
        self.directory = directory
        self.lock_timeout = lock_timeout

    def _connect(self) -> psycopg.Connection[Any]:
        try:
            return psycopg.connect(self.url, autocommit=True, connect_timeout=10)
        except psycopg.OperationalError as exc:
            raise StoreError(f"cannot connect to run migrations: {exc}") from exc

    @staticmethod
    def _applied(conn: psycopg.Connection[Any]) -> dict[int, tuple[str, str, datetime]]:
        exists = conn.execute("SELECT to_regclass('schema_migrations') IS NOT NULL").fetchone()
        if not exists or not exists[0]:
            return {}
        rows = conn.execute("SELECT version, name, checksum, applied_at FROM schema_migrations").fetchall()
        return {int(v): (str(n), str(c), a) for v, n, c, a in rows}

    def status(self) -> list[MigrationStatus]:
        files = {m.version: m for m in load_migrations(self.directory)}
        with self._connect() as conn:
            applied = self._applied(conn)
        out: list[MigrationStatus] = []
        for version in sorted(files.keys() | applied.keys()):
            f = files.get(version)
            a = applied.get(version)
            if a is None:
                assert f is not None
                out.append(MigrationStatus(version, f.name, "pending", None))
            elif f is None:
                last = max(files, default=0)
                out.append(MigrationStatus(version, a[0], "newer" if version > last else "missing", a[2]))
            else:
                state: State = "applied" if f.checksum == a[1] else "changed"
                out.append(MigrationStatus(version, f.name, state, a[2]))
        return out

    def migrate(self) -> list[str]:
        """Apply every pending file in version order; return their names. Safe to run concurrently."""
        migrations = load_migrations(self.directory)
        with self._connect() as conn:
            self._lock(conn)
            try:
                conn.execute(_BOOTSTRAP)
                applied = self._applied(conn)
                changed = [
                    m.name for m in migrations if m.version in applied and applied[m.version][1] != m.checksum
                ]
                if changed:
                    raise MigrationError(
                        f"migration file(s) {', '.join(changed)} changed after being applied (checksum "
                        "mismatch); restore the original file and add a new migration for the change"
                    )
                newer = newer_than(migrations, applied)
                if newer:
                    raise MigrationError(newer_message("this database", migrations, newer))
                done: list[str] = []
                for m in migrations:
                    if m.version in applied:
                        continue
                    self._apply(conn, m)
                    done.append(m.name)
                return done
            finally:
                conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_KEY,))

    def _lock(self, conn: psycopg.Connection[Any]) -> None:
        deadline = time.monotonic() + self.lock_timeout
        while True:
            row = conn.execute("SELECT pg_try_advisory_lock(%s)", (_LOCK_KEY,)).fetchone()
            if row and row[0]:
                return
            if time.monotonic() > deadline:
                raise MigrationError(
                    f"another process has been migrating this database for over {self.lock_timeout:.0f}s"
                )
            time.sleep(0.1)

    @staticmethod
    def _apply(conn: psycopg.Connection[Any], m: Migration) -> None:
        try:
            with conn.transaction():
                # No parameters: psycopg sends the file as one simple query, so it may hold many
                # statements and dollar-quoted bodies.
                conn.execute(m.sql.encode())
                conn.execute(
                    "INSERT INTO schema_migrations (version, name, checksum) VALUES (%s, %s, %s)",
                    (m.version, m.name, m.checksum),
                )
        except psycopg.Error as exc:
            raise MigrationError(f"migration {m.name} failed and was rolled back: {exc}") from exc
