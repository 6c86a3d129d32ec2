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
