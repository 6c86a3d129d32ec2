"""Checkpoint files: the temporary of a save killed part-way is removed by the next run."""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from hanseek.files import left_by_dead_writer
from hanseek.train import checkpoint as ckpt

STATE = {"fingerprint": "run", "step": 3}


def _aged(path: Path) -> Path:
    """As a writer killed a while ago leaves its temporary: not touched since."""
    past = time.time() - 600
    os.utime(path, (past, past))
    return path


def test_a_save_removes_killed_saves_temporaries_of_every_checkpoint_in_its_folder(tmp_path: Path) -> None:
    stale = [tmp_path / ".run.pt.ab3_x9kq.tmp", tmp_path / ".other-run.pt.zzzzzzzz.tmp"]
    others = [
        tmp_path / ".run.pt.backup",
        tmp_path / "notes.ab3_x9kq.tmp",
        tmp_path / ".run.json.ab3_x9kq.tmp",
    ]
    for p in stale + others:
        p.write_bytes(b"half a checkpoint")
        _aged(p)
    ckpt.save(tmp_path / "run.pt", STATE)
    assert ckpt.load(tmp_path / "run.pt", "run") == STATE
    assert not any(p.exists() for p in stale)
    assert all(p.exists() for p in others)


def test_a_run_start_removes_them_too_but_not_a_live_writers(tmp_path: Path) -> None:
    stale = tmp_path / ".run.pt.k2x9_a0q.tmp"
    stale.write_bytes(b"x")
    live = tmp_path / ".run.pt.p0o9i8u7.tmp"
    live.write_bytes(b"y")
    for p in (stale, live):
        _aged(p)
    with live.open("rb") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)  # what a save in progress holds on its temporary
        assert ckpt.load(tmp_path / "run.pt", "run") is None  # no checkpoint yet: a fresh start
        assert not stale.exists() and live.exists()


def test_the_temporary_of_a_save_killed_by_sigkill_is_removed_by_the_rerun(tmp_path: Path) -> None:
    path = tmp_path / "checkpoints" / "job.pt"
    # A save that hangs half-way through writing its state, as a kill -9 during a multi-GB write finds it.
    script = textwrap.dedent(
        f"""
        import sys, time, torch
        from pathlib import Path
        from hanseek.train import checkpoint

        def slow_save(state, fh, *args, **kwargs):
            fh.write(b"partial state")
            fh.flush()
            print("writing", flush=True)
            time.sleep(600)

        torch.save = slow_save
        checkpoint.save(Path({str(path)!r}), {{"step": 1}})
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "writing"
        (temp,) = list(path.parent.glob(".job.pt.*.tmp"))
        _aged(temp)
        assert not left_by_dead_writer(temp)  # its writer holds a claim while it lives
        assert ckpt.remove_stale_temps(path) == []
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    assert temp.exists()  # what the kill leaves
    ckpt.save(path, STATE)
    assert sorted(p.name for p in path.parent.iterdir()) == ["job.pt"]
