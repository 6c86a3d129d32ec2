"""Backup/restore round trip with the bundled pg_dump/pg_restore, on a scratch database."""

from __future__ import annotations

import fcntl
import io
import os
import signal
import stat
import subprocess
import sys
import tarfile
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pytest
from pgvector.psycopg import register_vector
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from hanseek.config import Settings
from hanseek.files import shared_mode
from hanseek.store.backup import backup, media_archive, restore
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
    assert backup(populated, archive).size > 0
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


# Schema objects the wipe once left behind: the archive's CREATE then failed with "already exists".
# The bundled PostgreSQL is built without ICU, so the Korean collation uses the builtin provider.
SCHEMA_OBJECTS = """
CREATE COLLATION korean (provider = builtin, locale = 'C.UTF-8');
CREATE TABLE names (name text COLLATE korean PRIMARY KEY);
CREATE TEXT SEARCH CONFIGURATION korean_simple (COPY = simple);
CREATE STATISTICS docs_title_mood ON title, mood FROM docs;
"""


def _schema_objects(url: str) -> dict[str, Any]:
    with psycopg.connect(url) as conn:
        return {
            "names": conn.execute("SELECT name FROM names ORDER BY name").fetchall(),
            "column_collation": conn.execute(
                "SELECT collname FROM pg_attribute a JOIN pg_collation c ON c.oid = a.attcollation "
                "WHERE a.attrelid = 'names'::regclass AND a.attname = 'name'"
            ).fetchall(),
            "ts_config": conn.execute("SELECT to_tsvector('korean_simple', '한국어 문서')::text").fetchone(),
            "statistics": conn.execute("SELECT stxname FROM pg_statistic_ext ORDER BY 1").fetchall(),
        }


def test_a_collation_and_other_schema_objects_restore_onto_the_same_database(
    populated: str, tmp_path: Path
) -> None:
    """Before: the wipe dropped tables, functions and types only, and restoring onto the database the
    backup came from stopped at 'collation "korean" for encoding "UTF8" already exists'."""
    with psycopg.connect(populated) as conn:
        conn.execute(SCHEMA_OBJECTS)
        conn.execute("INSERT INTO names VALUES ('가나'), ('다라')")
    before, objects = _snapshot(populated), _schema_objects(populated)
    archive = tmp_path / "objects.dump"
    backup(populated, archive)
    with psycopg.connect(populated) as conn:
        conn.execute("INSERT INTO names VALUES ('added after the backup')")
    _mutate(populated)
    restore(populated, archive)
    assert _snapshot(populated) == before and _schema_objects(populated) == objects
    # A restore that fails after the wipe took the collation gives it back with everything else.
    truncated = tmp_path / "truncated.dump"
    truncated.write_bytes(archive.read_bytes()[: int(archive.stat().st_size * 0.8)])
    with pytest.raises(StoreError, match="nothing was restored"):
        restore(populated, truncated)
    assert _snapshot(populated) == before and _schema_objects(populated) == objects


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


def test_a_failing_statement_is_reported_with_psql_error(populated: str, tmp_path: Path) -> None:
    """psql stops at the first error and pg_restore is then killed: the message must be psql's, not
    an empty 'reading FILE failed' (pg_restore's exit status after the kill)."""
    with psycopg.connect(populated, autocommit=True) as conn:
        # Output well past the pipe buffers, so pg_restore is still writing when psql stops.
        conn.execute(
            "CREATE TABLE bulk AS SELECT g, repeat('x', 200) AS pad FROM generate_series(1, 20000) g"
        )
        role = f"restorer_{uuid.uuid4().hex[:8]}"
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
    archive = tmp_path / "big.dump"
    backup(populated, archive)
    before = _snapshot(populated)
    # A role that owns none of the tables: the restore's first DROP fails.
    params = conninfo_to_dict(populated)
    params["user"] = role
    as_role = make_conninfo("", **params)
    with pytest.raises(StoreError, match="failed and was rolled back") as info:
        restore(as_role, archive)
    assert "must be owner of" in str(info.value)
    assert _snapshot(populated) == before


def _media_tree(media: Path) -> dict[str, bytes]:
    """Files as MediaStore lays them out, plus what a backup must leave out."""
    files = {
        f"images/ab/{'ab' * 32}.jpg": b"\xff\xd8original",
        f"thumbs/ab/{'ab' * 32}.webp": b"RIFFthumb",
        f"images/cd/{'cd' * 32}.png": "\x89PNG 한국어".encode(),
    }
    for rel, data in files.items():
        (media / rel).parent.mkdir(parents=True, exist_ok=True)
        (media / rel).write_bytes(data)
    (media / "images" / "cd" / ".tmp-abc123").write_bytes(b"half written")
    (media / "images" / "cd" / "link.jpg").symlink_to("/etc/passwd")
    return files


def _files(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in root.rglob("*")
        if p.is_file() and not p.is_symlink()
    }


def test_media_files_go_with_the_backup_into_a_fresh_data_dir(populated: str, tmp_path: Path) -> None:
    files = _media_tree(tmp_path / "old" / "media")
    archive = tmp_path / "with-media.dump"
    info = backup(populated, archive, media_dir=tmp_path / "old" / "media")
    assert info.size == archive.stat().st_size and info.media_files == len(files)
    assert media_archive(archive).is_file() and not list(tmp_path.glob("*.partial"))
    before = _snapshot(populated)
    _mutate(populated)

    fresh = tmp_path / "fresh" / "media"  # a new machine: no media dir yet
    assert restore(populated, archive, media_dir=fresh) == len(files)
    assert _snapshot(populated) == before
    assert _files(fresh) == files  # no temp files, no links
    assert all(stat.S_IMODE((fresh / rel).stat().st_mode) == shared_mode() for rel in files)
    assert [p.name for p in fresh.parent.iterdir()] == ["media"]  # the staging dir is gone

    # a backup taken without media leaves none beside it, not even an older backup's
    assert backup(populated, archive).media_files is None
    assert not media_archive(archive).exists()
    assert restore(populated, archive, media_dir=tmp_path / "other") is None
    assert not (tmp_path / "other").exists()


def _media_tar(archive: Path, member: str) -> None:
    with tarfile.open(media_archive(archive), "w") as tar:
        data = b"payload"
        entry = tarfile.TarInfo(member)
        entry.size = len(data)
        tar.addfile(entry, io.BytesIO(data))


@pytest.mark.parametrize("member", ["../escaped.jpg", "images/../../escaped.jpg"])
def test_an_unsafe_media_archive_restores_nothing(populated: str, tmp_path: Path, member: str) -> None:
    archive = tmp_path / "x.dump"
    backup(populated, archive, media_dir=tmp_path / "media")
    _media_tar(archive, member)
    _mutate(populated)
    mutated = _snapshot(populated)
    target = tmp_path / "data" / "media"
    with pytest.raises(StoreError, match="cannot read the media archive"):
        restore(populated, archive, media_dir=target)
    assert _snapshot(populated) == mutated  # checked before the database was touched
    assert not list(tmp_path.rglob("escaped.jpg"))
    assert not target.exists() and not list((tmp_path / "data").iterdir())


def test_an_absolute_media_path_stays_inside_the_media_dir(populated: str, tmp_path: Path) -> None:
    archive = tmp_path / "x.dump"
    backup(populated, archive, media_dir=tmp_path / "media")
    outside = tmp_path / "outside.jpg"
    _media_tar(archive, str(outside))
    target = tmp_path / "data" / "media"
    assert restore(populated, archive, media_dir=target) == 1
    assert not outside.exists() and (target / str(outside).lstrip("/")).read_bytes() == b"payload"


# Restore with `_install_media` replaced by one that moves the files in and then SIGKILLs the process:
# a `db restore` killed between installing the media and the COMMIT.
_KILLED_AFTER_INSTALL = """
import os, signal, sys
from pathlib import Path
from hanseek.store import backup

real = backup._install_media

def install_then_die(staged, media_dir):
    real(staged, media_dir)
    os.kill(os.getpid(), signal.SIGKILL)

backup._install_media = install_then_die
backup.restore(sys.argv[1], Path(sys.argv[2]), media_dir=Path(sys.argv[3]))
"""


def _staging_dirs(parent: Path) -> list[Path]:
    return sorted(parent.glob(".media-restore-*"))


def test_a_restore_killed_before_its_commit_leaves_the_database_and_only_orphan_files(
    populated: str, tmp_path: Path
) -> None:
    """The media went in after the COMMIT: a restore killed in between left image rows whose files
    were missing (404s), and each killed restore left its whole staging copy, which nothing removed."""
    files = _media_tree(tmp_path / "old" / "media")
    archive = tmp_path / "with-media.dump"
    backup(populated, archive, media_dir=tmp_path / "old" / "media")
    _mutate(populated)
    mutated = _snapshot(populated)
    target = tmp_path / "data" / "media"
    started = time.time()
    proc = subprocess.run(
        [sys.executable, "-c", _KILLED_AFTER_INSTALL, populated, str(archive), str(target)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert _snapshot(populated) == mutated  # psql saw EOF inside the transaction: rolled back
    # The files are in, named by no row. Fresh mtimes: `images gc` leaves them alone for its minimum
    # age (a restore's COMMIT may be about to name them), then removes them as orphans.
    assert _files(target) == files
    assert all((target / rel).stat().st_mtime >= started - 1 for rel in files)
    [stale] = _staging_dirs(target.parent)  # the killed restore's copy

    os.utime(stale, (started - 60, started - 60))  # older than a restore between mkdtemp and flock
    young = target.parent / ".media-restore-young123"  # maybe a restore that has not locked it yet
    young.mkdir()
    assert restore(populated, archive, media_dir=target) == len(files)
    assert _snapshot(populated) != mutated and _files(target) == files
    assert _staging_dirs(target.parent) == [young]  # the dead restore's copy is gone


def test_a_live_restores_staging_dir_is_left_alone(tmp_path: Path) -> None:
    from hanseek.store.backup import remove_stale_staging

    media_dir = tmp_path / "media"
    live, dead = tmp_path / ".media-restore-live1234", tmp_path / ".media-restore-dead1234"
    other = tmp_path / ".media-restore-x"  # not a name mkdtemp gives: not ours to remove
    for d in (live, dead, other):
        (d / "images").mkdir(parents=True)
        os.utime(d, (time.time() - 60, time.time() - 60))
    fd = os.open(live, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # as a restore in progress holds it
        assert remove_stale_staging(media_dir) == [dead]
    finally:
        os.close(fd)
    assert live.is_dir() and other.is_dir() and not dead.exists()
    assert remove_stale_staging(media_dir) == [live]  # its restore is gone now


def test_a_failed_media_install_rolls_the_database_back(
    populated: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from hanseek.store import backup as backup_module

    _media_tree(tmp_path / "old" / "media")
    archive = tmp_path / "with-media.dump"
    backup(populated, archive, media_dir=tmp_path / "old" / "media")
    _mutate(populated)
    mutated = _snapshot(populated)

    def disk_full(staged: Path, media_dir: Path) -> int:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(backup_module, "_install_media", disk_full)
    with pytest.raises(StoreError, match=r"rolled back.*No space left"):
        restore(populated, archive, media_dir=tmp_path / "data" / "media")
    assert _snapshot(populated) == mutated
    assert not _staging_dirs(tmp_path / "data")


def test_a_killed_backups_partials_are_removed_by_the_next_backup_to_that_file(
    populated: str, tmp_path: Path
) -> None:
    """A backup killed half-way left FILE.partial and FILE.partial.media.tar (overwritten only by a
    later backup to the same FILE); two backups to one FILE wrote the same partial."""
    archive = tmp_path / "b.dump"
    old = time.time() - 60

    def left(name: str) -> Path:
        path = tmp_path / name
        path.write_bytes(b"half a dump")
        os.utime(path, (old, old))
        return path

    dead = [left("b.dump.dead1234.partial"), left("b.dump.dead1234.partial.media.tar")]
    orphan = left("b.dump.gone1234.partial.media.tar")  # its archive partial was removed first
    legacy = [left("b.dump.partial"), left("b.dump.partial.media.tar")]  # the names before session 17
    live = [left("b.dump.live1234.partial"), left("b.dump.live1234.partial.media.tar")]
    fresh = left("b.dump.new12345.partial")  # maybe a backup that has not taken its lock yet
    os.utime(fresh)
    others = [left("c.dump.dead1234.partial"), left("b.dump.keep")]  # another FILE's, or not a partial
    fd = os.open(live[0], os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # as a running backup holds it
        info = backup(populated, archive, media_dir=tmp_path / "media")
    finally:
        os.close(fd)
    assert info.media_files == 0 and media_archive(archive).is_file()
    assert not any(p.exists() for p in [*dead, orphan, *legacy])
    assert all(p.exists() for p in [*live, fresh, *others])
    assert stat.S_IMODE(archive.stat().st_mode) == shared_mode()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("b.dump")) == sorted(
        ["b.dump", "b.dump.media.tar", "b.dump.keep", live[0].name, live[1].name, fresh.name]
    )


def test_a_backup_from_a_newer_hanseek_is_refused_before_anything_changes(
    populated: str, tmp_path: Path
) -> None:
    """Until session 18 it was restored and committed; this version's code then ran on tables it
    does not know (a newer version's migration had reshaped them), and `db migrate` said up to date."""
    with psycopg.connect(populated) as conn:
        conn.execute(
            "INSERT INTO schema_migrations (version, name, checksum) VALUES (9999, '9999_future', 'x')"
        )
    archive = tmp_path / "newer.dump"
    backup(populated, archive)
    with psycopg.connect(populated) as conn:
        conn.execute("DELETE FROM schema_migrations WHERE version = 9999")
    _mutate(populated)
    before = _snapshot(populated)
    with pytest.raises(StoreError, match="newer hanseek: 9999_future is not in this version") as err:
        restore(populated, archive)
    assert "nothing was restored" in str(err.value)
    assert _snapshot(populated) == before


def test_a_backup_never_replaces_a_fifo_or_device_with_a_file(populated: str, tmp_path: Path) -> None:
    """The archive is renamed over FILE: until session 18 a FIFO (or, as root, `/dev/null`) there was
    turned into a regular file and the command said it had written the backup."""
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(StoreError, match="not a regular file"):
        backup(populated, fifo)
    assert stat.S_ISFIFO(fifo.stat().st_mode)
    media_fifo = tmp_path / "b.dump.media.tar"
    os.mkfifo(media_fifo)
    with pytest.raises(StoreError, match=r"b\.dump\.media\.tar is not a regular file"):
        backup(populated, tmp_path / "b.dump", media_dir=tmp_path)
    assert stat.S_ISFIFO(media_fifo.stat().st_mode) and not (tmp_path / "b.dump").exists()
    assert not list(tmp_path.glob("*.partial*"))
