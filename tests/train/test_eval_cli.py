from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from typer.testing import CliRunner

from hanseek.cli import app
from hanseek.train.baselines import TfidfEncoder

from ..clitext import flat


def test_tfidf_baseline_separates_paraphrases() -> None:
    enc = TfidfEncoder(["서울 냉면 맛집", "부산 돼지국밥 맛집", "주식 시장 전망", "냉면 육수 만드는 법"])
    v = enc.encode(["서울 냉면 맛집 추천", "서울에서 냉면 잘하는 집", "내일 주식 시장"])
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    assert v[0] @ v[1] > v[0] @ v[2]


def test_eval_sts_cli(tmp_path: Path, tiny_bert_dir: Path, shared_data: Path) -> None:
    out = tmp_path / "eval.json"
    r = CliRunner().invoke(
        app,
        ["eval", "sts", "--model", str(tiny_bert_dir), "--limit-pairs", "50", "--parakqc-sets", "0:5",
         "--data-root", str(shared_data), "-o", str(out)],
        env={"HANSEEK_DATA_DIR": str(tmp_path)},
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    result = json.loads(out.read_text())
    assert result["model"] == "tiny-bert" and result["korsts"]["pairs"] == 50
    assert result["parakqc"]["queries"] == 50 and result["parakqc"]["set_range"] == [0, 5]


def test_eval_sts_missing_data_is_a_clear_error(tmp_path: Path) -> None:
    r = CliRunner().invoke(
        app, ["eval", "sts", "--data-root", str(tmp_path)], env={"HANSEEK_DATA_DIR": str(tmp_path)}
    )
    assert r.exit_code == 2 and "cannot read evaluation data" in r.output


def test_eval_sts_refuses_bad_options_before_loading_anything(tmp_path: Path) -> None:
    """A pair limit below 1 (a negative one would drop pairs from the end) and an output path that is
    a folder (found only when writing, after the whole run) are refused at once."""
    env = {"HANSEEK_DATA_DIR": str(tmp_path)}
    for args, needle in (
        (["--limit-pairs", "0"], "--limit-pairs"),
        (["--limit-pairs", "-1"], "--limit-pairs"),
        (["--out", str(tmp_path)], "is a directory"),
    ):
        r = CliRunner().invoke(app, ["eval", "sts", "--data-root", str(tmp_path), *args], env=env)
        assert r.exit_code == 2, r.output
        assert needle in flat(r.output), r.output
        assert "cannot read evaluation data" not in r.output  # refused before any data was read
