"""Sustained mixed load on a real `hanseek serve` over loopback: the highest rate it holds, then 80% of it.

A child `hanseek serve` (its own temp data dir, embedded PostgreSQL) is seeded with synthetic posts
(clustered 384-d vectors in communities), users with memberships and event histories, and a few
captioned images. The client is open-loop (asyncio + httpx): requests are *scheduled* at a constant
rate and latency is counted from the scheduled time, so a server that falls behind is charged for
the queue it builds (no coordinated omission). The mix:

    feed     GET  /users/{u}/feed?k=20           personalised feed (in-process exact index)
    latest   GET  /feeds/latest?user_id=u&k=20   baseline feed with the same filters
    events   POST /events                        1-3 reads/likes/comments (profile + counters)
    search   GET  /images/search?q=...&k=10      text -> image search (e5 encodes the query)

Max rate: stages of --stage-seconds at rising rates (doubling, then bisection); a stage "holds" when
it completes ≥95% of its schedule on time with no errors and p99 ≤ --hold-p99-ms. Then one run of
--duration seconds at 80% of the max, reporting throughput, p50/p99 overall and per kind, errors,
and the server's RSS before and after. The client shares the machine's cores with the server; the
figures are for the pair, on loopback only. Stages last 20 s: with 8-s stages a rate near capacity
"held" before the queue had grown (measured: 150 req/s held for 8 s, then 80% of the 187.5 found
that way ran at 120 req/s with p99 7.7 s over 60 s).

    python -m bench.load [--duration 60] [--stage-seconds 20] [--posts 10000] [--users 300]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import random
import shutil
import statistics
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import httpx
import numpy as np
import psutil

from bench._serve import ServeProcess
from bench._util import emit

DIM = 384
KINDS: tuple[Literal["read", "like", "comment"], ...] = ("read", "read", "like", "comment")
MIX = {"feed": 0.55, "latest": 0.15, "events": 0.20, "search": 0.10}
QUERIES = [
    "바다",
    "산과 하늘",
    "고양이",
    "도시의 밤",
    "꽃",
    "자동차",
    "음식 사진",
    "눈 내린 풍경",
    "강아지",
    "책",
]
CAPTIONS = [
    "바닷가 풍경",
    "푸른 하늘과 산",
    "고양이 사진",
    "도시의 야경",
    "봄꽃",
    "빨간 자동차",
    "맛있는 음식",
    "겨울 눈",
]


# -- seeding -------------------------------------------------------------------------------------
@dataclass
class Workload:
    users: list[str]
    posts: list[str]
    mix: dict[str, float]
    seed_seconds: float


def seed_database(data_dir: Path, n_posts: int, n_users: int, n_comm: int, rng: np.random.Generator) -> float:
    """Posts (binary COPY), memberships and event histories, written before the server starts."""
    from hanseek.config import Settings
    from hanseek.feed import events as ev
    from hanseek.feed.models import EventIn, PostIn
    from hanseek.feed.posts import bulk_insert_posts
    from hanseek.feed.settings import FeedSettings
    from hanseek.store.db import Database

    t = time.perf_counter()
    settings = Settings(data_dir=data_dir)
    settings.ensure_dirs()
    db = Database.open(settings)
    try:
        db.migrate()
        centers = rng.standard_normal((n_comm, DIM))
        comm = rng.integers(0, n_comm, n_posts)
        vecs = centers[comm] + 1.5 * rng.standard_normal((n_posts, DIM))
        vecs = (vecs / np.linalg.norm(vecs, axis=1, keepdims=True)).astype(np.float32)
        now = datetime.now(UTC)
        ages = rng.uniform(0, 60, n_posts)
        posts = [
            PostIn(
                id=f"p{i}",
                community=f"c{comm[i]:02d}",
                title=f"게시글 {i}",
                body="부하 시험용 글",
                created_at=now - timedelta(days=float(ages[i])),
                likes=int(rng.integers(0, 50)),
                comments=int(rng.integers(0, 10)),
            )
            for i in range(n_posts)
        ]
        for start in range(0, n_posts, 5000):
            with db.connection() as conn:
                bulk_insert_posts(conn, posts[start : start + 5000], vecs[start : start + 5000])
        fs = FeedSettings()
        with db.connection() as conn:
            for u in range(n_users):
                picks = rng.choice(n_comm, size=3, replace=False)
                ev.set_memberships(conn, f"u{u}", [f"c{c:02d}" for c in picks], replace=True)
            history = [
                EventIn(
                    user_id=f"u{u}",
                    post_id=f"p{int(rng.integers(0, n_posts))}",
                    kind=KINDS[int(rng.integers(0, len(KINDS)))],
                    at=now - timedelta(days=float(rng.uniform(0, 30))),
                )
                for u in range(n_users)
                for _ in range(10)
            ]
            ev.record_events(conn, history, fs)
    finally:
        db.close()
    return time.perf_counter() - t


def _image(seed: int) -> bytes:
    from PIL import Image

    r = random.Random(seed)
    img = Image.effect_mandelbrot((160, 120), (r.uniform(-2, -1), -1, r.uniform(0.2, 1), 1), 40 + seed)
    img = img.convert("RGB").resize((160, 120))
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=85)
    return buf.getvalue()


def seed_images(base_url: str, n: int = 24) -> bool:
    """Captioned images for the search share of the mix; False when the image API cannot serve."""
    files = [("files", (f"img{i}.jpg", _image(i), "image/jpeg")) for i in range(n)]
    data = {"caption": [CAPTIONS[i % len(CAPTIONS)] for i in range(n)]}
    try:
        r = httpx.post(f"{base_url}/images", files=files, data=data, timeout=300)
    except httpx.HTTPError:
        return False
    return r.status_code in (200, 201)


# -- load ----------------------------------------------------------------------------------------
@dataclass
class Stage:
    rate: float
    seconds: float
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    shed: int = 0  # not sent: the client already had --max-inflight requests outstanding
    scheduled: int = 0
    elapsed: float = 0.0

    @property
    def ok(self) -> int:
        return sum(len(v) for v in self.latencies.values())

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    def all_latencies(self) -> list[float]:
        return [x for v in self.latencies.values() for x in v]

    def summary(self) -> dict[str, Any]:
        lat = self.all_latencies()
        out: dict[str, Any] = {
            "target_rps": round(self.rate, 1),
            "achieved_rps": round(self.ok / self.elapsed, 1) if self.elapsed else 0.0,
            "requests": self.ok,
            "errors": self.error_count,
            "shed": self.shed,
            **_pcts(lat),
        }
        out["by_kind"] = {k: {"n": len(v), **_pcts(v)} for k, v in sorted(self.latencies.items())}
        if self.errors:
            out["errors_by_kind"] = dict(self.errors)
        return out

    def holds(self, p99_ms: float) -> bool:
        lat = self.all_latencies()
        return (
            bool(lat)
            and self.error_count == 0
            and self.shed == 0
            and self.ok >= 0.95 * self.scheduled
            and _pcts(lat)["p99_ms"] <= p99_ms
        )


def _pcts(samples: list[float]) -> dict[str, float]:
    if not samples:
        return {"p50_ms": 0.0, "p99_ms": 0.0}
    s = sorted(samples)
    return {
        "p50_ms": round(statistics.median(s) * 1000, 2),
        "p99_ms": round(s[min(len(s) - 1, round(0.99 * (len(s) - 1)))] * 1000, 2),
    }


class Traffic:
    def __init__(self, wl: Workload, seed: int) -> None:
        self.wl = wl
        self.rng = random.Random(seed)
        self.kinds = list(wl.mix)
        self.weights = list(wl.mix.values())
        self.n = 0

    def next(self) -> tuple[str, str, str, dict[str, Any]]:
        """(kind, method, url, request kwargs)."""
        kind = self.rng.choices(self.kinds, self.weights)[0]
        user = self.rng.choice(self.wl.users)
        if kind == "feed":
            return kind, "GET", f"/users/{user}/feed", {"params": {"k": 20}}
        if kind == "latest":
            return kind, "GET", "/feeds/latest", {"params": {"user_id": user, "k": 20}}
        if kind == "search":
            return kind, "GET", "/images/search", {"params": {"q": self.rng.choice(QUERIES), "k": 10}}
        self.n += 1
        events = [
            {
                "user_id": user,
                "post_id": self.rng.choice(self.wl.posts),
                "kind": self.rng.choice(["read", "read", "like", "comment"]),
                "id": f"load-{id(self)}-{self.n}-{i}",
            }
            for i in range(self.rng.randint(1, 3))
        ]
        return kind, "POST", "/events", {"json": {"events": events}}


async def run_stage(
    client: httpx.AsyncClient, traffic: Traffic, rate: float, seconds: float, max_inflight: int
) -> Stage:
    stage = Stage(rate, seconds)
    loop = asyncio.get_running_loop()
    inflight = 0
    tasks: list[asyncio.Task[None]] = []

    async def one(kind: str, method: str, url: str, kw: dict[str, Any], scheduled: float) -> None:
        nonlocal inflight
        try:
            r = await client.request(method, url, **kw)
            ok = r.status_code < 400
        except httpx.HTTPError:
            ok = False
        finally:
            inflight -= 1
        if ok:
            stage.latencies[kind].append(loop.time() - scheduled)
        else:
            stage.errors[kind] += 1

    start = loop.time()
    n = int(rate * seconds)
    stage.scheduled = n
    for i in range(n):
        scheduled = start + i / rate
        delay = scheduled - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        kind, method, url, kw = traffic.next()
        if inflight >= max_inflight:
            stage.shed += 1
            continue
        inflight += 1
        tasks.append(asyncio.create_task(one(kind, method, url, kw, scheduled)))
    await asyncio.gather(*tasks)
    stage.elapsed = loop.time() - start
    return stage


def _server_processes(pid: int) -> list[psutil.Process]:
    """`hanseek serve` and, with --workers, its worker processes (never the database's)."""
    root = psutil.Process(pid)
    out = [root]
    for child in root.children(recursive=True):
        with contextlib.suppress(psutil.Error):
            if "postgres" not in child.name():
                out.append(child)
    return out


def _rss_mb(pid: int) -> dict[str, float]:
    """The hanseek process(es), summed."""
    total = 0
    for p in _server_processes(pid):
        with contextlib.suppress(psutil.Error):
            total += p.memory_info().rss
    return {"hanseek_mb": round(total / 2**20, 1)}


def _cpu_seconds(srv: ServeProcess) -> dict[str, float]:
    """CPU time used so far by the server, its database (postmaster + backends) and this client.
    Per request, it is what the mix costs whatever else runs on the machine: 2 cores / cost = the
    rate two otherwise idle cores could carry."""
    from hanseek.store.server import running_pid

    def used(p: psutil.Process) -> float:
        t = p.cpu_times()
        return float(t.user + t.system)

    pg = 0.0
    pid = running_pid(srv.pgdata)
    if pid is not None:
        root = psutil.Process(pid)
        for p in [root, *root.children()]:
            with contextlib.suppress(psutil.Error):
                pg += used(p)
    app = 0.0
    for p in _server_processes(srv.pid):
        with contextlib.suppress(psutil.Error):
            app += used(p)
    return {"hanseek": app, "postgres": pg, "client": used(psutil.Process())}


def _pg_rss_mb(pgdata: Path) -> float:
    from hanseek.store.server import running_pid

    pid = running_pid(pgdata)
    if pid is None:
        return 0.0
    root = psutil.Process(pid)
    # Shared buffers are counted once per backend that touched them: an upper bound, not a sum.
    return round(sum(p.memory_info().rss for p in [root, *root.children()]) / 2**20, 1)


async def measure(args: argparse.Namespace, srv: ServeProcess, wl: Workload) -> dict[str, Any]:
    limits = httpx.Limits(max_connections=args.max_inflight, max_keepalive_connections=args.max_inflight)
    async with httpx.AsyncClient(base_url=srv.base_url, timeout=30.0, limits=limits) as client:
        traffic = Traffic(wl, seed=1)
        # Warm-up: lazy services (feed index, e5 for search queries, image model) load here.
        warm = await run_stage(client, traffic, args.start_rate, args.stage_seconds, args.max_inflight)
        stages: list[dict[str, Any]] = []
        lo, hi = 0.0, None
        rate = float(args.start_rate)
        if args.rate:  # a fixed rate: no search for the maximum
            hi, rate = args.rate / 0.8, float("inf")
        while hi is None and rate <= args.max_rate:
            st = await run_stage(client, traffic, rate, args.stage_seconds, args.max_inflight)
            stages.append({**st.summary(), "holds": st.holds(args.hold_p99_ms)})
            if st.holds(args.hold_p99_ms):
                lo, rate = rate, rate * 2
            else:
                hi = rate
            await asyncio.sleep(1.0)  # let the queue drain between stages
        for _ in range(args.bisect_steps if hi is not None and not args.rate else 0):
            assert hi is not None
            mid = (lo + hi) / 2
            st = await run_stage(client, traffic, mid, args.stage_seconds, args.max_inflight)
            stages.append({**st.summary(), "holds": st.holds(args.hold_p99_ms)})
            if st.holds(args.hold_p99_ms):
                lo = mid
            else:
                hi = mid
            await asyncio.sleep(1.0)
        max_rate = lo
        sustained_rate = args.rate or max(1.0, 0.8 * max_rate)
        await asyncio.sleep(2.0)
        before = {**_rss_mb(srv.pid), "postgres_mb": _pg_rss_mb(srv.pgdata)}
        cpu0 = _cpu_seconds(srv)
        st = await run_stage(client, traffic, sustained_rate, args.duration, args.max_inflight)
        cpu1 = _cpu_seconds(srv)
        await asyncio.sleep(2.0)
        after = {**_rss_mb(srv.pid), "postgres_mb": _pg_rss_mb(srv.pgdata)}
    n = max(st.ok + st.error_count, 1)
    cpu_ms = {k: round((cpu1[k] - cpu0[k]) * 1000 / n, 2) for k in cpu0}
    server_ms = cpu_ms["hanseek"] + cpu_ms["postgres"]
    return {
        "warmup": warm.summary(),
        "rate_search": stages,
        "max_rate_rps": round(max_rate, 1),
        "sustained": {
            **st.summary(),
            "seconds": args.duration,
            "p99_under_100ms": st.summary()["p99_ms"] < 100.0,
        },
        "cpu_ms_per_request": cpu_ms,
        # What two otherwise idle cores could carry (client elsewhere): 2 core-seconds per second over
        # the server's CPU per request, but at most one core's worth for the single hanseek process
        # (its Python code holds the GIL; the database runs in its own processes).
        "estimated_capacity_rps_two_idle_cores": round(
            min(2000 / server_ms, 1000 / max(cpu_ms["hanseek"], 1e-3)), 1
        )
        if server_ms > 0
        else None,
        "load_average_1m": round(psutil.getloadavg()[0], 2),
        "rss_before": before,
        "rss_after": after,
        "rss_growth_mb": round(after["hanseek_mb"] - before["hanseek_mb"], 1),
    }


def _error_lines(log: str, limit: int = 5) -> list[str]:
    """Why the server logged a traceback, if it did: each JSON record that carries one (its message and
    the exception's last line), and each plain-text traceback's final line."""
    out: list[str] = []
    lines = log.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("{") and '"exc"' in line:
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            exc = str(rec.get("exc", "")).strip().splitlines()
            out.append(f"{rec.get('level')} {rec.get('msg', '')} | {exc[-1] if exc else ''}"[:300])
        elif line.startswith("Traceback"):
            end = next((j for j in range(i + 1, len(lines)) if not lines[j].startswith(" ")), None)
            out.append(lines[end][:300] if end is not None else "Traceback (truncated)")
    return out[:limit]


def parse_mix(text: str) -> dict[str, float]:
    mix = {}
    for part in text.split(","):
        kind, _, share = part.partition("=")
        if kind.strip() not in MIX:
            raise SystemExit(f"unknown request kind {kind!r} in --mix (known: {', '.join(MIX)})")
        mix[kind.strip()] = float(share or 1)
    return mix


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=float, default=60.0, help="Seconds of the run at 80%% of the max")
    ap.add_argument("--stage-seconds", type=float, default=20.0, help="Seconds per max-rate stage")
    ap.add_argument("--posts", type=int, default=10_000)
    ap.add_argument("--users", type=int, default=300)
    ap.add_argument("--communities", type=int, default=20)
    ap.add_argument("--start-rate", type=float, default=25.0)
    ap.add_argument("--max-rate", type=float, default=5_000.0)
    ap.add_argument("--bisect-steps", type=int, default=3)
    ap.add_argument("--rate", type=float, default=0.0, help="Run --duration s at this rate (no max search)")
    ap.add_argument("--hold-p99-ms", type=float, default=250.0, help="A stage holds with p99 up to this")
    ap.add_argument("--max-inflight", type=int, default=256)
    ap.add_argument(
        "--mix",
        default=",".join(f"{k}={v}" for k, v in MIX.items()),
        help="Request kinds and their shares, e.g. feed=1 (one kind alone) or feed=0.7,events=0.3",
    )
    ap.add_argument("--keep", action="store_true", help="Keep the temp data dir")
    ap.add_argument("--workers", type=int, default=1, help="`hanseek serve --workers N` server processes")
    ap.add_argument(
        "--text-backend",
        default=None,
        choices=["torch", "onnx", "onnx-int8"],
        help="HANSEEK_TEXT_BACKEND of the server (search queries are encoded by it); default: the server's",
    )
    args = ap.parse_args()

    rng = np.random.default_rng(0)
    root = Path(tempfile.mkdtemp(prefix="hanseek-load-"))
    data_dir = root / "data"
    try:
        seed_s = seed_database(data_dir, args.posts, args.users, args.communities, rng)
        env = {"HANSEEK_TEXT_BACKEND": args.text_backend} if args.text_backend else None
        with ServeProcess(data_dir, env=env, args=("--workers", str(args.workers))) as srv:
            mix = parse_mix(args.mix)
            search = mix.get("search", 0) > 0 and seed_images(srv.base_url)
            if not search:
                mix.pop("search", None)
            wl = Workload(
                users=[f"u{i}" for i in range(args.users)],
                posts=[f"p{i}" for i in range(args.posts)],
                mix=mix,
                seed_seconds=seed_s,
            )
            result = asyncio.run(measure(args, srv, wl))
            log = srv.log_text()
        result = {
            "benchmark": "load",
            "data": {
                "posts": args.posts,
                "users": args.users,
                "communities": args.communities,
                "events_seeded": args.users * 10,
                "images": 24 if search else 0,
                "seed_seconds": round(seed_s, 1),
            },
            "server_processes": args.workers,
            "text_backend": args.text_backend or "default (torch)",
            "mix": wl.mix,
            "hold_rule": f">=95% of schedule on time, 0 errors, p99 <= {args.hold_p99_ms} ms",
            **result,
            "server_tracebacks": log.count("Traceback"),
            "server_errors": _error_lines(log),
        }
        emit(result)
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
