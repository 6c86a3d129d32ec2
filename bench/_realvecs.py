"""Real sentence vectors for the benchmarks: Korean texts from ../shared/data (petition titles, then
NSMC movie reviews; de-duplicated, in file order) encoded as passages by the service's default text
encoder, cached under the project's data dir (`bench/`).

The feed benchmark's synthetic posts are isotropic (two random posts have cosine ≈ 0); the encoder's
real vectors are not (≈ 0.87 for multilingual-e5-small), and an HNSW graph behaves differently on
the two. These let the benchmarks measure the service on the vectors it will actually hold, at the
largest size the data allows (275,634 distinct texts)."""

from __future__ import annotations

import csv
import hashlib
import sys
import time
from pathlib import Path

import numpy as np
import numpy.typing as npt

from hanseek.keywords.background import tsv_column

F32 = npt.NDArray[np.float32]


def texts(shared: Path) -> list[str]:
    out: list[str] = []
    with (shared / "petitions_titles" / "petition_data.csv").open(encoding="utf-8-sig", newline="") as f:
        out.extend(t for row in csv.DictReader(f) if (t := (row["title"] or "").strip()))
    for name in ("ratings_train.txt", "ratings_test.txt"):
        out.extend(tsv_column(shared / "nsmc" / name, "document"))
    return list(dict.fromkeys(out))


def real_vectors(shared: Path, n: int | None = None, batch: int = 512) -> F32:
    """The first `n` texts' unit vectors (all of them when None), [n, dim]; encoded once (≈150 texts/s
    on 2 cores), then read from the cache. The cache is keyed by the encoder and a hash of the texts."""
    from hanseek.config import Settings
    from hanseek.encoders.registry import load_text_encoder

    settings = Settings()
    all_texts = texts(shared)
    n = len(all_texts) if n is None else n
    if n > len(all_texts):
        raise SystemExit(f"only {len(all_texts):,} distinct real texts available, asked for {n:,}")
    chosen = all_texts[:n]
    digest = hashlib.sha1("\n".join(chosen).encode()).hexdigest()[:12]
    cache = settings.data_dir / "bench" / f"real-{settings.text_model}-{n}-{digest}.npy"
    if cache.exists():
        vecs: F32 = np.load(cache)
        return vecs
    encoder = load_text_encoder(settings)
    started = time.perf_counter()
    parts: list[F32] = []
    for lo in range(0, n, batch):
        parts.append(np.asarray(encoder.encode(chosen[lo : lo + batch], kind="passage"), dtype=np.float32))
        done = min(lo + batch, n)
        if (lo // batch) % 20 == 0 or done == n:
            rate = done / (time.perf_counter() - started)
            print(f"[bench] encoded {done:,}/{n:,} real texts ({rate:.0f}/s)", file=sys.stderr, flush=True)
    out = np.concatenate(parts)
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(".tmp.npy")
    np.save(tmp, out)
    tmp.replace(cache)  # a crash mid-write leaves no half cache behind
    return out


def pairs(real: F32, n: int, seed: int = 11) -> tuple[F32, npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """n vectors past the real texts' count, each the normalised sum of two distinct random real
    vectors (a stand-in for a post about two things), and the indices of each one's two parts. The
    sums keep the encoder's anisotropy; how close they come to real texts is measured, not assumed
    (docs/feed.md, "The encoder's real vectors")."""
    rng = np.random.default_rng(seed)
    a = rng.integers(0, len(real), n)
    b = (a + rng.integers(1, len(real), n)) % len(real)  # never the same vector twice
    out = np.empty((n, real.shape[1]), np.float32)
    for lo in range(0, n, 100_000):
        v = real[a[lo : lo + 100_000]] + real[b[lo : lo + 100_000]]
        out[lo : lo + 100_000] = v / np.linalg.norm(v, axis=1, keepdims=True)
    return out, a, b


def topics(vecs: F32, k: int, seed: int = 0) -> npt.NDArray[np.int64]:
    """Cluster labels standing in for the synthetic posts' topics (k-means on the centred vectors)."""
    from sklearn.cluster import MiniBatchKMeans

    k = max(2, min(k, len(vecs) // 20))
    km = MiniBatchKMeans(n_clusters=k, batch_size=4096, n_init=1, max_iter=50, random_state=seed)
    labels: npt.NDArray[np.int64] = km.fit_predict(vecs - vecs.mean(0)).astype(np.int64)
    return labels
