"""The bootstrap interval of a ratio of mean metrics against a plain loop, and its use of groups."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hanseek.feed.metrics import MetricAccumulator, ndcg_at_k, ratio_interval, recall_at_k


def _naive(
    method: np.ndarray, baselines: list[np.ndarray], groups: np.ndarray, resamples: int
) -> list[float]:
    """The same resamples drawn one at a time: whole groups, the better baseline each time."""
    keys = np.unique(groups)
    rng = np.random.default_rng(0)
    picks = rng.integers(0, len(keys), (resamples, len(keys)))
    ratios = []
    for row in picks:
        rows = np.concatenate([np.flatnonzero(groups == keys[i]) for i in row])
        best = max(float(b[rows].mean()) for b in baselines)
        ratios.append(float(method[rows].mean()) / best)
    return np.quantile(ratios, [0.025, 0.975]).tolist()


def test_interval_matches_a_plain_loop() -> None:
    rng = np.random.default_rng(3)
    groups = rng.integers(0, 40, 150)
    method = rng.binomial(1, 0.7, 150).astype(float)
    latest = rng.binomial(1, 0.6, 150).astype(float)
    popular = rng.binomial(1, 0.55, 150).astype(float)
    got = ratio_interval(method, [latest, popular], groups, resamples=300)
    assert list(got) == pytest.approx(_naive(method, [latest, popular], groups, 300), abs=1e-12)
    point = method.mean() / max(latest.mean(), popular.mean())
    assert got[0] < point < got[1]


def test_a_constant_ratio_has_no_width() -> None:
    base = np.array([1.0, 0.5, 0.25, 1.0, 0.0, 0.75])
    assert ratio_interval(2 * base, [base], np.arange(6)) == pytest.approx((2.0, 2.0))


def test_reads_of_one_session_are_not_independent_evidence() -> None:
    rng = np.random.default_rng(5)
    m, b = rng.binomial(1, 0.7, 60).astype(float), rng.binomial(1, 0.6, 60).astype(float)
    # Each session's read repeated 4 times: the same evidence as one read per session.
    groups = np.repeat(np.arange(60), 4)
    grouped = ratio_interval(np.repeat(m, 4), [np.repeat(b, 4)], groups)
    assert grouped == pytest.approx(ratio_interval(m, [b], np.arange(60)))
    # Counted as 240 independent reads, the interval would be about half as wide.
    naive = ratio_interval(np.repeat(m, 4), [np.repeat(b, 4)], np.arange(240))
    assert (naive[1] - naive[0]) < 0.7 * (grouped[1] - grouped[0])


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError, match="one value per query"):
        ratio_interval([1.0, 0.0], [[1.0]], [0, 1])
    with pytest.raises(ValueError, match="no queries"):
        ratio_interval([], [[]], [])


def test_accumulator_keeps_each_query() -> None:
    # k=2 so nDCG differs from HR: a hit at rank 2 scores 1/log2(3), not 1.
    acc = MetricAccumulator(k=2, catalogue_size=3)
    acc.add(["a", "b", "c"], {"b"})
    acc.add(["a", "b", "c"], {"a"})
    acc.add(["a", "b", "c"], {"c"})
    assert acc.hits == [1.0, 1.0, 0.0]
    assert acc.ndcgs == pytest.approx([1 / math.log2(3), 1.0, 0.0])


def test_ndcg_ideal_counts_at_most_k_relevant_posts() -> None:
    # More relevant posts than k: a list whose top k are all relevant is perfect.
    assert ndcg_at_k(["a", "b"], {"a", "b", "c"}, 2) == pytest.approx(1.0)


def test_recall_counts_only_the_top_k() -> None:
    assert recall_at_k(["x", "a"], {"a"}, 1) == 0.0
    assert recall_at_k(["x", "a"], {"a"}, 2) == 1.0
