"""Ranking metrics for the offline replay evaluation.

Each query is a ranked list a method produced from the state before a held-out moment, and the set
of posts relevant to it: the post read next (unit "read"), or every post read in the session that
followed ("session").
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt


def _dcg_gain(rank: int) -> float:
    return 1.0 / math.log2(rank + 1)


def hit_at_k(ranked: Sequence[Any], relevant: set[Any], k: int) -> float:
    return 1.0 if any(x in relevant for x in ranked[:k]) else 0.0


def recall_at_k(ranked: Sequence[Any], relevant: set[Any], k: int) -> float:
    if not relevant:
        return 0.0
    return sum(1 for x in ranked[:k] if x in relevant) / len(relevant)


def ndcg_at_k(ranked: Sequence[Any], relevant: set[Any], k: int) -> float:
    """Binary-relevance nDCG@k: DCG over the top k divided by the DCG of a perfect list."""
    if not relevant:
        return 0.0
    dcg = sum(_dcg_gain(i + 1) for i, x in enumerate(ranked[:k]) if x in relevant)
    ideal = sum(_dcg_gain(i + 1) for i in range(min(k, len(relevant))))
    return dcg / ideal


def reciprocal_rank(ranked: Sequence[Any], relevant: set[Any]) -> float:
    for i, x in enumerate(ranked):
        if x in relevant:
            return 1.0 / (i + 1)
    return 0.0


@dataclass
class MetricAccumulator:
    """Averages HR@k, recall@k, nDCG@k and MRR over queries; coverage over the catalogue."""

    k: int
    catalogue_size: int
    n: int = 0
    recall: float = 0.0
    mrr: float = 0.0
    shown: set[Any] = field(default_factory=set)
    # Per query, in order: HR@k and nDCG@k (their means are the metrics; ratio_interval resamples them).
    hits: list[float] = field(default_factory=list)
    ndcgs: list[float] = field(default_factory=list)

    def add(self, ranked: Sequence[Any], relevant: Iterable[Any]) -> None:
        rel = set(relevant)
        self.n += 1
        self.hits.append(hit_at_k(ranked, rel, self.k))
        self.recall += recall_at_k(ranked, rel, self.k)
        self.ndcgs.append(ndcg_at_k(ranked, rel, self.k))
        self.mrr += reciprocal_rank(ranked, rel)
        self.shown.update(ranked[: self.k])

    def result(self) -> dict[str, float]:
        n = max(self.n, 1)
        k = self.k
        return {
            f"hr@{k}": round(sum(self.hits) / n, 4),
            f"recall@{k}": round(self.recall / n, 4),
            f"ndcg@{k}": round(sum(self.ndcgs) / n, 4),
            "mrr": round(self.mrr / n, 4),
            "coverage": round(len(self.shown) / max(self.catalogue_size, 1), 4),
            "queries": self.n,
        }


def ratio_interval(
    method: npt.ArrayLike,
    baselines: Sequence[npt.ArrayLike],
    groups: npt.ArrayLike,
    *,
    level: float = 0.95,
    resamples: int = 2000,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap interval of mean(method) / max(mean(b) for b in baselines), all per-query
    values of the same queries. Whole groups (a held-out session's reads, which share a user and a
    moment) are resampled, so correlated queries are not counted as independent evidence; the better
    baseline is chosen again in each resample, as the target does."""
    g = np.unique(np.asarray(groups), return_inverse=True)[1]
    n_groups = int(g.max()) + 1 if g.size else 0
    if n_groups == 0:
        raise ValueError("no queries to resample")
    rows = [np.asarray(method, dtype=np.float64), *(np.asarray(b, dtype=np.float64) for b in baselines)]
    if any(r.shape != g.shape for r in rows):
        raise ValueError("every series needs one value per query")
    # Per-group sums and sizes: a resample is then a weighted sum over groups.
    sums = np.stack([np.bincount(g, weights=r, minlength=n_groups) for r in rows])
    sizes = np.bincount(g, minlength=n_groups).astype(np.float64)
    rng = np.random.default_rng(seed)
    ratios = np.empty(resamples)
    chunk = max(1, 2_000_000 // n_groups)
    for start in range(0, resamples, chunk):
        b = min(chunk, resamples - start)
        counts = np.stack(
            [np.bincount(i, minlength=n_groups) for i in rng.integers(0, n_groups, (b, n_groups))]
        )
        means = (counts @ sums.T) / (counts @ sizes)[:, None]
        best = means[:, 1:].max(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratios[start : start + b] = np.where(best > 0, means[:, 0] / best, np.inf)
    tail = (1.0 - level) / 2.0
    lo, hi = np.quantile(ratios, [tail, 1.0 - tail])
    return float(lo), float(hi)
