"""Labelled review files: reading, cleaning, domains and deterministic stratified splits.

Two on-disk formats are read (the format is detected from the header line):
- NSMC: header ``id<TAB>document<TAB>label``, label 0/1.
- ``label<TAB>text`` (bab2min/corpus steam.txt and naver_shopping.txt), with or without a header; the
  label is 0/1, or a 1–5 star rating (shopping): 1–2 → negative, 4–5 → positive, 3 is dropped.

Text fields that pandas wrote CSV-quoted (``\"\"\"a \"\"b\"\" c\"\"\"``) are unquoted back to the original
review; CRLF endings and a UTF-8 BOM are accepted.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

NEGATIVE, POSITIVE = 0, 1
LABEL_NAMES = ("negative", "positive")
DEFAULT_SEED = 20240607

_WS = re.compile(r"\s+")


@dataclass(frozen=True)
class Reviews:
    """Texts with 0/1 labels from one domain (or a mix, then `domain` names them all)."""

    texts: list[str]
    labels: np.ndarray  # int64 [n], 0 = negative, 1 = positive
    domain: str = ""

    def __post_init__(self) -> None:
        if len(self.texts) != len(self.labels):
            raise ValueError(f"{len(self.texts)} texts but {len(self.labels)} labels")

    def __len__(self) -> int:
        return len(self.texts)

    def subset(self, idx: Sequence[int] | np.ndarray) -> Reviews:
        ix = np.asarray(idx, dtype=np.int64)
        return Reviews([self.texts[i] for i in ix], self.labels[ix], self.domain)

    def label_counts(self) -> tuple[int, int]:
        pos = int(self.labels.sum())
        return len(self) - pos, pos

    def sample(self, n: int | None, seed: int = DEFAULT_SEED) -> Reviews:
        """A stratified random subset of at most `n` reviews (all of them when `n` is None or larger)."""
        if n is None or n >= len(self):
            return self
        keep, _ = stratified_split_indices(self.labels, n / len(self), seed)
        return self.subset(np.sort(keep))


def concat(parts: Iterable[Reviews], domain: str) -> Reviews:
    texts: list[str] = []
    labels: list[np.ndarray] = []
    for p in parts:
        texts.extend(p.texts)
        labels.append(p.labels)
    return Reviews(texts, np.concatenate(labels) if labels else np.zeros(0, np.int64), domain)


# ---------------------------------------------------------------- reading


def valid_unicode(text: str) -> str:
    """`text` with lone surrogates (which JSON can carry but no encoder or analyzer accepts) as '?'."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace").decode("utf-8")
    return text


def normalize_space(text: str) -> str:
    return _WS.sub(" ", text).strip()


def _unquote(field_text: str) -> str:
    # pandas wrote fields containing '"' CSV-quoted (outer quotes, inner quotes doubled), and NSMC went
    # through two such writes; undo each layer while the field is still a well-formed quoted field.
    s = field_text
    while len(s) >= 2 and s[0] == '"' and s[-1] == '"' and '"' not in s[1:-1].replace('""', ""):
        s = s[1:-1].replace('""', '"')
    return s


def _labels_from_raw(raw: list[int], path: Path) -> list[int | None]:
    """0/1 labels as they are; a file with any value above 1 holds 1–5 star ratings (Naver shopping):
    1–2 → negative, 4–5 → positive, 3 (neutral) → None. Decided per file since a 1 is ambiguous."""
    bad = sorted({v for v in raw if not 0 <= v <= 5})
    if bad:
        raise ValueError(f"{path}: labels must be 0/1 or 1-5 ratings, found {bad[:5]}")
    if max(raw, default=0) <= 1:
        return list(raw)
    if 0 in raw:
        raise ValueError(f"{path}: mixes 0 with ratings above 1")
    return [None if v == 3 else (POSITIVE if v >= 4 else NEGATIVE) for v in raw]


def read_reviews(path: Path | str, domain: str = "") -> Reviews:
    """Read an NSMC or ``label<TAB>text`` file. Rows whose text is empty after whitespace
    normalisation and neutral (3-star) rows are skipped; malformed rows raise with the line number."""
    path = Path(path)
    texts: list[str] = []
    raw_labels: list[int] = []
    with path.open(encoding="utf-8-sig", newline="") as f:
        lines = iter(f)
        first = next(lines, "")
        head = first.rstrip("\r\n").split("\t")
        pending: list[str] = []
        if head == ["id", "document", "label"]:
            text_col, label_col, ncols = 1, 2, 3
            start = 2
        else:
            text_col, label_col, ncols = 1, 0, 2
            has_header = not head[0].strip().isdigit()
            start = 2 if has_header else 1
            pending = [] if has_header else [first]
        for lineno, line in enumerate([*pending, *lines], start=start):
            row = line.rstrip("\r\n")
            if not row:
                continue
            cols = row.split("\t")
            if len(cols) != ncols:
                raise ValueError(f"{path}:{lineno}: expected {ncols} tab-separated fields, got {len(cols)}")
            try:
                label = int(cols[label_col])
            except ValueError:
                raise ValueError(f"{path}:{lineno}: label {cols[label_col]!r} is not an integer") from None
            texts.append(normalize_space(_unquote(cols[text_col])))
            raw_labels.append(label)
    labels = _labels_from_raw(raw_labels, path)
    keep = [i for i, (t, y) in enumerate(zip(texts, labels, strict=True)) if t and y is not None]
    if not keep:
        raise ValueError(f"{path}: no labelled reviews in it")
    return Reviews([texts[i] for i in keep], np.asarray([labels[i] for i in keep], dtype=np.int64), domain)


def dedupe(reviews: Reviews) -> Reviews:
    """Keep the first occurrence of each text; texts seen with both labels are dropped entirely,
    since neither label can be trusted for them."""
    first: dict[str, int] = {}
    conflicted: set[str] = set()
    for i, (t, y) in enumerate(zip(reviews.texts, reviews.labels, strict=True)):
        j = first.get(t)
        if j is None:
            first[t] = i
        elif reviews.labels[j] != y:
            conflicted.add(t)
    keep = [i for t, i in first.items() if t not in conflicted]
    return reviews.subset(sorted(keep))


# ---------------------------------------------------------------- splits


def stratified_split_indices(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(picked, rest) index arrays: `fraction` of each class picked at random with a fixed seed."""
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"fraction must be in (0, 1), got {fraction}")
    rng = np.random.default_rng(seed)
    picked: list[np.ndarray] = []
    rest: list[np.ndarray] = []
    for cls in np.unique(labels):
        idx = np.flatnonzero(labels == cls)
        idx = idx[rng.permutation(len(idx))]
        k = round(fraction * len(idx))
        picked.append(idx[:k])
        rest.append(idx[k:])
    return np.sort(np.concatenate(picked)), np.sort(np.concatenate(rest))


def split(reviews: Reviews, fraction: float, seed: int = DEFAULT_SEED) -> tuple[Reviews, Reviews]:
    """(rest, picked): a stratified hold-out of `fraction`, deterministic for a seed."""
    picked, rest = stratified_split_indices(reviews.labels, fraction, seed)
    return reviews.subset(rest), reviews.subset(picked)


# ---------------------------------------------------------------- domains


@dataclass(frozen=True)
class DomainSource:
    """Where a domain's reviews live. Without an official `test` file a test split of `test_fraction`
    is carved (after dedup, so one text cannot land on both sides) with a fixed seed."""

    name: str
    train: Path
    test: Path | None = None
    test_fraction: float = 0.2


@dataclass(frozen=True)
class DomainData:
    name: str
    train: Reviews
    dev: Reviews
    test: Reviews
    notes: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, object]:
        return {
            "train": len(self.train),
            "dev": len(self.dev),
            "test": len(self.test),
            "train_neg_pos": list(self.train.label_counts()),
            "test_neg_pos": list(self.test.label_counts()),
            "notes": self.notes,
        }


def load_domain(src: DomainSource, dev_fraction: float = 0.1, seed: int = DEFAULT_SEED) -> DomainData:
    """Train (deduplicated), dev (carved from train, for tuning) and test splits of one domain.

    An official test file is kept as published (only empty texts dropped) so accuracies compare with
    the literature; train/test overlap of identical short texts ("최고") is left alone for the same
    reason — they are distinct reviews that happen to share a text."""
    notes: list[str] = []
    raw = read_reviews(src.train, src.name)
    train = dedupe(raw)
    notes.append(f"train: {len(raw) - len(train)} duplicate/conflicting texts dropped")
    if src.test is not None:
        test = read_reviews(src.test, src.name)
        notes.append("test: official split")
    else:
        train, test = split(train, src.test_fraction, seed)
        notes.append(f"test: stratified {src.test_fraction:.0%} hold-out (seed {seed}), no official split")
    train, dev = split(train, dev_fraction, seed + 1)
    notes.append(f"dev: stratified {dev_fraction:.0%} of train (seed {seed + 1})")
    for which, part in (("train", train), ("test", test)):
        if len(part) == 0 or len(np.unique(part.labels)) < 2:
            raise ValueError(
                f"{src.name}: its {which} split has no review of one label or none at all "
                f"({len(train)} train / {len(test)} test reviews): give more reviews of both labels"
            )
    return DomainData(src.name, train, dev, test, notes)


def shared_data_dir() -> Path:
    """The shared data sets folder: $HANSEEK_SHARED_DATA, else ../shared/data from the working dir."""
    env = os.environ.get("HANSEEK_SHARED_DATA")
    return Path(env) if env else Path.cwd().parent / "shared" / "data"


def default_sources(data_dir: Path | None = None, extra: dict[str, Path] | None = None) -> list[DomainSource]:
    """The domains whose files exist: movie (NSMC), game (Steam), shopping when a user has the Naver
    shopping file (``$HANSEEK_SHOPPING_REVIEWS`` or data_dir/naver_shopping/naver_shopping.txt), plus
    `extra` name → path for any other ``label<TAB>text`` file."""
    root = data_dir or shared_data_dir()
    candidates = [
        DomainSource("movie", root / "nsmc" / "ratings_train.txt", root / "nsmc" / "ratings_test.txt"),
        DomainSource("game", root / "steam_partial" / "steam_test.txt"),
    ]
    shopping = os.environ.get("HANSEEK_SHOPPING_REVIEWS")
    candidates.append(
        DomainSource(
            "shopping",
            Path(shopping) if shopping else root / "naver_shopping" / "naver_shopping.txt",
        )
    )
    for name, p in (extra or {}).items():
        candidates = [c for c in candidates if c.name != name]
        candidates.append(DomainSource(name, Path(p)))
    return [c for c in candidates if c.train.is_file() and (c.test is None or c.test.is_file())]


def find_source(name: str, sources: Sequence[DomainSource]) -> DomainSource:
    for s in sources:
        if s.name == name:
            return s
    have = ", ".join(s.name for s in sources) or "none"
    raise KeyError(f"unknown or unavailable domain {name!r} (available: {have})")
