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


def test_show_takes_days_all_as_the_api_does(
    db: Database, db_settings: Settings, tag: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HANSEEK_DATA_DIR", str(db_settings.data_dir))
    monkeypatch.delenv("HANSEEK_DATABASE_URL", raising=False)
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
    r = runner.invoke(app, ["feed", "show", f"{tag}-u", "--days", "soon"])
    assert r.exit_code == 2 and "neither a number of days nor 'all'" in " ".join(r.output.split())
    r = runner.invoke(app, ["feed", "show", f"{tag}-u", "--days", "0"])
    assert r.exit_code == 1 and "or 'all' for no window" in " ".join(r.output.split())
