"""Reading posts, events and memberships from JSON Lines or CSV files (validated row by row)."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from hanseek.feed.errors import InvalidInput

M = TypeVar("M", bound=BaseModel)


def _rows(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """The rows with their line numbers. A file that is not UTF-8, or a CSV row the csv module cannot
    read (a field over its 131,072 characters), is an InvalidInput naming the file and the line:
    until session 18 the first was an error naming no file at a wrong byte offset (the decoder's,
    within its chunk), the second a traceback."""
    last = 0
    try:
        for last, row in _parsed_rows(path):
            yield last, row
    except UnicodeDecodeError as e:
        line, offset = _first_bad_utf8(path)
        raise InvalidInput(
            f"{path}:{line}: not UTF-8 text ({e.reason} at byte {offset:,} of the file)"
        ) from None
    except csv.Error as e:
        raise InvalidInput(f"{path}: after line {last}: {e}") from None


def _first_bad_utf8(path: Path) -> tuple[int, int]:
    """The line and file offset of the first byte that is not UTF-8 (the decoder reads ahead in
    chunks, so its error says neither)."""
    offset = 0
    with path.open("rb") as f:
        for n, raw in enumerate(f, 1):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError as e:
                return n, offset + e.start
            offset += len(raw)
    return n if offset else 1, offset


def _parsed_rows(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    suffix = path.suffix.lower()
    with path.open(encoding="utf-8-sig", newline="") as f:
        if suffix in (".jsonl", ".ndjson", ".json"):
            for n, line in enumerate(f, 1):
                if line.strip():
                    try:
                        obj = json.loads(line)
                    except json.JSONDecodeError as e:
                        raise InvalidInput(f"{path}:{n}: not JSON ({e.msg})") from e
                    if not isinstance(obj, dict):
                        raise InvalidInput(f"{path}:{n}: expected a JSON object per line")
                    yield n, obj
        elif suffix in (".csv", ".tsv"):
            reader = csv.DictReader(f, delimiter="\t" if suffix == ".tsv" else ",")
            for n, row in enumerate(reader, 2):
                # Empty CSV cells mean "not given", so optional fields get their defaults.
                yield n, {k: v for k, v in row.items() if k is not None and v not in ("", None)}
        else:
            raise InvalidInput(f"{path}: unknown format (use .jsonl or .csv)")


def read_models(path: Path, model: type[M], *, max_errors: int = 10) -> list[M]:
    """Every row as `model`; all errors (up to `max_errors`) are reported together, nothing partial."""
    out: list[M] = []
    errors: list[str] = []
    for n, row in _rows(path):
        try:
            out.append(model.model_validate(row))
        except ValidationError as e:
            first = e.errors()[0]
            where = ".".join(str(x) for x in first["loc"])
            errors.append(f"{path.name}:{n}: {where + ': ' if where else ''}{first['msg']}")
            if len(errors) >= max_errors:
                break
    if errors:
        raise InvalidInput("invalid rows:\n  " + "\n  ".join(errors))
    return out
