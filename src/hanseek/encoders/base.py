"""The text encoder interface every feature codes against."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, Protocol, runtime_checkable

import numpy as np

Kind = Literal["query", "passage"]
KINDS: tuple[Kind, ...] = ("query", "passage")


class EncoderError(RuntimeError):
    """A model could not be found, loaded or prepared (message says what to do)."""


@runtime_checkable
class TextEncoder(Protocol):
    """Texts -> L2-normalised float32 vectors [n, dim].

    `kind` distinguishes search queries from stored passages; asymmetric models (e5) prefix them
    differently, symmetric models ignore it. Implementations are thread-safe.
    """

    name: str
    dim: int

    def encode(
        self, texts: Sequence[str], kind: Kind = "passage", batch_size: int | None = None
    ) -> np.ndarray: ...


def check_texts(texts: Sequence[str]) -> list[str]:
    if isinstance(texts, str):
        raise TypeError("encode() takes a sequence of texts, not a single string")
    out = list(texts)
    for i, t in enumerate(out):
        if not isinstance(t, str):
            raise TypeError(f"text {i} is {type(t).__name__}, not str")
    return out


def check_kind(kind: str) -> Kind:
    if kind not in KINDS:
        raise ValueError(f"kind must be 'query' or 'passage', not {kind!r}")
    return kind
