"""ONNX Runtime export (fp32, dynamic int8) agrees with the PyTorch model."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from hanseek.encoders.onnx_backend import OnnxTextEncoder, ensure_onnx_export
from hanseek.encoders.transformer import TransformersTextEncoder
from hanseek.train.sts_eval import load_korsts, spearman_x100
from tests.encoders.sentences import ENGLISH, KOREAN
from tests.fixtures.encoders import TINY_TEXTS


@pytest.fixture(scope="module")
def tiny_copy(tiny_bert_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("onnx") / "tiny"
    shutil.copytree(tiny_bert_dir, d)
    return d


def test_tiny_export_matches_torch(tiny_copy: Path) -> None:
    texts = [*TINY_TEXTS, "짧다", "조금 더 긴 문장을 여기에 적어 봅니다 " * 3]
    ref = TransformersTextEncoder(tiny_copy).encode(texts)
    fp32 = OnnxTextEncoder.from_model_dir(tiny_copy, batch_size=4)
    assert fp32.backend == "onnx" and fp32.dim == 32
    np.testing.assert_allclose((fp32.encode(texts) * ref).sum(axis=1), 1.0, atol=1e-4)
    int8 = OnnxTextEncoder.from_model_dir(tiny_copy, quantized=True)
    assert int8.backend == "onnx-int8"
    assert ((int8.encode(texts) * ref).sum(axis=1) > 0.95).all()


def test_export_is_reused_then_redone_when_weights_change(tiny_copy: Path) -> None:
    path = ensure_onnx_export(tiny_copy)
    stamp = path.stat().st_mtime_ns
    assert ensure_onnx_export(tiny_copy) == path and path.stat().st_mtime_ns == stamp
    weights = tiny_copy / "model.safetensors"
    weights.write_bytes(weights.read_bytes())  # same bytes, new mtime: treated as a new model
    ensure_onnx_export(tiny_copy)
    assert path.stat().st_mtime_ns != stamp


def _sentences(shared: Path | None) -> list[str]:
    out = KOREAN + ENGLISH
    if shared is not None:
        pairs = load_korsts(shared / "korsts" / "sts-dev.tsv")
        out += pairs.first[:80] + pairs.second[:80]
    return out[:200]


@pytest.mark.slow
def test_e5_onnx_equivalence(
    text_encoder: TransformersTextEncoder, e5_model_dir: Path, shared_data: Path
) -> None:
    texts = _sentences(shared_data)
    assert len(texts) == 200
    ref = text_encoder.encode(texts, kind="query")
    fp32 = OnnxTextEncoder.from_model_dir(e5_model_dir)
    int8 = OnnxTextEncoder.from_model_dir(e5_model_dir, quantized=True)
    cos32 = (fp32.encode(texts, kind="query") * ref).sum(axis=1)
    cos8 = (int8.encode(texts, kind="query") * ref).sum(axis=1)
    assert cos32.min() >= 0.9999, texts[int(np.argmin(cos32))]
    assert cos8.min() >= 0.99, texts[int(np.argmin(cos8))]

    # KorSTS Spearman: int8 may lose at most 0.5 points (paired on the same 300 dev pairs).
    pairs = load_korsts(shared_data / "korsts" / "sts-dev.tsv")
    a, b, gold = pairs.first[:300], pairs.second[:300], pairs.scores[:300]
    scores = {}
    for name, enc in (("torch", text_encoder), ("int8", int8)):
        va, vb = enc.encode(a, kind="query"), enc.encode(b, kind="query")
        scores[name] = spearman_x100((va * vb).sum(axis=1), gold)
    assert scores["torch"] - scores["int8"] <= 0.5, scores
