"""Reading corpus documents from files (text, Markdown, JSON Lines) and word lists (CSV)."""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from hanseek.keywords.markdown import markdown_to_text, split_sections
from hanseek.keywords.terms import normalize_term

TEXT_SUFFIXES = {".txt", ".text"}
MARKDOWN_SUFFIXES = {".md", ".markdown"}
JSONL_SUFFIXES = {".jsonl", ".ndjson"}
_JSON_TEXT_KEYS = ("text", "body", "document", "content")


class Split(StrEnum):
    AUTO = "auto"  # Markdown: one document per section; text: whole file; JSON Lines: one per line
    NONE = "none"  # one document per file (JSON Lines: still one per line)
    SECTION = "section"
    PARAGRAPH = "paragraph"


@dataclass(frozen=True)
class DocInput:
    body: str
    title: str | None = None
    source: str | None = None


class IngestError(ValueError):
    pass


def _paragraphs(text: str) -> list[str]:
    return [p.strip() for p in re.split(r"\n\s*\n", text) if p.strip()]


def _first_line(text: str) -> str:
    return text.strip().split("\n", 1)[0][:200]


def documents_from_text(
    text: str, *, kind: str, source: str | None = None, split: Split = Split.AUTO
) -> list[DocInput]:
    """Documents in `text` of `kind` "text", "markdown" or "jsonl"."""
    if kind == "jsonl":
        return _jsonl(text, source)
    if kind == "markdown":
        if split in (Split.AUTO, Split.SECTION):
            chunks = [markdown_to_text(sec).text for sec in split_sections(text)]
        elif split is Split.PARAGRAPH:
            chunks = _paragraphs(markdown_to_text(text).text)
        else:
            chunks = [markdown_to_text(text).text]
    elif kind == "text":
        chunks = _paragraphs(text) if split in (Split.PARAGRAPH, Split.SECTION) else [text.strip()]
    else:
        raise IngestError(f"unknown document kind {kind!r}")
    return [DocInput(c, _first_line(c), source) for c in chunks if c.strip()]


def _jsonl(text: str, source: str | None) -> list[DocInput]:
    out = []
    # Lines end at "\n" only: str.splitlines() also breaks at U+2028, U+0085 and \x1c-\x1e, which
    # json.dumps(..., ensure_ascii=False) writes unescaped inside strings.
    for n, line in enumerate((ln.removesuffix("\r") for ln in text.split("\n")), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise IngestError(f"{source or 'input'}:{n}: not JSON ({exc.msg})") from exc
        body: str | None
        title: str | None = None
        if isinstance(obj, str):
            body = obj
        elif isinstance(obj, dict):
            body = next((obj[k] for k in _JSON_TEXT_KEYS if isinstance(obj.get(k), str)), None)
            if body is None:
                raise IngestError(
                    f"{source or 'input'}:{n}: no text field (one of {', '.join(_JSON_TEXT_KEYS)})"
                )
            title = obj.get("title") if isinstance(obj.get("title"), str) else None
        else:
            raise IngestError(f"{source or 'input'}:{n}: expected an object or a string")
        if body.strip():
            out.append(
                DocInput(body.strip(), title or _first_line(body), f"{source}:{n}" if source else None)
            )
    return out


def kind_of(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in TEXT_SUFFIXES:
        return "text"
    if suffix in MARKDOWN_SUFFIXES:
        return "markdown"
    if suffix in JSONL_SUFFIXES:
        return "jsonl"
    raise IngestError(f"{path}: unsupported file type {suffix or '(none)'}; use .txt, .md or .jsonl")


def read_documents(path: Path, *, split: Split = Split.AUTO) -> list[DocInput]:
    kind = kind_of(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise IngestError(f"{path}: not UTF-8 text") from exc
    return documents_from_text(text, kind=kind, source=path.name, split=split)


# Column names a dictionary header may use (compared case-insensitively). Only a row that names its
# columns is a header: a first row with a mistyped weight ("0.9x", "O.9") must be an error, not be
# dropped as if it were a header.
_WORD_COLUMNS = frozenset({"word", "term", "keyword", "단어", "용어", "키워드"})
_WEIGHT_COLUMNS = frozenset({"weight", "score", "가중치", "점수"})


def _is_header(row: list[str]) -> bool:
    word, weight = row[0].strip().casefold(), row[1].strip().casefold()
    # A word column name beside a cell with a digit in it is a data row with a bad weight.
    return weight in _WEIGHT_COLUMNS or (word in _WORD_COLUMNS and not any(c.isdigit() for c in weight))


def parse_dictionary_csv(text: str) -> dict[str, float]:
    """`word,weight` rows. The first row may be a header naming the columns (`word,weight`,
    `단어,가중치`, ...); # comments and blank lines are skipped. A CSV without a single word is an
    error: setting it would silently replace the dictionary by an empty one."""
    out: dict[str, float] = {}
    first = True
    for n, row in enumerate(csv.reader(io.StringIO(text.lstrip("\ufeff"))), start=1):
        if not row or not row[0].strip() or row[0].lstrip().startswith("#"):
            continue
        if len(row) < 2:
            raise IngestError(f"line {n}: expected word,weight")
        if first and _is_header(row):
            first = False
            continue
        first = False
        try:
            weight = float(row[1])
        except ValueError:
            raise IngestError(f"line {n}: weight {row[1]!r} is not a number") from None
        if not weight >= 0 or weight == float("inf"):
            raise IngestError(f"line {n}: weight must be a finite number >= 0")
        term = normalize_term(row[0])
        if term:
            out[term] = weight
    if not out:
        raise IngestError("no words: the CSV needs at least one word,weight row")
    return out


def parse_word_list(text: str) -> list[str]:
    """One word per line (or the first CSV column); # comments and blank lines are skipped."""
    words = []
    for line in text.lstrip("\ufeff").splitlines():
        first = line.split(",", 1)[0].strip()
        if first and not first.startswith("#"):
            term = normalize_term(first)
            if term:
                words.append(term)
    return words
