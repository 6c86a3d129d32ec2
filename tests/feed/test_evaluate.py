"""The replay evaluation's numbers against a direct count: per held-out read, the "latest" feed's
hit rate and reciprocal rank, and the target ratio built on them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from hanseek.config import Settings
from hanseek.feed.evalrun import VISIBLE_ORACLE, EvalRunner, section, target_check
from hanseek.feed.evalsets.model import EvalSet
from hanseek.feed.evaluate import Candidates, EvalResult, Latest, Personalized, Popular, _full_order, evaluate
from hanseek.feed.metrics import hit_at_k, ndcg_at_k
from hanseek.feed.scoring import order_latest

from .conftest import tiny_eval_set


def test_latest_per_read_matches_a_direct_count() -> None:
    es, vecs = tiny_eval_set(6)
    got = evaluate(es, vecs, [Latest()], windows={"none": None}, max_queries=None, period=(0, float("inf")))
    hits, rr, n = 0.0, 0.0, 0
    for i in np.flatnonzero(es.ev_kind == 0):
        u, t, post = es.ev_user[i], es.ev_at[i], int(es.ev_post[i])
        seen = set(es.ev_post[(es.ev_user == u) & (es.ev_at < t)].tolist())  # any event marks a post read
        # Every user of the tiny set is in all its communities; newest first.
        newest = [int(p) for p in np.argsort(-es.created_at) if es.created_at[p] <= t and int(p) not in seen]
        rank = newest.index(post) + 1
        hits += rank <= 20
        rr += 1.0 / rank
        n += 1
    assert got.queries == n and got.unit == "read"
    m = got.windows["none"]["latest"]
    assert m["hr@20"] == pytest.approx(hits / n, abs=1e-4)
    assert m["mrr"] == pytest.approx(rr / n, abs=1e-4)


class _Recorder:
    """Orders as "latest"; keeps each query's candidates, its top 20 and their HR@20 / nDCG@20."""

    name = "recorder"

    def __init__(self) -> None:
        self.eligible: set[int] = set()
        self.shown: set[int] = set()
        self.hits: list[float] = []
        self.ndcgs: list[float] = []

    def order(self, c: Candidates) -> npt.NDArray[np.int64]:
        o = order_latest(c.times, c.posts)
        ranked = c.posts[o].tolist()
        self.eligible.update(c.posts.tolist())
        self.shown.update(ranked[:20])
        self.hits.append(hit_at_k(ranked, c.query.relevant, 20))
        self.ndcgs.append(ndcg_at_k(ranked, c.query.relevant, 20))
        return o


def _baselines_with_a_stand_in_ranker() -> tuple[EvalSet, EvalResult]:
    es, vecs = tiny_eval_set(7)
    got = evaluate(
        es,
        vecs,
        [Latest(), Popular()],
        windows={"7d": 7.0},
        max_queries=None,
        period=(es.t_val_end, float("inf")),
    )
    # The report reads a method called "ranker": let the popular feed stand in for it.
    got.windows["7d"]["ranker"] = got.windows["7d"]["popular"]
    got.per_query["7d"]["ranker"] = got.per_query["7d"]["popular"]
    return es, got


def _held_out_read_sessions(es: EvalSet) -> list[int]:
    """The session of each read of the sessions that start after t_val_end (the test queries), sorted."""
    first: dict[int, float] = {}
    for session, t in zip(es.ev_session.tolist(), es.ev_at.tolist(), strict=True):
        first.setdefault(session, t)
    reads = [s for s, k in zip(es.ev_session.tolist(), es.ev_kind.tolist(), strict=True) if k == 0]
    return sorted(s for s in reads if first[s] >= es.t_val_end)


def test_per_query_values_are_kept_with_their_sessions() -> None:
    es, got = _baselines_with_a_stand_in_ranker()
    per = got.per_query["7d"]["latest"]
    assert len(per["hr"]) == len(per["ndcg"]) == len(got.groups) == got.queries
    # Each query's HR@20 and nDCG@20, against the same queries counted by a recording method that
    # orders as "latest" and scores its own lists with the metric functions.
    rec = _Recorder()
    evaluate(
        es,
        tiny_eval_set(7)[1],
        [rec],
        windows={"7d": 7.0},
        max_queries=None,
        period=(es.t_val_end, float("inf")),
    )
    assert per["hr"] == rec.hits and per["ndcg"] == pytest.approx(rec.ndcgs)
    assert 0 < sum(rec.hits) < len(rec.hits)
    assert float(np.mean(per["hr"])) == pytest.approx(got.windows["7d"]["latest"]["hr@20"], abs=1e-4)
    # One query per held-out read, each tagged with that read's session.
    assert sorted(got.groups) == _held_out_read_sessions(es)


def test_target_ratio_is_against_the_better_baseline() -> None:
    _, got = _baselines_with_a_stand_in_ranker()
    per = got.windows["7d"]
    row = target_check(got)["7d"]
    best = max(per["latest"]["hr@20"], per["popular"]["hr@20"])
    assert row["hr@20_ratio"] == pytest.approx(per["popular"]["hr@20"] / best, abs=1e-3)
    assert row["hr@20_met"] is (row["hr@20_ratio"] >= 1.1)
    lo, hi = row["hr@20_ratio_ci95"]
    assert lo <= row["hr@20_ratio"] <= hi and hi <= 1.0 + 1e-9  # the stand-in never beats the better one


def test_report_shows_the_visible_oracle_only_when_it_was_run() -> None:
    es, got = _baselines_with_a_stand_in_ranker()
    per = got.windows["7d"]
    notes = {"chosen": "hgb", "validation": {}, "train_rows": 1, "train_queries_with_a_read_in_the_union": 1}
    notes["train_queries"] = 1
    assert "hr@20_visible_oracle_ratio" not in target_check(got)["7d"]
    assert VISIBLE_ORACLE not in section(es, got, notes)
    # Better than every method: still a reference row, so never the bold "best".
    per[VISIBLE_ORACLE] = {**per["latest"], "hr@20": per["latest"]["hr@20"] + 0.5}
    row = target_check(got)["7d"]
    best = max(per["latest"]["hr@20"], per["popular"]["hr@20"])
    assert row["hr@20_visible_oracle_ratio"] == pytest.approx((per["latest"]["hr@20"] + 0.5) / best, abs=1e-3)
    md = section(es, got, notes)
    oracle_row = next(line for line in md.splitlines() if line.startswith(f"| 7d | {VISIBLE_ORACLE} |"))
    assert "**" not in oracle_row
    assert f"| {VISIBLE_ORACLE} HR@20 ÷ best baseline |" in md
    header = next(line for line in md.splitlines() if line.startswith("| window | ranker HR@20"))
    table_row = next(line for line in md.splitlines() if line.startswith("| 7d | ") and "met" in line)
    assert header.count("|") == table_row.count("|") == 10


def test_runner_can_replay_every_held_out_session(tmp_path: Path) -> None:
    es, vecs = tiny_eval_set(4)
    runner = EvalRunner(Settings(data_dir=tmp_path), tmp_path)
    runner.load = lambda name, **_: (es, vecs)  # type: ignore[method-assign]
    report = runner.run([es.name], max_queries=None, ranker=False)
    assert report.data["sets"][es.name]["queries"] == len(_held_out_read_sessions(es))
    assert report.data["max_queries"] is None
    assert "every held-out session per set" in report.markdown


def test_coverage_is_shown_posts_over_every_candidate_post() -> None:
    """The denominator is every post that was a candidate of some query, not only a first few."""
    es, vecs = tiny_eval_set(6)
    rec = _Recorder()
    got = evaluate(es, vecs, [rec], windows={"none": None}, max_queries=None, period=(0, float("inf")))
    assert len(rec.eligible) > len(rec.shown)
    assert got.windows["none"]["recorder"]["coverage"] == pytest.approx(
        len(rec.shown) / len(rec.eligible), abs=1e-4
    )


class _Prefix:
    name = "prefix"

    def order(self, c: Candidates) -> npt.NDArray[np.int64]:
        return np.array([3, 0], dtype=np.int64)


def test_a_short_order_is_completed_newest_first() -> None:
    posts = np.array([10, 11, 12, 13, 14], dtype=np.int64)
    times = np.array([5.0, 1.0, 9.0, 3.0, 9.0])
    c = Candidates(None, posts, times, None)  # type: ignore[arg-type]
    got = _full_order(_Prefix().order(c), c)
    # the rest (1, 2, 4) newest first, a tie of times broken by the larger post first
    assert got.tolist() == [3, 0, 4, 2, 1]
    assert _full_order(np.array([4, 3, 2, 1, 0]), c).tolist() == [4, 3, 2, 1, 0]


def test_personalized_ranks_by_cosine_first() -> None:
    posts = np.array([10, 11, 12, 13], dtype=np.int64)
    cos = np.array([0.1, 0.9, 0.5, 0.3], dtype=np.float32)
    c = Candidates(None, posts, np.array([4.0, 3.0, 2.0, 1.0]), None, cos)  # type: ignore[arg-type]
    assert Personalized().order(c).tolist() == [1, 2, 3, 0]


class _FixedPopularity(Candidates):
    def popularity(self, half_life_days: float = 0.0) -> npt.NDArray[np.float64]:
        return np.array([0.0, 1.0, 5.0, 2.0])


def test_cold_start_interleaves_popular_first_then_newest() -> None:
    """No profile yet: the blend starts with the most popular post, then the newest."""
    posts = np.array([10, 11, 12, 13], dtype=np.int64)
    c = _FixedPopularity(None, posts, np.array([4.0, 3.0, 2.0, 1.0]), None)  # type: ignore[arg-type]
    # popular: 2, 3, 1, 0; newest: 0, 1, 2, 3
    assert Personalized(0.5).order(c).tolist() == [2, 0, 3, 1]
