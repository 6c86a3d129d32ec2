"""`report_files`: a report path that cannot be written is refused before the long run, not after it."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from hanseek.cli import app

from ..clitext import flat

runner = CliRunner()


def test_keywords_eval_refuses_its_out_before_evaluating(shared_data: Path, tmp_path: Path) -> None:
    """Until session 18 both failed after the whole evaluation, the first leaving OUT.md behind."""
    notes = str(shared_data / "study_notes")
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    r = runner.invoke(app, ["keywords", "eval", "--notes", notes, "--out", str(blocker / "sub" / "r")])
    assert r.exit_code == 1 and "cannot make the folder of" in flat(r.output), r.output
    assert "evaluating" not in r.output
    (tmp_path / "r.json").mkdir()
    r = runner.invoke(app, ["keywords", "eval", "--notes", notes, "--out", str(tmp_path / "r")])
    assert r.exit_code == 1 and "r.json is a directory" in flat(r.output), r.output
    assert not (tmp_path / "r.md").exists()


def test_images_eval_refuses_its_out_before_loading_models(tmp_path: Path) -> None:
    header = "file,caption_en,caption_ko,category\n"  # the columns the evaluation needs (checked first)
    (tmp_path / "captions.csv").write_text(header, encoding="utf-8")
    (tmp_path / "out" / "images-eval.md").mkdir(parents=True)
    r = runner.invoke(app, ["images", "eval", "--data", str(tmp_path), "--out", str(tmp_path / "out")])
    assert r.exit_code == 1 and "images-eval.md is a directory" in flat(r.output), r.output
