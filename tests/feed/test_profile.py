"""Profile arithmetic: incremental updates equal the weighted mean computed from scratch."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hanseek.feed.profile import Profile, add_event, decay_rate, recompute, remove_event


def _events(seed: int, n: int, dim: int = 8) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    vecs = rng.standard_normal((n, dim))
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    weights = rng.choice([1.0, 3.0, 4.0], size=n)
    times = rng.uniform(0, 90 * 86400, size=n)  # deliberately not sorted: events arrive out of order
    return vecs, weights, times


def _incremental(vecs: np.ndarray, weights: np.ndarray, times: np.ndarray, lam: float) -> Profile:
    p = Profile.empty(vecs.shape[1])
    for v, w, t in zip(vecs, weights, times, strict=True):
        p = add_event(p, v, float(w), float(t), lam)
    return p


def test_weighted_mean_equals_numpy_reference() -> None:
    vecs, weights, times = _events(1, 50)
    p = _incremental(vecs, weights, times, 0.0)
    expected = (weights[:, None] * vecs).sum(0) / weights.sum()
    np.testing.assert_allclose(p.mean(), expected, rtol=1e-12)
    v = p.vector()
    assert v is not None
    np.testing.assert_allclose(v, expected / np.linalg.norm(expected), rtol=1e-6)
    assert p.n_events == 50


@pytest.mark.parametrize("half_life_days", [1.0, 7.0, 30.0])
def test_decayed_mean_equals_reference_in_any_arrival_order(half_life_days: float) -> None:
    vecs, weights, times = _events(2, 40)
    lam = decay_rate(half_life_days)
    p = _incremental(vecs, weights, times, lam)
    # Reference written out from the definition: weight w·2^(-(T - t)/h) at the newest time T.
    eff = weights * np.exp2(-(times.max() - times) / (half_life_days * 86400))
    expected = (eff[:, None] * vecs).sum(0) / eff.sum()
    np.testing.assert_allclose(p.mean(), expected, rtol=1e-9)
    ref = recompute(vecs, weights, times, lam)
    np.testing.assert_allclose(p.vec_sum, ref.vec_sum, rtol=1e-9)
    assert p.weight == pytest.approx(ref.weight, rel=1e-12)


def test_decay_makes_recent_interest_win() -> None:
    a, b = np.eye(2)
    lam = decay_rate(1.0)
    p = add_event(Profile.empty(2), a, 1.0, 0.0, lam)
    p = add_event(p, b, 1.0, 3 * 86400.0, lam)  # three half-lives later
    v = p.vector()
    assert v is not None and v[1] > v[0] * 7


def test_remove_restores_the_profile_without_that_event() -> None:
    vecs, weights, times = _events(3, 10)
    lam = decay_rate(5.0)
    full = _incremental(vecs, weights, times, lam)
    without = remove_event(full, vecs[4], float(weights[4]), float(times[4]), lam)
    keep = np.arange(10) != 4
    ref = _incremental(vecs[keep], weights[keep], times[keep], lam)
    # Same direction and the same ratio sum/weight; the reference time may differ by a common factor.
    np.testing.assert_allclose(without.vec_sum / without.weight, ref.vec_sum / ref.weight, atol=1e-9)
    assert without.n_events == 9


def test_empty_profile_has_no_vector() -> None:
    p = Profile.empty(4)
    assert p.is_empty and p.vector() is None and p.mean() is None
    v = np.ones(4)
    gone = remove_event(add_event(p, v, 1.0, 5.0), v, 1.0, 5.0)
    assert gone.is_empty and gone.vector() is None


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(min_value=1, max_value=25),
    seed=st.integers(min_value=0, max_value=10_000),
    half_life=st.sampled_from([0.0, 0.5, 3.0, 60.0]),
)
def test_incremental_equals_recompute_property(n: int, seed: int, half_life: float) -> None:
    vecs, weights, times = _events(seed, n)
    lam = decay_rate(half_life)
    p = _incremental(vecs, weights, times, lam)
    ref = recompute(vecs, weights, times, lam)
    np.testing.assert_allclose(p.vec_sum / p.weight, ref.vec_sum / ref.weight, rtol=1e-8, atol=1e-12)
