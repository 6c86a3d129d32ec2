"""Merge encode requests that arrive together into one batch (micro-batching for the API).

Many concurrent requests of one or two texts each (search queries) waste most of each forward pass
on fixed costs, and they queue behind each other anyway because an encoder runs one batch at a
time. A single worker thread takes the first waiting request, gathers whatever else arrives within
`max_wait_s` (up to `max_items` texts), encodes each kind in one call and hands every caller its rows.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Sequence
from concurrent.futures import Future

import numpy as np

from hanseek.encoders.base import Kind, TextEncoder, check_kind, check_texts


class _Request:
    __slots__ = ("future", "kind", "texts")

    def __init__(self, texts: list[str], kind: Kind) -> None:
        self.texts = texts
        self.kind = kind
        self.future: Future[np.ndarray] = Future()


class BatchingEncoder:
    """A TextEncoder that coalesces concurrent calls to `inner`. With fp32 backends the results are
    those of calling `inner` directly (padding is masked; merged and single calls agree to ~1e-7).
    onnx-int8's dynamic activation scales span a forward pass, so there a caller's vector depends
    slightly on texts of similar length merged with it (cosine to itself alone >= 0.9946 measured on
    200 sentences), never on a much longer one (docs/encoders.md, "Batch company")."""

    def __init__(self, inner: TextEncoder, *, max_wait_s: float = 0.005, max_items: int = 256) -> None:
        self.inner = inner
        self.name = inner.name
        self.dim = inner.dim
        self.max_wait_s = max_wait_s
        self.max_items = max_items
        self._queue: queue.Queue[_Request | None] = queue.Queue()
        self._worker: threading.Thread | None = None
        self._start_lock = threading.Lock()
        # Held from the closed-check to the put in encode, and while close() queues the stop
        # signal: a request is either queued ahead of the stop (and answered) or refused.
        self._open_lock = threading.Lock()
        self._closed = False
        self.batches = 0  # encode calls made on `inner` (for tests and metrics)

    def encode(
        self, texts: Sequence[str], kind: Kind = "passage", batch_size: int | None = None
    ) -> np.ndarray:
        items = check_texts(texts)
        kind = check_kind(kind)
        if not items:
            return np.zeros((0, self.dim), dtype=np.float32)
        req = _Request(items, kind)
        with self._open_lock:
            if self._closed:
                raise RuntimeError("encoder is closed")
            self._ensure_worker()
            self._queue.put(req)
        return req.future.result()

    def _ensure_worker(self) -> None:
        if self._worker is None:
            with self._start_lock:
                if self._worker is None:
                    self._worker = threading.Thread(target=self._run, name="encode-batcher", daemon=True)
                    self._worker.start()

    def _gather(self, first: _Request) -> list[_Request]:
        batch = [first]
        count = len(first.texts)
        while count < self.max_items:
            try:
                nxt = self._queue.get(timeout=self.max_wait_s)
            except queue.Empty:
                break
            if nxt is None:
                self._queue.put(None)  # let the main loop see the stop signal
                break
            batch.append(nxt)
            count += len(nxt.texts)
        return batch

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = self._gather(first)
            for kind in ("query", "passage"):
                group = [r for r in batch if r.kind == kind]
                if not group:
                    continue
                try:
                    vectors = self.inner.encode([t for r in group for t in r.texts], kind=kind)
                    self.batches += 1
                except BaseException as e:  # hand the failure to every waiting caller
                    for r in group:
                        r.future.set_exception(e)
                    continue
                start = 0
                for r in group:
                    r.future.set_result(vectors[start : start + len(r.texts)])
                    start += len(r.texts)

    def close(self) -> None:
        """Stop the worker (the inner encoder belongs to whoever made it and is left open)."""
        with self._open_lock:
            self._closed = True
            worker = self._worker
            if worker is not None:
                self._queue.put(None)
        if worker is not None:
            worker.join(timeout=10)
