"""`hanseek feed ...`: eval refuses bad options before doing any work; show takes the API's windows."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from hanseek.cli import app
from hanseek.config import Settings
from hanseek.feed.service import FeedService
from hanseek.feed.settings import FeedSettings
from hanseek.store.db import Database

from .conftest import make_posts

runner = CliRunner()


def test_eval_refuses_an_unknown_query_unit(tmp_path: Path) -> None:
    r = runner.invoke(app, ["feed", "eval", "--unit", "day", "--out", str(tmp_path)])
    out = " ".join(r.output.split())  # rich wraps long lines
    assert r.exit_code == 1
    assert "unknown --unit 'day'" in out and "read, session" in out
    assert not list(tmp_path.iterdir())


def test_eval_refuses_a_missing_data_folder(tmp_path: Path) -> None:
    r = runner.invoke(app, ["feed", "eval", "--shared-data", str(tmp_path / "nope"), "--out", str(tmp_path)])
    assert r.exit_code == 1 and "not found (pass --shared-data)" in " ".join(r.output.split())


def test_eval_refuses_a_negative_sample(tmp_path: Path) -> None:
    r = runner.invoke(app, ["feed", "eval", "--max-queries", "-1", "--out", str(tmp_path)])
    assert r.exit_code == 2 and "--max-queries" in " ".join(r.output.split())
    assert not list(tmp_path.iterdir())


@pytest.fixture()
def cli_on_db(db_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI's commands open the session's database (its data dir, the embedded server)."""
    monkeypatch.setenv("HANSEEK_DATA_DIR", str(db_settings.data_dir))
    monkeypatch.delenv("HANSEEK_DATABASE_URL", raising=False)


def test_show_takes_days_all_as_the_api_does(db: Database, tag: str, cli_on_db: None) -> None:
    posts, _ = make_posts(tag, 5, 1, 20, seed=3)  # posted in 2024: outside any window ending today
    svc = FeedService(db, settings=FeedSettings(), load_in_background=False, follow=False)
    try:
        svc.ingest_posts(posts)
        svc.set_memberships(f"{tag}-u", [f"{tag}-c0"])
    finally:
        svc.close()

    def shown(r: Any) -> int:
        return sum(p.title in r.output for p in posts)

    r = runner.invoke(app, ["feed", "show", f"{tag}-u", "--days", "all", "-k", "3"])
    assert r.exit_code == 0 and shown(r) == 3, r.output
    r = runner.invoke(app, ["feed", "show", f"{tag}-u"])  # 30 days by default
    assert r.exit_code == 0 and shown(r) == 0, r.output
    # Titles and boards are text, not Rich markup: "[/x]" was a MarkupError traceback, "[b]" vanished.
    svc = FeedService(db, settings=FeedSettings(), load_in_background=False, follow=False)
    try:
        svc.ingest_posts([posts[0].model_copy(update={"title": "[/x] [b]공지[/b]"})])
    finally:
        svc.close()
    r = runner.invoke(app, ["feed", "show", f"{tag}-u", "--days", "all", "-k", "5"])
    assert r.exit_code == 0 and f"[{tag}-c0] [/x] [b]공지[/b]" in r.output, r.output
    r = runner.invoke(app, ["feed", "show", f"{tag}-u", "--days", "soon"])
    assert r.exit_code == 2 and "neither a number of days nor 'all'" in " ".join(r.output.split())
    r = runner.invoke(app, ["feed", "show", f"{tag}-u", "--days", "0"])
    assert r.exit_code == 1 and "or 'all' for no window" in " ".join(r.output.split())


def test_files_are_checked_whole_and_a_failed_batch_says_what_was_stored(
    db: Database, tag: str, tmp_path: Path, cli_on_db: None
) -> None:
    import json

    # A NUL in the second row: refused while reading, so the first row is not written either.
    members = tmp_path / "members.csv"
    members.write_text(f"user_id,community\n{tag}-ok,{tag}-c0\n{tag}-x\x00y,{tag}-c0\n", encoding="utf-8")
    r = runner.invoke(app, ["feed", "memberships", str(members)])
    out = " ".join(r.output.split())
    assert r.exit_code == 1 and "NUL" in out and "Traceback" not in out, r.output
    with db.connection() as conn:
        assert conn.execute("SELECT 1 FROM users WHERE id = %s", (f"{tag}-ok",)).fetchone() is None
    for command, header in (("memberships", "user_id,community\n"), ("events", ""), ("ingest", "")):
        empty = tmp_path / f"empty-{command}.{'csv' if header else 'jsonl'}"
        empty.write_text(header, encoding="utf-8")
        r = runner.invoke(app, ["feed", command, str(empty)])
        assert r.exit_code == 1 and "no " in r.output and "in it" in r.output, (command, r.output)

    posts, _ = make_posts(tag, 2, 1, 1, seed=2)
    svc = FeedService(db, settings=FeedSettings(), load_in_background=False, follow=False)
    try:
        svc.ingest_posts(posts)
    finally:
        svc.close()
    events = tmp_path / "events.jsonl"
    rows = [
        {"user_id": f"{tag}-reader", "post_id": posts[0].id, "at": "2024-01-02T00:00:00Z"},
        {"user_id": f"{tag}-reader", "post_id": f"{tag}-no-such-post", "at": "2024-01-02T00:00:00Z"},
    ]
    events.write_text("".join(json.dumps(x) + "\n" for x in rows), encoding="utf-8")
    r = runner.invoke(app, ["feed", "events", str(events), "--batch-size", "1"])
    out = " ".join(r.output.split())
    assert r.exit_code == 1 and "none of this batch was recorded" in out and "rows 1-1" in out, r.output
    with db.connection() as conn:
        row = conn.execute("SELECT count(*) FROM events WHERE user_id = %s", (f"{tag}-reader",)).fetchone()
    assert row is not None and row[0] == 1  # what the message says: the first batch was stored


def test_ingest_checks_every_rows_dimension_before_writing_any(
    db: Database, db_settings: Settings, tag: str, tmp_path: Path, cli_on_db: None
) -> None:
    import json

    good = [0.0] * (db_settings.embed_dim - 1) + [1.0]
    rows = [
        {
            "id": f"{tag}-dim-{i}",
            "community": f"{tag}-c",
            "title": f"t{i}",
            "created_at": "2024-01-01",
            "embedding": vec,
        }
        for i, vec in enumerate([good, good, [0.1, 0.2, 0.3]])
    ]
    file = tmp_path / "posts.jsonl"
    file.write_text("".join(json.dumps(x) + "\n" for x in rows), encoding="utf-8")
    r = runner.invoke(app, ["feed", "ingest", str(file), "--batch-size", "1"])
    out = " ".join(r.output.split())
    assert r.exit_code == 1 and "row 3" in out and "3 values, expected" in out, r.output
    with db.connection() as conn:
        stored = conn.execute("SELECT count(*) FROM posts WHERE id LIKE %s", (f"{tag}-dim-%",)).fetchone()
    assert stored is not None and stored[0] == 0
