"""User profile arithmetic: a weighted mean of post vectors, updated incrementally.

A profile is stored as (sum of weighted vectors, total weight, reference time). Adding an event is
O(d) — no recomputation over the user's history — and the feed reads the direction of sum / total.

Time decay (optional, rate λ = ln 2 / half-life): an event at time t weighs w·exp(-λ(T - t)) at time T.
Every weight shares the factor exp(-λT), so the mean's direction does not depend on T; we keep the sum
scaled to the reference time (the newest event seen), which keeps the factors ≤ 1 and the numbers
bounded, and events may arrive out of order.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float32]
SECONDS_PER_DAY = 86_400.0


def decay_rate(half_life_days: float) -> float:
    """λ per second; 0 means no decay."""
    return 0.0 if half_life_days <= 0 else math.log(2.0) / (half_life_days * SECONDS_PER_DAY)


@dataclass(frozen=True)
class Profile:
    vec_sum: npt.NDArray[np.float64]
    weight: float
    ref_time: float  # epoch seconds of the newest event folded in
    n_events: int = 0

    @staticmethod
    def empty(dim: int) -> Profile:
        return Profile(np.zeros(dim, dtype=np.float64), 0.0, 0.0, 0)

    @property
    def is_empty(self) -> bool:
        return self.n_events <= 0 or self.weight <= 0.0

    def vector(self) -> FloatArray | None:
        """The L2-normalised mean direction, or None for an empty profile."""
        if self.is_empty:
            return None
        norm = float(np.linalg.norm(self.vec_sum))
        if norm == 0.0 or not math.isfinite(norm):
            return None
        return (self.vec_sum / norm).astype(np.float32)

    def mean(self) -> npt.NDArray[np.float64] | None:
        """The (unnormalised) weighted mean, as the definition states it."""
        if self.is_empty:
            return None
        return self.vec_sum / self.weight


def _fold(p: Profile, vec: npt.ArrayLike, weight: float, at: float, lam: float, sign: float) -> Profile:
    v = np.asarray(vec, dtype=np.float64)
    if p.n_events == 0 and sign > 0:
        return Profile(weight * v, weight, at, 1)
    if lam == 0.0:
        return Profile(
            p.vec_sum + sign * weight * v,
            p.weight + sign * weight,
            max(p.ref_time, at),
            p.n_events + int(sign),
        )
    if at >= p.ref_time:
        # Move the reference forward: older mass shrinks, the new event enters at full weight.
        f = math.exp(-lam * (at - p.ref_time))
        return Profile(
            p.vec_sum * f + sign * weight * v, p.weight * f + sign * weight, at, p.n_events + int(sign)
        )
    f = math.exp(-lam * (p.ref_time - at))
    return Profile(
        p.vec_sum + sign * weight * f * v, p.weight + sign * weight * f, p.ref_time, p.n_events + int(sign)
    )


def add_event(p: Profile, vec: npt.ArrayLike, weight: float, at: float, lam: float = 0.0) -> Profile:
    """Fold one interaction into the profile (at = epoch seconds)."""
    return _fold(p, vec, weight, at, lam, 1.0)


def remove_event(p: Profile, vec: npt.ArrayLike, weight: float, at: float, lam: float = 0.0) -> Profile:
    """Take one interaction back out (used when its post is deleted)."""
    out = _fold(p, vec, weight, at, lam, -1.0)
    if out.n_events <= 0:
        return Profile(np.zeros_like(p.vec_sum), 0.0, p.ref_time, 0)
    return out


def recompute(vecs: npt.ArrayLike, weights: npt.ArrayLike, times: npt.ArrayLike, lam: float = 0.0) -> Profile:
    """Reference: the profile from a whole history at once (what incremental updates must equal)."""
    v = np.asarray(vecs, dtype=np.float64)
    w = np.asarray(weights, dtype=np.float64)
    t = np.asarray(times, dtype=np.float64)
    if len(w) == 0:
        return Profile.empty(v.shape[1] if v.ndim == 2 else 0)
    ref = float(t.max())
    eff = w * np.exp(-lam * (ref - t)) if lam > 0 else w
    return Profile(eff @ v, float(eff.sum()), ref, len(w))
