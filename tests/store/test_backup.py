"""Backup/restore round trip with the bundled pg_dump/pg_restore, on a scratch database."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pytest
from pgvector.psycopg import register_vector
from psycopg.conninfo import conninfo_to_dict

from hanseek.config import Settings
from hanseek.store.backup import backup, restore
from hanseek.store.db import Database
from hanseek.store.errors import StoreError
from hanseek.store.migrations import Migrator

SCHEMA = """
CREATE TYPE mood AS ENUM ('good', 'bad');
CREATE TABLE docs (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    title text NOT NULL,
    mood mood,
    meta jsonb,
    embedding vector(4)
);
CREATE INDEX docs_embedding_hnsw ON docs USING hnsw (embedding vector_cosine_ops);
CREATE VIEW good_docs AS SELECT id, title FROM docs WHERE mood = 'good';
CREATE FUNCTION shout(t text) RETURNS text LANGUAGE sql AS $$ SELECT upper(t) || '!' $$;
CREATE SCHEMA extra;
CREATE TABLE extra.notes (k text PRIMARY KEY, v int);
"""


def _snapshot(url: str) -> dict[str, Any]:
    with psycopg.connect(url) as conn:
        register_vector(conn)
        docs = [
            (i, t, m, meta, None if e is None else e.to_list())
            for i, t, m, meta, e in conn.execute(
                "SELECT id, title, mood::text, meta, embedding FROM docs ORDER BY id"
            )
        ]
        view = conn.execute("SELECT to_regclass('good_docs')").fetchone() or (None,)
        return {
            "docs": docs,
            "good": conn.execute("SELECT * FROM good_docs ORDER BY id").fetchall()
            if view and view[0]
            else None,
            "shout": conn.execute("SELECT shout('한국어')").fetchone(),
            "notes": conn.execute("SELECT * FROM extra.notes ORDER BY k").fetchall(),
            "tables": conn.execute(
                "SELECT schemaname, tablename FROM pg_tables "
                "WHERE schemaname IN ('public', 'extra') ORDER BY 1, 2"
            ).fetchall(),
            "indexes": conn.execute(
                "SELECT indexname FROM pg_indexes WHERE schemaname = 'public' ORDER BY 1"
            ).fetchall(),
            "migrations": conn.execute("SELECT version, name, checksum FROM schema_migrations").fetchall(),
            "vector_oid": conn.execute("SELECT 'vector'::regtype::oid").fetchone(),
        }


@pytest.fixture()
def populated(scratch_url: str, tmp_path: Path) -> str:
    mig = tmp_path / "migrations"
    mig.mkdir()
    (mig / "0001_schema.sql").write_text(SCHEMA)
    Migrator(scratch_url, mig).migrate()
    rng = np.random.default_rng(0)
    with psycopg.connect(scratch_url) as conn:
        register_vector(conn)
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO docs (title, mood, meta, embedding) VALUES (%s, %s, %s::jsonb, %s)",
                [
                    (
                        f"문서 {i}",
                        "good" if i % 2 else "bad",
                        f'{{"i": {i}}}',
                        rng.standard_normal(4).astype(np.float32),
                    )
                    for i in range(300)
                ],
            )
        conn.execute("INSERT INTO extra.notes VALUES ('a', 1), ('b', 2)")
    return scratch_url


def _mutate(url: str) -> None:
    with psycopg.connect(url) as conn:
        conn.execute("DELETE FROM docs WHERE id > 10")
        conn.execute("INSERT INTO docs (title) VALUES ('added after the backup')")
        conn.execute("DROP VIEW good_docs")
        conn.execute("CREATE TABLE junk (x int)")
        conn.execute("CREATE SCHEMA junk_schema")
        conn.execute("CREATE TABLE junk_schema.t (x int)")
        conn.execute("UPDATE extra.notes SET v = 100")


def test_backup_restore_round_trip(populated: str, tmp_path: Path) -> None:
    before = _snapshot(populated)
    archive = tmp_path / "nested" / "hanseek.dump"
    assert backup(populated, archive) > 0
    assert not list(archive.parent.glob("*.partial"))
    # A live pool across the restore: the vector type must keep its oid for it to keep working.
    with Database.open(Settings(data_dir=tmp_path, database_url=populated, pool_min_size=1)) as live:
        _mutate(populated)
        assert _snapshot(populated)["docs"] != before["docs"]
        restore(populated, archive)
        after = _snapshot(populated)
        assert after == before
        with live.connection() as conn:
            row = conn.execute("SELECT embedding FROM docs WHERE id = 1").fetchone()
            assert row is not None
            assert row[0].to_list() == before["docs"][0][4]
    with psycopg.connect(populated) as conn:  # the identity sequence continues after the restored rows
        new_id = conn.execute("INSERT INTO docs (title) VALUES ('next') RETURNING id").fetchone()
    assert new_id == (301,)
    # restoring twice is fine (everything is dropped first)
    restore(populated, archive)
    assert _snapshot(populated) == before


def test_restore_of_a_non_archive_changes_nothing(populated: str, tmp_path: Path) -> None:
    before = _snapshot(populated)
    bogus = tmp_path / "bogus.dump"
    bogus.write_bytes(b"PGDMP but not really" * 100)
    with pytest.raises(StoreError, match="not a pg_dump custom-format archive"):
        restore(populated, bogus)
    with pytest.raises(StoreError, match="does not exist"):
        restore(populated, tmp_path / "missing.dump")
    assert _snapshot(populated) == before


def test_truncated_archive_is_rolled_back(populated: str, tmp_path: Path) -> None:
    archive = tmp_path / "full.dump"
    backup(populated, archive)
    _mutate(populated)
    mutated = _snapshot(populated)
    data = archive.read_bytes()
    truncated = tmp_path / "truncated.dump"
    truncated.write_bytes(data[: int(len(data) * 0.8)])  # TOC readable, data cut off
    with pytest.raises(StoreError, match="nothing was restored") as info:
        restore(populated, truncated)
    assert "end of file" in str(info.value) or "could not" in str(info.value)
    assert _snapshot(populated) == mutated


def test_backup_of_unreachable_database_fails_cleanly(tmp_path: Path) -> None:
    target = tmp_path / "x.dump"
    with pytest.raises(StoreError, match=r"pg_dump of .* failed") as info:
        backup(f"postgresql://u:secret@/x?host={tmp_path}&port=1", target)
    assert "secret" not in str(info.value).split("failed")[0]
    assert not target.exists() and not list(tmp_path.glob("*.partial"))


def test_the_client_programs_get_the_password_in_their_environment_not_their_arguments() -> None:
    from hanseek.store.backup import _libpq

    conninfo, env = _libpq("postgresql://hanseek:s3cr%40t@db.example:6543/prod?sslmode=require")
    assert "s3cr" not in conninfo and env["PGPASSWORD"] == "s3cr@t"
    assert conninfo_to_dict(conninfo) == {
        "user": "hanseek",
        "host": "db.example",
        "port": "6543",
        "dbname": "prod",
        "sslmode": "require",
    }
    conninfo, env = _libpq("host=/tmp/sock dbname=hanseek")  # the embedded server: no password
    assert conninfo_to_dict(conninfo) == {"host": "/tmp/sock", "dbname": "hanseek"}
