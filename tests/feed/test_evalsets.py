"""Evaluation sets: the reader model's recorded parameters and the oracle reference built on them."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from hanseek.feed.evalsets.model import SECONDS_PER_DAY, ReaderParams, accrued_popularity
from hanseek.feed.evalsets.reader import ReaderModel, simulate


def _catalogue(n: int = 300, seed: int = 0) -> dict[str, object]:
    rng = np.random.default_rng(seed)
    lex = rng.standard_normal((n, 16)).astype(np.float32)
    lex /= np.linalg.norm(lex, axis=1, keepdims=True)
    return {
        "community": rng.integers(0, 4, n).astype(np.int32),
        "created_at": np.sort(rng.uniform(0, 90 * SECONDS_PER_DAY, n)),
        "popularity_final": rng.integers(0, 500, n).astype(np.float64),
        "lexical": lex,
        "n_communities": 4,
        "accrual_days": 3.0,
        "open_days": 30.0,
    }


def test_recorded_parameters_and_base_utility(tmp_path: Path) -> None:
    cat = _catalogue()
    model = ReaderModel(n_users=12, seed=7)
    log = simulate(model=model, **cat)  # type: ignore[arg-type]
    again = simulate(model=model, **cat)  # type: ignore[arg-type]
    assert np.array_equal(log.ev_post, again.ev_post) and np.array_equal(log.ev_at, again.ev_at)
    p = log.params
    assert p is not None
    assert np.isfinite(p.tau_days).all() and (p.tau_days > 0).all()
    assert ((p.b_pop >= 0.1) & (p.b_pop <= 0.5)).all() and ((p.b_int >= 4) & (p.b_int <= 12)).all()
    for u, comms in enumerate(log.user_communities):
        # Board shares: a distribution over the user's boards, -inf elsewhere.
        assert np.isclose(np.exp(p.log_share[u, comms]).sum(), 1.0)
        assert np.isneginf(np.delete(p.log_share[u], comms)).all()
    # Every read was of a post the reader's utility allowed (one of its boards, ≤ max_age old).
    community = cat["community"]
    created = cat["created_at"]
    assert isinstance(community, np.ndarray) and isinstance(created, np.ndarray)
    for u, post, at in zip(log.ev_user, log.ev_post, log.ev_at, strict=True):
        assert np.isfinite(p.log_share[u, community[post]])
        assert at - created[post] <= model.max_age_days * SECONDS_PER_DAY + 3600
    # base_utility against the formula written out.
    u = int(log.ev_user[0])
    posts = np.arange(20, dtype=np.int64)
    t = float(created[19]) + 2 * SECONDS_PER_DAY
    age = t - created[posts]
    pop_final = cat["popularity_final"]
    assert isinstance(pop_final, np.ndarray)
    vis = accrued_popularity(pop_final[posts], age, 3.0, 30.0)
    got = p.base_utility(u, posts, age, vis, community[posts])
    lex = cat["lexical"]
    assert isinstance(lex, np.ndarray)
    want = (
        -age / (p.tau_days[u] * SECONDS_PER_DAY)
        + p.b_pop[u] * np.log1p(vis)
        + p.b_int[u] * (lex[posts] @ p.interest[u])
        + p.log_share[u, community[posts]]
    )
    np.testing.assert_allclose(got, want, rtol=1e-6)
    p.save(tmp_path / "reader.npz")
    back = ReaderParams.load(tmp_path / "reader.npz")
    np.testing.assert_array_equal(back.tau_days, p.tau_days)
    np.testing.assert_array_equal(back.interest, p.interest)
    assert back.max_age_days == p.max_age_days
