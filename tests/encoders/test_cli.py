from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hanseek.cli import app

runner = CliRunner()


def test_encode_prints_norms_and_cosines(
    tiny_bert_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HANSEEK_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("HANSEEK_TEXT_MODEL", str(tiny_bert_dir))
    r = runner.invoke(
        app, ["encode", "오늘 날씨가 정말 좋네요", "내일은 비가 온다고 합니다", "--kind", "query"]
    )
    assert r.exit_code == 0, r.output
    assert "tiny-bert" in r.output and "32 dimensions" in r.output
    assert r.output.count("1.0000") == 2  # each vector's norm
    assert "pairwise cosine similarity" in r.output


def test_encode_unknown_model_fails_cleanly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HANSEEK_DATA_DIR", str(tmp_path))
    r = runner.invoke(app, ["encode", "문장", "--model", str(tmp_path / "missing")])
    assert r.exit_code == 2
    assert "does not exist" in " ".join(r.output.split())


@pytest.mark.slow
def test_models_prepare_and_list(e5_model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HANSEEK_DATA_DIR", str(e5_model_dir.parent.parent))
    r = runner.invoke(app, ["models", "prepare"])
    assert r.exit_code == 0 and "ready" in r.output, r.output
    r = runner.invoke(app, ["models", "list"])
    assert r.exit_code == 0 and "e5-small" in r.output and "ready" in r.output
    # Without the catalogue a directory that does not load cannot be told apart: never "ready".
    broken = e5_model_dir.parent / "broken-x"
    broken.mkdir()
    (broken / "config.json").write_text("{}", encoding="utf-8")
    try:
        r = runner.invoke(app, ["models", "list", "--no-db"])
        row = next(line for line in r.output.splitlines() if "broken-x" in line)
        assert r.exit_code == 0 and "on disk" in row and "ready" not in row, r.output
    finally:
        shutil.rmtree(broken)  # the directory is shared by the module's other tests


def test_encode_prints_bracketed_texts_literally(
    tiny_bert_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # user sentences are data, not Rich markup: "[/foo]" used to raise MarkupError, "[notice]" vanished
    monkeypatch.setenv("HANSEEK_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("HANSEEK_TEXT_MODEL", str(tiny_bert_dir))
    r = runner.invoke(app, ["encode", "[/foo]", "[notice] down", "hi"])
    assert r.exit_code == 0, r.output
    assert "[/foo]" in r.output
    assert "[notice] down" in r.output


def test_encode_with_truncated_weights_is_one_error_line(
    tiny_bert_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    broken = tmp_path / "models" / "b3"
    shutil.copytree(tiny_bert_dir, broken)
    weights = broken / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:4096])  # header intact, tensors cut off
    monkeypatch.setenv("HANSEEK_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("HANSEEK_TEXT_MODEL", raising=False)
    r = runner.invoke(app, ["encode", "-m", "b3", "hi"])
    assert r.exit_code == 2, r.output
    assert r.output.count("error:") == 1 and "Traceback" not in r.output
    assert f"cannotloadmodelfrom{broken}:" in "".join(r.output.split())  # however Rich wraps it
