"""`hanseek feed eval` refuses bad options with a message before doing any work."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from hanseek.cli import app

runner = CliRunner()


def test_eval_refuses_an_unknown_query_unit(tmp_path: Path) -> None:
    r = runner.invoke(app, ["feed", "eval", "--unit", "day", "--out", str(tmp_path)])
    out = " ".join(r.output.split())  # rich wraps long lines
    assert r.exit_code == 1
    assert "unknown --unit 'day'" in out and "read, session" in out
    assert not list(tmp_path.iterdir())


def test_eval_refuses_a_missing_data_folder(tmp_path: Path) -> None:
    r = runner.invoke(app, ["feed", "eval", "--shared-data", str(tmp_path / "nope"), "--out", str(tmp_path)])
    assert r.exit_code == 1 and "not found (pass --shared-data)" in " ".join(r.output.split())


def test_eval_refuses_a_negative_sample(tmp_path: Path) -> None:
    r = runner.invoke(app, ["feed", "eval", "--max-queries", "-1", "--out", str(tmp_path)])
    assert r.exit_code == 2 and "--max-queries" in " ".join(r.output.split())
    assert not list(tmp_path.iterdir())
