"""Re-ranker: features against a hand-written reference, no leakage across the time split, the
fallback blend without a model, training + hot swap, and serving features equal offline features."""

from __future__ import annotations

import functools
import math
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from hanseek.feed.evalsets.model import EvalSet, ReaderParams
from hanseek.feed.evaluate import WINDOWS, ReaderOracle, window_candidates
from hanseek.feed.metrics import hit_at_k, ndcg_at_k
from hanseek.feed.models import EventIn, FeedOut, PostIn
from hanseek.feed.ranker import features as fx
from hanseek.feed.ranker import train as train_mod
from hanseek.feed.ranker.candidates import CandidateConfig, merge, top_n
from hanseek.feed.ranker.model import RankerModel, blend_model
from hanseek.feed.ranker.offline import build
from hanseek.feed.ranker.train import Examples, collect, train, union_metrics
from hanseek.feed.replay import DecayedCounters, Query, QueryUnit, replay
from hanseek.feed.service import FeedService
from hanseek.feed.settings import FeedSettings

from .conftest import tiny_eval_set, unit


def replay_all(es: EvalSet, vecs: Any, on_query: Any, **kwargs: Any) -> int:
    """The replay asking every query of the log (no time split)."""
    return replay(es, vecs, FeedSettings(), query_from=0, query_to=float("inf"), on_query=on_query, **kwargs)


def test_features_match_a_hand_written_reference() -> None:
    c = fx.CandidateArrays(
        cos_long=np.array([0.9, 0.2]),
        cos_recent=np.array([[0.5, 0.7], [0.1, -0.3]]),
        age_s=np.array([7200.0, 3 * 86400.0]),
        popularity=np.array([10.0, 0.0]),
        trend_1d=np.array([2.0, 0.0]),
        trend_7d=np.array([3.0, 1.0]),
        community=["a", "b"],
        author=["x", None],
        category=["a", None],
        sources=np.array([[True, False, False, True], [False, True, True, False]]),
        best_rank=np.array([1.0, 4.0]),
        n_window=120,
        # similar, latest, popular, short; 0 = not produced by that source
        source_ranks=np.array([[1.0, 0.0, 0.0, 2.0], [0.0, 4.0, 7.0, 0.0]]),
    )
    prefs = fx.ReadPrefs()
    prefs.add(0.0, 0.0)  # read the moment it was posted, nobody had liked it
    prefs.add(20 * 3600.0, math.e**3 - 1)  # 20 hours old, e³-1 likes + comments
    assert prefs.n == 2 and prefs.sum_age_h == pytest.approx(20.0)
    assert prefs.sum_log_age == pytest.approx(math.log1p(20)) and prefs.sum_log_pop == pytest.approx(3.0)
    exposure = fx.ReadExposure()
    exposure.add("a", {"a": 30, "b": 10})  # a read of a when a posted 3/4 of the user's posts
    exposure.add("a", {"a": 10, "b": 10, "c": 0})
    exposure.add("b", {"a": 0, "b": 0})  # nothing posted lately: not counted
    assert exposure.reads == {"a": 2.0}
    assert exposure.exposure == pytest.approx({"a": 1.25, "b": 0.75, "c": 0.0})
    u = fx.UserSignals(
        cold=False,
        recent_mean_norm=0.8,
        n_events=9,
        community={"a": 3.0, "b": 1.0},
        author={"x": 2.0},
        category={"a": 4.0},
        prefs=prefs,
        # "c": a community of the user's with posts but no interactions yet
        community_volume={"a": 30.0, "b": 20.0, "c": 60.0},
        exposure=exposure,
    )
    x = fx.compute(c, u)
    row = dict(zip(fx.FEATURES, x[0].tolist(), strict=True))
    expected = {
        "cos_long": 0.9,
        "cos_short_max": 0.7,
        "cos_short_mean": 0.6 / 0.8,
        "log_age_h": math.log1p(2.0),
        "log_pop": math.log1p(10),
        "log_pop_rate": math.log1p(10 / 3),
        "trend_1d": math.log1p(2),
        "trend_7d": math.log1p(3),
        "community_share": 3 / 5,
        "author_share": 2 / 3,
        "category_share": 4 / 5,
        # (events in a + 2 pseudo-events x a's volume share) / (4 events + 2), over that share
        "community_lift": math.log((3 + 2 * 30 / 110) / 6 / (30 / 110)),
        # (reads of a + 1) / (a's exposure + 1)
        "exposure_lift": math.log(3 / 2.25),
        "src_similar": 1,
        "src_latest": 0,
        "src_popular": 0,
        "src_short": 1,
        "log_best_rank": 0.0,
        "log_rank_latest": math.log(5),  # not in latest's list: one past its last rank (4)
        "log_rank_similar": 0.0,
        "log_rank_popular": math.log(8),
        "log_rank_short": math.log(2),
        "pref_log_reads": math.log1p(2),
        "pref_log_age": math.log1p(20) / 2,
        "rel_log_age": math.log1p(2.0) - math.log1p(20) / 2,
        "age_over_pref": 2.0 / (10.0 + 1.0),
        "pref_log_pop": 1.5,
        "rel_log_pop": math.log1p(10) - 1.5,
        "log_user_events": math.log1p(9),
        "cold": 0,
        "log_candidates": math.log1p(120),
    }
    assert set(expected) == set(fx.FEATURES)
    for name, value in expected.items():
        assert row[name] == pytest.approx(value, rel=1e-5, abs=1e-6), name
    second = dict(zip(fx.FEATURES, x[1].tolist(), strict=True))
    assert (
        second["author_share"] == 0
        and second["category_share"] == 0
        and second["cos_short_max"] == pytest.approx(0.1)
    )
    assert second["community_lift"] == pytest.approx(math.log((1 + 2 * 20 / 110) / 6 / (20 / 110)))
    assert second["exposure_lift"] == pytest.approx(math.log(1 / 1.75))  # b: read less than it posted
    assert second["log_rank_latest"] == pytest.approx(math.log(4))
    assert second["log_rank_similar"] == pytest.approx(math.log(2))
    assert second["log_rank_short"] == pytest.approx(math.log(3))
    cold = fx.compute(c, fx.UserSignals(cold=True, recent_mean_norm=1.0, n_events=0))
    assert (cold[:, fx.FEATURES.index("cos_long")] == 0).all() and (
        cold[:, fx.FEATURES.index("cold")] == 1
    ).all()
    # No reads yet: the preference features are zero, not relative to anything.
    for f in fx.GROUPS["preferences"]:
        assert (cold[:, fx.FEATURES.index(f)] == 0).all(), f
    # No interactions: the prior alone, spread by volume, is no lift anywhere.
    new = fx.UserSignals(cold=True, recent_mean_norm=1.0, n_events=0, community_volume={"a": 5.0, "b": 1.0})
    assert fx.compute(c, new)[:, fx.FEATURES.index("community_lift")] == pytest.approx([0.0, 0.0], abs=1e-6)
    assert fx.compute(c, new)[:, fx.FEATURES.index("exposure_lift")] == pytest.approx([0.0, 0.0], abs=1e-6)


def test_union_keeps_sources_and_best_rank() -> None:
    u = merge({"similar": [5, 6, 7], "latest": [7, 8], "short": [9, 5]})
    assert u.members == [5, 6, 7, 8, 9]
    assert u.sources[u.members.index(7)].tolist() == [True, True, False, False]
    assert u.best_rank.tolist() == [1.0, 2.0, 1.0, 2.0, 1.0]
    assert u.ranks is not None and u.ranks.tolist() == [
        [1.0, 0.0, 0.0, 2.0],
        [2.0, 0.0, 0.0, 0.0],
        [3.0, 1.0, 0.0, 0.0],
        [0.0, 2.0, 0.0, 0.0],
        [0.0, 0.0, 0.0, 1.0],
    ]
    assert top_n([0.1, 0.5, 0.5, 0.2], [1, 2, 3, 4], 2).tolist() == [2, 1]  # tie: newer first


def _merge_reference(
    lists: dict[str, list[int]],
) -> tuple[list[int], list[list[bool]], list[float], list[list[float]]]:
    """The loop the vectorised merge replaced: one pass over the lists in SOURCES order."""
    pos: dict[int, int] = {}
    members: list[int] = []
    flags: list[list[bool]] = []
    best: list[float] = []
    per: list[list[float]] = []
    for j, name in enumerate(fx.SOURCES):
        for r, key in enumerate(lists.get(name, ()), 1):
            i = pos.get(key)
            if i is None:
                pos[key] = i = len(members)
                members.append(key)
                flags.append([False] * len(fx.SOURCES))
                per.append([0.0] * len(fx.SOURCES))
                best.append(float(r))
            flags[i][j] = True
            best[i] = min(best[i], float(r))
            if per[i][j] == 0.0:
                per[i][j] = float(r)
    return members, flags, best, per


def test_union_matches_the_reference_loop_on_random_lists() -> None:
    rng = np.random.default_rng(3)
    for _ in range(200):
        lists = {
            name: rng.integers(0, 40, int(rng.integers(0, 30))).tolist()
            for name in fx.SOURCES
            if rng.random() < 0.8
        }
        u = merge(lists)
        members, flags, best, per = _merge_reference(lists)
        assert u.members == members
        assert u.sources.tolist() == flags and u.best_rank.tolist() == best
        assert u.ranks is not None and u.ranks.tolist() == per
    empty = merge({})
    assert empty.members == [] and empty.sources.shape == (0, len(fx.SOURCES))


def test_union_metrics_match_a_per_query_loop_with_interleaved_queries() -> None:
    """Validation metrics group rows by query however they are stored; ties keep the stored order."""
    rng = np.random.default_rng(3)
    n = 600
    x = rng.normal(size=(n, len(fx.FEATURES))).astype(np.float32)
    x[::7] = x[0]  # ties
    qid = rng.integers(1, 31, size=n).astype(np.int32)
    y = (rng.random(n) < 0.1).astype(np.int8)
    model = blend_model()
    got = union_metrics(model, Examples(x, y, qid), k=5)
    hr = nd = 0.0
    queries = sorted(set(qid.tolist()))
    for q in queries:
        rows = [i for i in range(n) if qid[i] == q]
        s = model.score(x[rows])
        ranked = [rows[j] for j in sorted(range(len(rows)), key=lambda j: -s[j])]
        rel = {i for i in rows if y[i] == 1}
        hr += hit_at_k(ranked, rel, 5)
        nd += ndcg_at_k(ranked, rel, 5)
    assert got == {"hr@5": round(hr / len(queries), 4), "ndcg@5": round(nd / len(queries), 4), "queries": 30}


def test_time_split_never_leaks_future_events() -> None:
    es, vecs = tiny_eval_set()
    seen: list[float] = []

    def check(q: Query) -> None:
        seen.append(q.t)
        # Everything the query sees was folded in strictly before the session started.
        assert q.state.profile.n_events == 0 or q.state.profile.ref_time < q.t
        assert all(counter.at.max() < q.t for counter in q.world.trends.values())
        assert not (q.relevant & q.state.read)
        # The read preferences count exactly the user's reads before the session.
        before = (es.ev_user == q.user) & (es.ev_kind == 0) & (es.ev_at < q.t)
        assert q.state.prefs.n == int(before.sum())

    replay(
        es, vecs, FeedSettings(), query_from=float(es.ev_at.min()), query_to=es.t_train_end, on_query=check
    )
    assert seen and max(seen) < es.t_train_end
    ex = _collect_all(es, vecs, float(es.ev_at.min()), es.t_train_end, neg_per_query=10, seed=0)
    assert ex.queries == len(seen) and max(ex.query_times) < es.t_train_end and ex.y.sum() > 0


def _collect_all(
    es: EvalSet,
    vecs: Any,
    start: float,
    end: float,
    *,
    neg_per_query: int | None,
    seed: int,
    unit: QueryUnit = "read",
) -> Examples:
    """Every query's rows in [start, end), with the default feed settings and candidate sources."""
    return collect(
        es,
        vecs,
        FeedSettings(),
        CandidateConfig(),
        start=start,
        end=end,
        max_queries=None,
        neg_per_query=neg_per_query,
        seed=seed,
        unit=unit,
    )


def _hand_log(created: npt.NDArray[np.float64], log: list[tuple[int, int, int, float]]) -> EvalSet:
    """An evaluation set of one community from (user, post, kind, time) events, one session per
    user, queries from the start."""
    n, arr = len(created), np.array(log, dtype=np.float64)
    users = int(arr[:, 0].max()) + 1
    return EvalSet(
        name="hand",
        post_ids=[f"p{i}" for i in range(n)],
        titles=[""] * n,
        texts=[""] * n,
        communities=["c"],
        post_community=np.zeros(n, np.int32),
        created_at=created,
        popularity_final=np.zeros(n),
        user_communities=[np.array([0], np.int32)] * users,
        ev_user=arr[:, 0].astype(np.int32),
        ev_post=arr[:, 1].astype(np.int32),
        ev_kind=arr[:, 2].astype(np.int8),
        ev_at=arr[:, 3],
        ev_session=arr[:, 0].astype(np.int32),
        t_train_end=float(arr[:, 3].min()) - 2,
        t_val_end=float(arr[:, 3].min()) - 1,
        accrual_days=1e-6,
    )


def test_events_of_one_moment_are_applied_after_every_query_of_that_moment() -> None:
    """A batch sent without `at` stores its events at one time. Until session 19 the replay asked
    each query after the events logged before it at that very time: another user's like moved the
    post's counters, and the user's own other reads of the moment were already read (math review)."""
    rng = np.random.default_rng(3)
    vecs = rng.standard_normal((20, 384)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    created = 1_700_000_000.0 + np.arange(20) * 600.0
    t = created[-1] + 3600
    # user 0 likes post 5 at t, user 1 reads 5 at t; later user 1 reads 3 and 4 at one moment
    es = _hand_log(
        created, [(0, 5, 1, t), (1, 5, 0, t), (1, 3, 0, t + 60), (1, 4, 0, t + 60), (1, 4, 0, t + 60)]
    )
    got: list[tuple[int, set[int], float, float, set[int]]] = []

    def check(q: Query) -> None:
        five = np.array([5], dtype=np.int64)
        rids, _ = q.candidates(None)
        got.append(
            (
                q.user,
                set(q.relevant),
                float(q.world.likes_at(five, q.t)[0]),
                max(float(c.at.max()) for c in q.world.trends.values()),
                set(rids.tolist()),
            )
        )

    n = replay_all(es, vecs, on_query=check)
    assert n == 3  # the repeated read of 4 within the moment is not a second query
    (u1, rel1, likes, last_count, _), (_, rel2, _, _, cand2), (_, rel3, _, _, cand3) = got
    assert (u1, rel1, likes) == (1, {5}, 0.0) and last_count < t
    assert rel2 == {3} and rel3 == {4} and 4 in cand2 and 3 in cand3 and 5 not in cand2 | cand3


def test_read_queries_come_before_each_read_and_session_queries_before_the_first() -> None:
    """The issue's unit: a query per held-out read, asked before it, with the session's earlier reads
    already known; the session unit asks once per session with all its reads relevant."""
    es, vecs = tiny_eval_set(4)
    reads = np.flatnonzero(es.ev_kind == 0)
    got: list[Query] = []
    snap: list[tuple[set[int], int, int]] = []

    def on_read(q: Query) -> None:
        got.append(q)
        snap.append((set(q.state.read), q.state.last_read_session, q.state.events))

    n = replay_all(es, vecs, on_query=on_read, unit="read")
    assert n == len(got) == len(reads)
    for q, (read, last_session, events), i in zip(got, snap, reads, strict=True):
        assert q.relevant == {int(es.ev_post[i])} and q.t == es.ev_at[i] and q.session == es.ev_session[i]
        assert not (q.relevant & read)
        earlier = (es.ev_session == q.session) & (es.ev_at < q.t)
        # The session so far is known (its reads and the like that followed the first), nothing later.
        assert {int(p) for p in es.ev_post[earlier & (es.ev_kind == 0)]} <= read
        assert events == int(((es.ev_user == q.user) & (es.ev_at < q.t)).sum())
        assert (last_session == q.session) == bool((earlier & (es.ev_kind == 0)).any())

    per_session: list[Query] = []
    n = replay_all(
        es,
        vecs,
        on_query=per_session.append,
        unit="session",
    )
    assert n == len(per_session) == len(np.unique(es.ev_session))
    for q in per_session:
        mine = es.ev_session == q.session
        assert q.t == es.ev_at[mine].min()
        assert q.relevant == {int(p) for p in es.ev_post[mine & (es.ev_kind == 0)]}
    with pytest.raises(ValueError, match="unknown query unit"):
        replay(es, vecs, FeedSettings(), query_from=0, query_to=1, on_query=got.append, unit="day")  # type: ignore[arg-type]


def _taste_only_params(
    es: EvalSet, vecs: npt.NDArray[np.float32], *, b_int: float, interest: npt.NDArray[np.float32]
) -> ReaderParams:
    """Reader parameters whose utility is flat but for interest (b_int, every user the same interest
    vector) and the within-session term (b_st 5), with the e5 vectors standing in as the lexical space."""
    users, comms = es.n_users, len(es.communities)
    return ReaderParams(
        tau_days=np.full(users, 1e9),
        b_pop=np.zeros(users),
        b_int=np.full(users, b_int),
        b_st=np.full(users, 5.0),
        log_share=np.zeros((users, comms)),
        interest=np.tile(interest, (users, 1)).astype(np.float32),
        lexical=vecs,
        max_age_days=1e9,
    )


def test_oracle_adds_the_within_session_term_after_a_read_of_the_same_session() -> None:
    """With every other term flat, the oracle ranks by similarity to the session's last read — and
    only when there is one; a session's first query has no such term."""
    es, vecs = tiny_eval_set(5)
    es.reader_params = _taste_only_params(es, vecs, b_int=0.0, interest=np.zeros(vecs.shape[1], np.float32))
    oracle = ReaderOracle()
    checked = {"within": 0, "first": 0}

    def on_query(q: Query) -> None:
        c = window_candidates(q, None)
        if not len(c.posts):
            return
        order = oracle.order(c)
        if q.state.last_read_session == q.session:
            want = int(np.argmax(vecs[c.posts] @ vecs[q.state.recent[-1]]))
            assert order[0] == want
            checked["within"] += 1
        else:  # flat utility: ties broken newest first
            assert order[0] == int(np.argmax(c.times))
            checked["first"] += 1

    replay_all(es, vecs, on_query=on_query, unit="read")
    assert checked["within"] > 20 and checked["first"] > 20


def test_oracle_variants_leave_out_the_hidden_taste_terms() -> None:
    """With only interest and the within-session term in the utility, the full oracle follows them;
    the variant without both has a flat utility left and falls back to newest first."""
    es, vecs = tiny_eval_set(6)
    es.reader_params = _taste_only_params(es, vecs, b_int=5.0, interest=vecs[0])
    full, no_session = ReaderOracle(), ReaderOracle(session=False)
    no_interest, visible = ReaderOracle(interest=False), ReaderOracle(interest=False, session=False)
    assert full.name == "oracle (reader model's utility)"
    assert visible.name == "oracle − interest − within-session"
    assert len({full.name, no_session.name, no_interest.name, visible.name}) == 4
    seen = {"within": 0, "first": 0}

    def on_query(q: Query) -> None:
        c = window_candidates(q, None)
        if len(c.posts) < 2:
            return
        by_interest = vecs[c.posts] @ vecs[0]
        assert visible.order(c)[0] == int(np.argmax(c.times))
        assert no_session.order(c)[0] == int(np.argmax(by_interest))
        if q.state.last_read_session == q.session:
            by_last = vecs[c.posts] @ vecs[q.state.recent[-1]]
            assert no_interest.order(c)[0] == int(np.argmax(by_last))
            assert full.order(c)[0] == int(np.argmax(by_interest + by_last))
            seen["within"] += 1
        else:
            assert no_interest.order(c)[0] == int(np.argmax(c.times))
            seen["first"] += 1

    replay_all(es, vecs, on_query=on_query, unit="read")
    assert seen["within"] > 20 and seen["first"] > 20


@pytest.mark.parametrize("query_unit", ["read", "session"])
def test_training_beats_chance_and_validation_is_later(
    query_unit: QueryUnit, monkeypatch: pytest.MonkeyPatch
) -> None:
    es, vecs = tiny_eval_set(1, n_users=60)
    made: list[tuple[Examples, list[float]]] = []

    def spy(*args: Any, **kwargs: Any) -> Examples:
        ex = collect(*args, **kwargs)
        made.append((ex, list(ex.query_times)))
        return ex

    monkeypatch.setattr(train_mod, "collect", spy)
    trained = train(
        es,
        vecs,
        kinds=("logistic",),
        max_train_queries=None,  # type: ignore[arg-type]
        max_val_queries=None,  # type: ignore[arg-type]
        neg_per_query=20,
        unit=query_unit,
    )
    assert trained.model.kind == "logistic" and trained.train_rows > 0
    # The split is checked on what was collected (not on constants copied into meta): every
    # training query before t_train_end, every validation query in [t_train_end, t_val_end).
    (tr, tr_times), (_, va_times) = made
    assert tr_times and va_times
    assert max(tr_times) < es.t_train_end <= min(va_times) and max(va_times) < es.t_val_end
    assert trained.train_rows == len(tr.y)
    assert trained.model.meta["query_unit"] == query_unit
    # Users read posts of the last 10 days: a trained model must find them far better than chance in
    # its union (chance: a random order of each validation union, HR@20 = 1 - C(n-p, 20) / C(n, 20)).
    va = _collect_all(es, vecs, es.t_train_end, es.t_val_end, neg_per_query=None, seed=1, unit=query_unit)
    sizes = [(int((va.qid == q).sum()), int(va.y[va.qid == q].sum())) for q in np.unique(va.qid)]
    chance = float(
        np.mean([1 - math.comb(n - p, 20) / math.comb(n, 20) if n > 20 else 1.0 for n, p in sizes])
    )
    assert trained.candidates["logistic"]["hr@20"] > 1.3 * chance


@pytest.fixture()
def ranked_world(db: Any, tag: str) -> Any:
    svc = FeedService(
        db,
        settings=FeedSettings(diversity_share=1.0, index_poll_seconds=0.0, ranker_poll_seconds=0.0),
        load_in_background=False,
        follow=False,
    )
    yield svc
    svc.close()


def test_serving_features_equal_offline_features(ranked_world: FeedService, tag: str) -> None:
    """The same log through the service (PostgreSQL, in-process index) and through the replay gives
    the same candidate union and the same feature rows."""
    es, vecs = tiny_eval_set(2, n_posts=300, n_users=3)
    svc = ranked_world
    t0 = datetime.fromtimestamp(0, UTC)
    posts = [
        PostIn(
            id=f"{tag}-{i}",
            community=f"{tag}-{es.communities[int(c)]}",
            title=f"p{i}",
            category=f"{tag}-{es.communities[int(c)]}",  # as in the petition sets: category = board
            created_at=t0 + timedelta(seconds=float(es.created_at[i])),
            likes=int(es.popularity_final[i]),
            embedding=vecs[i].tolist(),
        )
        for i, c in enumerate(es.post_community)
    ]
    svc.ingest_posts(posts)
    user_events = np.flatnonzero(es.ev_user == 0)
    cut_session = es.ev_session[user_events[len(user_events) // 2]]
    before = [i for i in np.flatnonzero(es.ev_at < es.ev_at[es.ev_session == cut_session].min())]
    svc.set_memberships(f"{tag}-u0", [f"{tag}-{c}" for c in es.communities])
    kinds = ("read", "like", "comment")
    svc.record_events(
        [
            EventIn(
                user_id=f"{tag}-u{es.ev_user[i]}",
                post_id=f"{tag}-{es.ev_post[i]}",
                kind=kinds[es.ev_kind[i]],  # type: ignore[arg-type]
                at=t0 + timedelta(seconds=float(es.ev_at[i])),
            )
            for i in before
        ]
    )
    for u in range(1, 3):
        svc.set_memberships(f"{tag}-u{u}", [f"{tag}-{c}" for c in es.communities])

    captured: dict[str, Any] = {}

    def on_query(q: Query) -> None:
        # The session's first read: the service has been sent exactly the events before it.
        if q.user == 0 and q.session == cut_session and "t" not in captured:
            c = window_candidates(q, WINDOWS["30d"])
            b = build(c, CandidateConfig())
            assert b is not None
            captured["t"] = q.t
            captured["rows"] = {f"{tag}-{int(c.posts[p])}": b.x[i] for i, p in enumerate(b.positions)}

    replay_all(es, vecs, on_query=on_query)
    at = t0 + timedelta(seconds=captured["t"])
    from hanseek.feed import query as qy
    from hanseek.feed.ranker import serving

    with svc.db.connection() as conn:
        t_from = at - timedelta(days=30)
        # Both ways the service can know the user: the one-round-trip context and the plain user row.
        for user, path in (
            (qy.load_context(conn, f"{tag}-u0", t_from, 200, affinity=True), "auto"),
            (qy.load_user(conn, f"{tag}-u0"), "exact"),
            # The SQL path, without the in-process index: the same window size (an exact count) and
            # the same sources, so the same union and rows as well.
            (qy.load_user(conn, f"{tag}-u0"), "exact-sql"),
        ):
            model = blend_model()
            # The plain blend skips the volumes and the exposure (below).
            model.weights["community_lift"] = model.weights["exposure_lift"] = 1.0
            seen: dict[str, np.ndarray] = {}
            orig = model.score

            def spy(x: np.ndarray, orig: Any = orig, seen: dict[str, np.ndarray] = seen) -> np.ndarray:
                seen["x"] = x
                return orig(x)

            model.score = spy  # type: ignore[method-assign]
            r = serving.rank(svc, conn, user, model, t_from, at, 20, diversity_share=None, path=path)
            if path == "exact-sql":
                for name in ("community_lift", "exposure_lift"):
                    lift = fx.FEATURES.index(name)
                    offline_lift = np.stack(list(captured["rows"].values()))[:, lift]
                    # One value per community: the same values both ways.
                    values = set(np.round(offline_lift, 5).tolist())
                    assert set(np.round(seen["x"][:, lift], 5).tolist()) == values and len(values) > 1, name
            members = [row.id for row in qy.post_rows(conn, [h[0] for h in r.hits]).values()]
            assert r.union == len(captured["rows"])
            assert members and set(members) <= set(captured["rows"])
            # Serving scored the whole union; compare the feature columns as multisets.
            served = seen["x"]
            assert served.shape == (len(captured["rows"]), len(fx.FEATURES))
            offline = np.stack(list(captured["rows"].values()))
            np.testing.assert_allclose(
                np.sort(served, axis=0), np.sort(offline, axis=0), rtol=1e-4, atol=1e-4
            )


@pytest.mark.parametrize("history", ["comment-on-an-older-read", "re-read"])
def test_serving_takes_the_short_term_reads_as_the_replay_does(
    ranked_world: FeedService, tag: str, history: str
) -> None:
    """Until session 19 serving took the last distinct posts of any event kind, the replay the last
    read events (re-reads repeated): a comment on an older post, or a re-read, gave the service other
    short-term candidates and feature rows than the model was trained on (math review)."""
    from hanseek.feed import query as qy
    from hanseek.feed.ranker import serving

    rng = np.random.default_rng(7)
    n = 80
    vecs = rng.standard_normal((n, 384)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    created = 1_700_000_000.0 + np.arange(n) * 600.0
    t = created[-1] + 3600
    a, b, c, d, e = 3, 10, 20, 30, 40
    if history == "re-read":
        log = [(a, 0, t), (b, 0, t + 60), (a, 0, t + 120), (e, 0, t + 300)]
    else:  # read a, b, c, d, then comment on a
        log = [(a, 0, t), (b, 0, t + 60), (c, 0, t + 120), (d, 0, t + 180), (a, 2, t + 240), (e, 0, t + 300)]
    es = _hand_log(created, [(0, p, k, at) for p, k, at in log])
    captured: dict[str, Any] = {}

    def on_query(q: Query) -> None:
        if q.relevant == {e}:
            cands = window_candidates(q, None)
            built = build(cands, CandidateConfig())
            assert built is not None
            captured["recent"] = [f"{tag}-{int(p)}" for p in cands.recent[:3]]
            captured["rows"] = np.stack([built.x[i] for i in range(len(built.positions))])

    replay_all(es, vecs, on_query=on_query)
    epoch = datetime.fromtimestamp(0, UTC)
    svc = ranked_world
    svc.ingest_posts(
        [
            PostIn(
                id=f"{tag}-{i}",
                community=f"{tag}-c",
                title=f"p{i}",
                category=f"{tag}-c",
                created_at=epoch + timedelta(seconds=float(created[i])),
                embedding=vecs[i].tolist(),
            )
            for i in range(n)
        ]
    )
    svc.set_memberships(f"{tag}-u", [f"{tag}-c"])
    kinds = ("read", "like", "comment")
    svc.record_events(
        [
            EventIn(
                id=f"{tag}-e{j}",
                user_id=f"{tag}-u",
                post_id=f"{tag}-{int(p)}",
                kind=kinds[int(k)],  # type: ignore[arg-type]
                at=epoch + timedelta(seconds=float(at)),
            )
            for j, (p, k, at) in enumerate(log[:-1])
        ]
    )
    at = epoch + timedelta(seconds=t + 300)
    with svc.db.connection() as conn:
        assert [x.id for x in qy.recent_reads(conn, f"{tag}-u", 3)] == captured["recent"]
        for user, path in (
            (qy.load_context(conn, f"{tag}-u", None, 200, affinity=True), "auto"),
            (qy.load_user(conn, f"{tag}-u"), "exact-sql"),
        ):
            seen: dict[str, np.ndarray] = {}
            model = blend_model()
            orig = model.score

            def spy(x: np.ndarray, orig: Any = orig, seen: dict[str, np.ndarray] = seen) -> np.ndarray:
                seen["x"] = x
                return orig(x)

            model.score = spy  # type: ignore[method-assign]
            serving.rank(svc, conn, user, model, None, at, 20, diversity_share=None, path=path)
            assert seen["x"].shape == captured["rows"].shape, path
            np.testing.assert_allclose(
                np.sort(seen["x"], axis=0), np.sort(captured["rows"], axis=0), rtol=1e-4, atol=1e-4
            )


def test_volumes_are_counted_only_for_a_model_that_reads_the_lift(
    ranked_world: FeedService, tag: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from hanseek.feed import query as qy
    from hanseek.feed.ranker import serving

    plain = blend_model()
    lifted = blend_model()
    lifted.weights["community_lift"] = 1.0
    pruned = RankerModel(
        "blend", ["cos_long", "community_lift"], None, {"cos_long": 1.0, "community_lift": 1.0}
    )
    assert not plain.uses("community_lift") and plain.uses("cos_long") and lifted.uses("community_lift")
    assert pruned.uses("community_lift") and not pruned.uses("log_age_h")

    svc = ranked_world
    now = datetime(2024, 3, 1, tzinfo=UTC)
    _hourly_posts(svc, tag, 40, now, seed=4)
    svc.set_memberships(f"{tag}-u", [f"{tag}-c"])
    svc.record_events([EventIn(user_id=f"{tag}-u", post_id=f"{tag}-5", kind="read", at=now)])
    calls: list[list[str]] = []
    real = qy.community_volume

    def counting(conn: Any, comms: list[str], since: datetime, until: datetime) -> dict[str, int]:
        calls.append(list(comms))
        return real(conn, comms, since, until)

    monkeypatch.setattr(qy, "community_volume", counting)
    with svc.db.connection() as conn:
        for model, want in ((plain, 0), (lifted, 1), (pruned, 2)):
            user = qy.load_user(conn, f"{tag}-u")
            r = serving.rank(
                svc,
                conn,
                user,
                model,
                now - timedelta(days=30),
                now,
                10,
                diversity_share=None,
                path="exact-sql",
            )
            assert len(r.hits) == 10 and len(calls) == want
    assert calls[-1] == [f"{tag}-c"]


def _hourly_posts(svc: FeedService, tag: str, n: int, now: datetime, *, seed: int) -> None:
    """n posts `{tag}-0..n-1` in community `{tag}-c`, one an hour back from `now`, random unit vectors."""
    vecs = unit(np.random.default_rng(seed), n)
    svc.ingest_posts(
        [
            PostIn(
                id=f"{tag}-{i}",
                community=f"{tag}-c",
                title=f"p{i}",
                created_at=now - timedelta(hours=i),
                embedding=vecs[i].tolist(),
            )
            for i in range(n)
        ]
    )


def test_blend_fallback_then_a_trained_model_is_swapped_in(ranked_world: FeedService, tag: str) -> None:
    from hanseek.feed.ranker import registry

    svc = ranked_world
    now = datetime(2024, 3, 1, tzinfo=UTC)
    _hourly_posts(svc, tag, 80, now, seed=9)
    svc.set_memberships(f"{tag}-u", [f"{tag}-c"])
    svc.record_events([EventIn(user_id=f"{tag}-u", post_id=f"{tag}-3", kind="like", at=now)])
    registry.activate(svc.db, None)
    svc.ranker.refresh()
    out = svc.feed(f"{tag}-u", k=10, days=30, at=now)
    assert out.kind == "ranked" and out.ranker == "blend" and len(out.items) == 10
    assert all(it.why is not None for it in out.items)
    es, evecs = tiny_eval_set(3, n_users=40)
    trained = train(
        es, evecs, kinds=("logistic",), max_train_queries=None, max_val_queries=None, neg_per_query=20
    )  # type: ignore[arg-type]
    registry.register(
        svc.db, svc.db.server.pgdata.parent if svc.db.server else None, f"{tag}-m", trained.model
    )  # type: ignore[arg-type]
    try:
        out = svc.feed(f"{tag}-u", k=10, days=30, at=now)  # poll interval 0: picked up on this request
        assert out.ranker == f"{tag}-m" and len(out.items) == 10
        served = svc.ranker.get()
        trained.model.meta["retrained"] = True  # `feed train-ranker --name` again: same name, new model
        registry.register(
            svc.db, svc.db.server.pgdata.parent if svc.db.server else None, f"{tag}-m", trained.model
        )  # type: ignore[arg-type]
        assert svc.ranker.get() is not served and svc.ranker.get().meta.get("retrained") is True
    finally:
        registry.activate(svc.db, None)


def test_ranked_feed_survives_posts_deleted_behind_the_index(db: Any, tag: str) -> None:
    """Posts deleted by another process after the in-process index last synced are still candidates
    here, but their details are gone: the feed leaves them out instead of failing."""
    svc = FeedService(
        db,
        settings=FeedSettings(index_poll_seconds=3600.0, ranker_poll_seconds=0.0),
        load_in_background=False,
        follow=False,
    )
    try:
        now = datetime(2024, 3, 1, tzinfo=UTC)
        _hourly_posts(svc, tag, 40, now, seed=5)
        svc.set_memberships(f"{tag}-u", [f"{tag}-c"])
        svc.record_events([EventIn(user_id=f"{tag}-u", post_id=f"{tag}-39", kind="read", at=now)])
        assert svc.memory_ready
        gone = [f"{tag}-{i}" for i in range(12)]  # the newest: all in the union, more than the spares
        with db.connection() as conn:  # straight to the database, as another process would
            conn.execute("DELETE FROM posts WHERE id = ANY(%s)", (gone,))
        assert svc.index is not None and svc.index.count([f"{tag}-c"], None, now.timestamp()) == 40  # stale
        out = svc.feed(f"{tag}-u", k=10, days=30, at=now)
        assert out.kind == "ranked" and out.path == "exact-memory"
        ids = [it.id for it in out.items]
        assert ids and not set(ids) & set(gone)
    finally:
        svc.close()


def test_read_prefs_are_kept_incrementally_by_the_events_writer(feed: FeedService, tag: str) -> None:
    """feed_user_prefs after two batches equals ReadPrefs folded by hand over the same reads, with the
    likes + comments each post showed at the moment of its read (stored counts + earlier events)."""
    rng = np.random.default_rng(4)
    vecs = unit(rng, 3)
    now = datetime(2024, 5, 1, tzinfo=UTC)
    feed.ingest_posts(
        [
            PostIn(
                id=f"{tag}-{i}",
                community=f"{tag}-c",
                title=f"p{i}",
                created_at=now - timedelta(hours=10 * (i + 1)),
                likes=5 * i,
                comments=i,
                embedding=vecs[i].tolist(),
            )
            for i in range(3)
        ]
    )
    u, other = f"{tag}-u", f"{tag}-o"
    feed.record_events(
        [
            EventIn(user_id=other, post_id=f"{tag}-1", kind="like", at=now),
            EventIn(user_id=u, post_id=f"{tag}-0", kind="read", at=now + timedelta(hours=1)),
            EventIn(user_id=u, post_id=f"{tag}-1", kind="read", at=now + timedelta(hours=2)),
            EventIn(user_id=u, post_id=f"{tag}-1", kind="like", at=now + timedelta(hours=2, seconds=20)),
        ]
    )
    feed.record_events([EventIn(user_id=u, post_id=f"{tag}-2", kind="read", at=now + timedelta(hours=3))])
    want = fx.ReadPrefs()
    want.add(11 * 3600.0, 0.0)  # post 0: 10 h old + 1 h, no likes
    want.add(22 * 3600.0, 5 + 1 + 1)  # post 1: stored 5 likes + 1 comment, the other user's like
    want.add(33 * 3600.0, 10 + 2)  # post 2: stored counts only
    with feed.db.connection() as conn:
        from hanseek.feed import query as qy

        got = qy.user_prefs(conn, u)
        assert qy.user_prefs(conn, other).n == 0  # a like is not a read
    assert got.n == 3
    assert got.sum_age_h == pytest.approx(want.sum_age_h)
    assert got.sum_log_age == pytest.approx(want.sum_log_age)
    assert got.sum_log_pop == pytest.approx(want.sum_log_pop)


def test_read_exposure_is_kept_incrementally_and_the_backfill_agrees(feed: FeedService, tag: str) -> None:
    """feed_user_exposure after two batches equals ReadExposure folded by hand over the same reads
    (each community's share of the user's communities' posts of the 30 days before each read), and
    migration 0014's backfill computes the same rows from the stored events."""
    from hanseek.feed import query as qy
    from hanseek.store.migrations import load_migrations

    now = datetime(2024, 5, 1, tzinfo=UTC)
    c1, c2, c3 = (f"{tag}-c{i}" for i in (1, 2, 3))
    ages = {"a": (c1, 1), "b": (c1, 2), "old": (c1, 40), "d": (c2, 5)}  # post -> community, days old
    vecs = unit(np.random.default_rng(8), len(ages))
    feed.ingest_posts(
        [
            PostIn(
                id=f"{tag}-{name}",
                community=comm,
                title=name,
                created_at=now - timedelta(days=days),
                embedding=vecs[i].tolist(),
            )
            for i, (name, (comm, days)) in enumerate(ages.items())
        ]
    )
    u, loner = f"{tag}-u", f"{tag}-loner"
    feed.set_memberships(u, [c1, c2, c3])  # c3 never posts
    feed.record_events(
        [
            EventIn(user_id=u, post_id=f"{tag}-a", kind="read", at=now),
            EventIn(user_id=u, post_id=f"{tag}-a", kind="like", at=now + timedelta(minutes=1)),
            EventIn(user_id=loner, post_id=f"{tag}-a", kind="read", at=now),  # in no community
        ]
    )
    feed.record_events(
        [
            EventIn(user_id=u, post_id=f"{tag}-d", kind="read", at=now + timedelta(days=27)),
            EventIn(user_id=u, post_id=f"{tag}-b", kind="read", at=now + timedelta(days=40)),
        ]
    )
    want = fx.ReadExposure()
    want.add(c1, {c1: 2, c2: 1, c3: 0})  # at now: a and b, d; "old" is 40 days old
    want.add(c2, {c1: 2, c2: 0, c3: 0})  # 27 days on: d (5 days old at first) has left the window
    want.add(c1, {c1: 0, c2: 0, c3: 0})  # 40 days on: nothing posted in 30 days, not counted
    assert want.reads == {c1: 1.0, c2: 1.0}
    with feed.db.connection() as conn:
        got = qy.user_exposure(conn, u)
        assert got.reads == want.reads
        assert got.exposure == pytest.approx(want.exposure)
        assert got.exposure[c1] == pytest.approx(2 / 3 + 1) and got.exposure[c2] == pytest.approx(1 / 3)
        assert qy.user_exposure(conn, loner).reads == {}
        context = qy.load_context(conn, u, None, 5, affinity=True)
        assert context.exposure is not None and context.exposure.exposure == pytest.approx(want.exposure)

        # The backfill, rerun over the stored events in a transaction that is rolled back.
        sql = next(m.sql for m in load_migrations() if m.version == 14)
        backfill = sql[sql.index("INSERT INTO feed_user_exposure") :]
        with conn.transaction(force_rollback=True):
            conn.execute("DELETE FROM feed_user_exposure")
            conn.execute(backfill)  # type: ignore[arg-type]
            again = qy.user_exposure(conn, u)
        assert again.reads == want.reads and again.exposure == pytest.approx(want.exposure)
        assert qy.user_exposure(conn, u).reads == want.reads  # rolled back: the rows are as they were


def test_ranked_candidates_take_the_approximate_path_on_a_broad_window_in_sql(db: Any, tag: str) -> None:
    """Without the in-process index, the nearest-neighbour sources follow `path` as the similar feed
    does: HNSW when asked or when the window is above `exact_max_candidates`, exact SQL otherwise."""
    now = datetime(2024, 3, 1, tzinfo=UTC)
    got: dict[tuple[int, str], FeedOut] = {}
    for limit in (0, 1_000_000):  # every window is broad / narrow
        svc = FeedService(
            db,
            settings=FeedSettings(memory_index=False, exact_max_candidates=limit, diversity_share=1.0),
            load_in_background=False,
            follow=False,
        )
        try:
            if limit == 0:
                _hourly_posts(svc, tag, 40, now, seed=6)
                svc.set_memberships(f"{tag}-u", [f"{tag}-c"])
                svc.record_events([EventIn(user_id=f"{tag}-u", post_id=f"{tag}-20", kind="like", at=now)])
            for p in ("auto", "approx", "exact-sql", "exact"):
                got[limit, p] = svc.feed(f"{tag}-u", k=10, days=30, at=now, path=p)
        finally:
            svc.close()
    assert got[0, "auto"].path == "approx-hnsw" and got[1_000_000, "auto"].path == "exact-sql"
    assert {got[lim, "approx"].path for lim in (0, 1_000_000)} == {"approx-hnsw"}
    assert {got[lim, p].path for lim in (0, 1_000_000) for p in ("exact-sql", "exact")} == {"exact-sql"}
    # HNSW finds every post of so small a table: the same page either way.
    exact = [it.id for it in got[0, "exact-sql"].items]
    assert len(exact) == 10 and all([it.id for it in out.items] == exact for out in got.values())


@pytest.fixture(scope="module")
def small_trained_model() -> RankerModel:
    """A small logistic re-ranker trained on a synthetic log (deterministic: fixed seeds)."""
    es, evecs = tiny_eval_set(3, n_users=40)
    trained = train(
        es, evecs, kinds=("logistic",), max_train_queries=None, max_val_queries=None, neg_per_query=20
    )  # type: ignore[arg-type]
    return trained.model


def test_ranked_feed_is_the_same_from_the_index_and_from_sql(
    ranked_world: FeedService, tag: str, small_trained_model: RankerModel
) -> None:
    """`exact-memory` (the API's default) and `exact-sql` (`hanseek feed show`) give one trained
    model the same candidates and features, so the same page with the same scores: the window's
    size is the exact count of unread posts (not the planner's estimate) on both, and the popular
    source ranks by the likes + comments stored on the posts on both (event likes are features)."""
    from hanseek.feed import query as qy
    from hanseek.feed.ranker import serving

    model = small_trained_model
    assert model.uses("log_candidates") and model.uses("log_rank_popular")
    svc = ranked_world
    now = datetime(2024, 4, 1, tzinfo=UTC)
    rng = np.random.default_rng(11)
    n = 150
    vecs = unit(rng, n)
    stored = rng.integers(0, 40, n)
    comms = [f"{tag}-a", f"{tag}-b"]
    svc.ingest_posts(
        [
            PostIn(
                id=f"{tag}-{i}",
                community=comms[i % 3 == 0],
                title=f"p{i}",
                created_at=now - timedelta(hours=4 * i + 1),  # 150 posts over 25 days
                likes=int(stored[i]),
                comments=int(stored[i] % 3),
                embedding=vecs[i].tolist(),
            )
            for i in range(n)
        ]
    )
    # Event likes on the posts with the fewest stored counts: ranked by all counts, those would
    # lead the popular source.
    liked = [int(i) for i in np.argsort(stored, kind="stable")[:30]]
    svc.record_events(
        [
            EventIn(user_id=f"{tag}-fan{j}", post_id=f"{tag}-{i}", kind="like", at=now - timedelta(minutes=5))
            for j in range(25)
            for i in liked
        ]
    )
    users = {
        f"{tag}-reader": (comms, [3, 8, 9, 20, 41, 77, 120]),
        f"{tag}-narrow": (comms[:1], [1, 2, 4]),
        f"{tag}-cold": (comms, []),
    }
    for user, (member_of, reads) in users.items():
        svc.set_memberships(user, member_of)
        svc.record_events(
            [
                EventIn(user_id=user, post_id=f"{tag}-{i}", kind="read", at=now - timedelta(minutes=30 - j))
                for j, i in enumerate(reads)
            ]
        )
    for days in (30, 7, None):
        t_from = None if days is None else now - timedelta(days=days)
        for user, (member_of, reads) in users.items():
            in_window = {
                i
                for i in range(n)
                if comms[i % 3 == 0] in member_of
                and (t_from is None or now - timedelta(hours=4 * i + 1) >= t_from)
            }
            unread = len(in_window - set(reads))
            got = {}
            with svc.db.connection() as conn:
                for path in ("exact", "exact-sql", "approx"):
                    ctx = qy.load_context(conn, user, t_from, 200, affinity=True)
                    got[path] = serving.rank(
                        svc, conn, ctx, model, t_from, now, 20, diversity_share=None, path=path
                    )
            mem, sql, approx = got["exact"], got["exact-sql"], got["approx"]
            label = (user, days)
            assert (mem.path, sql.path, approx.path) == ("exact-memory", "exact-sql", "approx-hnsw")
            # The exact count of unread posts in the window, on every path (the model reads it).
            assert mem.n_window == sql.n_window == approx.n_window == unread, label
            assert mem.union == sql.union, label
            assert [h[0] for h in sql.hits] == [h[0] for h in mem.hits] and len(mem.hits) == 20, label
            assert [h[2] for h in sql.hits] == [h[2] for h in mem.hits], label  # same sources
            np.testing.assert_allclose(
                [h[1] for h in sql.hits], [h[1] for h in mem.hits], rtol=1e-6, atol=1e-6, err_msg=str(label)
            )
            # HNSW finds every post of so small a window: here the approximate path agrees too.
            assert [h[0] for h in approx.hits] == [h[0] for h in mem.hits], label
            assert [h[2] for h in approx.hits] == [h[2] for h in mem.hits], label
            np.testing.assert_allclose(
                [h[1] for h in approx.hits],
                [h[1] for h in mem.hits],
                rtol=1e-6,
                atol=1e-6,
                err_msg=str(label),
            )
    # The popular source ranks by the stored counts, decayed by age (as the offline replay's source):
    # on a window all in the union, its members are the 40 best of those by hand.
    with svc.db.connection() as conn:
        for path in ("exact", "exact-sql", "approx"):
            ctx = qy.load_context(conn, f"{tag}-cold", None, 200, affinity=True)
            r = serving.rank(svc, conn, ctx, model, None, now, n, diversity_share=None, path=path)
            assert r.union == len(r.hits) and len(r.hits) > 40, path
            popular = {r.rows[rid].id for rid, _, src in r.hits if "popular" in src.split("+")}
            half_life_h = CandidateConfig().popular_half_life_days * 24
            decayed = (stored + stored % 3) * 2.0 ** (-(4 * np.arange(n) + 1) / half_life_h)
            best = np.lexsort((np.arange(n), -decayed))[: CandidateConfig().n_popular]  # ties: newer
            assert popular == {f"{tag}-{i}" for i in best.tolist()}, path
            # Counting the event likes too would pick other posts: the world tells the two apart.
            total = decayed + 25 * np.isin(np.arange(n), liked) * 2.0 ** (
                -(4 * np.arange(n) + 1) / half_life_h
            )
            with_events = np.lexsort((np.arange(n), -total))[: CandidateConfig().n_popular]
            assert set(with_events.tolist()) != set(best.tolist())


def test_register_checks_the_name_before_writing_and_keeps_the_serving_model(
    ranked_world: FeedService, tag: str, tmp_path: Any
) -> None:
    from hanseek.feed.ranker import registry

    svc = ranked_world
    es, evecs = tiny_eval_set(3, n_users=40)
    trained = train(
        es, evecs, kinds=("logistic",), max_train_queries=None, max_val_queries=None, neg_per_query=20
    )  # type: ignore[arg-type]
    data = tmp_path / "data"
    for bad in ("../../models/active", "-bad", "a/b", ""):
        with pytest.raises(registry.RankerNameError, match="bad ranker name"):
            registry.register(svc.db, data, bad, trained.model)
    assert not any(p.is_file() for p in tmp_path.rglob("*"))  # nothing written anywhere
    name = f"{tag}-serving"
    try:
        serving = registry.register(svc.db, data, name, trained.model)
        before = serving.read_bytes()
        # Retraining the serving model's name "without activating" would swap the file under the
        # servers while the catalogue said nothing serves: refused, and everything stays as it was.
        with pytest.raises(registry.RankerNameError, match="serving ranker"):
            registry.register(svc.db, data, name, trained.model, activate=False)
        assert [r["name"] for r in registry.listing(svc.db) if r["active"]] == [name]
        assert serving.read_bytes() == before
        registry.register(svc.db, data, f"{tag}-other", trained.model, activate=False)  # another name: fine
        assert [r["name"] for r in registry.listing(svc.db) if r["active"]] == [name]
    finally:
        registry.activate(svc.db, None)


class _CatalogueDown:
    """A database whose connections fail: the catalogue write after the model file is installed."""

    def connection(self) -> Any:
        raise RuntimeError("catalogue down")


_KILLED_WRITER = """
import os, sys
from pathlib import Path
import joblib
from hanseek.feed.ranker import registry
from hanseek.feed.ranker.model import RankerModel

class Killed:
    def connection(self):  # the process dies between installing the file and the commit
        os._exit(9)

def dies_writing(obj, f, *args, **kwargs):  # the process dies halfway through writing the file
    if hasattr(f, "write"):
        f.write(b"half a model")
    else:
        Path(f).write_bytes(b"half a model")
    os._exit(9)

model = RankerModel.load(Path(sys.argv[2]))
if sys.argv[4] == "kill-in-dump":
    joblib.dump = dies_writing
registry.register(Killed(), Path(sys.argv[1]), sys.argv[3], model)
"""


def _row_path(db: Any, name: str) -> Any:
    from pathlib import Path

    with db.connection() as conn:
        return Path(conn.execute("SELECT path FROM feed_rankers WHERE name = %s", (name,)).fetchone()[0])


@pytest.mark.parametrize("how", ["error", "kill", "kill-in-dump"])
def test_a_retrain_that_fails_before_the_commit_leaves_the_old_model_everywhere(
    ranked_world: FeedService, tag: str, tmp_path: Any, how: str
) -> None:
    """`train-ranker --name r1` again used to rewrite r1.joblib in place before updating the row: a
    failure (or a kill) in between left the row describing the old model and the file holding the new
    one, so running servers kept the old model while newly started ones loaded the new one; a kill
    while writing the file left `r1.joblib.partial` behind for good."""
    import subprocess
    import sys

    from hanseek.feed.ranker import registry

    svc = ranked_world
    es, evecs = tiny_eval_set(3, n_users=40)
    trained = train(
        es, evecs, kinds=("logistic",), max_train_queries=None, max_val_queries=None, neg_per_query=20
    )  # type: ignore[arg-type]
    data = tmp_path / "data"
    name = f"{tag}-r1"
    model = trained.model
    try:
        model.meta["generation"] = 1
        registry.register(svc.db, data, name, model)
        running = registry.ActiveRanker(svc.db, poll_seconds=0.0)
        assert running.get().meta["generation"] == 1
        row_before = registry.listing(svc.db)
        model.meta["generation"] = 2
        if how == "error":
            with pytest.raises(RuntimeError, match="catalogue down"):
                registry.register(_CatalogueDown(), data, name, model)  # type: ignore[arg-type]
        else:
            new = tmp_path / "new.joblib"
            model.save(new)
            done = subprocess.run(
                [sys.executable, "-c", _KILLED_WRITER, str(data), str(new), name, how], capture_output=True
            )
            assert done.returncode == 9, done.stderr.decode()
        assert registry.listing(svc.db) == row_before
        # The file the row names, a running server and a server started now: all the old model.
        assert RankerModel.load(_row_path(svc.db, name)).meta["generation"] == 1
        assert running.get().meta["generation"] == 1
        assert registry.ActiveRanker(svc.db, poll_seconds=0.0).get().meta["generation"] == 1
        # A retrain that completes: the running server sees a new model, and only its file is left
        # (the previous one, and what the killed writer left, are gone).
        model.meta["generation"] = 3
        path = registry.register(svc.db, data, name, model)
        assert _row_path(svc.db, name) == path
        assert running.get().meta["generation"] == 3
        assert registry.ActiveRanker(svc.db, poll_seconds=0.0).get().meta["generation"] == 3
        left = sorted(p for p in registry.rankers_dir(data).rglob("*") if p.is_file() and p.name != ".lock")
        assert left == sorted([path, path.with_suffix(".json")])
    finally:
        registry.activate(svc.db, None)


def test_a_row_naming_an_older_name_joblib_file_still_loads_and_is_replaced(
    ranked_world: FeedService, tag: str, tmp_path: Any
) -> None:
    """Databases from before the versioned files have rows pointing at `rankers/NAME.joblib`."""
    from hanseek.feed.ranker import registry

    svc = ranked_world
    data = tmp_path / "data"
    name = f"{tag}-old"
    legacy = registry.rankers_dir(data) / f"{name}.joblib"
    model = blend_model()
    model.meta["generation"] = 1
    model.save(legacy)
    try:
        with svc.db.connection() as conn:
            conn.execute("UPDATE feed_rankers SET active = false WHERE active")
            conn.execute(
                "INSERT INTO feed_rankers (name, path, kind, features, active) VALUES (%s, %s, %s, %s, true)",
                (name, str(legacy), model.kind, model.features),
            )
        running = registry.ActiveRanker(svc.db, poll_seconds=0.0)
        assert running.get().meta["generation"] == 1
        model.meta["generation"] = 2
        path = registry.register(svc.db, data, name, model)
        assert path != legacy and running.get().meta["generation"] == 2
        assert not legacy.exists() and not legacy.with_suffix(".json").exists()
        registry.activate(svc.db, None)
        registry.activate(svc.db, name)  # `feed rankers --blend`, then `--use NAME`
        assert running.get().meta["generation"] == 2
    finally:
        registry.activate(svc.db, None)


def test_what_killed_writers_left_is_removed_but_a_live_writers_file_is_not(
    ranked_world: FeedService, tag: str, tmp_path: Any
) -> None:
    """A kill while a new name's file was written left `NAME.joblib.partial` for good (nothing ever
    wrote that name again). Any registration now removes such leftovers, except those of a name a
    live writer is registering at that moment."""
    import subprocess
    import sys

    from hanseek.encoders.model_store import file_lock
    from hanseek.feed.ranker import registry

    svc = ranked_world
    data = tmp_path / "data"
    model = blend_model()
    src = tmp_path / "model.joblib"
    model.save(src)
    for how in ("kill-in-dump", "kill"):
        done = subprocess.run(
            [sys.executable, "-c", _KILLED_WRITER, str(data), str(src), f"{tag}-r5-{how}", how],
            capture_output=True,
        )
        assert done.returncode == 9, done.stderr.decode()
    assert any(f"{tag}-r5" in str(p) for p in registry.rankers_dir(data).rglob("*") if p.is_file())
    try:
        registry.register(svc.db, data, f"{tag}-other", model)
        left = [p for p in registry.rankers_dir(data).rglob("*") if p.is_file() and p.name != ".lock"]
        assert not [p for p in left if f"{tag}-r5" in str(p)], left
        busy = registry.versions_dir(data, f"{tag}-busy")
        busy.mkdir(parents=True)
        with file_lock(busy / ".lock"):  # a writer between installing its file and committing
            (busy / "20260101T000000-0123456789ab.joblib").write_bytes(b"not committed yet")
            registry.register(svc.db, data, f"{tag}-other", model)
            assert (busy / "20260101T000000-0123456789ab.joblib").exists()
        assert registry.remove_dead_writers_files(svc.db, data)  # once it is gone, the file goes too
        assert not (busy / "20260101T000000-0123456789ab.joblib").exists()
    finally:
        registry.activate(svc.db, None)


def test_a_registration_and_an_activation_at_once_do_not_deadlock(scratch_url: str, tmp_path: Any) -> None:
    """`register(A, activate=True)` locked A's row, then the serving one; `activate(A)` the serving
    one, then A's: a `train-ranker --name A` finishing beside `feed rankers --use A` deadlocked, and
    one of them failed (a traceback, or a training run lost). Every catalogue write now takes one
    lock first. Held here at the moment the registration has locked A's row."""
    import contextlib
    import threading
    from collections.abc import Iterator

    from hanseek.config import Settings
    from hanseek.feed.ranker import registry
    from hanseek.store.db import Database

    settings = Settings(data_dir=tmp_path, database_url=scratch_url)
    settings.ensure_dirs()
    db = Database.open(settings)
    try:
        db.migrate()
        registry.register(db, tmp_path, "A", blend_model(), activate=False)
        registry.register(db, tmp_path, "C", blend_model(), activate=True)  # C serves, A does not
        locked, go = threading.Event(), threading.Event()

        class Pausing:
            """The registration's connection, paused right after its row lock."""

            def __init__(self, conn: Any) -> None:
                self.conn = conn

            def execute(self, query: str, *args: Any, **kwargs: Any) -> Any:
                out = self.conn.execute(query, *args, **kwargs)
                if "FOR UPDATE" in query:
                    locked.set()
                    go.wait(30)
                return out

        class PausingDb:
            @contextlib.contextmanager
            def connection(self) -> Iterator[Pausing]:
                with db.connection() as conn:
                    yield Pausing(conn)

        errors: dict[str, BaseException] = {}

        def run(name: str, fn: Any) -> None:
            try:
                fn()
            except BaseException as exc:
                errors[name] = exc

        reg = threading.Thread(
            target=run,
            args=("register", lambda: registry.register(PausingDb(), tmp_path, "A", blend_model())),  # type: ignore[arg-type]
        )
        reg.start()
        assert locked.wait(30)
        act = threading.Thread(target=run, args=("activate", lambda: registry.activate(db, "A")))
        act.start()
        act.join(0.5)  # it waits (on the catalogue lock, or on a row)
        go.set()
        reg.join(60)
        act.join(60)
        assert errors == {}, errors
        with db.connection() as conn:
            rows = conn.execute("SELECT name, active FROM feed_rankers ORDER BY name").fetchall()
        assert rows == [("A", True), ("C", False)]
    finally:
        db.close()


def test_a_poll_that_reads_a_row_just_before_a_retrain_loads_the_new_model(
    scratch_url: str, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A retrain deletes the file the row named once its commit is in: a poll that had read the row
    just before failed to load it and kept the previous model (or the blend) until its next poll.
    It now reads the row again."""
    from hanseek.config import Settings
    from hanseek.feed.ranker import registry
    from hanseek.store.db import Database

    settings = Settings(data_dir=tmp_path, database_url=scratch_url)
    settings.ensure_dirs()
    db = Database.open(settings)
    try:
        db.migrate()
        model = blend_model()
        model.meta["version"] = 1
        registry.register(db, tmp_path, "A", model)
        ranker = registry.ActiveRanker(db, poll_seconds=3600)
        real_load = RankerModel.load
        calls: list[Any] = []

        def retrained_meanwhile(path: Any) -> RankerModel:
            calls.append(path)
            if len(calls) == 1:  # the retrain commits and deletes this file right now
                newer = blend_model()
                newer.meta["version"] = 2
                registry.register(db, tmp_path, "A", newer)
            return real_load(path)

        monkeypatch.setattr(RankerModel, "load", staticmethod(retrained_meanwhile))
        ranker.refresh()
        assert len(calls) == 2 and ranker.get().meta.get("version") == 2
    finally:
        db.close()


def test_top_n_breaks_ties_by_time_then_by_key() -> None:
    """The service's nearest lists and the offline replay's (which trains the model) pass the posts'
    keys, so equal scores at one time keep the same posts in both: newer first, then the larger key.
    Without keys the earlier position wins, as before."""
    scores = np.array([0.5, 0.9, 0.9, 0.9, 0.9])
    times = np.array([1.0, 2.0, 3.0, 2.0, 2.0])
    keys = np.array([10, 11, 12, 14, 13])
    assert top_n(scores, times, 3, keys).tolist() == [2, 3, 4]
    assert top_n(scores, times, 3).tolist() == [2, 1, 3]


def test_the_capped_ranker_keeps_the_models_order_below_the_page() -> None:
    """MRR reads past the page. Until session 19 the capped row ordered the rest of the union newest
    first, so a cap that can never bind (20 per community on a 20-post page) changed MRR (math
    review); a binding cap must still rank every candidate once."""
    from hanseek.feed.evaluate import evaluate
    from hanseek.feed.ranker.offline import BuildCache, CachedRankerMethod

    es, vecs = tiny_eval_set(0)
    cache = BuildCache(CandidateConfig())
    model = blend_model()
    methods = [
        CachedRankerMethod(model, cache, "ranker"),
        CachedRankerMethod(model, cache, "no-op cap", diversity_share=1.0),
    ]
    r = evaluate(es, vecs, methods, windows={"none": None}, max_queries=None, k=20)
    assert r.windows["none"]["no-op cap"] == r.windows["none"]["ranker"]

    capped = CachedRankerMethod(model, cache, "cap", diversity_share=0.05)
    plain = CachedRankerMethod(model, cache, "plain")
    orders: list[tuple[np.ndarray, np.ndarray]] = []

    def on_query(q: Query) -> None:
        c = window_candidates(q, None)
        orders.append((plain.order(c), capped.order(c)))

    replay(es, vecs, FeedSettings(), query_from=es.t_val_end, query_to=float("inf"), on_query=on_query)
    assert orders
    for a, b in orders:
        assert sorted(a.tolist()) == sorted(b.tolist())
        assert [p for p in b.tolist()[20:]] == [p for p in a.tolist() if p not in set(b.tolist()[:20])]


def test_a_re_read_of_an_earlier_moment_is_not_a_query() -> None:
    """A post already read is nothing a feed could show: its second read asks nothing."""
    created = 1_700_000_000.0 + np.arange(6) * 600.0
    t = created[-1] + 3600
    es = _hand_log(created, [(0, 3, 0, t), (0, 2, 0, t + 600), (0, 3, 0, t + 1200)])
    vecs = np.eye(6, 8, dtype=np.float32)
    got: list[Query] = []
    n = replay_all(es, vecs, on_query=got.append)
    assert n == 2 and [q.relevant for q in got] == [{3}, {2}]


def test_sessions_are_asked_from_query_from_up_to_but_not_at_query_to() -> None:
    created = 1_700_000_000.0 + np.arange(6) * 600.0
    t = created[-1] + 3600
    # one session per user: user 0 starts at t, user 1 exactly at query_to, user 2 after
    es = _hand_log(created, [(0, 1, 0, t), (1, 2, 0, t + 600), (2, 3, 0, t + 1200)])
    vecs = np.eye(6, 8, dtype=np.float32)
    got: list[Query] = []
    replay(es, vecs, FeedSettings(), query_from=t, query_to=t + 600, on_query=got.append)
    assert [q.user for q in got] == [0]


def test_a_sample_of_sessions_has_no_repeats() -> None:
    """max_queries sessions are drawn without replacement: exactly that many distinct sessions."""
    created = 1_700_000_000.0 + np.arange(8) * 600.0
    t = created[-1] + 3600
    es = _hand_log(created, [(u, u, 0, t + 60 * u) for u in range(6)])
    vecs = np.eye(8, 8, dtype=np.float32)
    for seed in range(5):
        got: list[Query] = []
        n = replay_all(
            es,
            vecs,
            on_query=got.append,
            max_queries=5,
            seed=seed,
            unit="session",
        )
        assert n == 5 and len({q.session for q in got}) == 5


def test_decayed_counters_halve_every_half_life() -> None:
    day = 86_400.0
    dc = DecayedCounters(3, half_life_days=2.0)
    dc.add(1, 0.0)
    dc.add(1, 1.5 * day, w=2.0)
    assert dc.value[1] == pytest.approx(2 ** (-1.5 / 2.0) + 2.0)
    got = dc.at_time(np.array([0, 1], dtype=np.int64), 4.5 * day)
    assert got.tolist() == pytest.approx([0.0, (2 ** (-1.5 / 2.0) + 2.0) * 2 ** (-3.0 / 2.0)])


def test_dropping_a_feature_group_removes_exactly_its_columns() -> None:
    cols = fx.group_columns("similarity")
    assert len(cols) == len(fx.FEATURES) - len(fx.GROUPS["similarity"])
    assert not {fx.FEATURES[i] for i in cols} & set(fx.GROUPS["similarity"])
    assert fx.group_columns(None) == list(range(len(fx.FEATURES)))
    with pytest.raises(ValueError, match="unknown feature group"):
        fx.group_columns("no-such-group")


def test_read_prefs_count_a_future_post_as_age_zero() -> None:
    """A post stamped after the read (clock skew) counts as new, not as a negative age."""
    prefs = fx.ReadPrefs()
    prefs.add(-7200.0, 0.0)
    assert prefs.n == 1 and prefs.sum_age_h == 0.0 and prefs.sum_log_age == 0.0


@functools.cache
def _small_examples() -> tuple[EvalSet, Any, Examples, Examples]:
    es, vecs = tiny_eval_set(1, n_users=60)
    tr = _collect_all(es, vecs, 0.0, es.t_train_end, neg_per_query=10, seed=0)
    va = _collect_all(es, vecs, es.t_train_end, es.t_val_end, neg_per_query=None, seed=1)
    return es, vecs, tr, va


def test_every_training_query_has_a_positive_and_its_own_id() -> None:
    """A query whose reads fell outside the union teaches nothing and must not be merged into another
    query's group (it would add its negatives to that group)."""
    _, _, tr, va = _small_examples()
    assert tr.queries > tr.with_positive  # some queries had no read in the union
    for ex, cap in ((tr, 10), (va, None)):
        qids = np.unique(ex.qid)
        assert len(qids) == ex.with_positive
        for q in qids:
            y = ex.y[ex.qid == q]
            assert y.sum() >= 1
            if cap is not None:
                assert (y == 0).sum() <= cap


def test_the_best_hgb_setting_and_the_best_kind_are_chosen(monkeypatch: pytest.MonkeyPatch) -> None:
    es, vecs, tr, va = _small_examples()
    seen: list[tuple[str, float]] = []

    def spy(m: RankerModel, ex: Examples) -> dict[str, Any]:
        got = union_metrics(m, ex)
        seen.append((m.kind, float(got["ndcg@20"])))
        return got

    monkeypatch.setattr(train_mod, "union_metrics", spy)
    trained = train(es, vecs, kinds=("hgb", "logistic"), examples=(tr, va))
    hgb = [v for k, v in seen if k == "hgb"]
    assert len(hgb) == 3 and len(set(hgb)) > 1  # the grid's settings differ, so the choice matters
    assert trained.candidates["hgb"]["ndcg@20"] == max(hgb)
    best = max(trained.candidates, key=lambda k: trained.candidates[k]["ndcg@20"])
    assert trained.candidates["hgb"]["ndcg@20"] != trained.candidates["logistic"]["ndcg@20"]
    assert trained.model.kind == best
