"""`Database`: a psycopg 3 connection pool on the embedded server or an external PostgreSQL.

Every pooled connection has pgvector's types registered, so numpy arrays go in as `vector` and
`vector` columns come back as numpy arrays.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any

import psycopg
from pgvector.psycopg import register_vector
from psycopg import errors as pg_errors
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import ConnectionPool, PoolTimeout

from hanseek.config import Settings
from hanseek.store.errors import StoreError
from hanseek.store.migrations import MigrationStatus, Migrator
from hanseek.store.server import EmbeddedServer

__all__ = ["Database", "StoreError", "check_url", "redact_url"]

log = logging.getLogger(__name__)

# SQLSTATE class 40: the server rolled a transaction back because of concurrent ones (psycopg
# raises DeadlockDetected and SerializationFailure as siblings of TransactionRollback, not as
# subclasses). Nothing of it was saved, so the same work may simply be run again.
ROLLED_BACK: tuple[type[psycopg.Error], ...] = (
    pg_errors.TransactionRollback,
    pg_errors.SerializationFailure,
    pg_errors.DeadlockDetected,
)

_PASSWORD_IN_URL = re.compile(r"(://[^:/?#@]*:)[^@/?#]*@")
_PASSWORD_PARAM = re.compile(r"(password=)[^&\s]*", re.IGNORECASE)


def redact_url(url: str) -> str:
    """The URL with any password masked, for messages and logs."""
    return _PASSWORD_PARAM.sub(r"\1***", _PASSWORD_IN_URL.sub(r"\1***@", url))


def check_url(url: str) -> None:
    """A StoreError, password masked, when libpq cannot parse `url` (a URL or a key=value string)."""
    try:
        conninfo_to_dict(url)
    except psycopg.Error as exc:
        # libpq's message quotes the whole URL, password included: mask it, and drop the chained
        # exception, whose traceback would show it again.
        reason = redact_url(str(exc).strip())
        raise StoreError(
            f"the database URL is malformed ({reason}); expected postgresql://user:password@host:port/dbname"
        ) from None


def _configure(conn: psycopg.Connection[Any]) -> None:
    register_vector(conn)
    # The pool requires connections to come back idle; the type lookups opened a transaction.
    conn.commit()


def ensure_vector_extension(url: str) -> None:
    """Create pgvector in the target database if missing; a clear StoreError when that is impossible."""
    check_url(url)
    where = redact_url(url)
    try:
        with psycopg.connect(url, autocommit=True, connect_timeout=10) as conn:
            if conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'vector'").fetchone():
                return
            available = conn.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'vector'").fetchone()
            if available is None:
                raise StoreError(
                    f"pgvector extension is not installed on {where}: the server has no 'vector' "
                    "extension available; install pgvector (https://github.com/pgvector/pgvector) there"
                )
            try:
                conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
            except pg_errors.UniqueViolation:
                pass  # another process created it at the same moment
            except psycopg.Error as exc:
                raise StoreError(
                    f"pgvector extension is not installed on {where} and could not be created "
                    f"({exc.diag.message_primary or exc}); run `CREATE EXTENSION vector;` there as a "
                    "superuser or the database owner"
                ) from exc
    except psycopg.OperationalError as exc:
        raise StoreError(f"cannot connect to PostgreSQL at {where}: {exc}") from exc


class Database:
    """An open database: `url`, a connection `pool`, migrations; `close()` releases everything."""

    def __init__(
        self,
        url: str,
        pool: ConnectionPool[psycopg.Connection[Any]],
        server: EmbeddedServer | None = None,
        migrations_dir: Path | None = None,
    ) -> None:
        self.url = url
        self.pool = pool
        self.server = server
        self._migrations_dir = migrations_dir

    @classmethod
    def open(
        cls,
        settings: Settings,
        *,
        migrations_dir: Path | None = None,
        connect_timeout: float = 30.0,
    ) -> Database:
        """Start/reuse the embedded server (or use `settings.database_url`) and open a pool."""
        server: EmbeddedServer | None = None
        if settings.database_url:
            url = settings.database_url
        else:
            server = EmbeddedServer.start(settings.pgdata_dir)
            url = server.url()
        try:
            ensure_vector_extension(url)
            pool: ConnectionPool[psycopg.Connection[Any]] = ConnectionPool(
                url,
                min_size=settings.pool_min_size,
                max_size=max(settings.pool_max_size, settings.pool_min_size),
                configure=_configure,
                # A restarted server leaves dead sockets in the pool: check before handing out.
                check=ConnectionPool.check_connection,
                name="hanseek",
                open=False,
            )
            pool.open(wait=True, timeout=connect_timeout)
        except PoolTimeout as exc:
            if server is not None:
                server.close()
            raise StoreError(
                f"could not open {settings.pool_min_size} connection(s) to {redact_url(url)} "
                f"within {connect_timeout:.0f}s"
            ) from exc
        except BaseException:
            if server is not None:
                server.close()
            raise
        return cls(url, pool, server, migrations_dir)

    @property
    def embedded(self) -> bool:
        return self.server is not None

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection[Any]]:
        """A pooled connection; its transaction commits on success and rolls back on exception."""
        with self.pool.connection() as conn:
            yield conn

    def migrator(self) -> Migrator:
        return Migrator(self.url, self._migrations_dir)

    def migrate(self) -> list[str]:
        """Apply pending migrations in order; return the names applied (e.g. ["0001_core"])."""
        return self.migrator().migrate()

    def migration_status(self) -> list[MigrationStatus]:
        return self.migrator().status()

    def ping(self) -> bool:
        try:
            with self.pool.connection(timeout=5.0) as conn:
                return conn.execute("SELECT 1").fetchone() == (1,)
        except (psycopg.Error, PoolTimeout) as exc:
            log.warning("database ping failed: %s", exc)
            return False

    def close(self) -> None:
        """Close the pool and release the embedded server handle (the data is kept). Idempotent."""
        if not self.pool.closed:
            self.pool.close()
        if self.server is not None:
            self.server.close()

    def __enter__(self) -> Database:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        kind = "embedded" if self.embedded else "external"
        return f"Database({kind}, {redact_url(self.url)})"
