"""Store benchmark: binary COPY load, and exact vs HNSW filtered cosine search in the embedded PostgreSQL.

100k random 384-d vectors, each with a community (200) and a date (uniform over 180 days). Each query
filters to 10 random communities and a random 30-day window (~830 candidates; the "wide" scenario:
50 communities and 90 days, ~12.5k; "unfiltered": the whole table, a quarter as many queries).
Paths: exact (B-tree prefilter + exact distance), HNSW as pgvector runs it by default (no iterative
scan: the filter is applied to ef_search candidates), HNSW with iterative scans (relaxed order,
re-sorted), and the planner helper (`search`). Recall@10 is against the exact path, which is
itself checked against numpy brute force. Latency ratios are to the exact path in the same run.

    python -m bench.store [--rows 100000] [--queries 60] [--data uniform|clustered]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from bench._util import emit, percentiles_ms
from hanseek.config import Settings
from hanseek.store.bulk import copy_rows
from hanseek.store.db import Database
from hanseek.store.server import stop_server
from hanseek.store.vectors import Filters, Hit, create_hnsw_index, exact_search, hnsw_search, search

DIM, COMMUNITIES, DAYS, K = 384, 200, 180, 10
T0 = datetime(2024, 1, 1, tzinfo=UTC)
# (communities, days, share of --queries): "unfiltered" shows HNSW's own recall ceiling on this data
SCENARIOS = {"narrow": (10, 30, 1.0), "wide": (50, 90, 1.0), "unfiltered": (COMMUNITIES, DAYS, 0.25)}


def log(msg: str) -> None:
    print(f"[bench.store] {msg}", file=sys.stderr, flush=True)


TOPICS = 2000
# Noise scale giving cos(vector, its topic centre) ~= 1 / sqrt(1 + s^2 * DIM) ~= 0.6
TOPIC_NOISE = float(np.sqrt((1 / 0.6**2 - 1) / DIM))


class Data:
    """`uniform`: i.i.d. Gaussian directions, no structure at all (HNSW's worst case). `clustered`:
    each vector is one of 2000 random topic centres plus noise, closer to how text embeddings
    spread; queries are drawn the same way."""

    def __init__(self, n: int, kind: str = "uniform", seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.rng = rng
        self.kind = kind
        self.centres = rng.standard_normal((TOPICS, DIM), dtype=np.float32)
        self.centres /= np.linalg.norm(self.centres, axis=1, keepdims=True)
        self.vectors = self._draw(n)
        self.community = rng.integers(0, COMMUNITIES, n)
        self.seconds = rng.integers(0, DAYS * 86400, n)

    def _draw(self, n: int) -> np.ndarray:
        noise = self.rng.standard_normal((n, DIM), dtype=np.float32)
        if self.kind == "clustered":
            v = self.centres[self.rng.integers(0, TOPICS, n)] + TOPIC_NOISE * noise
        else:
            v = noise
        return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)

    def rows(self) -> Any:
        for i in range(len(self.vectors)):
            yield (i, int(self.community[i]), T0 + timedelta(seconds=int(self.seconds[i])), self.vectors[i])

    def query(self, n_comm: int, days: int) -> tuple[np.ndarray, Filters | None, np.ndarray]:
        q = self._draw(1)[0]
        if n_comm >= COMMUNITIES and days >= DAYS:
            return q, None, np.ones(len(self.vectors), bool)
        comms = self.rng.choice(COMMUNITIES, n_comm, replace=False)
        start = int(self.rng.integers(0, (DAYS - days) * 86400))
        end = start + days * 86400
        f = Filters().any("community", comms.tolist())
        f.range("created_at", gte=T0 + timedelta(seconds=start), lt=T0 + timedelta(seconds=end))
        mask = np.isin(self.community, comms) & (self.seconds >= start) & (self.seconds < end)
        return q, f, mask

    def brute_force(self, q: np.ndarray, mask: np.ndarray) -> list[int]:
        idx = np.flatnonzero(mask)
        sims = self.vectors[idx] @ (q / np.linalg.norm(q))
        return idx[np.argsort(-sims, kind="stable")[:K]].tolist()


def run(n: int, n_queries: int, kind: str) -> dict[str, Any]:
    root = Path(tempfile.mkdtemp(prefix="hanseek-bench-store-"))
    settings = Settings(data_dir=root, database_url=None, pool_min_size=1, pool_max_size=2)
    result: dict[str, Any] = {
        "benchmark": "store",
        "data": kind,
        "rows": n,
        "dim": DIM,
        "k": K,
        "queries": n_queries,
    }
    try:
        log(f"generating {n} x {DIM} vectors")
        data = Data(n, kind)
        db = Database.open(settings)
        try:
            db.migrate()
            with db.connection() as conn:
                conn.execute(
                    f"CREATE TABLE bench_items (id bigint PRIMARY KEY, community int NOT NULL, "
                    f"created_at timestamptz NOT NULL, embedding vector({DIM}) NOT NULL)"
                )
            log("COPY load")
            t = time.perf_counter()
            with db.connection() as conn:
                copy_rows(conn, "bench_items", ["id", "community", "created_at", "embedding"], data.rows())
            load_s = time.perf_counter() - t
            result["copy"] = {"seconds": round(load_s, 2), "rows_per_s": round(n / load_s)}
            log(f"COPY: {n / load_s:.0f} rows/s; B-tree + HNSW build")
            with db.connection() as conn:
                conn.execute("CREATE INDEX bench_items_comm_time ON bench_items (community, created_at)")
                t = time.perf_counter()
                create_hnsw_index(conn, "bench_items", m=16, ef_construction=64)
                result["hnsw_build"] = {
                    "seconds": round(time.perf_counter() - t, 1),
                    "m": 16,
                    "ef_construction": 64,
                }
                conn.execute("ANALYZE bench_items")
            log(f"HNSW built in {result['hnsw_build']['seconds']} s; querying")
            result["scenarios"] = {
                name: _scenario(db, data, max(5, int(n_queries * share)), n_comm, days)
                for name, (n_comm, days, share) in SCENARIOS.items()
            }
        finally:
            stop_server(settings.pgdata_dir, immediate=True)  # throw-away data: skip the checkpoint
            db.close()
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return result


def _scenario(db: Database, data: Data, n_queries: int, n_comm: int, days: int) -> dict[str, Any]:
    modes: dict[str, Callable[[Any, np.ndarray, Filters | None], list[Hit]]] = {
        "exact": lambda c, q, f: exact_search(c, "bench_items", q, k=K, filters=f, dim=DIM),
        "hnsw_default": lambda c, q, f: hnsw_search(
            c, "bench_items", q, k=K, filters=f, ef_search=40, iterative_scan="off"
        ),
        "hnsw_iterative": lambda c, q, f: hnsw_search(
            c, "bench_items", q, k=K, filters=f, ef_search=40, iterative_scan="relaxed_order"
        ),
        "hnsw_iterative_ef100": lambda c, q, f: hnsw_search(
            c, "bench_items", q, k=K, filters=f, ef_search=100, iterative_scan="relaxed_order"
        ),
        "planner": lambda c, q, f: search(c, "bench_items", q, k=K, filters=f).hits,
    }
    times: dict[str, list[float]] = {m: [] for m in modes}
    recall: dict[str, list[float]] = {m: [] for m in modes}
    returned: dict[str, list[int]] = {m: [] for m in modes}
    queries = [data.query(n_comm, days) for _ in range(n_queries)]
    candidates = [int(mask.sum()) for _, _, mask in queries]
    names = list(modes)
    exact_ok = 0
    with db.connection() as conn:
        for _, fn in modes.items():  # warm pass: every mode touches its pages once, untimed
            for q, f, _ in queries:
                fn(conn, q, f)
            conn.rollback()
        for qi, (q, f, mask) in enumerate(queries):
            got: dict[str, list[Hit]] = {}
            # rotate the order so that no mode always runs first (or last) for a query
            for m in names[qi % len(names) :] + names[: qi % len(names)]:
                t = time.perf_counter()
                got[m] = modes[m](conn, q, f)
                times[m].append(time.perf_counter() - t)
            conn.rollback()  # end the read transaction between queries
            exact_ids = [h.id for h in got["exact"]]
            exact_ok += exact_ids == data.brute_force(q, mask)
            for m in modes:
                ids = {h.id for h in got[m]}
                recall[m].append(len(ids & set(exact_ids)) / max(len(exact_ids), 1))
                returned[m].append(len(got[m]))
    exact_p50 = float(np.median(times["exact"]))
    out: dict[str, Any] = {
        "filter": {"communities": n_comm, "days": days},
        "candidates_mean": round(float(np.mean(candidates)), 1),
        "exact_equals_numpy": f"{exact_ok}/{n_queries}",
        "exact_us_per_candidate": round(exact_p50 / float(np.median(candidates)) * 1e6, 2),
    }
    for m in modes:
        out[m] = {
            **percentiles_ms(times[m]),
            f"recall@{K}": round(float(np.mean(recall[m])), 3),
            "mean_results": round(float(np.mean(returned[m])), 2),
            "p50_vs_exact": round(float(np.median(times[m])) / exact_p50, 2),
        }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--queries", type=int, default=60)
    ap.add_argument("--data", choices=["uniform", "clustered"], default="uniform")
    args = ap.parse_args()
    t = time.perf_counter()
    load_before = os.getloadavg()[0]
    result = run(args.rows, args.queries, args.data)
    result["total_seconds"] = round(time.perf_counter() - t, 1)
    # Other work on the machine inflates latencies: report how busy it was.
    result["load_average_1m"] = {"before": round(load_before, 2), "after": round(os.getloadavg()[0], 2)}
    emit(result)


if __name__ == "__main__":
    main()
