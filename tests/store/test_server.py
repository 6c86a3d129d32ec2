"""Embedded server lifecycle: restart, SIGKILL recovery, sharing between processes, external URLs."""

from __future__ import annotations

import hashlib
import json
import os
import pwd
import signal
import stat
import subprocess
import sys
import tempfile
import textwrap
import time
import traceback
import uuid
from collections.abc import Iterator
from pathlib import Path
from unittest import mock

import psutil
import psycopg
import pytest
from psycopg import sql

from hanseek.config import Settings
from hanseek.store import server as server_module
from hanseek.store.db import Database, redact_url
from hanseek.store.errors import StoreError
from hanseek.store.server import (
    SERVED_MARK,
    SYSTEM_USER,
    EmbeddedServer,
    _shared_buffers_mb,
    _socket_dir,
    running_pid,
    stop_server,
)

CHILD = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    from hanseek.config import Settings
    from hanseek.store.db import Database

    db = Database.open(Settings(data_dir=Path(sys.argv[1]), database_url=None, pool_min_size=1))
    with db.connection() as conn:
        value = None
        if conn.execute("SELECT to_regclass('shared_note')").fetchone()[0]:
            value = conn.execute("SELECT value FROM shared_note").fetchone()
    print(json.dumps({"pid": db.server.pid, "value": value[0] if value else None}), flush=True)
    if sys.stdin.readline().strip() != "exit-without-close":  # hold the handle until told to go
        db.close()
    """
)


def _child(data_dir: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, str(data_dir)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _read_child(proc: subprocess.Popen[str]) -> dict:
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        raise AssertionError(f"child failed: {proc.stderr.read() if proc.stderr else ''}")
    return json.loads(line)


def _new_settings(root: Path) -> Settings:
    d = root / f"own-{uuid.uuid4().hex[:8]}"
    d.mkdir()
    return Settings(data_dir=d, database_url=None, pool_min_size=1, pool_max_size=2)


@pytest.fixture()
def own_settings(store_tmp_root: Path) -> Settings:
    """Settings on a new, empty data dir of this test's own."""
    return _new_settings(store_tmp_root)


@pytest.fixture(scope="module")
def module_settings(store_tmp_root: Path) -> Iterator[Settings]:
    """A data dir (and server, while open) separate from the session's, initialised once: initdb costs
    seconds. Each test leaves the server stopped."""
    s = _new_settings(store_tmp_root)
    EmbeddedServer.start(s.pgdata_dir).close()
    yield s
    stop_server(s.pgdata_dir, immediate=True)  # only does something after a failed test


def test_session_server_is_private_unix_socket_only(db: Database) -> None:
    assert db.embedded and db.server is not None
    with db.connection() as conn:
        assert conn.execute("SHOW listen_addresses").fetchone() == ("",)
        assert conn.execute("SHOW unix_socket_permissions").fetchone() == ("0700",)
        assert conn.execute("SELECT current_database()").fetchone() == ("hanseek",)
    postmaster = psutil.Process(db.server.pid)
    inet = [c for c in postmaster.net_connections(kind="inet") if c.status == psutil.CONN_LISTEN]
    assert inet == []
    assert (db.server.socket_dir / f".s.PGSQL.{db.server.port}").is_socket()
    assert oct(db.server.pgdata.stat().st_mode & 0o777) in ("0o700", "0o750")


def test_shared_buffers_default_scales_with_memory(db: Database) -> None:
    with db.connection() as conn:
        row = conn.execute(
            "SELECT setting::bigint * 8192 / 1048576 FROM pg_settings WHERE name = 'shared_buffers'"
        ).fetchone()
    assert row is not None and row[0] == _shared_buffers_mb()
    assert 128 <= row[0] <= 2048


def test_restart_keeps_data(module_settings: Settings) -> None:
    with Database.open(module_settings) as db:
        db.migrate()
        pid = db.server.pid if db.server else None
        with db.connection() as conn:
            conn.execute("CREATE TABLE kept (id int, note text)")
            conn.execute("INSERT INTO kept VALUES (1, '남는다'), (2, 'stays')")
    assert pid is not None
    assert running_pid(module_settings.pgdata_dir) is None  # last handle closed: server stopped
    with Database.open(module_settings) as db:
        assert db.migrate() == []
        with db.connection() as conn:
            assert conn.execute("SELECT note FROM kept ORDER BY id").fetchall() == [("남는다",), ("stays",)]


def test_sigkilled_postmaster_recovers_with_data(module_settings: Settings) -> None:
    db = Database.open(module_settings)
    try:
        with db.connection() as conn:
            conn.execute("CREATE TABLE durable (id int)")
            conn.execute("INSERT INTO durable SELECT generate_series(1, 1000)")
        assert db.server is not None
        idle = psycopg.connect(db.url)  # an orphaned backend holds the old shared memory for a while
        os.kill(db.server.pid, signal.SIGKILL)
        time.sleep(0.2)
        assert running_pid(module_settings.pgdata_dir) is None
        assert (module_settings.pgdata_dir / "postmaster.pid").exists()  # stale lock file left behind
        with Database.open(module_settings) as again:
            with again.connection() as conn:
                assert conn.execute("SELECT count(*), sum(id) FROM durable").fetchone() == (1000, 500500)
            # The first pool notices its dead connections and reconnects to the new server.
            assert db.ping()
        idle.close()
    finally:
        db.close()
    assert running_pid(module_settings.pgdata_dir) is None


def test_second_process_reuses_the_running_server(db: Database, db_settings: Settings) -> None:
    with db.connection() as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS shared_note (value text)")
        conn.execute("DELETE FROM shared_note")
        conn.execute("INSERT INTO shared_note VALUES ('from parent')")
    assert db.server is not None
    child = _child(db_settings.data_dir)
    try:
        out = _read_child(child)
        assert out == {"pid": db.server.pid, "value": "from parent"}
    finally:
        child.communicate("go\n", timeout=60)
    assert child.returncode == 0
    assert running_pid(db_settings.pgdata_dir) == db.server.pid  # our handle keeps it up
    assert db.ping()


def test_concurrent_first_opens_share_one_server(own_settings: Settings) -> None:
    # Two processes race to initialise and start a brand-new data dir.
    children = [_child(own_settings.data_dir) for _ in range(2)]
    try:
        outs = [_read_child(c) for c in children]
    finally:
        for c in children:
            c.communicate("go\n", timeout=60)
    assert outs[0]["pid"] == outs[1]["pid"]
    assert [c.returncode for c in children] == [0, 0]
    assert running_pid(own_settings.pgdata_dir) is None  # the last one out stopped it


def test_exit_without_close_releases_the_handle(module_settings: Settings) -> None:
    child = _child(module_settings.data_dir)
    pid = _read_child(child)["pid"]
    assert running_pid(module_settings.pgdata_dir) == pid
    child.communicate("exit-without-close\n", timeout=60)
    assert child.returncode == 0
    assert running_pid(module_settings.pgdata_dir) is None  # released at interpreter exit


def test_killed_client_does_not_pin_the_server(module_settings: Settings) -> None:
    db = Database.open(module_settings)
    with db.connection() as conn:
        conn.execute("CREATE TABLE shared_note (value text)")
        conn.execute("INSERT INTO shared_note VALUES ('x')")
    child = _child(module_settings.data_dir)
    try:
        assert _read_child(child)["pid"] == (db.server.pid if db.server else None)
    finally:
        child.kill()
        child.wait()
    db.close()  # the killed child's handle is pruned, so this was the last one
    assert running_pid(module_settings.pgdata_dir) is None


def test_external_url_mode(db: Database, scratch_settings: Settings) -> None:
    with Database.open(scratch_settings) as ext:
        assert not ext.embedded and ext.url == scratch_settings.database_url
        assert ext.migrate() == [m for m in (s.name for s in ext.migration_status())]
        assert ext.ping()
        with ext.connection() as conn:
            assert conn.execute("SELECT current_database()").fetchone() != ("hanseek",)
    assert db.ping()  # closing an external Database never stops the embedded server


def test_external_without_pgvector_is_a_clear_error(db: Database) -> None:
    assert db.server is not None
    name = f"nopgv_{uuid.uuid4().hex[:8]}"
    role = f"limited_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(db.server.url("postgres"), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD 'not-shown'").format(sql.Identifier(role)))
        conn.execute(
            sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(name), sql.Identifier(role))
        )
    # pgvector is not a trusted extension: a non-superuser owner cannot create it.
    url = db.server.url(name).replace("postgresql://postgres@", f"postgresql://{role}:not-shown@")
    with pytest.raises(StoreError, match="pgvector extension is not installed on") as info:
        Database.open(Settings(data_dir=db.server.pgdata.parent, database_url=url))
    assert "not-shown" not in str(info.value)


def test_unreachable_external_url(tmp_path: Path) -> None:
    url = f"postgresql://u:secret@/x?host={tmp_path}&port=1"
    with pytest.raises(StoreError, match="cannot connect") as info:
        Database.open(Settings(data_dir=tmp_path, database_url=url))
    assert "secret" not in str(info.value)


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://u:s3cretpw@[bad/db",
        "not-a-url",
        "mysql://x:s3cretpw@y/z",
        "postgresql://u:s3cretpw@h/d?x=1",
    ],
)
def test_a_malformed_url_is_one_clear_error_without_the_password(tmp_path: Path, url: str) -> None:
    """libpq's parse error quotes the whole URL: it was a traceback showing the password."""
    with pytest.raises(StoreError, match="the database URL is malformed") as info:
        Database.open(Settings(data_dir=tmp_path, database_url=url))
    shown = "".join(traceback.format_exception(info.value))
    assert "s3cretpw" not in shown and "psycopg" not in shown


def test_redact_url() -> None:
    assert redact_url("postgresql://me:pw@host:5432/db") == "postgresql://me:***@host:5432/db"
    assert redact_url("postgresql://me@host/db?password=pw&x=1") == "postgresql://me@host/db?password=***&x=1"
    assert (
        redact_url("postgresql://postgres@/hanseek?host=/tmp/x")
        == "postgresql://postgres@/hanseek?host=/tmp/x"
    )


def test_foreign_data_dir_is_refused(own_settings: Settings) -> None:
    own_settings.pgdata_dir.mkdir()
    (own_settings.pgdata_dir / "something.txt").write_text("not a database")
    with pytest.raises(StoreError, match="neither empty nor a PostgreSQL data directory"):
        EmbeddedServer.start(own_settings.pgdata_dir)


def test_other_major_version_is_refused(own_settings: Settings) -> None:
    own_settings.pgdata_dir.mkdir()
    (own_settings.pgdata_dir / "PG_VERSION").write_text("9\n")
    with pytest.raises(StoreError, match="created by PostgreSQL 9"):
        EmbeddedServer.start(own_settings.pgdata_dir)


def test_server_that_cannot_start_reports_its_log(module_settings: Settings) -> None:
    conf = module_settings.pgdata_dir / "postgresql.auto.conf"
    original = conf.read_text()
    conf.write_text(original + "shared_buffers = 'lots'\n")
    try:
        with pytest.raises(StoreError, match=r"could not start(?s:.*)shared_buffers"):
            EmbeddedServer.start(module_settings.pgdata_dir, timeout=3)
    finally:
        conf.write_text(original)
    EmbeddedServer.start(module_settings.pgdata_dir).close()  # fine again once the setting is fixed


def _long_pgdata(root: Path) -> Path:
    """A data dir whose socket path would pass the ~107-byte limit: the socket goes to the temp dir."""
    return root / ("d" * 110) / "pgdata"


def _server_uid() -> int:
    return pwd.getpwnam(SYSTEM_USER).pw_uid if os.geteuid() == 0 else os.geteuid()


@pytest.fixture()
def private_tmpdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A temp dir of the test's own as $TMPDIR, where the fallback socket dirs are made."""
    tmp = tmp_path / "tmpdir"
    tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    return tmp


def test_the_fallback_socket_dir_is_made_private(private_tmpdir: Path) -> None:
    sock = _socket_dir(_long_pgdata(private_tmpdir))
    assert sock.parent == private_tmpdir and sock.name.startswith("hanseek-pg-")
    st = sock.lstat()
    assert stat.S_ISDIR(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o700 and st.st_uid == _server_uid()
    assert _socket_dir(_long_pgdata(private_tmpdir)) == sock  # ours: used again


@pytest.mark.parametrize("planted", ["symlink", "open-mode", "foreign-owner"])
def test_a_planted_socket_dir_is_refused_untouched(private_tmpdir: Path, planted: str) -> None:
    """Anyone can create the fallback name in a shared temp dir first; following it would chown/chmod
    what it points at, or put our trust-auth socket in a directory someone else controls."""
    pgdata = _long_pgdata(private_tmpdir)
    digest = hashlib.sha256(str(pgdata).encode()).hexdigest()[:16]
    name = private_tmpdir / f"hanseek-pg-{digest}"
    victim = private_tmpdir / "victim"
    victim.mkdir(mode=0o755)
    victim.chmod(0o755)
    if planted == "symlink":
        name.symlink_to(victim)
    elif planted == "open-mode":
        name.mkdir()
        name.chmod(0o755)
    else:
        if os.geteuid() != 0:
            pytest.skip("needs root to make a directory of another user")
        name.mkdir(mode=0o700)
        os.chown(name, 54321, 54321)
    before = {p: (p.lstat().st_mode, p.lstat().st_uid) for p in (name, victim)}
    with pytest.raises(StoreError, match=f"refusing to use the socket directory {name}") as info:
        _socket_dir(pgdata)
    assert "\n" not in str(info.value)
    assert {p: (p.lstat().st_mode, p.lstat().st_uid) for p in (name, victim)} == before


_KILLED_INITDB = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path
    from hanseek.store import server

    def half_initdb(args, *, timeout):
        # What a kill -9 during initdb leaves: the directory half written, no cleanup run.
        target = Path(args[args.index("-D") + 1])
        (target / "PG_VERSION").write_text("18\\n")
        (target / "base").mkdir()
        os.kill(os.getpid(), signal.SIGKILL)

    server._run = half_initdb
    server.EmbeddedServer.start(Path(sys.argv[1]))
    """
)


def test_an_initdb_killed_half_way_leaves_no_half_made_data_dir(own_settings: Settings) -> None:
    pgdata = own_settings.pgdata_dir
    proc = subprocess.run(
        [sys.executable, "-c", _KILLED_INITDB, str(pgdata)], capture_output=True, timeout=60
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert not (pgdata / "PG_VERSION").exists()  # the half-made directory never became the data dir
    leftovers = list(pgdata.parent.glob("pgdata.init-*"))
    assert leftovers and (leftovers[0] / "PG_VERSION").exists()
    server = EmbeddedServer.start(pgdata)  # before: 'database "postgres" does not exist', at every start
    try:
        with psycopg.connect(server.url()) as conn:
            assert conn.execute("SELECT current_database()").fetchone() == ("hanseek",)
    finally:
        server.close()
    assert not list(pgdata.parent.glob("pgdata.init-*"))  # removed under the start lock


def _half_made_by_old_initdb(pgdata: Path, trigger: str) -> None:
    """What hanseek's in-place initdb (before session 17) left when it was killed, e.g. with its
    process group by a container stop or by its own timeout: the real initdb writing into `pgdata`
    itself, killed (with its postgres child) as soon as `trigger` appears in it."""

    def run_killed(args: list[str], *, timeout: float) -> tuple[int, str]:
        proc = subprocess.Popen(
            args,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            user=server_module._run_as(),
            cwd="/",
            env=server_module._clean_env(),
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while not _written(pgdata / trigger):
            assert proc.poll() is None, f"initdb finished before {trigger} appeared"
            assert time.monotonic() < deadline, f"{trigger} did not appear"
            time.sleep(0.001)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        while any(  # its postgres child too, before anyone looks at the files
            p.info["status"] != psutil.STATUS_ZOMBIE
            for p in psutil.process_iter(["status"])
            if _pgid(p.pid) == proc.pid
        ):
            time.sleep(0.01)
        return -signal.SIGKILL, ""

    server_module._prepare_dir(pgdata)
    with (
        mock.patch.object(server_module, "_run", run_killed),
        pytest.raises(StoreError, match="initdb failed"),
    ):
        server_module._initdb_into(pgdata, 60)  # in place, as _initdb did before session 17
    assert (pgdata / "PG_VERSION").exists()


def _written(path: Path) -> bool:
    try:
        return path.stat().st_size > 0
    except FileNotFoundError:
        return False


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return None


def _serves_hanseek(pgdata: Path) -> None:
    server = EmbeddedServer.start(pgdata, timeout=30)
    try:
        with psycopg.connect(server.url()) as conn:
            assert conn.execute("SELECT current_database()").fetchone() == ("hanseek",)
    finally:
        server.close()
    assert (pgdata / SERVED_MARK).exists()
    assert not list(pgdata.parent.glob("pgdata.init-*"))


@pytest.mark.parametrize(
    ("trigger", "bootstrap_done"),
    [
        # killed early in the bootstrap: no pg_control or catalog map yet, the server cannot start
        ("PG_VERSION", False),
        # killed after the bootstrap: the server starts, 'database "postgres" does not exist'
        ("base/1/PG_VERSION", True),
        # killed while CREATE DATABASE postgres copied files: base/5 half there, not in the catalog
        ("base/5", True),
    ],
)
def test_a_data_dir_half_made_by_the_old_in_place_initdb_is_made_again(
    own_settings: Settings, trigger: str, bootstrap_done: bool
) -> None:
    """Before: every start failed on it (could not start for `timeout` s, or 'database "postgres" does
    not exist') until it was moved away by hand."""
    pgdata = own_settings.pgdata_dir
    _half_made_by_old_initdb(pgdata, trigger)
    # Which check finds it: the files before the start, or the catalog once the server runs.
    assert (server_module._unfinished_bootstrap(pgdata) is None) == bootstrap_done
    _serves_hanseek(pgdata)
    _serves_hanseek(pgdata)  # and it stays: a complete data dir is started as it is


def test_a_data_dir_with_an_empty_pg_version_is_made_again(own_settings: Settings) -> None:
    """initdb killed between creating PG_VERSION and writing it: too short a window to hit with a real
    kill, so its subdirectories and the empty file are made by hand. Before: 'created by PostgreSQL
    but the bundled binaries are PostgreSQL 18' at every start."""
    pgdata = own_settings.pgdata_dir
    for sub in ("base", "global", "pg_wal", "pg_tblspc"):
        (pgdata / sub).mkdir(parents=True)
    (pgdata / "PG_VERSION").write_text("")
    _serves_hanseek(pgdata)


def test_a_half_made_data_dir_that_may_hold_data_is_left_alone(own_settings: Settings) -> None:
    pgdata = own_settings.pgdata_dir
    _half_made_by_old_initdb(pgdata, "base/1/PG_VERSION")

    def refused(doubt: str) -> None:
        before = sorted(str(p.relative_to(pgdata)) for p in pgdata.rglob("*"))
        with pytest.raises(StoreError, match="incomplete PostgreSQL data directory") as info:
            EmbeddedServer.start(pgdata, timeout=30)
        message = str(info.value)
        assert doubt in message and f"mv {pgdata} {pgdata}.broken" in message and "db restore" in message
        after = sorted(str(p.relative_to(pgdata)) for p in pgdata.rglob("*"))
        # Nothing removed (the server, started to look at the catalog, adds files of its own), and the
        # server is stopped again.
        assert set(before) <= set(after) and running_pid(pgdata) is None

    (pgdata / SERVED_MARK).write_text("served\n")  # hanseek served it once: it may hold data
    refused(f"hanseek served it before ({SERVED_MARK} is there)")
    (pgdata / SERVED_MARK).unlink()
    (pgdata / "base" / "16384").mkdir()  # a database made after initdb
    refused("it holds databases initdb did not make (base/16384)")
    (pgdata / "base" / "16384").rmdir()
    (pgdata / "base" / "1" / "16390").write_bytes(b"")  # a table made in template1 after initdb
    refused("base/1 has relations made after initdb (16390)")
    (pgdata / "base" / "1" / "16390").unlink()
    _serves_hanseek(pgdata)  # nothing left that could be data: made again


def test_links_planted_at_the_servers_bookkeeping_files_are_not_followed(tmp_path: Path) -> None:
    """pgdata belongs to the server's OS account and the data dir to hanseek's: a link at the served
    marker made a root hanseek create a file wherever it pointed, and links at the handles'
    temporary or the lock overwrote or created their targets (security review, session 19)."""
    from hanseek.store.server import SERVED_MARK, _file_lock, _Handles, _mark_served

    pgdata, outside = tmp_path / "pgdata", tmp_path / "outside"
    pgdata.mkdir()
    outside.mkdir()
    (pgdata / SERVED_MARK).symlink_to(outside / "created_by_hanseek")
    _mark_served(pgdata)
    assert not (outside / "created_by_hanseek").exists()

    victim = outside / "victim.txt"
    victim.write_text("keep me")
    handles = _Handles(tmp_path / ".pgdata.handles")
    handles.path.with_suffix(".tmp").symlink_to(victim)  # the fixed temporary name of old
    handles._save([{"pid": 1}])
    assert victim.read_text() == "keep me" and json.loads(handles.path.read_text()) == [{"pid": 1}]

    lock = tmp_path / ".pgdata.lock"
    lock.symlink_to(outside / "lock-target")
    with pytest.raises(OSError), _file_lock(lock, timeout=1):
        pass
    assert not (outside / "lock-target").exists()
