from __future__ import annotations

import threading
import time
from collections.abc import Sequence

import numpy as np
import pytest

from hanseek.encoders.base import Kind
from hanseek.encoders.batching import BatchingEncoder


class SlowEncoder:
    """Deterministic per-text vectors; each call takes a while, like a real forward pass."""

    name = "slow"
    dim = 4

    def __init__(self) -> None:
        self.calls: list[tuple[int, str]] = []

    def encode(
        self, texts: Sequence[str], kind: Kind = "passage", batch_size: int | None = None
    ) -> np.ndarray:
        if "boom" in texts:
            raise ValueError("boom")
        self.calls.append((len(texts), kind))
        time.sleep(0.05)
        v = np.array([[len(t), sum(map(ord, t)) % 97, kind == "query", 1] for t in texts], dtype=np.float32)
        return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_concurrent_requests_are_merged_and_split_back() -> None:
    inner = SlowEncoder()
    enc = BatchingEncoder(inner, max_wait_s=0.02)
    requests = [([f"문장 {i}", f"다른 문장 {i * 7}"], "query" if i % 2 else "passage") for i in range(8)]
    results: dict[int, np.ndarray] = {}

    def call(i: int) -> None:
        texts, kind = requests[i]
        results[i] = enc.encode(texts, kind=kind)  # type: ignore[arg-type]

    threads = [threading.Thread(target=call, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i, (texts, kind) in enumerate(requests):
        np.testing.assert_allclose(results[i], SlowEncoder().encode(texts, kind=kind))  # type: ignore[arg-type]
    assert len(inner.calls) < 8  # fewer forward passes than requests
    assert sum(n for n, _ in inner.calls) == 16
    enc.close()
    with pytest.raises(RuntimeError):
        enc.encode(["late"])


def test_errors_reach_the_caller_and_the_worker_survives() -> None:
    enc = BatchingEncoder(SlowEncoder())
    with pytest.raises(ValueError, match="boom"):
        enc.encode(["boom"])
    assert enc.encode(["fine"]).shape == (1, 4)
    assert enc.encode([]).shape == (0, 4)
    enc.close()


def test_a_request_racing_close_is_answered_or_refused_never_stranded() -> None:
    """close() landing between a caller's closed-check and its enqueue used to leave the request
    behind the stop signal, waiting forever."""
    enc = BatchingEncoder(SlowEncoder())
    enc.encode(["warm"])  # the worker runs
    start_worker = enc._ensure_worker
    closer = threading.Thread(target=enc.close)

    def close_in_the_gap() -> None:
        start_worker()
        closer.start()  # close() now races this caller's enqueue
        time.sleep(0.2)

    enc._ensure_worker = close_in_the_gap  # type: ignore[method-assign]
    outcome: list[object] = []

    def call() -> None:
        try:
            outcome.append(enc.encode(["late"]).shape)
        except RuntimeError as e:
            outcome.append(str(e))

    caller = threading.Thread(target=call, daemon=True)
    caller.start()
    caller.join(timeout=5)
    closer.join(timeout=5)
    assert not caller.is_alive() and outcome in ([(1, 4)], ["encoder is closed"])
    with pytest.raises(RuntimeError, match="closed"):
        enc.encode(["after"])
