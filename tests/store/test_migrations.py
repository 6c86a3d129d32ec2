"""Migrations on the real embedded server: the package's files, and scratch files in a scratch database."""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

import psycopg
import pytest

from hanseek.store.db import Database
from hanseek.store.errors import MigrationError
from hanseek.store.migrations import Migrator, default_migrations_dir, load_migrations


def _write(d: Path, name: str, text: str) -> None:
    (d / name).write_text(text)


def _tables(url: str) -> set[str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'").fetchall()
    return {r[0] for r in rows}


def test_package_migrations_are_shipped_and_ordered() -> None:
    migs = load_migrations()
    assert migs[0].name == "0001_core"
    assert [m.version for m in migs] == sorted(m.version for m in migs)
    raw = default_migrations_dir().joinpath("0001_core.sql").read_bytes()
    assert migs[0].checksum == hashlib.sha256(raw).hexdigest()


def test_session_db_is_migrated_and_idempotent(db: Database) -> None:
    status = {s.name: s for s in db.migration_status()}
    assert status["0001_core"].state == "applied"
    assert all(s.state == "applied" for s in status.values()), status
    assert db.migrate() == []
    with db.connection() as conn:
        ext = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'").fetchone()
        rows = conn.execute("SELECT version, checksum FROM schema_migrations ORDER BY version").fetchall()
    assert ext is not None and tuple(int(x) for x in ext[0].split(".")[:2]) >= (0, 8)
    files = {m.version: m.checksum for m in load_migrations()}
    assert {v: c for v, c in rows} == files


def test_apply_status_and_new_file(scratch_url: str, tmp_path: Path) -> None:
    _write(tmp_path, "0001_a.sql", "CREATE TABLE a (id int PRIMARY KEY);\nINSERT INTO a VALUES (1), (2);")
    _write(
        tmp_path,
        "0002_b.sql",
        # several statements and a dollar-quoted body with a percent sign in one file
        "CREATE TABLE b (id int);\n"
        "CREATE FUNCTION pct(x int) RETURNS text LANGUAGE plpgsql AS $$ BEGIN RETURN x || '%'; END $$;",
    )
    _write(tmp_path, "README.txt", "ignored: not .sql")
    m = Migrator(scratch_url, tmp_path)
    assert [s.state for s in m.status()] == ["pending", "pending"]
    assert m.migrate() == ["0001_a", "0002_b"]
    assert m.migrate() == []
    assert {"a", "b", "schema_migrations"} <= _tables(scratch_url)
    assert [(s.name, s.state) for s in m.status()] == [("0001_a", "applied"), ("0002_b", "applied")]
    assert all(s.applied_at is not None for s in m.status())

    _write(tmp_path, "0003_c.sql", "ALTER TABLE b ADD COLUMN note text;")
    assert [s.state for s in m.status()] == ["applied", "applied", "pending"]
    assert m.migrate() == ["0003_c"]
    with psycopg.connect(scratch_url) as conn:
        assert conn.execute("SELECT pct(5)").fetchone() == ("5%",)


def test_checksum_mismatch_is_a_clear_error(scratch_url: str, tmp_path: Path) -> None:
    _write(tmp_path, "0001_a.sql", "CREATE TABLE a (id int);")
    m = Migrator(scratch_url, tmp_path)
    m.migrate()
    _write(tmp_path, "0001_a.sql", "CREATE TABLE a (id bigint);")
    _write(tmp_path, "0002_b.sql", "CREATE TABLE b (id int);")
    with pytest.raises(MigrationError, match=r"0001_a.*changed after being applied"):
        m.migrate()
    assert "b" not in _tables(scratch_url)  # nothing applied past a mismatch
    assert [(s.name, s.state) for s in m.status()] == [("0001_a", "changed"), ("0002_b", "pending")]


def test_failing_migration_rolls_back_completely(scratch_url: str, tmp_path: Path) -> None:
    _write(tmp_path, "0001_ok.sql", "CREATE TABLE ok (id int);")
    _write(tmp_path, "0002_bad.sql", "CREATE TABLE half (id int);\nSELECT * FROM no_such_table;")
    m = Migrator(scratch_url, tmp_path)
    with pytest.raises(MigrationError, match="0002_bad failed"):
        m.migrate()
    tables = _tables(scratch_url)
    assert "ok" in tables and "half" not in tables
    assert [(s.name, s.state) for s in m.status()] == [("0001_ok", "applied"), ("0002_bad", "pending")]


def test_missing_file_is_reported_not_fatal(scratch_url: str, tmp_path: Path) -> None:
    _write(tmp_path, "0001_a.sql", "CREATE TABLE a (id int);")
    Migrator(scratch_url, tmp_path).migrate()
    (tmp_path / "0001_a.sql").unlink()
    _write(tmp_path, "0002_b.sql", "CREATE TABLE b (id int);")
    m = Migrator(scratch_url, tmp_path)
    assert m.migrate() == ["0002_b"]
    assert [(s.name, s.state) for s in m.status()] == [("0001_a", "missing"), ("0002_b", "applied")]


def test_a_database_migrated_by_a_newer_version_is_refused(scratch_url: str, tmp_path: Path) -> None:
    """Until session 18 an older hanseek said "up to date" and ran on the newer schema."""
    _write(tmp_path, "0001_a.sql", "CREATE TABLE a (id int);")
    _write(tmp_path, "0002_b.sql", "CREATE TABLE b (id int);")
    Migrator(scratch_url, tmp_path).migrate()
    (tmp_path / "0002_b.sql").unlink()  # the older version: it has only 0001
    with pytest.raises(MigrationError, match="migrated by a newer hanseek: 0002_b is not in this version"):
        Migrator(scratch_url, tmp_path).migrate()
    assert [(s.name, s.state) for s in Migrator(scratch_url, tmp_path).status()] == [
        ("0001_a", "applied"),
        ("0002_b", "newer"),
    ]


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"0001_a.sql": "SELECT 1;", "0001_b.sql": "SELECT 1;"}, "share version 0001"),
        ({"1_a.sql": "SELECT 1;"}, "does not match NNNN_name.sql"),
        ({"0001_A-b.sql": "SELECT 1;"}, "does not match"),
        ({"0001_empty.sql": "  \n"}, "is empty"),
    ],
)
def test_malformed_migration_sets(tmp_path: Path, files: dict[str, str], message: str) -> None:
    for name, text in files.items():
        _write(tmp_path, name, text)
    with pytest.raises(MigrationError, match=message):
        load_migrations(tmp_path)


def test_concurrent_migrators_apply_each_file_once(scratch_url: str, tmp_path: Path) -> None:
    # The first file sleeps so that both migrators are inside migrate() at the same time.
    _write(tmp_path, "0001_slow.sql", "SELECT pg_sleep(0.5);\nCREATE TABLE slow (id int);")
    _write(tmp_path, "0002_next.sql", "CREATE TABLE next_one (id int);")
    results: list[list[str]] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            results.append(Migrator(scratch_url, tmp_path).migrate())
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(results) == [[], ["0001_slow", "0002_next"]]
    with psycopg.connect(scratch_url) as conn:
        assert conn.execute("SELECT count(*) FROM schema_migrations").fetchone() == (2,)


def _package_files_up_to(version: int, into: Path) -> None:
    for f in default_migrations_dir().iterdir():
        if f.name.endswith(".sql") and int(f.name[:4]) <= version:
            _write(into, f.name, f.read_text(encoding="utf-8"))


_IMAGE = (
    "INSERT INTO images (sha256, format, mime, ext, bytes, width, height, tags, auto_labels)"
    " VALUES (%s, 'PNG', 'image/png', 'png', 1, 1, 1, %s, '[]')"
)


def test_0016_records_the_demo_loads_of_installs_from_before_0015(scratch_url: str, tmp_path: Path) -> None:
    """Upgrading from before 0015 (no demo record) brought back, on the first start, every demo
    photo the user had deleted; a demo loaded after 0015 records itself, so it is not taken for one."""
    old = tmp_path / "old"
    old.mkdir()
    _package_files_up_to(14, old)
    Migrator(scratch_url, old).migrate()
    with psycopg.connect(scratch_url) as conn:  # what an old version's demo load left
        conn.execute(_IMAGE, ("a" * 64, ["demo", "animal"]))
        conn.execute("INSERT INTO communities (id) VALUES ('보건복지')")
        conn.execute(
            "INSERT INTO posts (id, community, created_at, embedding)"
            " VALUES ('demo-p1', '보건복지', now(), array_fill(0.1, ARRAY[384])::vector)"
        )
        conn.execute("INSERT INTO users (id) VALUES ('demo-minji')")
        conn.execute(
            "INSERT INTO events (user_id, post_id, kind, at, weight, idempotency_key)"
            " VALUES ('demo-minji', 'demo-p1', 'read', now(), 1, 'demo-7')"
        )
    new = tmp_path / "new"
    new.mkdir()
    _package_files_up_to(16, new)
    assert Migrator(scratch_url, new).migrate() == ["0015_demo_loads", "0016_demo_loads_backfill"]
    with psycopg.connect(scratch_url) as conn:
        rows = conn.execute("SELECT feature FROM demo_loads ORDER BY feature").fetchall()
    assert rows == [("feed",), ("images",)]


def test_0016_leaves_a_demo_stored_after_0015_to_its_own_record(scratch_url: str, tmp_path: Path) -> None:
    _package_files_up_to(15, tmp_path)
    Migrator(scratch_url, tmp_path).migrate()
    with psycopg.connect(scratch_url) as conn:  # a load after 0015, killed before its record
        conn.execute(_IMAGE, ("b" * 64, ["demo"]))
        conn.execute(
            "INSERT INTO images (sha256, format, mime, ext, bytes, width, height, tags, auto_labels)"
            " SELECT 'c' || repeat('0', 63), 'PNG', 'image/png', 'png', 1, 1, 1, '{mine}', '[]'"
        )
    _package_files_up_to(16, tmp_path)
    assert Migrator(scratch_url, tmp_path).migrate() == ["0016_demo_loads_backfill"]
    with psycopg.connect(scratch_url) as conn:
        assert conn.execute("SELECT count(*) FROM demo_loads").fetchone() == (0,)


def test_0017_gives_a_pending_reembedding_an_id_that_a_resumed_run_can_use(
    scratch_url: str, tmp_path: Path
) -> None:
    """A re-embedding left pending by a version before 0017 keeps its staged vectors and gets an id;
    a later job gets a larger one (a run compares them to tell a finished job from a dropped one)."""
    _package_files_up_to(16, tmp_path)
    Migrator(scratch_url, tmp_path).migrate()
    with psycopg.connect(scratch_url) as conn:
        conn.execute("INSERT INTO models (name, kind, path, dim) VALUES ('m1', 'simcse', 'm1', 384)")
        conn.execute("INSERT INTO reembed_jobs (model, dim) VALUES ('m1', 384)")
    _package_files_up_to(17, tmp_path)
    assert Migrator(scratch_url, tmp_path).migrate() == ["0017_reembed_job_ids"]
    with psycopg.connect(scratch_url) as conn:
        old = conn.execute("SELECT id FROM reembed_jobs WHERE model = 'm1'").fetchone()
        conn.execute("INSERT INTO models (name, kind, path, dim) VALUES ('m2', 'simcse', 'm2', 384)")
        new = conn.execute("INSERT INTO reembed_jobs (model, dim) VALUES ('m2', 384) RETURNING id").fetchone()
        recorded = conn.execute("SELECT reembed_job FROM models WHERE name = 'm1'").fetchone()
    assert old is not None and new is not None and old[0] is not None and new[0] > old[0]
    assert recorded == (None,)
