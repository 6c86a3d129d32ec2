"""In-process exact index: per community, post vectors sorted by time in one float32 matrix.

The feed's filter (a few communities and a date window) is a contiguous row range of each
community's matrix, found by binary search; scoring it is one matrix-vector product (≈0.02 µs per row
with one BLAS thread, against ≈3 µs per row for pgvector's distance). Next to the vectors each row
keeps a few small columns the ranked feed needs for its ~200 candidates (stored likes + comments,
author and category codes), so it never reads those wide rows from PostgreSQL. PostgreSQL stays the
source of truth; `indexsync.py` keeps this copy in step with it.

Concurrency: readers never lock. Each community's data is an immutable-by-contract `Slab`; writers
(serialised by a lock) either append rows past a slab's `n` into spare capacity and publish a new
`Slab` with a larger `n`, or build fresh arrays. A reader that picked up the old slab keeps seeing a
consistent prefix.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
I32 = npt.NDArray[np.int32]

# Extra per-row columns and their dtypes: likes + comments stored on the post, and
# hashtext(author) / hashtext(category) (0 = none).
EXTRA = {"pops": np.float32, "authors": np.int32, "cats": np.int32}


@dataclass(frozen=True)
class Slab:
    times: F64  # [capacity], sorted ascending over [:n]
    rids: I64
    vecs: F32  # [capacity, dim]
    n: int
    extra: dict[str, npt.NDArray[np.generic]]  # name -> [capacity]

    def window(self, t_from: float | None, t_to: float | None) -> tuple[int, int]:
        t = self.times[: self.n]
        lo = 0 if t_from is None else int(np.searchsorted(t, t_from, side="left"))
        hi = self.n if t_to is None else int(np.searchsorted(t, t_to, side="right"))
        return lo, max(lo, hi)


@dataclass(frozen=True)
class Candidates:
    rids: I64
    times: F64
    scores: F32  # cosine similarity to the query: [n] or [n, m] (empty when no query was given)
    pops: F32
    authors: I32
    cats: I32
    comm: I32  # position of each row's community in the (de-duplicated) list asked for

    def take(self, keep: npt.NDArray[np.bool_] | I64) -> Candidates:
        scores = self.scores[keep] if len(self.scores) else self.scores
        return Candidates(
            self.rids[keep],
            self.times[keep],
            scores,
            self.pops[keep],
            self.authors[keep],
            self.cats[keep],
            self.comm[keep],
        )


def _empty_slab(dim: int) -> Slab:
    return Slab(
        np.zeros(0),
        np.zeros(0, np.int64),
        np.zeros((0, dim), np.float32),
        0,
        {k: np.zeros(0, t) for k, t in EXTRA.items()},
    )


def _empty_candidates() -> Candidates:
    z32 = np.zeros(0, np.int32)
    return Candidates(
        np.zeros(0, np.int64), np.zeros(0), np.zeros(0, np.float32), np.zeros(0, np.float32), z32, z32, z32
    )


class MemoryIndex:
    def __init__(self, dim: int) -> None:
        self.dim = dim
        self._slabs: dict[str, Slab] = {}
        self._community_of: dict[int, str] = {}
        self._write = threading.Lock()

    # --- reads -------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._community_of)

    def communities(self) -> list[str]:
        # Readers take no lock: list() copies the items in one step under the GIL, where a generator
        # over the live dict fails ("changed size during iteration") when a writer adds a community.
        return sorted(c for c, s in list(self._slabs.items()) if s.n)

    def count(self, communities: Iterable[str], t_from: float | None, t_to: float | None) -> int:
        return sum(self.counts(communities, t_from, t_to).values())

    def counts(self, communities: Iterable[str], t_from: float | None, t_to: float | None) -> dict[str, int]:
        """Posts per community in [t_from, t_to] (two binary searches each)."""
        out: dict[str, int] = {}
        for c in dict.fromkeys(communities):
            slab = self._slabs.get(c)
            if slab is None:
                out[c] = 0
            else:
                lo, hi = slab.window(t_from, t_to)
                out[c] = hi - lo
        return out

    def candidates(
        self,
        communities: Iterable[str],
        t_from: float | None,
        t_to: float | None,
        query: F32 | None = None,
    ) -> Candidates:
        """All posts of the communities in [t_from, t_to], with their cosine to `query` ([d] or
        [d, m] for several query vectors at once) if given."""
        parts: list[tuple[Slab, int, int, int]] = []
        for ci, c in enumerate(dict.fromkeys(communities)):  # de-duplicated, order kept
            slab = self._slabs.get(c)
            if slab is None:
                continue
            lo, hi = slab.window(t_from, t_to)
            if hi > lo:
                parts.append((slab, lo, hi, ci))
        if not parts:
            return _empty_candidates()
        scores = (
            np.concatenate([s.vecs[lo:hi] @ query for s, lo, hi, _ in parts])
            if query is not None
            else np.zeros(0, np.float32)
        )
        return Candidates(
            np.concatenate([s.rids[lo:hi] for s, lo, hi, _ in parts]),
            np.concatenate([s.times[lo:hi] for s, lo, hi, _ in parts]),
            scores,
            np.concatenate([s.extra["pops"][lo:hi] for s, lo, hi, _ in parts]).astype(np.float32),
            np.concatenate([s.extra["authors"][lo:hi] for s, lo, hi, _ in parts]).astype(np.int32),
            np.concatenate([s.extra["cats"][lo:hi] for s, lo, hi, _ in parts]).astype(np.int32),
            np.concatenate([np.full(hi - lo, ci, np.int32) for _, lo, hi, ci in parts]),
        )

    def search(
        self,
        query: F32,
        communities: Iterable[str],
        t_from: float | None,
        t_to: float | None,
        k: int,
        exclude: npt.ArrayLike | None = None,
    ) -> tuple[I64, F32]:
        """Exact top-k by cosine (ties: newer first, then larger rid), excluding `exclude` rids."""
        cand = self.candidates(communities, t_from, t_to, query)
        if exclude is not None and len(cand.rids):
            ex = np.asarray(exclude, dtype=np.int64)
            if ex.size:
                cand = cand.take(~np.isin(cand.rids, ex))
        scores = cand.scores
        n = len(scores)
        if n == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        if n > 4 * k:
            # Partition first so the full sort only touches a few k rows; the threshold keeps ties
            # at the boundary inside the sorted set.
            part = np.argpartition(-scores, k - 1)[:k]
            kth = scores[part].min()
            idx = np.flatnonzero(scores >= kth)
        else:
            idx = np.arange(n)
        order = np.lexsort((-cand.rids[idx], -cand.times[idx], -scores[idx]))[:k]
        sel = idx[order]
        return cand.rids[sel], scores[sel]

    def vectors(self, items: Sequence[tuple[int, str, float]]) -> tuple[I64, F32]:
        """Vectors of posts given as (rid, community, time), in the given order; unknown ones are
        skipped. Vectorised per community: one binary search over all the times asked for."""
        by_comm: dict[str, list[int]] = {}
        for i, (_, community, _) in enumerate(items):
            by_comm.setdefault(community, []).append(i)
        pos_of: dict[int, tuple[Slab, int]] = {}
        for community, idx in by_comm.items():
            slab = self._slabs.get(community)
            if slab is None:
                continue
            t = slab.times[: slab.n]
            want_t = np.array([items[i][2] for i in idx])
            want_r = np.array([items[i][0] for i in idx], dtype=np.int64)
            lo = np.searchsorted(t, want_t, side="left")
            hi = np.searchsorted(t, want_t, side="right")
            for j, i in enumerate(idx):
                a, b = int(lo[j]), int(hi[j])
                if b - a == 1:  # the usual case: one post at that exact time
                    if slab.rids[a] == want_r[j]:
                        pos_of[i] = (slab, a)
                elif b > a:
                    hits = np.flatnonzero(slab.rids[a:b] == want_r[j])
                    if hits.size:
                        pos_of[i] = (slab, a + int(hits[0]))
        order = [i for i in range(len(items)) if i in pos_of]
        if not order:
            return np.zeros(0, np.int64), np.zeros((0, self.dim), np.float32)
        rids = np.array([items[i][0] for i in order], dtype=np.int64)
        vecs = np.stack([pos_of[i][0].vecs[pos_of[i][1]] for i in order])
        return rids, vecs

    # --- writes ------------------------------------------------------------------------------------
    def apply(
        self,
        rids: npt.ArrayLike,
        communities: Sequence[str],
        times: npt.ArrayLike,
        vecs: npt.ArrayLike,
        deleted: npt.ArrayLike = (),
        **extra: npt.ArrayLike,
    ) -> None:
        """Upsert posts (by rid) and remove `deleted` rids, in one step; `extra` columns (pops,
        authors, cats) default to zeros. Re-applying is harmless."""
        r = np.asarray(rids, dtype=np.int64)
        t = np.asarray(times, dtype=np.float64)
        v = np.asarray(vecs, dtype=np.float32).reshape(len(r), self.dim)
        d = np.asarray(deleted, dtype=np.int64)
        unknown = set(extra) - set(EXTRA)
        if unknown:
            raise ValueError(f"unknown index columns {sorted(unknown)}")
        x = {
            k: np.zeros(len(r), dt) if extra.get(k) is None else np.asarray(extra[k], dtype=dt)
            for k, dt in EXTRA.items()
        }
        with self._write:
            # Anything upserted or deleted leaves its current place first (it may change community).
            remove: dict[str, list[int]] = {}
            for rid in np.concatenate([d, r]).tolist():
                old = self._community_of.pop(rid, None)
                if old is not None:
                    remove.setdefault(old, []).append(rid)
            add: dict[str, list[int]] = {}
            for i, c in enumerate(communities):
                add.setdefault(c, []).append(i)
                self._community_of[int(r[i])] = c
            for c in set(remove) | set(add):
                self._rewrite(c, remove.get(c, []), add.get(c, []), r, t, v, x)

    def _rewrite(
        self,
        c: str,
        remove: list[int],
        add: list[int],
        r: I64,
        t: F64,
        v: F32,
        x: dict[str, npt.NDArray[np.generic]],
    ) -> None:
        slab = self._slabs.get(c) or _empty_slab(self.dim)
        ai = np.asarray(add, dtype=np.int64)
        if not remove and ai.size:
            at = t[ai]
            order = np.argsort(at, kind="stable")
            ai, at = ai[order], at[order]
            if slab.n == 0 or at[0] >= slab.times[slab.n - 1]:
                self._slabs[c] = self._append(slab, r[ai], at, v[ai], {k: a[ai] for k, a in x.items()})
                return
        n = slab.n
        times, rids, vecs = slab.times[:n], slab.rids[:n], slab.vecs[:n]
        extra = {k: a[:n] for k, a in slab.extra.items()}
        if remove:
            mask = ~np.isin(rids, np.asarray(remove, dtype=np.int64))
            times, rids, vecs = times[mask], rids[mask], vecs[mask]
            extra = {k: a[mask] for k, a in extra.items()}
        if ai.size:
            times = np.concatenate([times, t[ai]])
            rids = np.concatenate([rids, r[ai]])
            vecs = np.concatenate([vecs, v[ai]])
            extra = {k: np.concatenate([a, x[k][ai]]) for k, a in extra.items()}
        order = np.lexsort((rids, times))
        self._slabs[c] = Slab(
            np.ascontiguousarray(times[order]),
            np.ascontiguousarray(rids[order]),
            np.ascontiguousarray(vecs[order]),
            len(order),
            {k: np.ascontiguousarray(a[order]) for k, a in extra.items()},
        )

    def _append(self, slab: Slab, r: I64, t: F64, v: F32, x: dict[str, npt.NDArray[np.generic]]) -> Slab:
        n, m = slab.n, len(r)
        if n + m <= len(slab.times):
            # Spare capacity past n is invisible to readers of the old slab; fill it, then publish.
            slab.times[n : n + m] = t
            slab.rids[n : n + m] = r
            slab.vecs[n : n + m] = v
            for k, a in slab.extra.items():
                a[n : n + m] = x[k]
            return Slab(slab.times, slab.rids, slab.vecs, n + m, slab.extra)
        cap = max(16, 2 * (n + m)) if n else m  # an initial bulk load gets no slack
        times = np.empty(cap)
        rids = np.empty(cap, np.int64)
        vecs = np.empty((cap, self.dim), np.float32)
        times[:n], rids[:n], vecs[:n] = slab.times[:n], slab.rids[:n], slab.vecs[:n]
        times[n : n + m], rids[n : n + m], vecs[n : n + m] = t, r, v
        extra = {}
        for k, a in slab.extra.items():
            b = np.empty(cap, a.dtype)
            b[:n] = a[:n]
            b[n : n + m] = x[k]
            extra[k] = b
        return Slab(times, rids, vecs, n + m, extra)

    def clear(self) -> None:
        with self._write:
            self._slabs.clear()
            self._community_of.clear()
