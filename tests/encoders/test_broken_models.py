"""Broken model directories and exports: one EncoderError line (never a traceback), and damaged
conversions and ONNX exports are redone instead of being reported ready."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from hanseek.cli import app
from hanseek.encoders.base import EncoderError
from hanseek.encoders.onnx_backend import (
    FP32_FILE,
    META_FILE,
    ONNX_DIR,
    OnnxTextEncoder,
    ensure_onnx_export,
)
from hanseek.encoders.transformer import TransformersTextEncoder

runner = CliRunner()


def _copy(tiny_bert_dir: Path, dest: Path) -> Path:
    shutil.copytree(tiny_bert_dir, dest)
    return dest


def _set_json(path: Path, **values: object) -> None:
    data = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    path.write_text(json.dumps({**data, **values}), encoding="utf-8")


def _no_room_for_text(model: Path, how: str) -> None:
    """A model whose configured max length leaves no room between <s> and </s>."""
    if how == "sentence_bert_config":
        _set_json(model / "sentence_bert_config.json", max_seq_length=2)
    else:
        _set_json(model / "tokenizer_config.json", model_max_length=1)


@pytest.mark.parametrize("how", ["sentence_bert_config", "tokenizer_config"])
def test_a_max_length_without_room_for_text_is_one_error_line(
    tiny_bert_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    model = _copy(tiny_bert_dir, tmp_path / "models" / "short")
    _no_room_for_text(model, how)
    with pytest.raises(EncoderError, match=f"cannot load model from {model}: max_length"):
        TransformersTextEncoder(model)
    monkeypatch.setenv("HANSEEK_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("HANSEEK_TEXT_MODEL", raising=False)
    r = runner.invoke(app, ["encode", "-m", "short", "hi"])
    assert r.exit_code == 2, r.output
    assert r.output.count("error:") == 1 and "Traceback" not in r.output
    assert f"cannotloadmodelfrom{model}:" in "".join(r.output.split())  # however Rich wraps it


def test_the_onnx_backend_reports_a_broken_directory_as_one_error(
    tiny_bert_dir: Path, tmp_path: Path
) -> None:
    model = _copy(tiny_bert_dir, tmp_path / "short")
    ensure_onnx_export(model)
    _no_room_for_text(model, "sentence_bert_config")
    with pytest.raises(EncoderError, match=f"cannot load model from {model}: max_length"):
        OnnxTextEncoder.from_model_dir(model)


def test_an_onnx_graph_that_does_not_parse_is_one_error_line(
    tiny_bert_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = _copy(tiny_bert_dir, tmp_path / "models" / "garbled")
    graph = ensure_onnx_export(model)
    # Damaged in place at its recorded size (bit rot, a bad copy): the export looks current.
    size = graph.stat().st_size
    graph.write_bytes(b"\xff" * size)
    with pytest.raises(EncoderError, match=f"cannot load model from {model}: "):
        OnnxTextEncoder.from_model_dir(model)
    monkeypatch.setenv("HANSEEK_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("HANSEEK_TEXT_MODEL", raising=False)
    r = runner.invoke(app, ["encode", "--backend", "onnx", "-m", "garbled", "hi"])
    assert r.exit_code == 2, r.output
    assert r.output.count("error:") == 1 and "Traceback" not in r.output
    assert f"cannotloadmodelfrom{model}:" in "".join(r.output.split())


def _truncate(path: Path, keep: int) -> None:
    with path.open("r+b") as fh:
        fh.truncate(keep)


def test_a_truncated_onnx_export_is_made_again(tiny_bert_dir: Path, tmp_path: Path) -> None:
    model = _copy(tiny_bert_dir, tmp_path / "tiny")
    graph = ensure_onnx_export(model)
    size = graph.stat().st_size
    _truncate(graph, size // 2)
    assert ensure_onnx_export(model) == graph and graph.stat().st_size == size
    vec = OnnxTextEncoder.from_model_dir(model).encode(["오늘 날씨가 정말 좋네요"])
    np.testing.assert_allclose(np.linalg.norm(vec, axis=1), 1.0, atol=1e-5)
    assert json.loads((model / ONNX_DIR / META_FILE).read_text())["bytes"] == {FP32_FILE: size}


def test_an_export_from_before_sizes_were_recorded_is_kept_if_it_loads(
    tiny_bert_dir: Path, tmp_path: Path
) -> None:
    model = _copy(tiny_bert_dir, tmp_path / "tiny")
    graph = ensure_onnx_export(model)
    meta_file = model / ONNX_DIR / META_FILE

    def as_older_version() -> None:
        meta = json.loads(meta_file.read_text())
        meta.pop("bytes", None)
        meta_file.write_text(json.dumps(meta))

    size = graph.stat().st_size
    as_older_version()
    _truncate(graph, size // 2)
    assert ensure_onnx_export(model) == graph and graph.stat().st_size == size  # it did not load
    assert OnnxTextEncoder.from_model_dir(model).dim == 32

    as_older_version()
    stamp = graph.stat().st_mtime_ns
    assert ensure_onnx_export(model) == graph
    assert graph.stat().st_mtime_ns == stamp  # checked once and adopted, not exported again
    assert json.loads(meta_file.read_text())["bytes"] == {FP32_FILE: size}


def test_an_export_from_before_sizes_is_still_used_by_a_reader_that_cannot_write(
    tiny_bert_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A server running as another user can read the models dir but not take the export lock or
    record sizes: after the upgrade it answered 503 on every text request (review of this change)."""
    from hanseek.encoders import onnx_backend

    model = _copy(tiny_bert_dir, tmp_path / "tiny")
    graph = ensure_onnx_export(model)
    meta_file = model / ONNX_DIR / META_FILE
    meta = json.loads(meta_file.read_text())
    meta.pop("bytes")
    meta_file.write_text(json.dumps(meta))

    def no_lock(path: Path) -> None:
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(onnx_backend.os, "access", lambda path, mode: False)
    monkeypatch.setattr(onnx_backend, "file_lock", no_lock)
    assert ensure_onnx_export(model) == graph
    assert OnnxTextEncoder.from_model_dir(model).dim == 32
    assert "bytes" not in json.loads(meta_file.read_text())
