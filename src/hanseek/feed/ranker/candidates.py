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


def top_n(scores: npt.ArrayLike, times: npt.ArrayLike, n: int) -> I64:
    """Positions of the n best scores (ties: newer first), best first."""
    s = np.asarray(scores, dtype=np.float64)
    t = np.asarray(times, dtype=np.float64)
    if len(s) > 4 * n:
        part = np.argpartition(-s, n - 1)[:n]
        kth = s[part].min()
        idx = np.flatnonzero(s >= kth)
    else:
        idx = np.arange(len(s))
    order = np.lexsort((-t[idx], -s[idx]))[:n]
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
    best rank any of them gave it."""
    pos: dict[int, int] = {}
    members: list[int] = []
    flags: list[list[bool]] = []
    ranks: list[float] = []
    per: list[list[float]] = []
    for j, name in enumerate(SOURCES):
        for r, key in enumerate(lists.get(name, ()), 1):
            i = pos.get(key)
            if i is None:
                pos[key] = i = len(members)
                members.append(key)
                flags.append([False] * len(SOURCES))
                per.append([0.0] * len(SOURCES))
                ranks.append(float(r))
            flags[i][j] = True
            ranks[i] = min(ranks[i], float(r))
            if per[i][j] == 0.0:  # "short" lists one run per recent read: keep the first rank
                per[i][j] = float(r)
    return Union(
        members,
        np.array(flags, dtype=bool).reshape(len(members), len(SOURCES)),
        np.array(ranks, dtype=np.float64),
        np.array(per, dtype=np.float64).reshape(len(members), len(SOURCES)),
    )
