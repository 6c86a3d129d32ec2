"""`hanseek db ...` commands against the session's embedded server and a scratch database."""

from __future__ import annotations

from pathlib import Path

import psycopg
from typer.testing import CliRunner

from hanseek.cli import app
from hanseek.config import Settings
from hanseek.store.db import Database

runner = CliRunner()


def _env(settings: Settings) -> dict[str, str | None]:
    return {"HANSEEK_DATA_DIR": str(settings.data_dir), "HANSEEK_DATABASE_URL": settings.database_url}


def test_status_url_migrate_on_the_embedded_server(db: Database, db_settings: Settings) -> None:
    env = _env(db_settings)
    res = runner.invoke(app, ["db", "status"], env=env)
    assert res.exit_code == 0, res.output
    assert "embedded PostgreSQL" in res.output and "0001_core" in res.output and "applied" in res.output
    assert "pgvector 0.8" in res.output
    res = runner.invoke(app, ["db", "url"], env=env)
    assert res.exit_code == 0 and db.url in res.output
    res = runner.invoke(app, ["db", "migrate"], env=env)
    assert res.exit_code == 0 and "up to date" in res.output
    assert db.ping()  # the CLI's close did not stop the server the session holds


def test_init_backup_restore_on_an_external_url(scratch_settings: Settings, tmp_path: Path) -> None:
    env = _env(scratch_settings)
    url = scratch_settings.database_url
    assert url is not None
    res = runner.invoke(app, ["db", "init"], env=env)
    assert res.exit_code == 0, res.output
    assert "external PostgreSQL" in res.output and "0001_core" in res.output
    with psycopg.connect(url) as conn:
        conn.execute("CREATE TABLE cli_t (v text)")
        conn.execute("INSERT INTO cli_t VALUES ('before')")
    # A path is text, not Rich markup: "[/y]" in it was a MarkupError traceback in the spinner line.
    archive = tmp_path / "x[" / "y].dump"
    archive.parent.mkdir()
    res = runner.invoke(app, ["db", "backup", str(archive)], env=env)
    assert res.exit_code == 0, res.output
    assert archive.stat().st_size > 0 and "x[/y].dump" in _joined(res.output)
    with psycopg.connect(url) as conn:
        conn.execute("UPDATE cli_t SET v = 'after'")
    res = runner.invoke(app, ["db", "restore", str(archive)], env=env, input="n\n")
    assert res.exit_code != 0  # declined at the prompt
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT v FROM cli_t").fetchone() == ("after",)
    res = runner.invoke(app, ["db", "restore", str(archive), "--yes"], env=env)
    assert res.exit_code == 0, res.output
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT v FROM cli_t").fetchone() == ("before",)


def test_store_errors_are_messages_not_tracebacks(tmp_path: Path) -> None:
    env = {"HANSEEK_DATA_DIR": str(tmp_path), "HANSEEK_DATABASE_URL": f"postgresql://u:pw@/x?host={tmp_path}"}
    res = runner.invoke(app, ["db", "status"], env=env)
    assert res.exit_code == 1
    assert "cannot connect" in res.output and "Traceback" not in res.output
    assert ":pw@" not in res.output


def _joined(output: str) -> str:
    """The output without whitespace: rich wraps long paths anywhere, even inside a name."""
    return "".join(output.split())


def test_backup_and_restore_carry_the_media_files(scratch_settings: Settings, tmp_path: Path) -> None:
    """An image's file lives in data_dir/media, outside the database: a restore on a new machine without
    it answered 404 for every image file, for good."""
    env = _env(scratch_settings)
    assert runner.invoke(app, ["db", "init"], env=env).exit_code == 0
    original = f"images/ab/{'ab' * 32}.jpg"
    (scratch_settings.media_dir / original).parent.mkdir(parents=True, exist_ok=True)
    (scratch_settings.media_dir / original).write_bytes(b"\xff\xd8jpeg")
    # The session's other tests may have stored images in the same media dir: count them all.
    files = sum(1 for p in scratch_settings.media_dir.rglob("*") if p.is_file())
    archive = tmp_path / "b[1].dump"  # brackets: printed as a name, not as Rich markup
    res = runner.invoke(app, ["db", "backup", str(archive)], env=env)
    assert res.exit_code == 0, res.output
    assert f"{files}mediafile(s)to{archive}.media.tar" in _joined(res.output)

    fresh = Settings(data_dir=tmp_path / "fresh", database_url=scratch_settings.database_url)
    res = runner.invoke(app, ["db", "restore", str(archive), "--yes"], env=_env(fresh))
    assert res.exit_code == 0, res.output
    assert f"restored{archive}and{files}mediafile(s)" in _joined(res.output) and "warning" not in res.output
    assert (fresh.media_dir / original).read_bytes() == b"\xff\xd8jpeg"

    # A backup made before media were backed up: the database is restored, with one line of warning.
    Path(f"{archive}.media.tar").unlink()
    res = runner.invoke(app, ["db", "restore", str(archive), "--yes"], env=_env(fresh))
    assert res.exit_code == 0, res.output
    assert f"restored{archive}" in _joined(res.output)
    assert "warning:mediafileswerenotinthebackup" in _joined(res.output)
