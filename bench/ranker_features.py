"""What the re-ranker's community_lift and exposure_lift features cost a ranked feed request.

It needs the user's communities' post counts over the last 30 days (`MemoryIndex.counts`: two binary
searches per community) and one more column in `features.compute`. Measured here, interleaved, on a
synthetic index of bench.feed's shape (1M posts, 200 communities, one year; 8-d vectors, since counts
never touch them) and a 200-post candidate union of a user in 3-10 communities:

- `counts`: the per-community counts for the 30-day volume;
- `compute`: the whole feature matrix with the volumes given, against the same call without them
  (then the lift column is zeros at once), so their difference is the column's cost;
- the same with the user's read exposure (40 reads over their communities) given as well, against
  the volumes alone: the exposure_lift column's cost. Its data arrive with the user's other
  per-user rows in the request's one context statement, and are written by the events writer.

    python -m bench.ranker_features [--posts 1000000] [--users 20] [--reps 100]

Prints JSON: medians in microseconds.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from typing import Any

import numpy as np

from bench._util import emit
from hanseek.feed.memindex import MemoryIndex
from hanseek.feed.ranker import features as fx
from hanseek.feed.replay import SECONDS_PER_DAY as DAY

COMMUNITIES = 200
UNION = 200


def synthetic_union(rng: np.random.Generator, comms: list[str], size: int = UNION) -> fx.CandidateArrays:
    """A candidate union of a user in `comms`, with features in the ranges real unions have."""
    return fx.CandidateArrays(
        cos_long=rng.uniform(-0.2, 0.9, size),
        cos_recent=rng.uniform(-0.2, 0.9, (size, 3)),
        age_s=rng.uniform(0, 30 * DAY, size),
        popularity=rng.poisson(5, size).astype(np.float64),
        trend_1d=rng.exponential(1.0, size),
        trend_7d=rng.exponential(2.0, size),
        community=[comms[i] for i in rng.integers(len(comms), size=size)],
        author=[None] * size,
        category=[None] * size,
        sources=rng.random((size, len(fx.SOURCES))) < 0.4,
        best_rank=rng.integers(1, 60, size).astype(np.float64),
        n_window=3000,
        source_ranks=rng.integers(0, 60, (size, len(fx.SOURCES))).astype(np.float64),
    )


def synthetic_signals(rng: np.random.Generator, comms: list[str]) -> fx.UserSignals:
    """A user with 40 events and 20 reads' preferences (no community volumes)."""
    prefs = fx.ReadPrefs()
    for _ in range(20):
        prefs.add(float(rng.uniform(0, 5 * DAY)), float(rng.poisson(5)))
    return fx.UserSignals(
        cold=False,
        recent_mean_norm=0.7,
        n_events=40,
        community={k: float(rng.integers(1, 20)) for k in comms},
        prefs=prefs,
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--posts", type=int, default=1_000_000)
    ap.add_argument("--users", type=int, default=20)
    ap.add_argument("--reps", type=int, default=100, help="timed calls per user and variant")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    now = 365 * DAY
    names = [f"c{i}" for i in range(COMMUNITIES)]
    index = MemoryIndex(8)
    comm = rng.integers(COMMUNITIES, size=args.posts)
    vecs = rng.standard_normal((args.posts, 8)).astype(np.float32)
    index.apply(
        np.arange(args.posts, dtype=np.int64),
        [names[c] for c in comm],
        rng.uniform(0, now, args.posts),
        vecs / np.linalg.norm(vecs, axis=1, keepdims=True),
    )
    t_counts: list[float] = []
    t_with: list[float] = []
    t_without: list[float] = []
    t_exposure: list[float] = []
    for _ in range(args.users):
        comms = [names[c] for c in rng.choice(COMMUNITIES, size=int(rng.integers(3, 11)), replace=False)]
        c = synthetic_union(rng, comms)
        without = synthetic_signals(rng, comms)
        volume = {k: float(v) for k, v in index.counts(comms, now - fx.VOLUME_DAYS * DAY, now).items()}
        with_volume = replace(without, community_volume=volume)
        exposure = fx.ReadExposure()
        for _ in range(40):
            exposure.add(comms[int(rng.integers(len(comms)))], volume)
        with_exposure = replace(with_volume, exposure=exposure)
        for _ in range(args.reps):  # interleaved, so both variants see the same machine state
            t = time.perf_counter()
            index.counts(comms, now - fx.VOLUME_DAYS * DAY, now)
            t_counts.append(time.perf_counter() - t)
            t = time.perf_counter()
            fx.compute(c, with_volume)
            t_with.append(time.perf_counter() - t)
            t = time.perf_counter()
            fx.compute(c, without)
            t_without.append(time.perf_counter() - t)
            t = time.perf_counter()
            fx.compute(c, with_exposure)
            t_exposure.append(time.perf_counter() - t)

    def us(xs: list[float]) -> float:
        return round(float(np.median(xs)) * 1e6, 1)

    out: dict[str, Any] = {
        "bench": "ranker_features",
        "posts": args.posts,
        "communities": COMMUNITIES,
        "union": UNION,
        "users": args.users,
        "calls_per_variant": len(t_with),
        "counts_p50_us": us(t_counts),
        "compute_with_lift_p50_us": us(t_with),
        "compute_without_volumes_p50_us": us(t_without),
        "lift_column_p50_us": round(us(t_with) - us(t_without), 1),
        "lift_total_p50_us": round(us(t_counts) + us(t_with) - us(t_without), 1),
        "compute_ratio_with_over_without": round(float(np.median(t_with) / np.median(t_without)), 3),
        "compute_with_lift_and_exposure_p50_us": us(t_exposure),
        "exposure_column_p50_us": round(us(t_exposure) - us(t_with), 1),
    }
    emit(out)


if __name__ == "__main__":
    main()
