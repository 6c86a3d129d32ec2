"""`hanseek sentiment train | predict | models | default | experiment` on small real files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hanseek.cli import app
from hanseek.sentiment.datasets import DomainData

from ..clitext import flat

runner = CliRunner()
pytestmark = pytest.mark.slow


def _write(path: Path, d: DomainData, n: int) -> Path:
    s = d.train.sample(n, 4)
    path.write_text("".join(f"{y}\t{t}\n" for t, y in zip(s.texts, s.labels, strict=True)), encoding="utf-8")
    return path


def test_train_predict_models_default_experiment(
    tmp_path: Path, movie: DomainData, game: DomainData, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HANSEEK_DATA_DIR", str(tmp_path / "data"))
    films = _write(tmp_path / "films.txt", movie, 800)
    games = _write(tmp_path / "games.txt", game, 800)
    empty = tmp_path / "empty"
    empty.mkdir()
    common = ["--data", str(empty), "--file", f"films={films}", "--file", f"games={games}"]

    r = runner.invoke(
        app, ["sentiment", "train", "--domain", "films", "--name", "f1", "--test-size", "120", *common]
    )
    assert r.exit_code == 0, r.output
    assert "saved f1" in r.output and "test/films: accuracy" in r.output and "default model" in r.output

    r = runner.invoke(
        app, ["sentiment", "predict", "--json", "정말 재밌는 영화 강추", "최악 노잼 시간 아깝다"]
    )
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert out["model"] == "f1" and [x["label"] for x in out["results"]] == ["positive", "negative"]
    # The same fields as the API's answer (docs/sentiment.md), plus the text.
    assert set(out["results"][0]) == {"text", "label", "probability", "positive_probability", "model"}

    r = runner.invoke(app, ["sentiment", "models"])
    assert r.exit_code == 0 and "f1 (default)" in r.output

    # A review is text, not Rich markup: "[/x]" was a MarkupError traceback, "[b]" vanished.
    r = runner.invoke(app, ["sentiment", "predict", "[/x] 정말 재밌는 [b]영화[/b]"])
    assert r.exit_code == 0, r.output
    assert "[/x]" in r.output and "[b]" in r.output

    r = runner.invoke(app, ["sentiment", "default", "missing"])
    assert r.exit_code == 1 and "no sentiment model" in r.output

    r = runner.invoke(app, ["sentiment", "train", "--domain", "nope", *common])
    assert r.exit_code == 1 and "unknown or unavailable domain" in r.output

    r = runner.invoke(app, ["sentiment", "train", "--model", "svm", *common])
    assert r.exit_code == 1 and "baseline or transformer" in r.output

    out_dir = tmp_path / "reports"
    r = runner.invoke(
        app, ["sentiment", "experiment", *common, "--test-size", "150", "--out", str(out_dir), "--stem", "x"]
    )
    assert r.exit_code == 0, r.output
    assert {p.name for p in out_dir.iterdir()} == {"x.md", "x.json", "x.png"}
    matrix = json.loads((out_dir / "x.json").read_text())["matrix"]
    assert set(matrix) == {"films", "games", "all"}


@pytest.mark.parametrize(
    "args,needle",
    [
        (["--train-size", "0"], "--train-size"),
        (["--dev-size", "-1"], "--dev-size"),
        (["--test-size", "0"], "--test-size"),
        (["--model", "transformer", "--epochs", "0"], "--epochs"),
        (["--model", "transformer", "--batch-size", "0"], "--batch-size"),
        (["--model", "transformer", "--max-length", "0"], "--max-length"),
        (["--model", "transformer", "--lr", "0"], "--lr must be a positive number"),
        (["--model", "transformer", "--lr", "nan"], "--lr must be a positive number"),
    ],
)
def test_train_refuses_meaningless_sizes_before_training(
    tmp_path: Path, args: list[str], needle: str
) -> None:
    """Zero epochs used to train nothing and save the untouched model as the default; a zero
    training cap failed deep inside the split with "fraction must be in (0, 1)"."""
    r = runner.invoke(app, ["sentiment", "train", *args], env={"HANSEEK_DATA_DIR": str(tmp_path)})
    assert r.exit_code == 2, r.output
    assert needle in flat(r.output), r.output
    assert not (tmp_path / "models" / "sentiment").exists() or not any(
        (tmp_path / "models" / "sentiment").iterdir()
    )


def test_experiment_and_train_refusals_are_one_line(tmp_path: Path) -> None:
    env = {"HANSEEK_DATA_DIR": str(tmp_path / "d")}
    bad = tmp_path / "bad.txt"
    bad.write_text("1\t좋다\n1\t둘\t셋\n", encoding="utf-8")
    empty = tmp_path / "empty.txt"
    empty.write_text("", encoding="utf-8")
    ok = tmp_path / "ok.txt"
    rows = [f"{i % 2}\t리뷰 {i}번 {'좋다' if i % 2 else '별로'}\n" for i in range(60)]
    ok.write_text("".join(rows), encoding="utf-8")
    latin = tmp_path / "latin.txt"
    latin.write_bytes("1\tcafé très bien\n".encode("latin-1") * 30)
    data = ["--data", str(tmp_path / "none")]
    cases = [
        (["experiment", *data, "--file", f"x={bad}"], "expected 2 tab-separated"),
        (["experiment", *data, "--file", f"x={empty}"], "no labelled reviews"),
        # Checked before the run: a report name that cannot be written does not cost the experiment.
        (["experiment", *data, "--file", f"x={ok}", "--stem", "a/b"], "plain file"),
        (["train", *data, "-d", "x", "--file", f"x={ok}", "--name", "zz\n"], "name"),
        # Was "utf-8' codec can't decode …": its opening quote stripped as if it were the message's.
        (["train", *data, "-d", "x", "--file", f"x={latin}"], "a review file is not UTF-8 text (invalid"),
    ]
    for args, needle in cases:
        r = CliRunner().invoke(app, ["sentiment", *args], env=env)
        assert r.exit_code == 1 and needle in flat(r.output), (args, r.output)
        assert "Traceback" not in r.output
    assert not (tmp_path / "d" / "models" / "sentiment" / "zz\n").exists()
