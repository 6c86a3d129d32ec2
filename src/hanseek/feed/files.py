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
