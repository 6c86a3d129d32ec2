"""TransformersTextEncoder on a tiny random BERT: shapes, normalisation, batching, windows, prompts."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import pytest

from hanseek.encoders.base import EncoderError, TextEncoder
from hanseek.encoders.modeldir import looks_like_e5, resolve_prompts
from hanseek.encoders.transformer import TransformersTextEncoder, quiet_load
from tests.fixtures.encoders import TINY_TEXTS


@pytest.fixture(scope="module")
def tiny(tiny_bert_dir: Path) -> TransformersTextEncoder:
    return TransformersTextEncoder(tiny_bert_dir, batch_size=3)


def test_is_a_text_encoder(tiny: TransformersTextEncoder) -> None:
    assert isinstance(tiny, TextEncoder)
    assert tiny.dim == 32 and tiny.name == "tiny-bert" and tiny.prompts == {}


def test_normalised_float32(tiny: TransformersTextEncoder) -> None:
    v = tiny.encode(list(TINY_TEXTS))
    assert v.shape == (len(TINY_TEXTS), 32) and v.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    assert tiny.encode([]).shape == (0, 32)


def test_batching_and_order_do_not_change_vectors(tiny: TransformersTextEncoder) -> None:
    texts = list(TINY_TEXTS)
    together = tiny.encode(texts, batch_size=4)
    alone = np.vstack([tiny.encode([t]) for t in texts])
    np.testing.assert_allclose(together, alone, atol=1e-5)
    reversed_ = tiny.encode(texts[::-1], batch_size=7)[::-1]
    np.testing.assert_allclose(together, reversed_, atol=1e-5)
    assert not np.allclose(together[0], together[1], atol=1e-3)


def test_long_texts_are_windowed_not_truncated(tiny_bert_dir: Path) -> None:
    enc = TransformersTextEncoder(tiny_bert_dir, max_length=16)
    head = "오늘 날씨가 정말 좋네요 " * 3
    a = enc.encode([head + "내일은 비가 온다고 합니다 " * 3])[0]
    b = enc.encode([head + "배우들의 연기가 너무 어색했다 " * 3])[0]
    assert enc.token_counts([head * 3])[0] > 16
    assert float(a @ b) < 0.9999  # the tail beyond the first window changes the vector


def test_rejects_bad_input(tiny: TransformersTextEncoder) -> None:
    with pytest.raises(TypeError):
        tiny.encode("one string")
    with pytest.raises(TypeError):
        tiny.encode(["ok", 3])  # type: ignore[list-item]
    with pytest.raises(ValueError):
        tiny.encode(["ok"], kind="document")  # type: ignore[arg-type]


def test_thread_safe(tiny: TransformersTextEncoder) -> None:
    expected = tiny.encode(list(TINY_TEXTS))
    results: list[np.ndarray] = []
    errors: list[BaseException] = []

    def work() -> None:
        try:
            results.append(tiny.encode(list(TINY_TEXTS)))
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(results) == 4
    for r in results:
        np.testing.assert_allclose(r, expected, atol=1e-5)


def test_prompts(tiny_bert_dir: Path, tmp_path: Path) -> None:
    assert looks_like_e5("intfloat/multilingual-e5-small") and looks_like_e5("e5-small")
    assert not looks_like_e5("klue/bert-base")
    assert resolve_prompts("intfloat/multilingual-e5-base", None, "auto")["query"] == "query: "
    assert resolve_prompts("e5-small", None, "none") == {}
    (tmp_path / "config_sentence_transformers.json").write_text(json.dumps({"prompts": {"query": "Q: "}}))
    assert resolve_prompts("x", tmp_path, "auto") == {"query": "Q: "}
    enc = TransformersTextEncoder(tiny_bert_dir, prompts={"query": "질문: ", "passage": ""})
    q = enc.encode(["냉면"], kind="query")
    p = enc.encode(["냉면"], kind="passage")
    assert not np.allclose(q, p)
    np.testing.assert_allclose(enc.encode(["질문: 냉면"], kind="passage"), q, atol=1e-5)


def test_missing_model_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(EncoderError, match="does not exist"):
        TransformersTextEncoder(tmp_path / "nope")
    import huggingface_hub.constants

    # The hub reads HF_HUB_OFFLINE at import time; without it the test would wait for network timeouts.
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(EncoderError, match="hub"):
        TransformersTextEncoder("hanseek-test/no-such-model")


def test_a_local_load_draws_no_progress_bar_and_leaves_the_switch_as_it_was(
    tiny_bert_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from transformers.utils import logging as hf_logging

    was = hf_logging.is_progress_bar_enabled()
    hf_logging.enable_progress_bar()  # as in a CLI process (serve turns the bars off for good)
    try:
        capsys.readouterr()
        TransformersTextEncoder(tiny_bert_dir)
        assert "Loading weights" not in capsys.readouterr().err
        assert hf_logging.is_progress_bar_enabled()
        with quiet_load(False):  # a hub load keeps its download bars
            assert hf_logging.is_progress_bar_enabled()
        with quiet_load(True):
            with quiet_load(True):
                assert not hf_logging.is_progress_bar_enabled()
            assert not hf_logging.is_progress_bar_enabled()
        assert hf_logging.is_progress_bar_enabled()
        hf_logging.disable_progress_bar()
        with quiet_load(True):
            pass
        assert not hf_logging.is_progress_bar_enabled()  # off before, off after
    finally:
        (hf_logging.enable_progress_bar if was else hf_logging.disable_progress_bar)()
