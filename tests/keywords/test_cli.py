"""`hanseek keywords ...` against the session's embedded PostgreSQL (the CLI reuses the running server)."""

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from hanseek.cli import app
from hanseek.config import Settings

runner = CliRunner()


@pytest.fixture()
def cli_env(db_settings: Settings, db: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HANSEEK_DATA_DIR", str(db_settings.data_dir))
    monkeypatch.delenv("HANSEEK_DATABASE_URL", raising=False)


def test_corpus_add_weights_cloze(cli_env: None, tmp_path: Path) -> None:
    subject = f"한국사-{uuid.uuid4().hex[:6]}"
    (tmp_path / "notes.md").write_text(
        "# 선사\n## 구석기\n구석기 시대에는 뗀석기를 썼다.\n"
        "## 신석기\n신석기 시대에는 빗살무늬토기를 썼다.\n",
        encoding="utf-8",
    )
    (tmp_path / "more.jsonl").write_text(
        json.dumps({"text": "청동기 시대에는 고인돌을 만들었다."}, ensure_ascii=False) + "\n",
        encoding="utf-8",
    )
    r = runner.invoke(
        app,
        [
            "keywords",
            "corpus",
            "add",
            "--subject",
            subject,
            str(tmp_path / "notes.md"),
            str(tmp_path / "more.jsonl"),
        ],
    )
    assert r.exit_code == 0, r.output
    assert "corpus now 4 documents" in r.output  # title section + 2 sections + 1 JSON line
    r = runner.invoke(app, ["keywords", "corpus", "list"])
    assert r.exit_code == 0 and subject in r.output

    (tmp_path / "kw.txt").write_text("고인돌\n", encoding="utf-8")
    r = runner.invoke(
        app,
        ["keywords", "corpus", "keywords", "--subject", subject, str(tmp_path / "kw.txt"), "--floor", "0.9"],
    )
    assert r.exit_code == 0, r.output

    page = "신석기 시대 사람들은 빗살무늬토기를 만들었고 청동기 시대에는 고인돌을 세웠다."
    r = runner.invoke(app, ["keywords", "weights", page, "--subject", subject, "--json"])
    assert r.exit_code == 0, r.output
    rows = {w["term"]: w for w in json.loads(r.output)}
    assert rows["고인돌"]["weight"] >= 0.9 and rows["시대"]["components"]["df_subject"] == 3

    r = runner.invoke(app, ["keywords", "cloze", page, "--count", "2", "--subject", subject])
    assert r.exit_code == 0, r.output
    assert "(1) ______" in r.output and "Answers" in r.output
    # The worksheet keeps the page's lines: Rich wrapped it at 80 columns, so `> page.txt` had breaks.
    long_page = " ".join([page] * 3)
    r = runner.invoke(app, ["keywords", "cloze", long_page, "--count", "4", "--subject", subject, "--json"])
    sheet = json.loads(r.output)["text"]
    r = runner.invoke(app, ["keywords", "cloze", long_page, "--count", "4", "--subject", subject])
    assert r.exit_code == 0 and r.output.startswith(sheet + "\n"), r.output

    r = runner.invoke(app, ["keywords", "weights", page, "--subject", "없는-" + subject])
    assert r.exit_code == 1 and "unknown subject" in r.output
    r = runner.invoke(app, ["keywords", "weights", "  "])
    assert r.exit_code == 1 and "empty" in r.output


def test_corpus_add_rejects_unknown_files(cli_env: None, tmp_path: Path) -> None:
    (tmp_path / "a.pdf").write_bytes(b"%PDF")
    r = runner.invoke(app, ["keywords", "corpus", "add", "--subject", "x", str(tmp_path / "a.pdf")])
    assert r.exit_code == 1 and "unsupported" in r.output


def test_refused_input_is_one_error_line_not_a_traceback(cli_env: None, tmp_path: Path) -> None:
    subject = f"과학-{uuid.uuid4().hex[:6]}"
    words = tmp_path / "words.txt"
    words.write_text("토기\n", encoding="utf-8")
    big = tmp_path / "big.csv"
    big.write_text("토기,1e39\n", encoding="utf-8")
    bad = tmp_path / "bad.jsonl"
    lines = ['{"text": "토기 \\ud800 문서"}', '{"text": "문서", "title": "a\\u0000b"}']
    bad.write_text("\n".join(lines) + "\n", encoding="utf-8")
    (tmp_path / "x[").mkdir()
    (tmp_path / "x[" / "y].pdf").write_bytes(b"%PDF")
    refused = [
        (["corpus", "keywords", "-s", "  ", str(words)], "subject name is empty"),
        (["corpus", "keywords", "-s", "a/b", str(words)], "cannot contain"),
        # Named in the progress line before the name is checked: "[/x]" was a MarkupError there.
        (["corpus", "add", "-s", "sub[/x]", str(words)], "cannot contain"),
        (["corpus", "dictionary", "-s", subject, str(big)], "토기"),
        (["corpus", "add", "-s", subject, str(bad)], "surrogate"),
        # A path is text, not Rich markup: "[/y]" in it was a MarkupError traceback.
        (["corpus", "add", "-s", subject, str(tmp_path / "x[" / "y].pdf")], "x[/y].pdf"),
    ]
    for args, said in refused:
        r = runner.invoke(app, ["keywords", *args])
        out = " ".join(r.output.split())
        assert r.exit_code == 1 and "error:" in out and said in out, (args, r.output)
        assert r.exception is None or isinstance(r.exception, SystemExit), args
    # Out-of-range options are usage errors (exit 2) before anything runs, as docs/keywords.md says.
    for args in (
        ["weights", "--k1", "-1", "--no-length-norm", "구석기 시대 토기"],
        ["weights", "--k1", "11", "구석기 시대 토기"],
        ["weights", "--b", "5", "구석기 시대 토기"],
        ["weights", "--top", "0", "구석기 시대 토기"],
        ["cloze", "--ratio", "0", "구석기 시대 토기"],
        ["cloze", "--ratio", "1.5", "구석기 시대 토기"],
        ["cloze", "--count", "2", "--ratio", "0.2", "구석기 시대 토기"],
        ["corpus", "docs", "-s", subject, "--limit", "0"],
        ["corpus", "docs", "-s", subject, "--limit", "-1"],
        ["corpus", "docs", "-s", subject, "--offset", "-1"],
    ):
        r = runner.invoke(app, ["keywords", *args])
        assert r.exit_code == 2, (args, r.output)


def test_eval_on_study_notes(shared_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "report"
    r = runner.invoke(
        app, ["keywords", "eval", "--notes", str(shared_data / "study_notes"), "--out", str(out)]
    )
    assert r.exit_code == 0, r.output
    settings = json.loads(out.with_suffix(".json").read_text(encoding="utf-8"))["settings"]
    result, same = settings.values()
    assert {n["note"] for n in same["notes"]} == {"2016_05_Science", "2016_07_Science", "2016_10_Science"}
    assert len(result["notes"]) >= 5 and all(n["note"] != "SOURCE" for n in result["notes"])
    methods = result["methods"]
    assert {"dictionary", "tfidf", "bm25", "bm25 + floor"} <= set(methods)
    chance = result["chance_precision_occurrences"]
    # Weighting must beat blanking at random (the share of bold candidates).
    assert methods["bm25"]["occurrences"]["precision"] > chance + 0.05
    assert "| bm25 |" in out.with_suffix(".md").read_text(encoding="utf-8")


def test_a_bad_first_dictionary_row_fails_and_keeps_the_dictionary(cli_env: None, tmp_path: Path) -> None:
    """`x,abc` on line 1 was dropped as a header: "dictionary set (0 words)", exit 0, dictionary gone."""
    subject = f"역사-{uuid.uuid4().hex[:6]}"
    good = tmp_path / "good.csv"
    good.write_text("단어,가중치\n움집,5\n", encoding="utf-8")
    r = runner.invoke(app, ["keywords", "corpus", "dictionary", "-s", subject, str(good)])
    assert r.exit_code == 0 and "(1 words)" in r.output, r.output
    for text, said in (("x,abc\n", "line 1: weight 'abc' is not a number"), ("word,weight\n", "no words")):
        bad = tmp_path / "bad.csv"
        bad.write_text(text, encoding="utf-8")
        r = runner.invoke(app, ["keywords", "corpus", "dictionary", "-s", subject, str(bad)])
        out = " ".join(r.output.split())
        assert r.exit_code == 1 and out.startswith("error:") and said in out, r.output
    r = runner.invoke(app, ["keywords", "corpus", "list"])
    row = next(line for line in r.output.splitlines() if subject in line)
    assert row.split("│")[4].strip() == "1"  # the dictionary column: still the good file's word


def test_corpus_remove_of_a_missing_id_exits_1(cli_env: None, tmp_path: Path) -> None:
    """The API answers 404 and `images remove` exits 1; `corpus remove` printed a line and exited 0."""
    subject = f"역사-{uuid.uuid4().hex[:6]}"
    (tmp_path / "a.txt").write_text("구석기 시대에는 뗀석기를 썼다.", encoding="utf-8")
    r = runner.invoke(app, ["keywords", "corpus", "add", "-s", subject, str(tmp_path / "a.txt")])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["keywords", "corpus", "docs", "-s", subject])
    doc_id = next(line.split("│")[1].strip() for line in r.output.splitlines() if "a.txt" in line)
    r = runner.invoke(app, ["keywords", "corpus", "remove", "-s", subject, "999999999", doc_id])
    assert r.exit_code == 1 and f"error: document 999999999 is not in {subject}" in r.output, r.output
    assert f"removed {doc_id}" in r.output  # the ids that were there are removed all the same
    r = runner.invoke(app, ["keywords", "corpus", "remove", "-s", subject, doc_id])
    assert r.exit_code == 1, r.output
    r = runner.invoke(app, ["keywords", "corpus", "remove", "-s", "없는-" + subject, "1"])
    assert r.exit_code == 1 and "unknown subject" in r.output


def test_files_that_were_tracebacks_are_one_error_line(cli_env: None, tmp_path: Path) -> None:
    """`corpus add` caught ValueError only (RecursionError from deep JSON is not one), `corpus
    dictionary` IngestError only (csv.Error is not one): both were tracebacks before session 18. A
    Markdown file with a huge character reference was refused as "Exceeds the limit (4300 digits)"."""
    subject = f"과학-{uuid.uuid4().hex[:6]}"
    deep = tmp_path / "deep.jsonl"
    deep.write_text("[" * 100_000 + "\n", encoding="utf-8")
    wide = tmp_path / "wide.csv"
    wide.write_text("a" * 140_000 + ",1\n", encoding="utf-8")
    titled = tmp_path / "titled.jsonl"
    titled.write_text(json.dumps({"text": "토기", "title": "가" * 501}) + "\n", encoding="utf-8")
    long_word = tmp_path / "long.txt"  # a ProgramLimitExceeded traceback (the terms' btree key)
    long_word.write_text("토기\n" + "가" * 1000 + "\n", encoding="utf-8")
    long_dict = tmp_path / "long.csv"
    long_dict.write_text("가" * 1000 + ",1\n", encoding="utf-8")
    for args, said in (
        (["corpus", "keywords", "-s", subject, str(long_word)], "a word has at most 100"),
        (["corpus", "dictionary", "-s", subject, str(long_dict)], "a word has at most 100"),
        (["corpus", "add", "-s", subject, str(deep)], "deep.jsonl:1: JSON nested too deeply"),
        (["corpus", "dictionary", "-s", subject, str(wide)], "line 1: a field is longer than 131,072"),
        (["corpus", "add", "-s", subject, str(titled)], "titled.jsonl:1: title has 501 characters"),
    ):
        r = runner.invoke(app, ["keywords", *args])
        out = " ".join(r.output.split())
        assert r.exit_code == 1 and out.startswith("error:") and said in out, (args, r.output)
        assert r.exception is None or isinstance(r.exception, SystemExit), args
    ref = tmp_path / "ref.md"
    ref.write_text("# 제목\n토기 &#" + "9" * 5000 + "; 문서\n", encoding="utf-8")
    r = runner.invoke(app, ["keywords", "corpus", "add", "-s", subject, str(ref)])
    assert r.exit_code == 0 and "1 new documents" in r.output, r.output
