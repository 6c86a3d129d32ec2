"""The benchmarks' real-vector helpers: which texts, and the two-part posts built from them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from bench._realvecs import pairs, texts


def test_texts_are_distinct_petition_titles_then_movie_reviews(shared_data: Path) -> None:
    got = texts(shared_data)
    assert len(got) == len(set(got)) > 200_000
    assert all(t == t.strip() and t for t in got[:1000])
    # File order: the petition titles' file first, the NSMC reviews after it.
    with (shared_data / "petitions_titles" / "petition_data.csv").open(encoding="utf-8-sig") as f:
        next(f)
        first_title = next(f).split(",")[2]
    assert got[0] == first_title.strip()
    assert "아 더빙.. 진짜 짜증나네요 목소리" in got[-200_000:]


def test_pairs_are_unit_sums_of_two_different_vectors() -> None:
    rng = np.random.default_rng(0)
    real = rng.standard_normal((50, 8)).astype(np.float32)
    real /= np.linalg.norm(real, axis=1, keepdims=True)
    vecs, a, b = pairs(real, 1000)
    assert vecs.shape == (1000, 8) and (a != b).all()
    assert set(a.tolist()) == set(b.tolist()) == set(range(50))  # every real vector is used
    s = real[a] + real[b]
    np.testing.assert_allclose(vecs, s / np.linalg.norm(s, axis=1, keepdims=True), rtol=1e-5, atol=1e-6)
