"""Disaster recovery: `hanseek db backup` of a live server under write load, `hanseek db restore` into a
brand-new data dir (another machine), and a server on the copy.

The store's own tests cover the archive mechanics (round trip of every object kind, atomic restore,
truncated archives). This one checks the promise an operator relies on: the copy is a consistent
snapshot of the real schema, taken without stopping writes: every batch acknowledged before the
backup began is in it, no batch is in it partly, profiles equal a recomputation from its events,
and a server on the restored copy answers the same feed as the original did at that point.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from bench._serve import HANSEEK, ServeProcess

from .workload import ENV, USERS, Ledger, Writers, client, seed, verify

pytestmark = pytest.mark.slow


def hanseek(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = ServeProcess(data_dir).env()
    out = subprocess.run([str(HANSEEK), *args], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    return out


def test_online_backup_restores_a_consistent_copy(
    serve_process: Callable[..., ServeProcess], store_tmp_root: Path
) -> None:
    original = serve_process(env=ENV).start()
    seeds = seed(original.base_url)
    writers = Writers(original.base_url).start()
    writers.wait_for(2)
    with writers.ledger.lock:
        acked_before = Ledger(
            sent_posts=dict(writers.ledger.sent_posts),
            acked_posts=set(writers.ledger.acked_posts),
            sent_events=dict(writers.ledger.sent_events),
            acked_events=set(writers.ledger.acked_events),
        )
    archive = store_tmp_root / "online.dump"
    hanseek(original.data_dir, "db", "backup", str(archive))  # while the writers keep going
    ledger = writers.stop()
    assert len(ledger.acked_posts) > len(acked_before.acked_posts)  # writes really overlapped

    restored_dir = store_tmp_root / "restored-elsewhere"
    out = hanseek(restored_dir, "db", "restore", str(archive), "--yes")
    assert "restored" in out.stdout
    # The ledger of everything sent (so all-or-nothing is checked on every batch), but only what was
    # acknowledged before the backup started must be present.
    expected = Ledger(
        sent_posts=ledger.sent_posts,
        acked_posts=acked_before.acked_posts,
        sent_events=ledger.sent_events,
        acked_events=acked_before.acked_events,
    )
    copy = serve_process(restored_dir, env=ENV).start()
    counts = verify(copy, expected, seeds)
    assert counts["post_batches_acked"] >= 2

    # Same answers from the copy as from the original where both hold the same data: a window
    # (day 3 of the seeded posts) that no writer's post falls into.
    params: dict[str, str | int] = {"community": "c0", "days": "1", "k": 10, "at": "2024-03-04T00:00:00Z"}
    with client(original.base_url) as a, client(copy.base_url) as b:
        ra, rb = a.get("/feeds/latest", params=params), b.get("/feeds/latest", params=params)
        assert ra.status_code == rb.status_code == 200
        ids = [i["id"] for i in ra.json()["items"]]
        assert len(ids) == 10 and all(i.startswith("seed-") for i in ids)
        assert ids == [i["id"] for i in rb.json()["items"]]
        assert b.get(f"/users/{USERS[0]}").status_code == 200
