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


def test_eval_sts_refuses_pairs_without_a_spearman_correlation(tmp_path: Path, shared_data: Path) -> None:
    """One pair, or gold scores all equal, made Spearman NaN: exit 0 and `"spearman": NaN`, not JSON."""
    same = tmp_path / "same.tsv"
    same.write_text(
        "genre\tfilename\tyear\tid\tscore\tsentence1\tsentence2\n"
        + "".join(f"g\tf\t2012\t{i}\t3.0\t문장 {i}\t다른 문장 {i}\n" for i in range(5)),
        encoding="utf-8",
    )
    out = tmp_path / "x.json"
    for args, needle in (
        (["--korsts", str(shared_data / "korsts" / "sts-dev.tsv"), "--limit-pairs", "1"], "needs at least 2"),
        (["--korsts", str(same)], "all 5 gold scores are 3"),
    ):
        r = CliRunner().invoke(
            app,
            ["eval", "sts", "--skip-parakqc", "-o", str(out), *args],
            env={"HANSEEK_DATA_DIR": str(tmp_path)},
        )
        assert r.exit_code == 2, r.output
        assert "error: cannot read evaluation data" in r.output and needle in flat(r.output), r.output
        assert not out.exists()


def test_eval_sts_refuses_a_file_that_is_not_parakqc(tmp_path: Path, shared_data: Path) -> None:
    r = CliRunner().invoke(
        app,
        ["eval", "sts", "--skip-korsts", "--parakqc", str(shared_data / "korsts" / "sts-dev.tsv"),
         "--parakqc-sets", "0:2"],
        env={"HANSEEK_DATA_DIR": str(tmp_path)},
    )  # fmt: skip
    assert r.exit_code == 2, r.output
    assert "sts-dev.tsv:1: not ParaKQC" in flat(r.output) and "Traceback" not in r.output


def test_eval_sts_baseline_without_fit_text_is_one_line(tmp_path: Path, shared_data: Path) -> None:
    empty = tmp_path / "empty.txt"
    empty.write_text("\n", encoding="utf-8")
    r = CliRunner().invoke(
        app,
        ["eval", "sts", "--baseline", "tfidf", "--fit-texts", str(empty), "--limit-pairs", "20",
         "--skip-parakqc", "--data-root", str(shared_data)],
        env={"HANSEEK_DATA_DIR": str(tmp_path)},
    )  # fmt: skip
    assert r.exit_code == 2, r.output
    assert r.exception is None or isinstance(r.exception, SystemExit)
    assert "needs texts to fit on" in flat(r.output) and "Traceback" not in r.output


def test_eval_sts_checks_the_out_path_before_any_work(tmp_path: Path) -> None:
    """`-o some_file/out.json` was found out only when writing, after the whole evaluation."""
    (tmp_path / "some_file.txt").write_text("x", encoding="utf-8")
    out = tmp_path / "some_file.txt" / "out.json"
    r = CliRunner().invoke(
        app,
        ["eval", "sts", "--data-root", str(tmp_path), "-o", str(out)],
        env={"HANSEEK_DATA_DIR": str(tmp_path)},
    )
    assert r.exit_code == 1, r.output
    assert "cannot make the folder" in flat(r.output), r.output
    assert "cannot read evaluation data" not in r.output  # refused before any data or model was read
    made = tmp_path / "new" / "dir" / "out.json"
    r = CliRunner().invoke(
        app,
        ["eval", "sts", "--data-root", str(tmp_path), "-o", str(made)],
        env={"HANSEEK_DATA_DIR": str(tmp_path)},
    )
    assert r.exit_code == 2 and "cannot read evaluation data" in r.output  # its folder is made first
    assert made.parent.is_dir()
