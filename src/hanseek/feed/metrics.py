"""Ranking metrics for the offline replay evaluation.

Each query is one held-out session of a user: the ranked list a method produced from the state
before the session, and the set of posts the user actually read in it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any


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
    hr: float = 0.0
    recall: float = 0.0
    ndcg: float = 0.0
    mrr: float = 0.0
    shown: set[Any] = field(default_factory=set)

    def add(self, ranked: Sequence[Any], relevant: Iterable[Any]) -> None:
        rel = set(relevant)
        self.n += 1
        self.hr += hit_at_k(ranked, rel, self.k)
        self.recall += recall_at_k(ranked, rel, self.k)
        self.ndcg += ndcg_at_k(ranked, rel, self.k)
        self.mrr += reciprocal_rank(ranked, rel)
        self.shown.update(ranked[: self.k])

    def result(self) -> dict[str, float]:
        n = max(self.n, 1)
        k = self.k
        return {
            f"hr@{k}": round(self.hr / n, 4),
            f"recall@{k}": round(self.recall / n, 4),
            f"ndcg@{k}": round(self.ndcg / n, 4),
            "mrr": round(self.mrr / n, 4),
            "coverage": round(len(self.shown) / max(self.catalogue_size, 1), 4),
            "queries": self.n,
        }
