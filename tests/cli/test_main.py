"""The console script's own behaviour: hostile paths and sizes are refused with one line, never a
traceback (found by running every command with such arguments)."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

import hanseek.cli as cli
from hanseek.cli import app

from ..clitext import flat


@pytest.mark.parametrize(
    "args,needle",
    [
        (["db", "backup", "{dir}"], "is a directory"),
        (["db", "restore", "{missing}", "--yes"], "does not exist"),
        (["images", "add", "{dir}", "--captions", "{missing}"], "does not exist"),
        (["keywords", "weights", "--file", "{missing}"], "does not exist"),
        (["keywords", "cloze", "--image", "{dir}"], "is a directory"),
        (["keywords", "corpus", "keywords", "-s", "x", "{dir}"], "is a directory"),
        (["keywords", "corpus", "dictionary", "-s", "x", "{missing}"], "does not exist"),
        (["keywords", "eval", "--notes", "{dir}", "--out", "{dir}"], "is a directory"),
        (["keywords", "background", "build", "--shared-data", "{missing}"], "does not exist"),
        (["eval", "sts", "--korsts", "{dir}"], "is a directory"),
        (["train", "simcse", "-n", "m", "--texts", "{missing}"], "does not exist"),
        (["train", "simcse", "-n", "m", "--steps", "0"], "--steps"),
        (["train", "simcse", "-n", "m", "--batch-size", "1"], "--batch-size"),
        (["sentiment", "experiment", "--train-size", "-1"], "--train-size"),
        (["sentiment", "experiment", "--dev-size", "0"], "--dev-size"),
        (["feed", "eval", "--out", "{file}"], "is a file"),
        (["train", "simcse", "-n", "m", "--texts", "{file}", "--eval-korsts", "{file}"], "not a KorSTS file"),
        (["train", "simcse", "-n", "m", "--texts", "{file}", "--eval-korsts", "{empty}"], "not a KorSTS"),
        (
            ["train", "simcse", "-n", "m", "--texts", "{file}", "--eval-parakqc", "{file}"],
            "no complete paraphrase set",
        ),
        (["train", "simcse", "-n", "m", "--texts", "{file}", "--pairs", "{file}"], "one training source"),
        (["train", "simcse", "-n", "m", "--temperature", "0"], "--temperature"),
        (["train", "simcse", "-n", "m", "--lr", "0"], "--lr"),
        (["eval", "sts", "--skip-korsts", "--parakqc", "{file}"], "no complete paraphrase set"),
        (["eval", "sts", "--skip-parakqc", "--korsts", "{file}"], "not a KorSTS"),
        (["eval", "sts", "--skip-korsts", "--skip-parakqc"], "nothing to evaluate"),
        (["encode", "a", "--dims", "-3"], "--dims"),
        (["keywords", "weights", "--k1", "-1", "x"], "--k1"),
        (["keywords", "cloze", "--ratio", "0", "x"], "--ratio"),
    ],
)
def test_paths_and_sizes_are_checked_before_any_work(tmp_path: Path, args: list[str], needle: str) -> None:
    (tmp_path / "f.txt").write_text("x", encoding="utf-8")
    (tmp_path / "empty.tsv").write_text("", encoding="utf-8")
    paths = {
        "dir": str(tmp_path),
        "missing": str(tmp_path / "missing.txt"),
        "file": str(tmp_path / "f.txt"),
        "empty": str(tmp_path / "empty.tsv"),
    }
    r = CliRunner().invoke(
        app, [a.format(**paths) for a in args], env={"HANSEEK_DATA_DIR": str(tmp_path / "d")}
    )
    assert r.exit_code == 2, r.output
    assert needle in flat(r.output), r.output
    assert "Traceback" not in r.output
    assert not (tmp_path / "d").exists()  # refused before a database or model directory was made


def test_a_file_that_is_not_utf8_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    words = tmp_path / "words.txt"
    words.write_bytes("단어\n".encode("euc-kr"))
    monkeypatch.setenv("HANSEEK_DATA_DIR", str(tmp_path / "d"))
    monkeypatch.setattr("sys.argv", ["hanseek", "keywords", "corpus", "keywords", "-s", "x", str(words)])
    with pytest.raises(SystemExit) as exit_:
        cli.main()
    assert exit_.value.code == 1
    err = capsys.readouterr().err
    assert "not UTF-8 text" in err and "Traceback" not in err


def test_an_os_error_is_one_line(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """What no command foresaw (a full disk, a permission) still reaches the user as its message."""
    broken = typer.Typer()

    @broken.command()
    def write() -> None:
        raise OSError(28, "No space left on device", "/data/[x].json")

    monkeypatch.setattr(cli, "app", broken)
    monkeypatch.setattr("sys.argv", ["hanseek"])
    with pytest.raises(SystemExit) as exit_:
        cli.main()
    assert exit_.value.code == 1
    err = capsys.readouterr().err
    assert "No space left on device: '/data/[x].json'" in err and "Traceback" not in err


def test_version_is_printed_without_a_command() -> None:
    from hanseek import __version__

    r = CliRunner().invoke(app, ["--version"])
    assert r.exit_code == 0 and r.output == f"hanseek {__version__}\n"
    r = CliRunner().invoke(app, [])
    assert "Usage" in r.output and "--version" in r.output  # no command: the help, as before


def test_a_store_error_of_any_command_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Outside `hanseek db`, an unreachable database was a traceback (docs/store.md promises a line)."""
    monkeypatch.setenv("HANSEEK_DATA_DIR", str(tmp_path / "d"))
    monkeypatch.setenv("HANSEEK_DATABASE_URL", f"postgresql://u:pw@/x?host={tmp_path}&port=1")
    monkeypatch.setattr("sys.argv", ["hanseek", "feed", "rebuild-profiles"])
    with pytest.raises(SystemExit) as exit_:
        cli.main()
    assert exit_.value.code == 1
    err = capsys.readouterr().err
    assert "error: cannot connect to PostgreSQL" in flat(err) and "Traceback" not in err
    assert ":pw@" not in err


def test_a_store_error_message_is_not_read_as_markup(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from hanseek.store.errors import StoreError

    broken = typer.Typer()

    @broken.command()
    def start() -> None:
        raise StoreError("/data/[bold]pgdata[/bold] is neither empty nor a PostgreSQL data directory")

    monkeypatch.setattr(cli, "app", broken)
    monkeypatch.setattr("sys.argv", ["hanseek"])
    with pytest.raises(SystemExit) as exit_:
        cli.main()
    assert exit_.value.code == 1
    assert "/data/[bold]pgdata[/bold] is neither empty" in flat(capsys.readouterr().err)


@pytest.mark.parametrize(
    "var,value,args,needle",
    [
        ("HANSEEK_PORT", "abc", ["db", "url"], "HANSEEK_PORT: Input should be a valid integer"),
        ("HANSEEK_PORT", "70000", ["db", "url"], "HANSEEK_PORT: Input should be less than or equal to 65535"),
        ("HANSEEK_POOL_MIN_SIZE", "-1", ["db", "url"], "HANSEEK_POOL_MIN_SIZE: Input should be greater"),
        ("HANSEEK_POOL_MAX_SIZE", "0", ["db", "url"], "HANSEEK_POOL_MAX_SIZE: Input should be greater"),
        ("HANSEEK_MAX_BODY_BYTES", "-1", ["db", "url"], "HANSEEK_MAX_BODY_BYTES: Input should be greater"),
        ("HANSEEK_MAX_BATCH_ITEMS", "0", ["db", "url"], "HANSEEK_MAX_BATCH_ITEMS: Input should be greater"),
        ("HANSEEK_MAX_TEXT_CHARS", "-1", ["db", "url"], "HANSEEK_MAX_TEXT_CHARS: Input should be greater"),
        (
            "HANSEEK_ENCODE_BATCH_SIZE",
            "0",
            ["db", "url"],
            "HANSEEK_ENCODE_BATCH_SIZE: Input should be greater",
        ),
        ("HANSEEK_TEXT_BACKEND", "onxx", ["db", "url"], "HANSEEK_TEXT_BACKEND: Input should be 'torch'"),
        ("HANSEEK_FEED_MAX_K", "0", ["feed", "show", "u"], "HANSEEK_FEED_MAX_K: Input should be greater"),
        (
            "HANSEEK_FEED_TEXT_FIELDS",
            "title,body",
            ["feed", "show", "u"],
            "HANSEEK_FEED_TEXT_FIELDS cannot be",
        ),
        (
            "HANSEEK_FEED_TEXT_FIELDS",
            '["titel"]',
            ["feed", "show", "u"],
            "HANSEEK_FEED_TEXT_FIELDS: unknown post field 'titel'",
        ),
        (
            "HANSEEK_IMAGE_THUMBNAIL_PX",
            "1",
            ["images", "list"],
            "HANSEEK_IMAGE_THUMBNAIL_PX: Input should be",
        ),
        (
            "HANSEEK_IMAGE_NEAR_DUPLICATE_SCORE",
            "nan",
            ["serve"],
            "HANSEEK_IMAGE_NEAR_DUPLICATE_SCORE: Input should be a finite",
        ),
        ("HANSEEK_FEED_EXPLAIN_HISTORY", "-1", ["serve"], "HANSEEK_FEED_EXPLAIN_HISTORY: Input should be"),
    ],
)
def test_a_bad_setting_is_one_line_naming_the_variable(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    var: str,
    value: str,
    args: list[str],
    needle: str,
) -> None:
    """Until session 19 a bad HANSEEK_* value was a 60–145-line pydantic traceback in every command,
    and `serve` listened and reported ready with a bad feed or image setting, then answered those
    requests with 500s (config review). `serve` checks them before it opens the database."""
    monkeypatch.setenv("HANSEEK_DATA_DIR", str(tmp_path / "d"))
    monkeypatch.setenv(var, value)
    monkeypatch.setattr("sys.argv", ["hanseek", *args])
    with pytest.raises(SystemExit) as exit_:
        cli.main()
    assert exit_.value.code == 1
    raw = capsys.readouterr().err
    assert len(raw.strip().splitlines()) == 1  # not wrapped at the console's width
    err = flat(raw)
    assert f"error: invalid setting: {needle}" in err and "Traceback" not in err
    if args[0] == "serve":  # refused before any database was started or port taken
        assert not (tmp_path / "d" / "pgdata").exists()


def test_empty_variables_mean_unset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`HANSEEK_HOST=` listened on every interface and `HANSEEK_DATA_DIR=` put the database in the
    working directory (config review): an empty variable, as compose files leave them, is unset."""
    from hanseek.config import load_settings
    from hanseek.feed.settings import load_feed_settings

    monkeypatch.chdir(tmp_path)
    for var in ("HANSEEK_HOST", "HANSEEK_DATA_DIR", "HANSEEK_PORT", "HANSEEK_API_KEY", "HANSEEK_FEED_MAX_K"):
        monkeypatch.setenv(var, "")
    s = load_settings()
    assert (s.host, s.data_dir, s.port, s.api_key) == ("127.0.0.1", tmp_path / "data", 8000, None)
    assert load_feed_settings().max_k == 200


def test_serve_refuses_protected_reads_without_a_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("HANSEEK_DATA_DIR", str(tmp_path / "d"))
    monkeypatch.setenv("HANSEEK_PROTECT_READS", "true")
    monkeypatch.setattr("sys.argv", ["hanseek", "serve", "--no-demo"])
    with pytest.raises(SystemExit) as exit_:
        cli.main()
    assert exit_.value.code == 1
    err = flat(capsys.readouterr().err)
    assert "HANSEEK_PROTECT_READS is on but HANSEEK_API_KEY is not set" in err
    assert not (tmp_path / "d" / "pgdata").exists()


def test_a_pool_smaller_than_its_minimum_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    from pydantic import ValidationError

    from hanseek.config import load_settings, settings_error_message

    monkeypatch.setenv("HANSEEK_POOL_MIN_SIZE", "4")
    monkeypatch.setenv("HANSEEK_POOL_MAX_SIZE", "2")
    with pytest.raises(ValidationError) as e:
        load_settings()
    assert settings_error_message(e.value) == (
        "invalid setting: HANSEEK_POOL_MAX_SIZE (2) is below HANSEEK_POOL_MIN_SIZE (4)"
    )


@pytest.mark.parametrize(
    "var,value,args,needle",
    [
        (
            "HANSEEK_EMBED_DIM",
            "768",
            ["feed", "rebuild-profiles"],
            "HANSEEK_EMBED_DIM is 768, but the posts' vector column holds 384-d vectors",
        ),
        (
            "HANSEEK_SHOPPING_REVIEWS",
            "{missing}",
            ["sentiment", "train", "-d", "shopping", "--name", "s"],
            "is not a file",  # after the path, which the console may wrap
        ),
    ],
)
def test_settings_checked_against_what_exists_are_one_line(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    var: str,
    value: str,
    args: list[str],
    needle: str,
) -> None:
    """A dimension the posts' column cannot hold failed on the first feed request with a reshape
    traceback; a shopping file that does not exist left the domain out silently (config review)."""
    missing = str(tmp_path / "no_such_shopping.txt")
    monkeypatch.setenv("HANSEEK_DATA_DIR", str(tmp_path / "d"))
    monkeypatch.setenv(var, value.format(missing=missing))
    monkeypatch.setattr("sys.argv", ["hanseek", *args])
    with pytest.raises(SystemExit) as exit_:
        cli.main()
    assert exit_.value.code == 1
    err = flat(capsys.readouterr().err)
    assert f"error: {var}" in err and needle in err and "Traceback" not in err


def test_a_stale_shopping_variable_stops_only_what_uses_shopping(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Training on another domain went on with a stale variable before its check; it must still."""
    monkeypatch.setenv("HANSEEK_DATA_DIR", str(tmp_path / "d"))
    monkeypatch.setenv("HANSEEK_SHOPPING_REVIEWS", str(tmp_path / "gone.txt"))
    monkeypatch.setattr("sys.argv", ["hanseek", "sentiment", "train", "-d", "movie", "--data", str(tmp_path)])
    with pytest.raises(SystemExit) as exit_:
        cli.main()
    assert exit_.value.code == 1
    err = flat(capsys.readouterr().err)
    assert "no review files found" in err and "HANSEEK_SHOPPING_REVIEWS" not in err
