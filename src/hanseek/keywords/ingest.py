"""Reading corpus documents from files (text, Markdown, JSON Lines) and word lists (CSV)."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from itertools import islice
from pathlib import Path

from hanseek.keywords.markdown import iter_sections, markdown_to_text
from hanseek.keywords.terms import normalize_term

TEXT_SUFFIXES = {".txt", ".text"}
MARKDOWN_SUFFIXES = {".md", ".markdown"}
JSONL_SUFFIXES = {".jsonl", ".ndjson"}
_JSON_TEXT_KEYS = ("text", "body", "document", "content")
# Longest document title, however it arrives (the API's documents[].title, a JSON Lines "title").
MAX_TITLE_CHARS = 500


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


class TooManyDocuments(IngestError):
    """More documents than `max_documents`: a size limit (the API's 413), found before converting
    the rest."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"more than {limit:,} documents")
        self.limit = limit


def _paragraphs(text: str) -> list[str]:
    return [p.strip() for p in re.split(r"\n\s*\n", text) if p.strip()]


def _first_line(text: str) -> str:
    return text.strip().split("\n", 1)[0][:200]


def documents_from_text(
    text: str,
    *,
    kind: str,
    source: str | None = None,
    split: Split = Split.AUTO,
    max_documents: int | None = None,
) -> list[DocInput]:
    """Documents in `text` of `kind` "text", "markdown" or "jsonl". With `max_documents`, more than
    that many is TooManyDocuments, raised as soon as it is known: Markdown sections are counted
    before any is converted (a section that converts to nothing counts too), JSON Lines as read."""
    if kind == "jsonl":
        return _jsonl(text, source, max_documents)
    if kind == "markdown":
        if split in (Split.AUTO, Split.SECTION):
            sections = list(
                islice(iter_sections(text), max_documents + 1 if max_documents is not None else None)
            )
            _check_count(len(sections), max_documents)
            chunks = [markdown_to_text(sec).text for sec in sections]
        elif split is Split.PARAGRAPH:
            chunks = _paragraphs(markdown_to_text(text).text)
        else:
            chunks = [markdown_to_text(text).text]
    elif kind == "text":
        chunks = _paragraphs(text) if split in (Split.PARAGRAPH, Split.SECTION) else [text.strip()]
    else:
        raise IngestError(f"unknown document kind {kind!r}")
    docs = [DocInput(c, _first_line(c), source) for c in chunks if c.strip()]
    _check_count(len(docs), max_documents)
    return docs


def _check_count(n: int, max_documents: int | None) -> None:
    if max_documents is not None and n > max_documents:
        raise TooManyDocuments(max_documents)


def _jsonl(text: str, source: str | None, max_documents: int | None = None) -> list[DocInput]:
    out: list[DocInput] = []
    # Lines end at "\n" only: str.splitlines() also breaks at U+2028, U+0085 and \x1c-\x1e, which
    # json.dumps(..., ensure_ascii=False) writes unescaped inside strings.
    for n, line in enumerate((ln.removesuffix("\r") for ln in text.split("\n")), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise IngestError(f"{source or 'input'}:{n}: not JSON ({exc.msg})") from exc
        except RecursionError:  # e.g. 100,000 "[": a traceback (a 500) until session 18
            raise IngestError(f"{source or 'input'}:{n}: JSON nested too deeply") from None
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
            # As the API's documents[].title; until session 18 a JSON Lines title had no limit.
            if title is not None and len(title) > MAX_TITLE_CHARS:
                raise IngestError(
                    f"{source or 'input'}:{n}: title has {len(title):,} characters; "
                    f"the limit is {MAX_TITLE_CHARS:,}"
                )
            out.append(
                DocInput(body.strip(), title or _first_line(body), f"{source}:{n}" if source else None)
            )
            _check_count(len(out), max_documents)
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
    for n, row in _csv_rows(text):
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


def _csv_rows(text: str) -> Iterator[tuple[int, list[str]]]:
    """Numbered CSV rows; what the csv module refuses is an IngestError naming the line it reached.
    Until session 18 a field over the csv module's limit (131,072 characters, also what an unclosed
    quote runs into) escaped as csv.Error, a 500."""
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff")))
    try:
        yield from enumerate(reader, start=1)
    except csv.Error as exc:
        if "field larger than field limit" in str(exc):
            raise IngestError(
                f"line {reader.line_num}: a field is longer than {csv.field_size_limit():,} "
                "characters (a quote left open?)"
            ) from None
        raise IngestError(f"line {reader.line_num}: not CSV ({exc})") from None


def dictionary_weights(weights: Mapping[str, float]) -> dict[str, float]:
    """`word -> weight` as given in JSON, keyed by term. As for a CSV, weights that name no word at
    all (only blanks or characters a term drops, such as "   " or NUL) are an error: setting them
    would silently empty the dictionary (until session 18 they did). An empty mapping is the
    explicit way to empty it and is returned as it is."""
    out: dict[str, float] = {}
    for word, w in weights.items():
        if not w >= 0 or w == float("inf"):
            raise IngestError(f"weight of {word!r} must be a finite number >= 0")
        term = normalize_term(word)
        if term:
            out[term] = w
    if weights and not out:
        raise IngestError(
            'no words: no key of weights is a word; to empty the dictionary, send {"weights": {}}'
        )
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
