"""Features of (user, candidate post) pairs for the re-ranker.

One function computes them from plain arrays, so the offline replay (training, evaluation) and the
service (serving) cannot drift apart: they only differ in where the arrays come from.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
HOURS = 3600.0
# community_lift: the user's share of a community, relative to that community's share of the posts
# of the last VOLUME_DAYS in the user's communities, with PRIOR pseudo-events spread by volume.
VOLUME_DAYS = 30.0
LIFT_PRIOR = 2.0
SOURCES = ("similar", "latest", "popular", "short")

GROUPS: dict[str, tuple[str, ...]] = {
    "similarity": ("cos_long", "cos_short_max", "cos_short_mean"),
    "recency": ("log_age_h", "log_rank_latest"),
    "popularity": ("log_pop", "log_pop_rate", "trend_1d", "trend_7d"),
    "affinity": (
        "community_share",
        "author_share",
        "category_share",
        "community_lift",
        "exposure_lift",
    ),
    # What the user's own reads say about how new and how popular the posts they pick are.
    "preferences": (
        "pref_log_reads",
        "pref_log_age",
        "rel_log_age",
        "age_over_pref",
        "pref_log_pop",
        "rel_log_pop",
    ),
    "sources": (
        *(f"src_{s}" for s in SOURCES),
        "log_best_rank",
        "log_rank_similar",
        "log_rank_popular",
        "log_rank_short",
    ),
    "context": ("log_user_events", "cold", "log_candidates"),
}
FEATURES: tuple[str, ...] = tuple(f for g in GROUPS.values() for f in g)


@dataclass
class ReadPrefs:
    """Running sums over the user's reads of how old (hours) and how popular (likes + comments shown)
    each post was when they read it. Kept incrementally: by the replay per read event, by the service
    in feed_user_prefs per recorded read."""

    n: int = 0
    sum_log_age: float = 0.0  # Σ log1p(age_h)
    sum_age_h: float = 0.0
    sum_log_pop: float = 0.0  # Σ log1p(popularity)

    def add(self, age_s: float, popularity: float) -> None:
        age_h = max(age_s, 0.0) / HOURS
        self.n += 1
        self.sum_log_age += float(np.log1p(age_h))
        self.sum_age_h += age_h
        self.sum_log_pop += float(np.log1p(max(popularity, 0.0)))


@dataclass
class ReadExposure:
    """Per community: the user's reads, and their exposure — the community's share of the posts of
    the user's communities in the VOLUME_DAYS before each read, summed over the reads. Kept
    incrementally: by the replay per read event, in feed_user_exposure by the events writer."""

    reads: dict[str, float] = field(default_factory=dict)
    exposure: dict[str, float] = field(default_factory=dict)

    def add(self, community: str, volume: Mapping[str, float]) -> None:
        """One read of a post of `community`; `volume`: posts per community of the user in the
        VOLUME_DAYS before the read."""
        total = sum(volume.values())
        if total <= 0:
            return  # the user's communities posted nothing lately: no exposure to compare with
        for k, n in volume.items():
            self.exposure[k] = self.exposure.get(k, 0.0) + n / total
        self.reads[community] = self.reads.get(community, 0.0) + 1.0


@dataclass
class UserSignals:
    """What is known about the user at ranking time (vectors enter through the cosines below)."""

    cold: bool  # no profile yet
    recent_mean_norm: float  # |mean of the last few reads' vectors| (1 for a single read)
    n_events: int
    community: dict[str, float] = field(default_factory=dict)  # key -> summed event weight
    author: dict[str, float] = field(default_factory=dict)
    category: dict[str, float] = field(default_factory=dict)
    prefs: ReadPrefs = field(default_factory=ReadPrefs)
    # Posts per community of the user in the VOLUME_DAYS before now (all of the user's communities).
    community_volume: dict[str, float] = field(default_factory=dict)
    exposure: ReadExposure = field(default_factory=ReadExposure)


@dataclass
class CandidateArrays:
    """The union of candidates, one row each."""

    cos_long: F64  # cosine to the user's long-term vector (zeros when cold)
    cos_recent: F64  # [n, m] cosine to each of the last m reads (m may be 0)
    age_s: F64
    popularity: F64  # likes + comments visible now
    trend_1d: F64  # decayed interaction counts from the events log, at now
    trend_7d: F64
    community: list[str]
    author: list[str | None]
    category: list[str | None]
    sources: npt.NDArray[np.bool_]  # [n, len(SOURCES)]
    best_rank: F64  # best (smallest) 1-based rank over the sources that produced it
    n_window: int  # how many posts the window held (context for the model)
    source_ranks: F64 | None = None  # [n, len(SOURCES)] 1-based rank per source, 0: not produced by it


def recent_mean_norm(recent: F32) -> float:
    return float(np.linalg.norm(recent.mean(axis=0))) if len(recent) else 1.0


def _share(keys: list[str | None] | list[str], counts: dict[str, float]) -> F64:
    total = sum(counts.values())
    if total <= 0:
        return np.zeros(len(keys))
    # Smoothed so a community the user never touched is small but not zero.
    return np.array([(counts.get(k, 0.0) if k is not None else 0.0) / (total + 1.0) for k in keys])


def _lift(keys: list[str], counts: dict[str, float], volume: dict[str, float]) -> F64:
    """log(smoothed interaction share / volume share) per key: how much more the user engages with
    a community than its posting volume alone explains. A busy board collects many reads from
    anyone who joins it, so the raw share mixes the user's taste with the board's output (on
    `petitions-longform`'s validation split the readers' true board preferences were worth +0.017
    union HR@20 over the raw share; the lift recovers about half of that; docs/feed.md). 0 where
    the community posted nothing."""
    vol_total = sum(volume.values())
    if vol_total <= 0:
        return np.zeros(len(keys))
    total = sum(counts.get(k, 0.0) for k in volume)
    # Once per community (a user has a handful), then looked up per candidate.
    per: dict[str, float] = {}
    for k, n in volume.items():
        v = n / vol_total
        if v > 0:
            per[k] = float(np.log((counts.get(k, 0.0) + LIFT_PRIOR * v) / (total + LIFT_PRIOR) / v))
    return np.array([per.get(k, 0.0) for k in keys], dtype=np.float64)


def _exposure_lift(keys: list[str], reads: dict[str, float], exposure: dict[str, float]) -> F64:
    """log((reads + 1) / (exposure + 1)) per key. A reader with no preference among their
    communities reads each in proportion to how much it posts, so their expected reads of a
    community are its exposure (its volume share at each read, summed over the reads): the ratio
    is the preference itself, estimated at the moment of each read rather than from today's
    volumes as the lift does, and shrunk towards 1 (log 0) by one pseudo-read."""
    per = {k: float(np.log((reads.get(k, 0.0) + 1.0) / (exposure.get(k, 0.0) + 1.0))) for k in set(keys)}
    return np.array([per[k] for k in keys], dtype=np.float64)


def compute(c: CandidateArrays, u: UserSignals) -> F32:
    """Feature matrix [n, len(FEATURES)] in FEATURES order."""
    n = len(c.age_s)
    cols: dict[str, npt.ArrayLike] = {}
    cols["cos_long"] = np.zeros(n) if u.cold else c.cos_long
    if c.cos_recent.ndim == 2 and c.cos_recent.shape[1] and n:
        cols["cos_short_max"] = c.cos_recent.max(axis=1)
        # cos(v, mean/|mean|) = mean_i cos(v, r_i) / |mean|  (all r_i unit vectors)
        cols["cos_short_mean"] = c.cos_recent.mean(axis=1) / max(u.recent_mean_norm, 1e-6)
    else:
        cols["cos_short_max"] = cols["cos_short_mean"] = np.zeros(n)
    age_h = np.maximum(c.age_s, 0.0) / HOURS
    cols["log_age_h"] = np.log1p(age_h)
    cols["log_pop"] = np.log1p(np.maximum(c.popularity, 0.0))
    cols["log_pop_rate"] = np.log1p(np.maximum(c.popularity, 0.0) / (age_h + 1.0))
    cols["trend_1d"] = np.log1p(c.trend_1d)
    cols["trend_7d"] = np.log1p(c.trend_7d)
    cols["community_share"] = _share(c.community, u.community)
    cols["author_share"] = _share(c.author, u.author)
    cols["category_share"] = _share(c.category, u.category)
    cols["community_lift"] = _lift(c.community, u.community, u.community_volume)
    cols["exposure_lift"] = _exposure_lift(c.community, u.exposure.reads, u.exposure.exposure)
    for j, src in enumerate(SOURCES):
        cols[f"src_{src}"] = c.sources[:, j].astype(np.float64) if n else np.zeros(0)
    cols["log_best_rank"] = np.log(np.maximum(c.best_rank, 1.0))
    ranks = c.source_ranks if c.source_ranks is not None else np.zeros((n, len(SOURCES)))
    for j, src in enumerate(SOURCES):
        r = ranks[:, j] if n else np.zeros(0)
        # Not in that source's list: one past the last rank it gave (its list's length + 1).
        missing = (r.max() if len(r) else 0.0) + 1.0
        cols[f"log_rank_{src}"] = np.log(np.where(r > 0, r, missing))
    p = u.prefs
    cols["pref_log_reads"] = np.full(n, np.log1p(p.n))
    if p.n:
        mean_log_age, mean_age_h, mean_log_pop = p.sum_log_age / p.n, p.sum_age_h / p.n, p.sum_log_pop / p.n
        cols["pref_log_age"] = np.full(n, mean_log_age)
        cols["rel_log_age"] = np.asarray(cols["log_age_h"]) - mean_log_age
        cols["age_over_pref"] = age_h / (mean_age_h + 1.0)
        cols["pref_log_pop"] = np.full(n, mean_log_pop)
        cols["rel_log_pop"] = np.asarray(cols["log_pop"]) - mean_log_pop
    else:  # no reads yet: nothing to be relative to
        for f in ("pref_log_age", "rel_log_age", "age_over_pref", "pref_log_pop", "rel_log_pop"):
            cols[f] = np.zeros(n)
    cols["log_user_events"] = np.full(n, np.log1p(u.n_events))
    cols["cold"] = np.full(n, 1.0 if u.cold else 0.0)
    cols["log_candidates"] = np.full(n, np.log1p(c.n_window))
    return (
        np.column_stack([np.asarray(cols[f], dtype=np.float64) for f in FEATURES]).astype(np.float32)
        if n
        else np.zeros((0, len(FEATURES)), np.float32)
    )


def group_columns(drop: str | None) -> list[int]:
    """Column indices of FEATURES without the named group (None: all)."""
    if drop is not None and drop not in GROUPS:
        raise ValueError(f"unknown feature group {drop!r}; known: {', '.join(GROUPS)}")
    gone = set(GROUPS[drop]) if drop else set()
    return [i for i, f in enumerate(FEATURES) if f not in gone]
