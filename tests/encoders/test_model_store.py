"""Model directories: swapped in whole, never over another writer's new model, readable by others."""

from __future__ import annotations

import os
import stat
import threading
import time
from pathlib import Path

from hanseek.encoders.model_store import atomic_model_dir, exchange_paths, file_lock, remove_stale_temps
from hanseek.files import shared_mode


def test_a_new_directory_is_never_written_over_by_a_second_creator(tmp_path: Path) -> None:
    """Both writers pass the "does it exist" check before either installs: one wins, one is told."""
    dest = tmp_path / "my-model"
    both_checked = threading.Barrier(2)
    results: dict[str, str] = {}

    def writer(tag: str) -> None:
        def write(tmp: Path) -> None:
            both_checked.wait()
            (tmp / "who").write_text(tag)

        try:
            atomic_model_dir(dest, write, replace=False)
            results[tag] = "ok"
        except FileExistsError:
            results[tag] = "exists"

    threads = [threading.Thread(target=writer, args=(t,)) for t in ("A", "B")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results.values()) == ["exists", "ok"]
    winner = next(t for t, r in results.items() if r == "ok")
    assert (dest / "who").read_text() == winner
    assert sorted(p.name for p in tmp_path.iterdir()) == ["my-model"]  # the loser's temporary is gone


def test_replacing_swaps_the_whole_directory_and_tolerates_a_vanished_target(tmp_path: Path) -> None:
    dest = tmp_path / "m"
    atomic_model_dir(dest, lambda d: (d / "v").write_text("1"))
    atomic_model_dir(dest, lambda d: (d / "v").write_text("2"), replace=True)
    assert (dest / "v").read_text() == "2" and sorted(p.name for p in tmp_path.iterdir()) == ["m"]
    # The target removed between the caller's look and the exchange: nothing to exchange, not an error.
    (tmp_path / "a").mkdir()
    assert exchange_paths(tmp_path / "a", tmp_path / "gone") is False


def test_model_files_get_the_mode_an_ordinary_write_would_give(tmp_path: Path) -> None:
    dest = atomic_model_dir(tmp_path / "m", lambda d: (d / "weights.bin").write_bytes(b"w"))
    assert stat.S_IMODE((dest / "weights.bin").stat().st_mode) == shared_mode()
    assert stat.S_IMODE(dest.stat().st_mode) == shared_mode(directory=True)
    (tmp_path / "plain").write_bytes(b"x")  # what open() gives under this process's umask
    assert shared_mode() == stat.S_IMODE((tmp_path / "plain").stat().st_mode)


def test_the_file_lock_makes_writers_take_turns(tmp_path: Path) -> None:
    lock = tmp_path / ".m.lock"
    order: list[str] = []

    def second() -> None:
        with file_lock(lock):
            order.append("second")

    with file_lock(lock):
        t = threading.Thread(target=second)
        t.start()
        time.sleep(0.2)
        order.append("first")
    t.join(timeout=10)
    assert order == ["first", "second"]


def _stale(path: Path) -> Path:
    """A temp directory as a writer killed by SIGKILL leaves it: some content, not touched for a while."""
    path.mkdir()
    (path / "model.safetensors").write_bytes(b"half")
    os.utime(path, (time.time() - 600, time.time() - 600))
    return path


def test_temp_directories_of_killed_writers_are_removed(tmp_path: Path) -> None:
    dest = tmp_path / "e5-small"
    stale = [_stale(tmp_path / ".e5-small.ab3_x9kq.tmp"), _stale(tmp_path / ".e5-small.zzzzzzzz.tmp")]
    others = [_stale(tmp_path / ".e5-small.backup"), _stale(tmp_path / ".other.ab3_x9kq.tmp")]
    atomic_model_dir(dest, lambda d: (d / "v").write_text("1"), replace=True)
    assert (dest / "v").read_text() == "1"
    assert not any(p.exists() for p in stale)
    assert all(p.exists() for p in others)  # not this model's temp directories


def test_a_live_writers_temp_directory_is_left_alone(tmp_path: Path) -> None:
    dest = tmp_path / "m"
    writing = threading.Event()
    finish = threading.Event()
    seen: list[Path] = []

    def slow_write(tmp: Path) -> None:
        seen.append(tmp)
        (tmp / "v").write_text("slow")
        os.utime(tmp, (time.time() - 600, time.time() - 600))  # old, but its writer is alive
        writing.set()
        assert finish.wait(10)

    t = threading.Thread(target=lambda: atomic_model_dir(dest, slow_write, replace=True))
    t.start()
    assert writing.wait(10)
    try:
        assert remove_stale_temps(dest) == []
        atomic_model_dir(dest, lambda d: (d / "v").write_text("fast"), replace=True)
        assert seen[0].is_dir()
    finally:
        finish.set()
        t.join()
    assert (dest / "v").read_text() == "slow"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]


def test_a_card_with_nan_scores_reads_as_null(tmp_path: Path) -> None:
    """Models trained before session 19 could record a NaN validation score; PostgreSQL's jsonb
    refused the card, so `models use` failed on them for good (encoder review)."""
    import json

    from hanseek.encoders.model_store import read_marker

    (tmp_path / "hanseek.json").write_text('{"best": {"spearman": NaN}, "history": [Infinity, 1.5]}')
    card = read_marker(tmp_path)
    assert card == {"best": {"spearman": None}, "history": [None, 1.5]}
    json.dumps(card, allow_nan=False)  # what jsonb accepts
