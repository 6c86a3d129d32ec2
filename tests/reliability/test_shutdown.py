"""Graceful shutdown of a real `hanseek serve`: SIGTERM drains in-flight requests, then stops cleanly."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import numpy as np
import psycopg
import pytest
from bench._serve import HANSEEK, ServeProcess

from hanseek.config import Settings
from hanseek.store.db import Database
from hanseek.store.server import running_pid

from .conftest import API_KEY

pytestmark = pytest.mark.slow

BATCH = 300  # ~2-4 s of work each here (HNSW inserts): long enough to be caught mid-way
WRITERS = 3


def batch(writer: int) -> list[dict[str, object]]:
    v = np.random.default_rng(writer).standard_normal((BATCH, 384))
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    t0 = datetime(2024, 6, 1, tzinfo=UTC)
    return [
        {
            "id": f"drain-{writer}-{i}",
            "community": "drain",
            "title": f"제목 {i}",
            "created_at": (t0 + timedelta(minutes=i)).isoformat(),
            "embedding": v[i].tolist(),
        }
        for i in range(BATCH)
    ]


def test_sigterm_drains_in_flight_requests(serve_process: Callable[..., ServeProcess]) -> None:
    srv = serve_process(env={"HANSEEK_API_KEY": API_KEY}).start()
    # Serialised up front: encoding 100k floats in three client threads at once takes longer than the
    # pause below, and the requests must be inside the server when the signal comes.
    bodies = [json.dumps({"posts": batch(w)}).encode() for w in range(WRITERS)]
    results: dict[int, tuple[int, float]] = {}

    def send(w: int) -> None:
        with httpx.Client(base_url=srv.base_url, timeout=60, headers={"X-API-Key": API_KEY}) as c:
            r = c.post("/posts", content=bodies[w], headers={"content-type": "application/json"})
            results[w] = (r.status_code, time.monotonic())

    threads = [threading.Thread(target=send, args=(w,)) for w in range(WRITERS)]
    for t in threads:
        t.start()
    # Signal only once every batch is inside the server with its transaction open: a fixed pause
    # was not enough on a busy machine (the uploads had not even connected).
    with psycopg.connect(srv.db_url(), autocommit=True) as conn:
        deadline = time.monotonic() + 60
        while True:
            row = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE pid <> pg_backend_pid() "
                "AND datname = 'hanseek' AND xact_start IS NOT NULL"
            ).fetchone()
            if row is not None and row[0] >= WRITERS:
                break
            assert not results, "a batch finished before the others started: make BATCH larger"
            assert time.monotonic() < deadline, "the batches never reached the database"
            time.sleep(0.02)
    assert not results, "batches finished before SIGTERM: make BATCH larger"
    signalled = time.monotonic()
    assert srv.proc is not None
    srv.proc.send_signal(15)

    # New connections are refused while the old requests finish.
    time.sleep(0.3)
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{srv.base_url}/healthz", timeout=5)

    for t in threads:
        t.join(timeout=60)
    assert sorted(results) == list(range(WRITERS))
    assert all(status == 200 for status, _ in results.values()), results
    assert max(done for _, done in results.values()) > signalled

    code = srv.proc.wait(timeout=60)
    assert code == 0, srv.log_tail()
    assert running_pid(srv.pgdata) is None, "the embedded database was left running"
    assert not (srv.pgdata / "postmaster.pid").exists()
    assert "hanseek stopped." in srv.log_text()
    assert "Traceback" not in srv.log_text()

    # Everything acknowledged is there after the clean stop.
    db = Database.open(Settings(data_dir=srv.data_dir))
    try:
        with db.connection() as conn:
            row = conn.execute("SELECT count(*) FROM posts WHERE community = 'drain'").fetchone()
        assert row == (WRITERS * BATCH,)
    finally:
        db.close()
    assert running_pid(srv.pgdata) is None  # our handle was the last: closing it stopped the server


def test_sigterm_to_a_one_shot_command_stops_the_embedded_database_it_started(store_tmp_root: Path) -> None:
    """`kill` of `hanseek demo load` (or any command) ended the process on the spot until session 18:
    the embedded database it had started kept running (and a backup's pg_dump kept writing) until
    some later command cleaned up. Now SIGTERM unwinds like Ctrl-C."""
    data_dir = store_tmp_root / "sigterm-demo"
    env = ServeProcess(data_dir).env()
    data_dir.mkdir(parents=True)
    proc = subprocess.Popen(
        [str(HANSEEK), "demo", "load"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while running_pid(data_dir / "pgdata") is None:
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            assert time.monotonic() < deadline, "the embedded database did not start"
            time.sleep(0.1)
        time.sleep(2.0)  # into the load (encoding 198 posts takes far longer)
        assert proc.poll() is None, "the load ended before the signal; nothing was tested"
        os.kill(proc.pid, signal.SIGTERM)
        out, _ = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    text = out.decode(errors="replace")
    assert proc.returncode not in (0, -signal.SIGTERM), text  # unwound, not killed by the signal
    assert "Traceback" not in text, text
    assert running_pid(data_dir / "pgdata") is None, "the embedded database was left running"
