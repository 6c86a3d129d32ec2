"""Reading posts and events from files (feed.files): bad bytes and unreadable CSV rows name the file
and the line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hanseek.feed.errors import InvalidInput
from hanseek.feed.files import read_models
from hanseek.feed.models import PostIn

POST = {"id": "p1", "community": "c", "title": "제목", "created_at": "2024-01-01T00:00:00Z"}


def test_a_file_that_is_not_utf8_names_itself_and_the_line(tmp_path: Path) -> None:
    """Until session 18: "a file is not UTF-8 text (invalid start byte at byte 8053)", no file named
    and the offset within the decoder's chunk, not the file."""
    path = tmp_path / "posts.jsonl"
    good = "".join(json.dumps(POST | {"id": f"p{i}", "body": "가" * 300}) + "\n" for i in range(40))
    path.write_bytes(good.encode() + b'{"id": "bad\xff"}\n')
    at = len(good.encode()) + len(b'{"id": "bad')
    with pytest.raises(
        InvalidInput, match=rf"posts\.jsonl:41: not UTF-8 text \(invalid start byte at byte {at:,} "
    ):
        read_models(path, PostIn)


def test_a_csv_field_over_the_csv_limit_is_invalid_input(tmp_path: Path) -> None:
    """Until session 18 a `_csv.Error` traceback from `hanseek feed ingest`."""
    path = tmp_path / "posts.csv"
    path.write_text(
        "id,community,title,created_at,body\n"
        "p1,c,제목,2024-01-01T00:00:00Z,짧다\n"
        f"p2,c,제목,2024-01-01T00:00:00Z,{'가' * 140_000}\n",
        encoding="utf-8",
    )
    with pytest.raises(InvalidInput, match=r"posts\.csv: after line 2: field larger than field limit"):
        read_models(path, PostIn)
