"""Timing helpers shared by the benchmarks."""

from __future__ import annotations

import json
import os
import platform
import shutil
import statistics
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import psutil

if TYPE_CHECKING:
    from hanseek.config import Settings
    from hanseek.store.db import Database


def machine() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "rss_mb": round(psutil.Process().memory_info().rss / 2**20, 1),
    }


def time_calls(fn: Callable[[], object], repeat: int, warmup: int = 1) -> list[float]:
    """Wall-clock seconds of `repeat` calls after `warmup` untimed calls."""
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def percentiles_ms(samples: list[float]) -> dict[str, float]:
    s = sorted(samples)

    def q(p: float) -> float:
        return s[min(len(s) - 1, round(p * (len(s) - 1)))] * 1000

    return {
        "p50_ms": round(statistics.median(s) * 1000, 3),
        "p95_ms": round(q(0.95), 3),
        "p99_ms": round(q(0.99), 3),
        "n": len(s),
    }


def emit(result: dict[str, Any]) -> None:
    result.setdefault("machine", machine())
    json.dump(result, sys.stdout, ensure_ascii=False, indent=2)
    sys.stdout.write("\n")


def close_db(db: Database, settings: Settings, *, discard: bool) -> None:
    """Close a benchmark's database; with `discard`, stop its embedded server (skipping the shutdown
    checkpoint: the data is thrown away) and delete the data dir."""
    db.close()
    if discard:
        from hanseek.store.server import stop_server

        stop_server(settings.pgdata_dir, immediate=True)
        shutil.rmtree(settings.data_dir, ignore_errors=True)
