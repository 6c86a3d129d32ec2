"""Shared ranking rules: cold-start interleaving, diversity cap, popularity decay, metrics."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hanseek.feed.metrics import MetricAccumulator, ndcg_at_k, reciprocal_rank
from hanseek.feed.scoring import (
    blend,
    decay_factor,
    decay_factors,
    diversify,
    order_latest,
    order_popular,
    popularity,
)


def test_blend_interleaves_without_duplicates() -> None:
    assert blend([1, 2, 3, 4], [9, 2, 8, 7], 0.5, 6) == [1, 9, 2, 8, 3, 7]
    assert blend([1, 2], [3, 4, 5], 1.0, 4) == [1, 2, 3, 4]  # first list exhausted -> the other fills
    assert blend([], [3, 4], 0.5, 5) == [3, 4]


def test_diversity_cap_holds_back_then_fills() -> None:
    items = list(range(8))
    keys = [("a",), ("a",), ("a",), ("b",), ("a",), ("c",), ("b",), ("a",)]
    assert diversify(items, keys, 5, 2) == [0, 1, 3, 5, 6]
    # Not enough other keys: held-back items fill the page rather than leaving it short.
    assert diversify(items[:4], keys[:4], 4, 1) == [0, 3, 1, 2]
    # None keys (no author) never count: two None-keyed posts both get a place ahead of the
    # keyed ones, which they would not if None were a key capped at one place.
    assert diversify([0, 1, 2, 3], [(None,), (None,), ("a",), ("b",)], 3, 1) == [0, 1, 2]


def test_popularity_and_orders() -> None:
    pop = popularity([10, 0], [2, 0], [86400 * 2, 0], half_life_days=1.0)
    assert pop.tolist() == pytest.approx([3.0, 0.0])
    assert order_latest([5.0, 9.0, 9.0], [1, 2, 3]).tolist() == [2, 1, 0]
    assert order_popular([1.0, 5.0, 5.0], [3.0, 1.0, 2.0], [1, 2, 3]).tolist() == [2, 1, 0]


def test_metrics_by_hand() -> None:
    ranked = ["a", "b", "c", "d"]
    assert ndcg_at_k(ranked, {"b", "d"}, 3) == pytest.approx((1 / math.log2(3)) / (1 + 1 / math.log2(3)))
    assert reciprocal_rank(ranked, {"c"}) == pytest.approx(1 / 3)
    acc = MetricAccumulator(k=2, catalogue_size=10)
    acc.add(ranked, {"b"})
    acc.add(ranked, {"z"})
    r = acc.result()
    assert r["hr@2"] == 0.5 and r["recall@2"] == 0.5 and r["coverage"] == 0.2 and r["queries"] == 2
    assert r["mrr"] == pytest.approx(0.25)
    assert np.isclose(r["ndcg@2"], (1 / math.log2(3)) / 2, atol=1e-4)


def test_decay_of_a_future_moment_is_clamped_to_none() -> None:
    """Clock skew (an event stamped after `now`) must not inflate a count above its weight."""
    assert decay_factor(-86400, 1.0) == 1.0
    assert decay_factors([-86400.0, 86400.0], 1.0).tolist() == pytest.approx([1.0, 0.5])
