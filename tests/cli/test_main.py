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
