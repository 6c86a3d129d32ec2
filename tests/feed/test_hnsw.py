"""Rebuilding the posts' HNSW graph with other parameters (hanseek.feed.hnsw, `feed hnsw-index`)."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from hanseek.cli import app
from hanseek.config import Settings
from hanseek.feed import hnsw
from hanseek.feed.models import EventIn
from hanseek.feed.service import FeedService
from hanseek.store.db import Database

from .conftest import NOW, make_posts

runner = CliRunner()


def _params(db: Database) -> hnsw.HnswParams | None:
    with db.connection() as conn:
        return hnsw.current_params(conn)


def test_rebuild_swaps_in_the_new_graph_and_the_approximate_path_uses_it(
    db: Database, db_settings: Settings, feed: FeedService, tag: str
) -> None:
    posts, _ = make_posts(tag, 30, communities=1, days=10)
    feed.ingest_posts(posts)
    before = _params(db)
    assert before is not None
    env = {"HANSEEK_DATA_DIR": str(db_settings.data_dir), "HANSEEK_DATABASE_URL": db_settings.database_url}
    try:
        res = runner.invoke(app, ["feed", "hnsw-index", "--m", "8", "--ef-construction", "40"], env=env)
        assert res.exit_code == 0, res.output
        assert _params(db) == hnsw.HnswParams(8, 40)
        res = runner.invoke(app, ["feed", "hnsw-index"], env=env)
        assert res.exit_code == 0 and "m=8 ef_construction=40" in res.output
        with db.connection() as conn:
            names = [r[0] for r in conn.execute("SELECT indexname FROM pg_indexes WHERE tablename = 'posts'")]
        assert hnsw.INDEX in names and not any(n.endswith("_new") for n in names)
        user = f"{tag}-u"
        feed.set_memberships(user, [f"{tag}-c0"])
        feed.record_events([EventIn(user_id=user, post_id=posts[0].id, kind="like", at=NOW)])
        out = feed.feed(user, k=5, days=None, path="approx", at=NOW, method="similar")
        assert out.path == "approx-hnsw" and len(out.items) == 5
    finally:
        hnsw.rebuild(db.url, before)
    assert _params(db) == before


def test_bad_parameters_are_refused_before_anything_is_built(db: Database) -> None:
    with pytest.raises(ValueError, match="ef_construction"):
        hnsw.rebuild(db.url, hnsw.HnswParams(16, 20))
    with pytest.raises(ValueError, match="m must be"):
        hnsw.rebuild(db.url, hnsw.HnswParams(1, 64))


def test_the_command_refuses_bad_parameters_with_a_message(db: Database, db_settings: Settings) -> None:
    env = {"HANSEEK_DATA_DIR": str(db_settings.data_dir), "HANSEEK_DATABASE_URL": db_settings.database_url}
    before = _params(db)
    for argv in (["--m", "0"], ["--m", "16", "--ef-construction", "10"]):
        res = runner.invoke(app, ["feed", "hnsw-index", *argv], env=env)
        assert res.exit_code == 1 and "error" in res.output and "Traceback" not in res.output, res.output
    res = runner.invoke(app, ["feed", "hnsw-index", "--m", "16", "--maintenance-work-mem", "lots"], env=env)
    assert res.exit_code == 1 and "old index is unchanged" in res.output, res.output
    assert _params(db) == before
