"""Scoring rules shared by the service and the offline replay, so both rank the same way."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TypeVar

import numpy as np
import numpy.typing as npt

from hanseek.feed.profile import SECONDS_PER_DAY

T = TypeVar("T")
F64 = npt.NDArray[np.float64]


def popularity(
    likes: npt.ArrayLike, comments: npt.ArrayLike, age_s: npt.ArrayLike, half_life_days: float = 0.0
) -> F64:
    """likes + comments, optionally halved every `half_life_days` of the post's age."""
    score = np.asarray(likes, dtype=np.float64) + np.asarray(comments, dtype=np.float64)
    if half_life_days > 0:
        score = score * decay_factors(age_s, half_life_days)
    return score


def order_latest(times: npt.ArrayLike, ids: npt.ArrayLike) -> npt.NDArray[np.int64]:
    """Indices newest first (ties: larger id first)."""
    return np.lexsort((-np.asarray(ids), -np.asarray(times, dtype=np.float64))).astype(np.int64)


def order_popular(scores: npt.ArrayLike, times: npt.ArrayLike, ids: npt.ArrayLike) -> npt.NDArray[np.int64]:
    """Indices by popularity, ties newest first."""
    return np.lexsort(
        (-np.asarray(ids), -np.asarray(times, dtype=np.float64), -np.asarray(scores, dtype=np.float64))
    ).astype(np.int64)


def blend(first: Sequence[T], second: Sequence[T], first_share: float, k: int) -> list[T]:
    """Interleave two rankings so every page prefix holds about `first_share` items from `first`,
    skipping duplicates. The cold-start feed: popular and latest, so a new user sees both what the
    board values and what just arrived."""
    out: list[T] = []
    seen: set[T] = set()
    i = j = taken_first = 0
    while len(out) < k and (i < len(first) or j < len(second)):
        use_first = i < len(first) and (j >= len(second) or taken_first < first_share * (len(out) + 1))
        if use_first:
            x = first[i]
            i += 1
        else:
            x = second[j]
            j += 1
        if x in seen:
            continue
        seen.add(x)
        out.append(x)
        taken_first += int(use_first)
    return out


def decay_factor(dt_s: float, half_life_days: float) -> float:
    return math.exp2(-max(dt_s, 0.0) / (half_life_days * SECONDS_PER_DAY))


def decay_factors(dt_s: npt.ArrayLike, half_life_days: float) -> F64:
    """`decay_factor` over an array of elapsed seconds."""
    dt = np.maximum(np.asarray(dt_s, dtype=np.float64), 0.0)
    out: F64 = np.exp2(-dt / (half_life_days * SECONDS_PER_DAY))
    return out


def diversify(items: Sequence[T], keys: Sequence[Sequence[object]], k: int, max_per_key: int) -> list[T]:
    """The first k items such that no key (e.g. a community or an author) holds more than
    `max_per_key` places; items held back fill the page only if nothing else is left."""
    counts: dict[tuple[int, object], int] = {}
    out: list[T] = []
    held: list[T] = []
    for item, ks in zip(items, keys, strict=True):
        if len(out) >= k:
            break
        if any(key is not None and counts.get((j, key), 0) >= max_per_key for j, key in enumerate(ks)):
            held.append(item)
            continue
        for j, key in enumerate(ks):
            if key is not None:
                counts[(j, key)] = counts.get((j, key), 0) + 1
        out.append(item)
    return out + held[: k - len(out)]
