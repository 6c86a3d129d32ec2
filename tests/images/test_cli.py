"""`hanseek images ...` against the session's embedded PostgreSQL (the CLI reuses the running server)."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from typer.testing import CliRunner

from hanseek.cli import app
from hanseek.config import Settings
from tests.images.conftest import unique_png

runner = CliRunner()


@pytest.fixture()
def cli_env(db_settings: Settings, db: Any, e5_model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HANSEEK_DATA_DIR", str(db_settings.data_dir))
    monkeypatch.setenv("HANSEEK_TEXT_MODEL", str(e5_model_dir))  # reuse the converted model
    monkeypatch.delenv("HANSEEK_DATABASE_URL", raising=False)


@pytest.mark.slow  # seven CLI runs, each loading both models like a user's shell would
def test_add_search_similar_list_remove(
    cli_env: None, tmp_path: Path, sample_images: dict[str, Image.Image], tag: str
) -> None:
    folder = tmp_path / "photos"
    (folder / "sub").mkdir(parents=True)
    (folder / "china.png").write_bytes(unique_png(sample_images["china"]))
    (folder / "sub" / "hopper.png").write_bytes(unique_png(sample_images["hopper"]))
    (folder / "readme.txt").write_text("not an image")  # ignored by suffix
    (folder / "fake.jpg").write_bytes(b"not really a jpeg")  # tried, rejected, reported
    with (tmp_path / "captions.csv").open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["file", "caption", "tags"])
        w.writerow(["photos/sub/hopper.png", "제복을 입은 해군 장교", "person;portrait"])
    r = runner.invoke(
        app, ["images", "add", str(folder), "--tags", tag, "--captions", str(tmp_path / "captions.csv")]
    )
    assert r.exit_code == 0, r.output
    assert "2 added, 0 duplicate(s), 1 rejected" in r.output
    assert "fake.jpg" in r.output

    r = runner.invoke(app, ["images", "add", str(folder / "china.png"), "--tags", tag])
    assert "0 added, 1 duplicate(s)" in r.output
    # Another file that looks the same is stored and named as the API's near_duplicate_of does.
    edited = tmp_path / "china-small.png"
    with Image.open(folder / "china.png") as im:
        im.resize((im.width // 2, im.height // 2)).save(edited)
    r = runner.invoke(app, ["images", "add", str(edited), "--tags", f"{tag}-copy"])
    assert r.exit_code == 0 and "1 added" in r.output, r.output
    assert "near-duplicate" in r.output and "china-small.png" in r.output and "looks like image" in r.output
    # Removed again: other tests in the session look for stored copies of this photo at full size.
    found = re.search(r"china-small\.png \(id (\d+)\) looks like image \d+", r.output)
    assert found, r.output
    copy_id = found.group(1)
    assert runner.invoke(app, ["images", "remove", copy_id]).exit_code == 0

    r = runner.invoke(app, ["images", "search", "해군 장교", "--tag", tag, "-k", "2", "--json"])
    assert r.exit_code == 0, r.output
    hits = json.loads(r.stdout)["results"]
    assert hits[0]["caption"] == "제복을 입은 해군 장교" and set(hits[0]["tags"]) == {
        tag,
        "person",
        "portrait",
    }
    hopper_id = hits[0]["id"]

    r = runner.invoke(app, ["images", "similar", str(folder / "china.png"), "--tag", tag, "--json"])
    assert r.exit_code == 0, r.output
    china_id = json.loads(r.stdout)["results"][0]["id"]
    assert china_id != hopper_id
    r = runner.invoke(app, ["images", "similar", str(china_id), "--tag", tag, "--json"])
    assert [h["id"] for h in json.loads(r.stdout)["results"]] == [hopper_id]

    r = runner.invoke(app, ["images", "list", "--tag", tag])
    assert r.exit_code == 0 and "2 of 2 image(s)" in r.output
    # A page as long as --limit names the cursor of the next one.
    newest, older = sorted([hopper_id, china_id], reverse=True)  # one add: created_at may tie, then id
    r = runner.invoke(app, ["images", "list", "--tag", tag, "--limit", "1"])
    assert r.exit_code == 0 and f"│ {newest} " in r.output and f"│ {older} " not in r.output, r.output
    cursor = r.output.split("next page: --after ")[1].split()[0]
    r = runner.invoke(app, ["images", "list", "--tag", tag, "--limit", "1", "--after", cursor])
    assert r.exit_code == 0 and f"│ {older} " in r.output and f"│ {newest} " not in r.output, r.output
    r = runner.invoke(app, ["images", "list", "--after", "soon"])
    assert r.exit_code == 1 and "not a list cursor" in _text(r.output)
    # `--tag a,b` means both tags, as the API's `tag=a,b` (it was one tag named "a,b": nothing found).
    r = runner.invoke(app, ["images", "list", "--tag", f"{tag},person"])
    assert r.exit_code == 0 and "1 of 1 image(s)" in r.output, r.output
    r = runner.invoke(app, ["images", "search", "해군 장교", "--tag", f"{tag},portrait", "--json"])
    assert [h["id"] for h in json.loads(r.stdout)["results"]] == [hopper_id], r.output

    r = runner.invoke(app, ["images", "remove", str(china_id), str(hopper_id)])
    assert r.exit_code == 0 and f"removed {hopper_id}" in r.output
    r = runner.invoke(app, ["images", "list", "--tag", tag])
    assert "0 of 0 image(s)" in r.output


def _text(output: str) -> str:
    return " ".join(output.split())  # rich wraps long lines, and a message after a temp path may wrap


def test_errors_are_messages_not_tracebacks(cli_env: None, tmp_path: Path) -> None:
    r = runner.invoke(app, ["images", "add", str(tmp_path / "missing")])
    assert r.exit_code == 1 and "does not exist" in _text(r.output)
    r = runner.invoke(app, ["images", "similar", "999999999"])
    assert r.exit_code == 1 and "does not exist" in _text(r.output)
    (tmp_path / "x.png").write_bytes(b"nope")
    r = runner.invoke(app, ["images", "similar", str(tmp_path / "x.png")])
    assert r.exit_code == 1 and "not an image" in _text(r.output)
    # Nothing usable added, an unknown id removed, a bad --path or tag, a captions file without the
    # columns it needs: each says so and exits non-zero.
    r = runner.invoke(app, ["images", "add", str(tmp_path / "x.png")])
    assert r.exit_code == 1 and "1 rejected" in _text(r.output)
    # A file name is text, not Rich markup: "[/x]" in it was a MarkupError traceback.
    (tmp_path / "x[").mkdir()
    (tmp_path / "x[" / "y].png").write_bytes(b"nope")
    r = runner.invoke(app, ["images", "add", str(tmp_path / "x[" / "y].png")])
    assert r.exit_code == 1 and "x[/y].png" in _text(r.output), r.output
    r = runner.invoke(app, ["images", "remove", "999999999"])
    assert r.exit_code == 1 and "does not exist" in _text(r.output)
    r = runner.invoke(app, ["images", "search", "고양이", "--path", "foo"])
    assert r.exit_code == 2 and "auto, exact, hnsw" in _text(r.output)
    r = runner.invoke(app, ["images", "list", "--tag", "a" * 70])
    assert r.exit_code == 1 and "64 characters" in _text(r.output) and "Traceback" not in r.output
    caps = tmp_path / "caps.csv"
    caps.write_text("filename,text\nx.png,우주비행사\n", encoding="utf-8")
    r = runner.invoke(app, ["images", "add", str(tmp_path / "x.png"), "--captions", str(caps)])
    assert r.exit_code == 1 and "needs a 'file' column" in _text(r.output)
    huge = tmp_path / "huge.csv"  # a field past csv's 131,072 characters was a traceback
    huge.write_text("file,caption\nx.png," + "가" * 140_000 + "\n", encoding="utf-8")
    r = runner.invoke(app, ["images", "add", str(tmp_path / "x.png"), "--captions", str(huge)])
    assert (
        r.exit_code == 1
        and "line 2" in _text(r.output)
        and "field larger than field limit" in _text(r.output)
    )
    assert "Traceback" not in r.output


def test_captions_csv_rows_with_a_folder_match_only_that_file(
    cli_env: None, tmp_path: Path, sample_images: dict[str, Image.Image], tag: str, image_service: Any
) -> None:
    """`a/cat.png` in the CSV is that file, not `b/cat.png` too; a bare name matches in any folder; a
    NUL in one row's caption rejects that file only (no traceback)."""
    folder = tmp_path / "photos"
    for sub in ("a", "b", "c"):
        (folder / sub).mkdir(parents=True)
    (folder / "a" / "cat.png").write_bytes(unique_png(sample_images["china"]))
    (folder / "b" / "cat.png").write_bytes(unique_png(sample_images["hopper"]))
    (folder / "c" / "dog.png").write_bytes(unique_png(sample_images["flower"]))
    (folder / "c" / "nul.png").write_bytes(unique_png(sample_images["flower"]))
    caps = folder / "captions.csv"
    with caps.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["file", "caption", "tags"])
        w.writerow(["a/cat.png", "the cat in a", "only-a"])
        w.writerow(["dog.png", "any dog", "dog"])
        w.writerow(["nul.png", "bad\x00caption", ""])
        w.writerow(["z/cat.png", "nobody", ""])
    r = runner.invoke(app, ["images", "add", str(folder), "--tags", tag, "--captions", str(caps)])
    assert r.exit_code == 0, r.output
    out = _text(r.output)
    assert "Traceback" not in r.output and "3 added, 0 duplicate(s), 1 rejected" in out
    assert "nul.png" in out and "NUL" in out
    rows, _ = image_service.list(tags=[tag])
    by_caption = {row["caption"]: row for row in rows}
    assert set(by_caption) == {"the cat in a", "any dog", None}
    assert "only-a" in by_caption["the cat in a"]["tags"] and by_caption[None]["tags"] == [tag]
    assert "captions without a matching file: z/cat.png" in out
