"""The in-process index returns exactly what numpy brute force over the same filter returns."""

from __future__ import annotations

import numpy as np

from hanseek.feed.memindex import MemoryIndex

DIM = 16


def _posts(n: int, seed: int, n_comm: int = 6) -> tuple[np.ndarray, list[str], np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    rids = np.arange(1, n + 1, dtype=np.int64)
    comms = [f"c{int(x)}" for x in rng.integers(0, n_comm, size=n)]
    times = rng.uniform(0, 100.0, size=n).round(1)  # rounded: many equal times exercise the tie rules
    vecs = rng.standard_normal((n, DIM)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    return rids, comms, times, vecs


def _brute(
    q: np.ndarray,
    rids: np.ndarray,
    comms: list[str],
    times: np.ndarray,
    vecs: np.ndarray,
    want: set[str],
    t_from: float,
    t_to: float,
    k: int,
    exclude: set[int],
) -> list[int]:
    rows = [
        i
        for i in range(len(rids))
        if comms[i] in want and t_from <= times[i] <= t_to and int(rids[i]) not in exclude
    ]
    scored = sorted(rows, key=lambda i: (-float(vecs[i] @ q), -times[i], -rids[i]))
    return [int(rids[i]) for i in scored[:k]]


def test_search_equals_brute_force_with_filters_and_exclusions() -> None:
    rids, comms, times, vecs = _posts(3000, 0)
    idx = MemoryIndex(DIM)
    idx.apply(rids, comms, times, vecs)
    rng = np.random.default_rng(1)
    for trial in range(30):
        q = vecs[trial] + 0.1 * rng.standard_normal(DIM).astype(np.float32)
        q /= np.linalg.norm(q)
        want = {f"c{int(c)}" for c in rng.choice(6, size=int(rng.integers(1, 4)), replace=False)}
        t_from, t_to = sorted(rng.uniform(0, 100, size=2).round(1))
        exclude = set(rng.choice(rids, size=50).tolist())
        got, scores = idx.search(q, sorted(want), t_from, t_to, 20, np.array(sorted(exclude)))
        expected = _brute(q, rids, comms, times, vecs, want, t_from, t_to, 20, exclude)
        assert got.tolist() == expected
        pos = {int(r): i for i, r in enumerate(rids)}
        np.testing.assert_allclose(scores, [vecs[pos[r]] @ q for r in got.tolist()], rtol=1e-5)
        # The filter never leaks: every result is in the communities and the window.
        for r in got.tolist():
            assert comms[pos[r]] in want and t_from <= times[pos[r]] <= t_to
        per = idx.counts([*sorted(want), "nowhere"], t_from, t_to)
        assert per == {
            c: sum(1 for i in range(len(rids)) if comms[i] == c and t_from <= times[i] <= t_to)
            for c in [*sorted(want), "nowhere"]
        }
        assert idx.count(sorted(want), t_from, t_to) == sum(per.values())


def test_incremental_writes_equal_a_fresh_build() -> None:
    rids, comms, times, vecs = _posts(2000, 2)
    idx = MemoryIndex(DIM)
    # Arrive in batches, partly out of time order, with updates (moved community/time) and deletes.
    order = np.random.default_rng(3).permutation(len(rids))
    for chunk in np.array_split(order, 13):
        idx.apply(rids[chunk], [comms[i] for i in chunk], times[chunk], vecs[chunk])
    for i in range(0, 200):  # new arrivals in time order take the append path
        idx.apply(np.array([10_000 + i]), ["c1"], np.array([100.0 + i]), vecs[i : i + 1])
    moved = rids[:50]
    new_comms = ["c5"] * 50
    new_times = times[:50] + 1.0
    idx.apply(moved, new_comms, new_times, vecs[:50])
    deleted = rids[100:160]
    idx.apply(np.zeros(0, np.int64), [], np.zeros(0), np.zeros((0, DIM), np.float32), deleted=deleted)
    idx.apply(rids[100:101], [comms[100]], times[100:101], vecs[100:101])  # re-insert one deleted

    all_rids = np.concatenate([rids, 10_000 + np.arange(200)])
    all_comms = list(comms) + ["c1"] * 200
    all_times = np.concatenate([times, 100.0 + np.arange(200)])
    all_vecs = np.concatenate([vecs, vecs[:200]])
    all_times[:50] = new_times
    for i in range(50):
        all_comms[i] = "c5"
    alive = np.ones(len(all_rids), bool)
    alive[101:160] = False
    fresh = MemoryIndex(DIM)
    fresh.apply(
        all_rids[alive],
        [c for c, a in zip(all_comms, alive, strict=True) if a],
        all_times[alive],
        all_vecs[alive],
    )
    assert len(idx) == len(fresh) == int(alive.sum())
    q = vecs[7]
    for want in (["c1"], ["c5", "c2"], ["c0", "c1", "c2", "c3", "c4", "c5"]):
        a = idx.search(q, want, None, None, 50)
        b = fresh.search(q, want, None, None, 50)
        assert a[0].tolist() == b[0].tolist()
        ca = idx.candidates(want, 10.0, 250.0)
        cb = fresh.candidates(want, 10.0, 250.0)
        assert sorted(ca.rids.tolist()) == sorted(cb.rids.tolist())
    assert 130 not in idx.candidates(["c0", "c1", "c2", "c3", "c4", "c5"], None, None).rids


def test_vectors_lookup_and_empty_cases() -> None:
    rids, comms, times, vecs = _posts(100, 4)
    idx = MemoryIndex(DIM)
    assert idx.search(vecs[0], ["c0"], None, None, 5)[0].size == 0
    idx.apply(rids, comms, times, vecs)
    r, v = idx.vectors([(int(rids[3]), comms[3], float(times[3])), (999, "c0", 1.0)])
    assert r.tolist() == [int(rids[3])]
    np.testing.assert_array_equal(v[0], vecs[3])
    assert idx.search(vecs[0], ["nope"], None, None, 5)[0].size == 0
    assert idx.search(vecs[0], ["c0"], 50.0, 40.0, 5)[0].size == 0  # empty window
