"""Feed benchmark (issue 3 item 7): N posts (default 1,000,000) × 384-d precomputed vectors in 200
communities over one year; users in 3–10 communities with 20 reads each; feeds over a 30-day window.

Reports, measured in one run on one machine:
- load: binary COPY throughput (precomputed vectors), HNSW build time, ingest through the service
  (upsert, HNSW maintained) and with encoding (real petition titles through the text encoder);
- the feed as a service call (no HTTP): p50/p95/p99 for the in-process exact path, the SQL exact path
  and the HNSW path; recall@20 of each against numpy brute force (a post tied with numpy's 20th
  counts as found);
- the original system's first design as the baseline: fetch every candidate vector out of PostgreSQL
  into Python and score there;
- HTTP end to end (`hanseek serve` in a subprocess, clients on loopback): sequential p50/p99 (httpx)
  and requests/s under concurrency (wrk when installed — `scripts/system-deps.sh wrk` — and httpx);
- the re-ranker's added latency (ranked vs similar-only feed, also timed interleaved);
- recall of every path for "focused" readers (reads from 2 topics) as well as random ones, and an
  ef_search sweep of the HNSW path where `auto` uses it (broad filters);
- the first requests after a database restart, without and with start-up cache warming.

    python -m bench.feed [--posts 1000000] [--users 400] [--queries 200]
                         [--data clustered|uniform|real|real-pairs] [--keep DIR]
                         [--http-requests 1500] [--concurrency 16] [--hnsw-m 16]

`--keep DIR` keeps (and on the next run reuses) the loaded database in DIR.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from bench._util import close_db, emit, percentiles_ms
from hanseek.config import Settings
from hanseek.feed.hnsw import INDEX as HNSW_INDEX
from hanseek.feed.models import EventIn, FeedOut, MethodName, PathName, PostIn
from hanseek.feed.posts import POST_COLUMNS, ensure_communities
from hanseek.feed.service import FeedService
from hanseek.feed.settings import FeedSettings
from hanseek.store.bulk import copy_rows
from hanseek.store.db import Database
from hanseek.store.vectors import create_hnsw_index

DIM, COMMUNITIES, DAYS, K, WINDOW = 384, 200, 365, 20, 30
NOW = datetime(2025, 1, 1, tzinfo=UTC)
TOPICS = 2000
TOPIC_NOISE = float(np.sqrt((1 / 0.6**2 - 1) / DIM))  # cos(vector, its topic centre) ≈ 0.6
# Broad filters: about 60% of the posts are candidates, above the in-process index's memory_max_rows,
# so `auto` takes the approximate path.
BROAD_COMMUNITIES, BROAD_DAYS = 120, 365


def log(msg: str) -> None:
    print(f"[bench.feed] {time.strftime('%H:%M:%S')} {msg}", file=sys.stderr, flush=True)


class Data:
    """The posts: `clustered` (2,000 isotropic topics), `uniform` (isotropic noise), `real` (the
    encoder's vectors of real Korean texts, bench/_realvecs.py; topics are k-means clusters) or
    `real-pairs` (each post the normalised sum of two random real vectors, for sizes past the real
    texts; its topic is its first part's). The communities and dates are drawn the same way for all."""

    def __init__(self, n: int, kind: str, seed: int = 0, shared: Path = Path("../shared/data")) -> None:
        self.rng = np.random.default_rng(seed)
        self.kind = kind
        self.shared = shared
        self.n = n
        self.centres = self.rng.standard_normal((TOPICS, DIM), dtype=np.float32)
        self.centres /= np.linalg.norm(self.centres, axis=1, keepdims=True)
        self.community = self.rng.integers(0, COMMUNITIES, n).astype(np.int32)
        self.seconds = self.rng.integers(0, DAYS * 86400, n)  # seconds before NOW
        self.topic = self.rng.integers(0, TOPICS, n)

    def materialize(self, chunk: int = 100_000) -> None:
        if self.kind == "real":
            from bench._realvecs import real_vectors, topics

            self.vecs = real_vectors(self.shared, self.n)
            self.topic = topics(self.vecs, TOPICS)
            return
        if self.kind == "real-pairs":
            from bench._realvecs import pairs, real_vectors, topics

            real = real_vectors(self.shared)
            self.vecs, first, _ = pairs(real, self.n)
            self.topic = topics(real, TOPICS)[first]
            return
        self.vecs = np.empty((self.n, DIM), np.float32)
        for lo in range(0, self.n, chunk):
            hi = min(lo + chunk, self.n)
            noise = self.rng.standard_normal((hi - lo, DIM), dtype=np.float32)
            v = self.centres[self.topic[lo:hi]] + TOPIC_NOISE * noise if self.kind == "clustered" else noise
            self.vecs[lo:hi] = v / np.linalg.norm(v, axis=1, keepdims=True)

    def created(self, i: int) -> datetime:
        return NOW - timedelta(seconds=int(self.seconds[i]))


def load_posts(db: Database, data: Data, chunk: int = 50_000, hnsw_m: int = 16) -> dict[str, float]:
    with db.connection() as conn:
        conn.execute(f"DROP INDEX IF EXISTS {HNSW_INDEX}")
        ensure_communities(conn, [f"c{c:03d}" for c in range(COMMUNITIES)])
    started = time.perf_counter()
    likes = data.rng.integers(0, 500, data.n)
    comments = data.rng.integers(0, 50, data.n)
    for lo in range(0, data.n, chunk):
        hi = min(lo + chunk, data.n)
        vecs = data.vecs[lo:hi]
        rows = (
            (
                f"p{i}",
                f"c{data.community[i]:03d}",
                None,
                f"post {i}",
                "",
                None,
                data.created(i),
                int(likes[i]),
                int(comments[i]),
                vecs[i - lo],
            )
            for i in range(lo, hi)
        )
        with db.connection() as conn:
            copy_rows(conn, "posts", POST_COLUMNS, rows)
        if (hi // chunk) % 4 == 0 or hi == data.n:
            log(f"copied {hi:,} posts")
    copy_s = time.perf_counter() - started
    with db.connection() as conn:
        conn.execute("ANALYZE posts")
    t = time.perf_counter()
    with db.connection() as conn:
        conn.execute("SET max_parallel_maintenance_workers = 2")
        conn.commit()
        create_hnsw_index(conn, "posts", name=HNSW_INDEX, m=hnsw_m, maintenance_work_mem="6GB")
    hnsw_s = time.perf_counter() - t
    log(f"HNSW built in {hnsw_s:.0f}s")
    return {
        "copy_seconds": round(copy_s, 1),
        "copy_posts_per_s": round(data.n / copy_s),
        "hnsw_build_seconds": round(hnsw_s, 1),
    }


def make_users(
    svc: FeedService,
    data: Data,
    n_users: int,
    reads: int = 20,
    *,
    prefix: str = "u",
    communities: tuple[int, int] = (3, 11),
    seed: int = 7,
    focus_topics: int = 0,
    read_days: int = WINDOW,
) -> list[str]:
    """Users in `communities` (low, high) communities each, with `reads` reads (every 5th a like) of
    posts from their communities in the last `read_days`.

    `focus_topics` 0: the reads are drawn at random, so a user's vector is the mean of ~20 unrelated
    topics (a nearly flat query: the hardest case for a graph index). n > 0: every read is from one of
    the user's n topics of interest where the communities have such posts (focused readers)."""
    rng = np.random.default_rng(seed)
    recent = data.seconds <= read_days * 86400
    by_comm = {c: np.flatnonzero(recent & (data.community == c)) for c in range(COMMUNITIES)}
    users = []
    events: list[EventIn] = []
    for u in range(n_users):
        comms = rng.choice(COMMUNITIES, size=int(rng.integers(*communities)), replace=False)
        user = f"{prefix}{u}"
        svc.set_memberships(user, [f"c{c:03d}" for c in comms])
        pool = np.concatenate([by_comm[int(c)] for c in comms])
        if focus_topics:
            liked = rng.choice(TOPICS, size=focus_topics, replace=False)
            focused = pool[np.isin(data.topic[pool], liked)]
            pool = focused if len(focused) >= 5 else pool
        for j, i in enumerate(rng.choice(pool, size=min(reads, len(pool)), replace=False)):
            kind = "like" if j % 5 == 0 else "read"
            events.append(EventIn(user_id=user, post_id=f"p{i}", kind=kind, at=NOW - timedelta(hours=j)))  # type: ignore[arg-type]
        users.append(user)
        if len(events) >= 2000:
            svc.record_events(events)
            events = []
    if events:
        svc.record_events(events)
    return users


@dataclasses.dataclass(frozen=True)
class Ref:
    """numpy's top K, and every post scoring within TIE of its K-th (a path may return any of those:
    posts with the same vector — a repeated real text, a repeated pair — or float32 rounding)."""

    ids: list[str]
    accept: frozenset[str]


TIE = 1e-6


def brute_force(db: Database, data: Data, user: str, days: int = WINDOW) -> Ref:
    """numpy over the generator's own arrays (scores in float64), independent of every query path."""
    with db.connection() as conn:
        comms = [r[0] for r in conn.execute("SELECT community FROM memberships WHERE user_id = %s", (user,))]
        w = {
            r[0]: float(r[1])
            for r in conn.execute(
                "SELECT post_id, sum(weight) FROM events WHERE user_id = %s GROUP BY 1", (user,)
            )
        }
    read_idx = np.array([int(p[1:]) for p in w], dtype=np.int64)
    weights = np.array([w[f"p{i}"] for i in read_idx])
    q = (weights[:, None] * data.vecs[read_idx].astype(np.float64)).sum(0)
    q /= np.linalg.norm(q)
    idx = np.flatnonzero(
        np.isin(data.community, [int(c[1:]) for c in comms]) & (data.seconds <= days * 86400)
    )
    idx = idx[~np.isin(idx, read_idx)]
    scores = data.vecs[idx].astype(np.float64) @ q
    order = np.argsort(-scores, kind="stable")
    kth = scores[order[K - 1]] if len(scores) >= K else -np.inf
    return Ref([f"p{i}" for i in idx[order[:K]]], frozenset(f"p{i}" for i in idx[scores >= kth - TIE]))


def similar_figures(
    svc: FeedService,
    sample: list[str],
    refs: list[Ref],
    days: int,
    path: PathName,
    *,
    warm_up: bool = True,
) -> tuple[dict[str, Any], list[FeedOut]]:
    """The similarity feed on `path` for every sampled user (after one untimed call when `warm_up`):
    latency percentiles and recall@20 against numpy's `refs`; the feeds too (their path, candidates)."""
    if warm_up:
        svc.feed(sample[0], k=K, days=days, path=path, at=NOW, method="similar")
    lat, outs = timed(lambda u: svc.feed(u, k=K, days=days, path=path, at=NOW, method="similar"), sample)
    ids = [[it.id for it in o.items] for o in outs]
    return percentiles_ms(lat) | {"recall@20_vs_numpy": recall(ids, refs)}, outs


@contextlib.contextmanager
def scan_width(svc: FeedService, ef_search: int, max_scan_tuples: int) -> Iterator[None]:
    """The HNSW path's scan settings changed for a block, restored after it."""
    saved = svc.settings.hnsw_ef_search, svc.settings.hnsw_max_scan_tuples
    svc.settings.hnsw_ef_search, svc.settings.hnsw_max_scan_tuples = ef_search, max_scan_tuples
    try:
        yield
    finally:
        svc.settings.hnsw_ef_search, svc.settings.hnsw_max_scan_tuples = saved


def focused_readers(
    writer: FeedService, svc: FeedService, data: Data, root: Path, n_users: int, n_queries: int
) -> dict[str, Any]:
    """Recall of every path for users whose 20 reads (from the past year) share 2 topics, with narrow
    (3–10 communities, 30 days) and broad (120 communities, 365 days) filters."""
    out: dict[str, Any] = {
        "users": "20 reads each from the past year, all from 2 topics of interest (of 2,000)",
    }
    scenarios = (
        ("narrow", (3, 11), WINDOW, 23),
        ("broad", (BROAD_COMMUNITIES, BROAD_COMMUNITIES + 1), BROAD_DAYS, 29),
    )
    for name, comms, days, seed in scenarios:
        prefix = f"focus-{name}-"
        marker = root / f"focused-{name}-{data.n}-{data.kind}-{n_users}"
        if not marker.exists():
            make_users(
                writer,
                data,
                n_users,
                prefix=prefix,
                communities=comms,
                seed=seed,
                focus_topics=2,
                read_days=DAYS,
            )
            marker.write_text("ok")
        users = [f"{prefix}{u}" for u in range(n_users)]
        ref = {u: brute_force(svc.db, data, u, days=days) for u in users}
        sample = [users[i % len(users)] for i in range(n_queries)]
        refs = [ref[u] for u in sample]
        paths: dict[str, Any] = {}
        candidates = 0
        scenario_paths: tuple[PathName, ...] = ("auto", "exact", "approx")
        for path in scenario_paths:
            log(f"focused {name}: path={path}")
            figures, outs = similar_figures(svc, sample, refs, days, path)
            paths[f"{path} -> {outs[0].path}" if path == "auto" else str(outs[0].path)] = figures
            candidates = int(np.median([o.estimated_candidates or 0 for o in outs]))
        if name == "broad":
            paths |= ef_sweep(svc, sample, refs, days)
        out[name] = {
            "communities_per_user": f"{comms[0]}-{comms[1] - 1}" if comms[1] - comms[0] > 1 else comms[0],
            "window_days": days,
            "candidates_per_query": candidates,
            "paths": paths,
        }
    return out


def ef_sweep(svc: FeedService, sample: list[str], refs: list[Ref], days: int) -> dict[str, Any]:
    """The HNSW path with other scan widths than the configured one (up to pgvector's maximum)."""
    out: dict[str, Any] = {}
    for ef in (e for e in (200, 400, 1000) if e != svc.settings.hnsw_ef_search):
        with scan_width(svc, ef, 100 * ef):
            figures, _ = similar_figures(svc, sample, refs, days, "approx", warm_up=False)
        out[f"approx-hnsw (ef_search {ef}, max_scan_tuples {100 * ef})"] = figures
    return out


def restart_figures(settings: Settings, sample: list[str]) -> dict[str, Any]:
    """One pass over the sampled users right after a database restart (empty buffers), without and
    with the service's start-up cache warming (FeedSettings.warm_cache_days)."""
    from hanseek.store.server import stop_server

    out: dict[str, Any] = {}
    for label, days in (("not warmed", 0), ("warmed", FeedSettings().warm_cache_days)):
        stop_server(settings.pgdata_dir)
        db = Database.open(settings)
        try:
            t = time.perf_counter()
            svc = FeedService(
                db, settings=FeedSettings(warm_cache_days=days), load_in_background=False, follow=False
            )
            started = time.perf_counter() - t
            lat, _ = timed(
                lambda u, s=svc: s.feed(u, k=K, days=WINDOW, path="exact", at=NOW, method="similar"), sample
            )
            out[label] = percentiles_ms(lat) | {"start_up_seconds": round(started, 1)}
            svc.close()
        finally:
            db.close()
    return out


def fetch_all(db: Database, user: str) -> list[str]:
    """The original first design: every candidate vector out of the database, scored in Python."""
    from hanseek.feed.pgvec import to_np

    with db.connection() as conn:
        comms = [r[0] for r in conn.execute("SELECT community FROM memberships WHERE user_id = %s", (user,))]
        prof = conn.execute("SELECT vec_sum FROM user_profiles WHERE user_id = %s", (user,)).fetchone()
        rows = conn.execute(
            "SELECT p.id, p.embedding FROM posts p WHERE p.community = ANY(%s) AND p.created_at >= %s "
            "AND p.created_at <= %s AND NOT EXISTS (SELECT 1 FROM events e WHERE e.user_id = %s "
            "AND e.post_id = p.id)",
            (comms, NOW - timedelta(days=WINDOW), NOW, user),
        ).fetchall()
    assert prof is not None
    q = to_np(prof[0])
    q /= np.linalg.norm(q)
    m = np.stack([to_np(r[1]) for r in rows])
    top = np.argsort(-(m @ q), kind="stable")[:K]
    return [rows[i][0] for i in top]


def timed(fn: Any, args_list: list[Any]) -> tuple[list[float], list[Any]]:
    lat, out = [], []
    for a in args_list:
        t = time.perf_counter()
        out.append(fn(a))
        lat.append(time.perf_counter() - t)
    return lat, out


def reranker_overhead(svc: FeedService, sample: list[str]) -> dict[str, Any]:
    """The re-ranker's added latency, timed interleaved (each user's similarity feed, then its ranked
    feed) so both see the same cache state; separate runs differ by more than the overhead."""
    lat: dict[str, list[float]] = {"similar": [], "ranked": []}
    for u in sample:
        methods: tuple[MethodName, ...] = ("similar", "ranked")
        for method in methods:
            t = time.perf_counter()
            svc.feed(u, k=K, days=WINDOW, path="exact", at=NOW, method=method)
            lat[method].append(time.perf_counter() - t)
    out = {m: percentiles_ms(v) for m, v in lat.items()}
    return out | {"added_p50_ms": round(out["ranked"]["p50_ms"] - out["similar"]["p50_ms"], 3)}


def recall(got: list[list[str]], ref: list[Ref]) -> float:
    """Share of numpy's top K a path returned, counting a post tied with the K-th (Ref) as found."""
    return round(
        float(np.mean([len(set(g) & r.accept) / max(len(r.ids), 1) for g, r in zip(got, ref, strict=True)])),
        4,
    )


def ingest_paths(svc: FeedService, data: Data, shared: Path) -> dict[str, Any]:
    """Throughput of the service's upsert path (HNSW maintained) and with encoding."""
    out: dict[str, Any] = {}
    rng = np.random.default_rng(3)
    posts = [
        PostIn(
            id=f"ing{i}",
            community=f"c{int(rng.integers(COMMUNITIES)):03d}",
            title=f"ingest {i}",
            created_at=NOW - timedelta(minutes=i),
            embedding=data.vecs[i].tolist(),
        )
        for i in range(2000)
    ]
    t = time.perf_counter()
    for lo in range(0, len(posts), 500):
        svc.ingest_posts(posts[lo : lo + 500])
    out["upsert_precomputed_posts_per_s"] = round(len(posts) / (time.perf_counter() - t), 1)
    titles_csv = shared / "petitions_titles" / "petition_data.csv"
    if titles_csv.is_file():
        from hanseek.feed.evalsets.sources import petitions_titles

        real = petitions_titles(titles_csv)[:256]
        enc_posts = [
            PostIn(
                id=f"enc{i}",
                community="c000",
                title=p.title,
                category=p.category,
                created_at=NOW - timedelta(minutes=i),
            )
            for i, p in enumerate(real)
        ]
        svc.ingest_posts(enc_posts[:8])  # load the model outside the timing
        t = time.perf_counter()
        for lo in range(8, len(enc_posts), 64):
            svc.ingest_posts(enc_posts[lo : lo + 64])
        out["upsert_with_encoding_posts_per_s"] = round((len(enc_posts) - 8) / (time.perf_counter() - t), 1)
        out["encoded_texts"] = "petition titles (median 23 characters) + category"
    # Take them out again, so the brute-force reference (the generator's posts) stays complete.
    t = time.perf_counter()
    gone = _delete_extra(svc)
    out["delete_posts_per_s"] = round(gone / (time.perf_counter() - t), 1) if gone else None
    return out


def _delete_extra(svc: FeedService) -> int:
    with svc.db.connection() as conn:
        ids = [r[0] for r in conn.execute("SELECT id FROM posts WHERE id LIKE 'ing%' OR id LIKE 'enc%'")]
    return len(svc.delete_posts(ids)) if ids else 0


async def _http_load(base: str, paths: list[str], concurrency: int) -> tuple[list[float], float, int]:
    import httpx

    lat: list[float] = []
    errors = 0
    sem = asyncio.Semaphore(concurrency)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=60) as client:

        async def one(p: str) -> None:
            nonlocal errors
            async with sem:
                t = time.perf_counter()
                r = await client.get(p)
                lat.append(time.perf_counter() - t)
                if r.status_code != 200:
                    errors += 1

        started = time.perf_counter()
        await asyncio.gather(*(one(p) for p in paths))
        wall = time.perf_counter() - started
    return lat, wall, errors


WRK_SCRIPT = Path(__file__).with_name("wrk_paths.lua")


def _wrk(base: str, paths: list[str], concurrency: int, seconds: int) -> dict[str, Any]:
    """One closed-loop wrk run (C, one thread: it leaves the cores to the server) over `paths`."""
    with tempfile.NamedTemporaryFile("w", suffix=".txt") as f:
        f.write("\n".join(paths) + "\n")
        f.flush()
        cmd = ["wrk", "-t1", f"-c{concurrency}", f"-d{seconds}s", "-s", str(WRK_SCRIPT), base]
        out = subprocess.run(cmd, env=os.environ | {"WRK_PATHS": f.name}, capture_output=True, text=True)
    if out.returncode:
        raise RuntimeError(f"wrk failed: {out.stderr.strip()}")
    j = json.loads(out.stdout.strip().splitlines()[-1])
    return {
        "p50_ms": j["p50_us"] / 1000,
        "p95_ms": j["p95_us"] / 1000,
        "p99_ms": j["p99_us"] / 1000,
        "n": j["requests"],
        "errors": j["socket_errors"] + j["non_2xx"],
        "requests_per_s": round(j["requests"] / j["duration_us"] * 1e6, 1),
    }


def http_bench(
    data_dir: Path, users: list[str], requests: int, concurrency: int, workers: int = 1
) -> dict[str, Any]:
    import httpx

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = os.environ | {"HANSEEK_DATA_DIR": str(data_dir), "HANSEEK_LOAD_DEMO": "false"}
    cmd = [sys.executable, "-c", "from hanseek.cli import main; main()", "serve", "--no-demo"]
    cmd += ["--port", str(port), "--workers", str(workers)]
    log_path = data_dir / f"serve-{workers}.log"
    with open(log_path, "wb") as log_file:
        proc = subprocess.Popen(cmd, env=env, stdout=log_file, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        t = time.perf_counter()
        deadline = t + 600
        loaded = False
        ready_pids: set[int] = set()
        while time.perf_counter() < deadline and not loaded:
            time.sleep(0.5)
            try:
                r = httpx.get(f"{base}/feeds-index", timeout=5)
                if r.status_code == 200 and r.json().get("loaded"):
                    ready_pids.add(int(r.json().get("pid", 0)))
                loaded = len(ready_pids) >= workers  # every worker has its own index to load
            except httpx.HTTPError:
                pass
        if not loaded:
            tail = log_path.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"the HTTP server did not load its index in time; its log ends:\n{tail}")
        ready_s = time.perf_counter() - t
        rng = np.random.default_rng(11)
        paths = [
            f"/users/{users[int(rng.integers(len(users)))]}/feed?k={K}&days={WINDOW}&at={NOW.isoformat()}".replace(
                "+", "%2B"
            )
            for _ in range(requests)
        ]
        out: dict[str, Any] = {}
        wrk = shutil.which("wrk") is not None  # a C load generator: far less of the two cores than httpx
        for method in ("similar", "ranked"):
            mp = [p + f"&method={method}" for p in paths]
            # Warm-up at full concurrency: the first concurrent burst after start-up was measured
            # slower than a later one (each worker's caches, connections, first ranker poll).
            asyncio.run(_http_load(base, mp[:300], concurrency))
            seq, _, seq_err = asyncio.run(_http_load(base, mp[:300], 1))
            # Three runs, the median one reported: with the client on the same two cores, one run's
            # requests/s varied by ±40% between otherwise identical benchmark runs.
            runs = [asyncio.run(_http_load(base, mp, concurrency)) for _ in range(3)]
            rps = [len(mp) / wall for _, wall, _ in runs]
            mid = int(np.argsort(rps)[1])
            lat = runs[mid][0]
            key = "concurrent_httpx" if wrk else "concurrent"
            out[method] = {
                "sequential": percentiles_ms(seq) | {"errors": seq_err},
                key: percentiles_ms(lat)
                | {
                    "concurrency": concurrency,
                    "errors": sum(e for _, _, e in runs),
                    "requests_per_s": round(rps[mid], 1),
                    "requests_per_s_runs": [round(r, 1) for r in rps],
                },
            }
            if wrk:
                wruns = [_wrk(base, mp, concurrency, 10) for _ in range(3)]
                wmid = wruns[int(np.argsort([r["requests_per_s"] for r in wruns])[1])]
                out[method]["concurrent"] = wmid | {
                    "concurrency": concurrency,
                    "client": "wrk, 1 thread, 10 s a run, median of 3 runs",
                    "requests_per_s_runs": [r["requests_per_s"] for r in wruns],
                    "errors": sum(r["errors"] for r in wruns),
                }
        return {
            "server": f"hanseek serve --workers {workers} in a subprocess"
            + (" (one SO_REUSEPORT listener per worker)" if workers > 1 else "")
            + "; clients on loopback, same machine: httpx async (sequential"
            + (", concurrent_httpx), wrk (concurrent)" if wrk else ", concurrent)"),
            "start_and_index_load_seconds": round(ready_s, 1),
            **out,
        }
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--posts", type=int, default=1_000_000)
    ap.add_argument("--users", type=int, default=400)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--fetch-all-queries", type=int, default=30)
    ap.add_argument("--broad-users", type=int, default=20, help="users with broad filters (approximate path)")
    ap.add_argument("--broad-queries", type=int, default=60)
    ap.add_argument(
        "--data",
        choices=["clustered", "uniform", "real", "real-pairs"],
        default="clustered",
        help="real: the encoder's vectors of real texts from --shared-data (at most ~275k posts); "
        "real-pairs: normalised sums of two of them (any size)",
    )
    ap.add_argument(
        "--hnsw-m", type=int, default=16, help="HNSW m for a fresh load (a kept database: feed hnsw-index)"
    )
    ap.add_argument("--keep", type=Path, default=None, help="keep/reuse the loaded database here")
    ap.add_argument("--http-requests", type=int, default=1500)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="HTTP server processes to try")
    ap.add_argument("--shared-data", type=Path, default=Path("../shared/data"))
    args = ap.parse_args()

    root = args.keep or Path(tempfile.mkdtemp(prefix="hanseek-bench-feed-"))
    root.mkdir(parents=True, exist_ok=True)
    settings = Settings(data_dir=root, database_url=None, pool_min_size=1, pool_max_size=4)
    settings.ensure_dirs()
    marker = root / f"loaded-{args.posts}-{args.data}-{args.users}"
    result: dict[str, Any] = {
        "bench": "feed",
        "posts": args.posts,
        "communities": COMMUNITIES,
        "days": DAYS,
        "window_days": WINDOW,
        "k": K,
        "dim": DIM,
        "data": args.data,
        "users": args.users,
    }
    data = Data(args.posts, args.data, shared=args.shared_data)
    log(f"generating {args.posts:,} vectors ({args.data})")
    data.materialize()
    db = Database.open(settings)
    try:
        db.migrate()
        fs = FeedSettings(memory_index=False)
        from functools import cache

        from hanseek.encoders.registry import load_text_encoder

        writer = FeedService(
            db, settings=fs, follow=False, encoder=cache(lambda: load_text_encoder(Settings()))
        )
        if not marker.exists():
            result["load"] = load_posts(db, data, hnsw_m=args.hnsw_m)
            t = time.perf_counter()
            users = make_users(writer, data, args.users)
            result["load"]["users_and_events_seconds"] = round(time.perf_counter() - t, 1)
            marker.write_text("ok")
        else:
            users = [f"u{u}" for u in range(args.users)]
            result["load"] = "reused from an earlier run"
            _delete_extra(writer)
        with db.connection() as conn:
            row = conn.execute(
                "SELECT count(*), pg_size_pretty(pg_total_relation_size('posts')) FROM posts"
            ).fetchone()
        result["table"] = {"rows": row[0], "size": row[1]} if row else {}
        from hanseek.feed.hnsw import current_params

        with db.connection() as conn:
            graph = current_params(conn)
        result["hnsw_graph"] = dataclasses.asdict(graph) if graph else None  # `hanseek feed hnsw-index`

        log("loading the in-process index")
        t = time.perf_counter()
        svc = FeedService(db, settings=FeedSettings(), load_in_background=False, follow=False)
        result["index_load_seconds"] = round(time.perf_counter() - t, 1)
        if svc.warmed is not None:  # part of the start-up above (FeedSettings.warm_cache_days)
            result["cache_warm"] = dataclasses.asdict(svc.warmed)
        rng = np.random.default_rng(5)
        sample = [users[int(rng.integers(len(users)))] for _ in range(args.queries)]
        ref = {u: brute_force(db, data, u) for u in set(sample)}
        refs = [ref[u] for u in sample]
        est = [
            svc.feed(u, k=K, days=WINDOW, path="exact", at=NOW).estimated_candidates or 0 for u in sample[:50]
        ]
        result["candidates_per_query"] = {"median": int(np.median(est)), "max": int(max(est))}

        # First, in the cache state the start-up warming leaves (as the exact similarity feed just
        # after it): the SQL and HNSW paths below read other pages into the buffers.
        log("ranked feed (hand-tuned blend: no trained model in this database)")
        svc.feed(sample[0], k=K, days=WINDOW, at=NOW, method="ranked")
        lat_r, outs_r = timed(lambda u: svc.feed(u, k=K, days=WINDOW, at=NOW, method="ranked"), sample)
        ranked = percentiles_ms(lat_r)
        result["ranked_feed"] = ranked | {
            "ranker": outs_r[0].ranker,
            "union_sources": "similar 60 + latest 60 + popular 40 + 3 recent reads x 20",
        }

        paths: dict[str, Any] = {}
        narrow_paths: tuple[PathName, ...] = ("exact", "exact-sql", "approx")
        for path in narrow_paths:
            log(f"service calls, path={path}")
            figures, outs = similar_figures(svc, sample, refs, WINDOW, path)
            paths[str(outs[0].path)] = figures
        log("service calls, path=approx with a wider HNSW scan")
        with scan_width(svc, 1000, 400_000):
            paths["approx-hnsw (ef_search 1000, max_scan_tuples 400k)"], _ = similar_figures(
                svc, sample[:50], refs[:50], WINDOW, "approx", warm_up=False
            )
        log("fetch-all baseline")
        few = sample[: args.fetch_all_queries]
        lat, fetched = timed(lambda u: fetch_all(db, u), few)
        paths["fetch-all-into-python (baseline)"] = percentiles_ms(lat) | {
            "recall@20_vs_numpy": recall(fetched, refs[: len(few)])
        }
        base = paths["fetch-all-into-python (baseline)"]["p50_ms"]
        for v in paths.values():
            v["speedup_vs_fetch_all_p50"] = round(base / v["p50_ms"], 1)
        result["feed_service_call"] = paths
        result["ranked_feed"]["added_p50_ms_vs_exact_similar"] = round(
            ranked["p50_ms"] - paths["exact-memory"]["p50_ms"], 3
        )
        log("re-ranker overhead, interleaved with the similarity feed")
        result["ranked_feed"]["interleaved"] = reranker_overhead(svc, sample)

        # The approximate path is what `auto` picks for broad filters only (more candidates than the
        # in-process index scans, `memory_max_rows`; without it, more than `exact_max_candidates`):
        # measure it there, against numpy and against the exact paths forced on the same queries.
        log(f"broad filters: users in {BROAD_COMMUNITIES} communities, {BROAD_DAYS}-day window")
        broad_marker = root / f"broad-{args.posts}-{args.data}-{args.broad_users}"
        if not broad_marker.exists():
            make_users(
                writer,
                data,
                args.broad_users,
                prefix="broad",
                communities=(BROAD_COMMUNITIES, BROAD_COMMUNITIES + 1),
                seed=17,
            )
            broad_marker.write_text("ok")
        broad_users = [f"broad{u}" for u in range(args.broad_users)]
        bref = {u: brute_force(db, data, u, days=BROAD_DAYS) for u in broad_users}
        bsample = [broad_users[i % len(broad_users)] for i in range(args.broad_queries)]
        brefs = [bref[u] for u in bsample]
        bpaths: dict[str, Any] = {}
        broad_paths: tuple[PathName, ...] = ("auto", "exact", "exact-sql", "approx")
        for path in broad_paths:
            log(f"broad: path={path}")
            figures, outs = similar_figures(svc, bsample, brefs, BROAD_DAYS, path)
            bpaths[f"{path} -> {outs[0].path}" if path == "auto" else str(outs[0].path)] = figures
        bpaths |= ef_sweep(svc, bsample, brefs, BROAD_DAYS)
        result["broad_filters"] = {
            "communities_per_user": BROAD_COMMUNITIES,
            "window_days": BROAD_DAYS,
            "candidates_per_query": int(np.median([o.estimated_candidates or 0 for o in outs])),
            "hnsw_ef_search": svc.settings.hnsw_ef_search,
            "hnsw_max_scan_tuples": svc.settings.hnsw_max_scan_tuples,
            "paths": bpaths,
        }

        log("focused readers (users whose reads share 2 topics)")
        result["focused_readers"] = focused_readers(
            writer, svc, data, root, args.broad_users, args.broad_queries
        )

        svc.close()

        log("ingest paths")
        result["ingest"] = {
            "copy_precomputed_posts_per_s": result["load"].get("copy_posts_per_s")
            if isinstance(result["load"], dict)
            else None
        } | ingest_paths(writer, data, args.shared_data)
        writer.close()
        if args.http_requests:
            log("HTTP end to end")
            for workers in args.workers:
                key = f"http_{workers}_process" + ("es" if workers > 1 else "")
                try:
                    result[key] = http_bench(root, users, args.http_requests, args.concurrency, workers)
                except Exception as exc:  # report what was measured so far instead of nothing
                    result[key] = {"error": f"{type(exc).__name__}: {exc}"}
        log("first requests after a restart, with and without cache warming")
        db.close()
        result["after_restart"] = restart_figures(settings, sample)
    finally:
        close_db(db, settings, discard=args.keep is None)
    emit(result)


if __name__ == "__main__":
    main()
