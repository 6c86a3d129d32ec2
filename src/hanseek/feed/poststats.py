"""In-process copy of `post_stats` (counted likes + comments and the decayed trends), keyed by rid.

The ranked feed needs these for its ~200 candidates on every request; reading them from PostgreSQL
was its largest single cost (≈0.7 ms of a 4.6 ms request at 1M posts). The columns are dense arrays
indexed by rid (a bigserial, so dense): a lookup is one fancy-index, ≈28 bytes per rid of memory.
`indexsync.py` fills and follows it in the same snapshot as the posts.

Concurrency as in `memindex`: readers never lock. A writer (serialised by a lock) assigns rows in
place, or publishes freshly grown arrays; a reader sees each row either before or after a change.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from hanseek.feed.scoring import decay_factors

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]


@dataclass(frozen=True)
class _Columns:
    counted: F64  # likes + comments counted from events
    trend_1d: F64  # decayed interaction counts at trend_at
    trend_7d: F64
    trend_at: F64  # epoch seconds; NaN = no stats row (or no event yet)


@dataclass(frozen=True)
class StatsLookup:
    counted: F64
    trend_1d: F64  # decayed to `now`
    trend_7d: F64


def _empty(capacity: int) -> _Columns:
    return _Columns(
        np.zeros(capacity),
        np.zeros(capacity),
        np.zeros(capacity),
        np.full(capacity, np.nan),
    )


class PostStats:
    def __init__(self) -> None:
        self._cols = _empty(0)
        self._write = threading.Lock()

    def __len__(self) -> int:
        return int(np.count_nonzero(~np.isnan(self._cols.trend_at)))

    def clear(self) -> None:
        with self._write:
            self._cols = _empty(0)

    def apply(self, rids: I64, counted: F64, trend_1d: F64, trend_7d: F64, trend_at: F64) -> None:
        """Set the rows of `rids` (later duplicates win)."""
        if not len(rids):
            return
        if rids.min() < 0:
            raise ValueError("negative rid")
        with self._write:
            cols = self._cols
            need = int(rids.max()) + 1
            if need > len(cols.counted):
                grown = _empty(max(need, 2 * len(cols.counted), 1024))
                for name in ("counted", "trend_1d", "trend_7d", "trend_at"):
                    getattr(grown, name)[: len(cols.counted)] = getattr(cols, name)
                cols = grown
            cols.counted[rids] = counted
            cols.trend_1d[rids] = trend_1d
            cols.trend_7d[rids] = trend_7d
            cols.trend_at[rids] = trend_at
            self._cols = cols

    def lookup(self, rids: I64, now: float, half_lives_days: tuple[float, float]) -> StatsLookup:
        """Counted likes + comments and trends decayed to `now` (zeros for rids without stats)."""
        cols = self._cols
        inside = rids < len(cols.counted)
        known = rids[inside]
        counted = np.zeros(len(rids))
        counted[inside] = cols.counted[known]
        at = np.full(len(rids), np.nan)
        at[inside] = cols.trend_at[known]
        has = ~np.isnan(at)
        pick, elapsed = rids[has], now - at[has]
        trends = []
        for col, half_life in zip((cols.trend_1d, cols.trend_7d), half_lives_days, strict=True):
            out = np.zeros(len(rids))
            out[has] = col[pick] * decay_factors(elapsed, half_life)
            trends.append(out)
        return StatsLookup(counted, trends[0], trends[1])
