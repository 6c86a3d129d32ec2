from __future__ import annotations

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
