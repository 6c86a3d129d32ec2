"""Exact and HNSW cosine search on the real server, checked against numpy brute force."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import numpy as np
import psycopg
import pytest
from pgvector.psycopg import register_vector

from hanseek.store.bulk import copy_rows
from hanseek.store.vectors import (
    Filters,
    choose_path,
    create_hnsw_index,
    estimate_count,
    exact_search,
    explain_search,
    hnsw_search,
    search,
)

N, DIM, COMMUNITIES, DAYS = 6000, 64, 20, 120
T0 = datetime(2024, 1, 1, tzinfo=UTC)


class Corpus:
    def __init__(self, url: str, seed: int = 7) -> None:
        rng = np.random.default_rng(seed)
        self.url = url
        self.vectors = rng.standard_normal((N, DIM)).astype(np.float32)
        self.community = rng.integers(0, COMMUNITIES, N)
        self.day = rng.integers(0, DAYS, N)
        self.unit = self.vectors / np.linalg.norm(self.vectors, axis=1, keepdims=True)
        self.rng = rng

    def brute_force(self, q: np.ndarray, mask: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        sims = self.unit @ (q / np.linalg.norm(q))
        idx = np.flatnonzero(mask)
        order = idx[np.argsort(-sims[idx], kind="stable")[:k]]
        return order, sims[order]


@pytest.fixture(scope="module")
def corpus(make_scratch_url: Callable[[], str]) -> Iterator[Corpus]:
    c = Corpus(make_scratch_url())
    with psycopg.connect(c.url) as conn:
        register_vector(conn)
        conn.execute(
            f"CREATE TABLE items (id bigint PRIMARY KEY, community int NOT NULL, "
            f"created_at timestamptz NOT NULL, title text, embedding vector({DIM}) NOT NULL)"
        )
        rows = (
            (i, int(c.community[i]), T0 + timedelta(days=int(c.day[i])), f"item {i}", c.vectors[i])
            for i in range(N)
        )
        assert copy_rows(conn, "items", ["id", "community", "created_at", "title", "embedding"], rows) == N
        conn.execute("CREATE INDEX items_comm_time ON items (community, created_at)")
        create_hnsw_index(conn, "items", m=16, ef_construction=64)
        conn.execute("ANALYZE items")
    yield c


@pytest.fixture()
def conn(corpus: Corpus) -> Iterator[psycopg.Connection]:
    with psycopg.connect(corpus.url) as c:
        register_vector(c)
        yield c


def _filter(corpus: Corpus, communities: list[int], start_day: int, span: int) -> tuple[Filters, np.ndarray]:
    f = Filters().any("community", communities)
    f.range("created_at", gte=T0 + timedelta(days=start_day), lt=T0 + timedelta(days=start_day + span))
    mask = (
        np.isin(corpus.community, communities) & (corpus.day >= start_day) & (corpus.day < start_day + span)
    )
    return f, mask


def test_exact_filtered_top10_matches_numpy(corpus: Corpus, conn: psycopg.Connection) -> None:
    for _ in range(15):
        comms = corpus.rng.choice(COMMUNITIES, 5, replace=False).tolist()
        f, mask = _filter(corpus, comms, int(corpus.rng.integers(0, DAYS - 30)), 30)
        q = corpus.rng.standard_normal(DIM).astype(np.float32)
        hits = exact_search(conn, "items", q, k=10, filters=f, columns=["community", "title"], dim=DIM)
        ids, sims = corpus.brute_force(q, mask, 10)
        assert [h.id for h in hits] == ids.tolist()
        np.testing.assert_allclose([h.similarity for h in hits], sims, atol=1e-5)
        assert all(h.fields["community"] in comms and h.fields["title"] == f"item {h.id}" for h in hits)


def test_exact_without_filter_and_fewer_candidates_than_k(corpus: Corpus, conn: psycopg.Connection) -> None:
    q = corpus.rng.standard_normal(DIM)
    ids, _ = corpus.brute_force(q, np.ones(N, bool), 25)
    assert [h.id for h in exact_search(conn, "items", q, k=25)] == ids.tolist()
    f = (
        Filters()
        .eq("community", 3)
        .range("created_at", gte=T0 + timedelta(days=10), lt=T0 + timedelta(days=12))
    )
    mask = (corpus.community == 3) & (corpus.day >= 10) & (corpus.day < 12)
    assert 0 < mask.sum() < 50
    hits = exact_search(conn, "items", q, k=50, filters=f)
    assert sorted(h.id for h in hits) == sorted(np.flatnonzero(mask).tolist())


def test_exact_plan_never_uses_the_vector_index(corpus: Corpus, conn: psycopg.Connection) -> None:
    q = corpus.rng.standard_normal(DIM)
    f, _ = _filter(corpus, [1, 2, 3], 0, 30)
    # Tempt the planner towards index plans; the fenced subquery must still compute exact distances.
    conn.execute("SET enable_seqscan = off")
    conn.execute("SET enable_sort = off")
    for filters in (f, None):
        plan = explain_search(conn, "items", q, path="exact", filters=filters)
        assert "items_embedding_hnsw" not in plan, plan
    plan = explain_search(conn, "items", q, path="exact", filters=f)
    assert "items_comm_time" in plan, plan  # the B-tree does the pre-filtering


def test_hnsw_plan_uses_the_vector_index(corpus: Corpus, conn: psycopg.Connection) -> None:
    q = corpus.rng.standard_normal(DIM)
    f, _ = _filter(corpus, [1], 0, 30)  # selective: the planner alone would prefer the B-tree
    plan = explain_search(conn, "items", q, path="hnsw", filters=f)
    assert "Index Scan using items_embedding_hnsw" in plan, plan


def _recall(got: list[int], want: np.ndarray) -> float:
    return len(set(got) & set(want.tolist())) / max(len(want), 1)


def test_hnsw_recall_unfiltered_and_filtered(corpus: Corpus, conn: psycopg.Connection) -> None:
    plain, filtered, filtered_off, sizes = [], [], [], []
    for _ in range(20):
        q = corpus.rng.standard_normal(DIM).astype(np.float32)
        ids, _ = corpus.brute_force(q, np.ones(N, bool), 10)
        plain.append(_recall([h.id for h in hnsw_search(conn, "items", q, k=10, ef_search=100)], ids))
        # one community of 20 = 5% of rows: plain HNSW (ef_search=40) finds about two matches
        f, mask = _filter(corpus, [int(corpus.rng.integers(COMMUNITIES))], 0, DAYS)
        want, _ = corpus.brute_force(q, mask, 10)
        hits = hnsw_search(conn, "items", q, k=10, filters=f, ef_search=100)
        filtered.append(_recall([h.id for h in hits], want))
        sizes.append(len(hits))
        off = hnsw_search(conn, "items", q, k=10, filters=f, iterative_scan="off")
        filtered_off.append(len(off))
        assert [h.similarity for h in hits] == sorted((h.similarity for h in hits), reverse=True)
    assert np.mean(plain) >= 0.9, plain
    assert min(sizes) == 10  # iterative scans keep going until k rows pass the filter
    assert np.mean(filtered) >= 0.8, filtered
    assert np.mean(filtered_off) < 6, filtered_off  # proves the iterative-scan setting is what helps


def test_hnsw_settings_do_not_leak(corpus: Corpus, conn: psycopg.Connection) -> None:
    before = conn.execute("SHOW enable_seqscan").fetchone()
    q = corpus.rng.standard_normal(DIM)
    hnsw_search(conn, "items", q, k=5, ef_search=123)  # inside the connection's open transaction
    assert conn.execute("SHOW enable_seqscan").fetchone() == before
    assert conn.execute("SHOW hnsw.ef_search").fetchone() == ("40",)
    assert conn.execute("SHOW hnsw.iterative_scan").fetchone() == ("off",)


def test_planner_helper_picks_path(corpus: Corpus, conn: psycopg.Connection) -> None:
    f, mask = _filter(corpus, [1, 2], 0, 30)
    est = estimate_count(conn, "items", f)
    assert 0.3 * mask.sum() <= est <= 3 * mask.sum() + 10
    assert estimate_count(conn, "items") == pytest.approx(N, rel=0.05)
    assert choose_path(100, exact_max_candidates=1000) == "exact"
    assert choose_path(5000, exact_max_candidates=1000) == "hnsw"
    q = corpus.rng.standard_normal(DIM)
    small = search(conn, "items", q, k=10, filters=f, exact_max_candidates=1000)
    assert small.path == "exact"
    ids, _ = corpus.brute_force(q, mask, 10)
    assert [h.id for h in small.hits] == ids.tolist()
    big = search(conn, "items", q, k=10, exact_max_candidates=1000)
    assert big.path == "hnsw" and big.estimated_candidates > 1000 and len(big.hits) == 10


@pytest.mark.parametrize(
    "bad",
    [
        [float("nan")] * DIM,
        [float("inf")] + [0.1] * (DIM - 1),
        [0.0] * DIM,
        [0.1] * (DIM - 1),
        [[0.1] * DIM],
        [],
        ["a"] * DIM,
    ],
    ids=["nan", "inf", "zero", "short", "2d", "empty", "text"],
)
def test_bad_query_vectors_are_rejected(conn: psycopg.Connection, bad: list) -> None:
    for fn in (exact_search, hnsw_search):
        with pytest.raises(ValueError):
            fn(conn, "items", bad, k=5, dim=DIM)


def test_dimension_mismatch_without_dim_is_value_error(conn: psycopg.Connection) -> None:
    """And the caller's transaction goes on (until session 18 the exact path's refused statement
    aborted it: the next statement was InFailedSqlTransaction)."""
    for fn in (exact_search, hnsw_search):
        with pytest.raises(ValueError, match="does not match"):
            fn(conn, "items", [0.1, 0.2, 0.3], k=5)
        assert conn.execute("SELECT 1").fetchone() == (1,)


@pytest.mark.parametrize("k", [0, -1, 1001, 2.5, True])
def test_bad_k(conn: psycopg.Connection, k: object) -> None:
    with pytest.raises(ValueError, match="k must be"):
        exact_search(conn, "items", [0.1] * DIM, k=k)  # type: ignore[arg-type]


def test_filter_values_are_parameters_not_sql(corpus: Corpus, conn: psycopg.Connection) -> None:
    hostile = "1; DROP TABLE items; --"
    assert exact_search(conn, "items", [0.1] * DIM, k=5, filters=Filters().eq("title", hostile)) == []
    assert exact_search(conn, "items", [0.1] * DIM, k=5, filters=Filters().any("title", [hostile, "item 7"]))
    with pytest.raises(psycopg.errors.UndefinedColumn):
        exact_search(conn, "items", [0.1] * DIM, k=5, filters=Filters().eq('title" = title; --', 1))
    conn.rollback()
    assert conn.execute("SELECT count(*) FROM items").fetchone() == (N,)
    # numpy values are plain values, not vectors
    f = Filters().any("community", np.array([1, 2])).eq("community", np.int64(1))
    assert {
        h.fields["community"]
        for h in exact_search(conn, "items", [0.1] * DIM, k=5, filters=f, columns=["community"])
    } == {1}
