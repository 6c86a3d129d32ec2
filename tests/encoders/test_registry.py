from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from hanseek.config import Settings
from hanseek.encoders.base import EncoderError
from hanseek.encoders.e5_convert import MARKER, bundled_model_file, convert, is_valid
from hanseek.encoders.registry import list_local_models, load_text_encoder, resolve_model


def test_resolution_order(tmp_path: Path, tiny_bert_dir: Path) -> None:
    s = Settings(data_dir=tmp_path)
    (s.models_dir / "mine").mkdir(parents=True)
    (s.models_dir / "mine" / "config.json").write_text("{}")
    assert resolve_model(s, "e5-small", prepare=False).kind == "bundled"
    assert resolve_model(s, "mine").path == s.models_dir / "mine"
    assert resolve_model(s, str(tiny_bert_dir)).kind == "path"
    assert resolve_model(s, "intfloat/multilingual-e5-small").kind == "hub"
    with pytest.raises(EncoderError, match="does not exist"):
        resolve_model(s, str(tmp_path / "missing"))
    with pytest.raises(EncoderError, match="unknown text model"):
        resolve_model(s, "no-such-model")
    with pytest.raises(EncoderError, match=r"config\.json"):
        resolve_model(s, str(tmp_path))
    assert [m.name for m in list_local_models(s)] == ["e5-small", "mine"]


def test_load_by_path_and_unknown_backend(tmp_path: Path, tiny_bert_dir: Path) -> None:
    s = Settings(data_dir=tmp_path, text_model=str(tiny_bert_dir))
    enc = load_text_encoder(s)
    assert enc.dim == 32 and enc.encode(["안녕"]).shape == (1, 32)
    with pytest.raises(EncoderError, match="backend"):
        load_text_encoder(s, backend="tensorflow")


def test_conversion_is_idempotent(e5_model_dir: Path) -> None:
    src = bundled_model_file()
    assert is_valid(e5_model_dir, src)
    before = (e5_model_dir / "model.safetensors").stat().st_mtime_ns
    t = time.monotonic()
    assert convert(e5_model_dir, src) == e5_model_dir
    assert time.monotonic() - t < 2.0
    assert (e5_model_dir / "model.safetensors").stat().st_mtime_ns == before
    marker = json.loads((e5_model_dir / MARKER).read_text())
    assert marker["source"]["bytes"] == src.stat().st_size and len(marker["source"]["sha256"]) == 64
    # no temp or lock leftovers that look like models
    assert not [p for p in e5_model_dir.parent.iterdir() if p.name.startswith(".e5-small.") and p.is_dir()]


def test_incomplete_or_foreign_dirs_are_not_valid(tmp_path: Path, e5_model_dir: Path) -> None:
    d = tmp_path / "e5-small"
    d.mkdir()
    assert not is_valid(d)
    for name in ("config.json", MARKER):
        (d / name).write_bytes((e5_model_dir / name).read_bytes())
    assert not is_valid(d)  # weights and tokenizer missing
    marker = json.loads((e5_model_dir / MARKER).read_text())
    marker["converter_version"] = -1
    (d / MARKER).write_text(json.dumps(marker))
    assert not is_valid(d)


def test_model_dir_loads_with_plain_transformers(e5_model_dir: Path) -> None:
    from transformers import AutoConfig, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(e5_model_dir)
    ids = tok("query: 서울 냉면")["input_ids"]
    assert ids[0] == tok.bos_token_id == 0 and ids[-1] == tok.eos_token_id == 2
    cfg = AutoConfig.from_pretrained(e5_model_dir)
    assert cfg.model_type == "bert" and cfg.hidden_size == 384 and cfg.hidden_act == "gelu"
    assert os.stat(e5_model_dir / "model.safetensors").st_mode & 0o044 == 0o044  # readable by others
