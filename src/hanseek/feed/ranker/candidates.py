"""Candidate generation: the union of several sources, each under the feed's filters.

- similar: nearest by cosine to the user's long-term vector
- latest: newest
- popular: most popular recently (likes + comments, halved every `popular_half_life_days`)
- short: nearest to each of the user's last few reads (short-term interest)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from hanseek.feed.ranker.features import SOURCES

I64 = npt.NDArray[np.int64]


@dataclass(frozen=True)
class CandidateConfig:
    n_similar: int = 60
    n_latest: int = 60
    n_popular: int = 40
    n_short: int = 20  # per recent read
    recent_reads: int = 3
    popular_half_life_days: float = 3.0


def top_n(scores: npt.ArrayLike, times: npt.ArrayLike, n: int, keys: npt.ArrayLike | None = None) -> I64:
    """Positions of the n best scores (ties: newer first, then the larger key if `keys` is given,
    else the earlier position), best first."""
    s = np.asarray(scores, dtype=np.float64)
    t = np.asarray(times, dtype=np.float64)
    if len(s) > 4 * n:
        part = np.argpartition(-s, n - 1)[:n]
        kth = s[part].min()
        idx = np.flatnonzero(s >= kth)
    else:
        idx = np.arange(len(s))
    if keys is None:
        order = np.lexsort((-t[idx], -s[idx]))[:n]
    else:
        order = np.lexsort((-np.asarray(keys)[idx], -t[idx], -s[idx]))[:n]
    return idx[order].astype(np.int64)


@dataclass(frozen=True)
class Union:
    members: list[int]  # candidate keys (post index or rid), first-seen order
    sources: npt.NDArray[np.bool_]  # [n, len(SOURCES)]
    best_rank: npt.NDArray[np.float64]
    # [n, len(SOURCES)]: 1-based rank in each source's list, 0 where that source did not produce it
    ranks: npt.NDArray[np.float64] | None = None


def merge(lists: Mapping[str, Sequence[int]]) -> Union:
    """Union of ranked lists keyed by source name; remembers which sources found each key and the
    best rank any of them gave it. ("short" holds one run per recent read, concatenated: a key's
    rank there is its first position.) Vectorised: it runs on every ranked feed request."""
    parts = [(j, lists.get(name, ())) for j, name in enumerate(SOURCES)]
    parts = [(j, keys) for j, keys in parts if len(keys)]
    n_src = len(SOURCES)
    if not parts:
        return Union([], np.zeros((0, n_src), bool), np.zeros(0), np.zeros((0, n_src)))
    keys = np.concatenate([np.asarray(k, dtype=np.int64) for _, k in parts])
    src = np.concatenate([np.full(len(k), j, dtype=np.intp) for j, k in parts])
    rank = np.concatenate([np.arange(1, len(k) + 1, dtype=np.float64) for _, k in parts])
    uniq, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    order = np.argsort(first, kind="stable")  # first-seen order, as the sources list them
    member_of = np.empty(len(uniq), dtype=np.intp)
    member_of[order] = np.arange(len(uniq))
    m = member_of[inverse.reshape(-1)]
    per = np.full((len(uniq), n_src), np.inf)
    np.minimum.at(per, (m, src), rank)
    flags = np.isfinite(per)
    return Union(uniq[order].tolist(), flags, per.min(axis=1), np.where(flags, per, 0.0))
