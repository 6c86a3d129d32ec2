"""The general background corpus: document frequencies of everyday Korean, shipped as a small file.

The shipped statistics (`keywords/data/background_df.tsv.gz`) were built by `hanseek keywords
background build` from public corpora (see the file header for sources and licences): only terms
seen in at least `min_df` documents are kept. The file never changes at run time; the service loads
it once.
"""

from __future__ import annotations

import csv
import gzip
import io
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from hanseek.files import atomic_file
from hanseek.keywords.scoring import CorpusStats
from hanseek.keywords.terms import EXTRACTOR_VERSION, TermExtractor

DEFAULT_PATH = Path(__file__).parent / "data" / "background_df.tsv.gz"


@dataclass(frozen=True)
class BackgroundCorpus:
    n_docs: int
    total_terms: int
    df: dict[str, int]
    meta: dict[str, str] = field(default_factory=dict)

    @property
    def stats(self) -> CorpusStats:
        return CorpusStats(self.n_docs, self.total_terms, self.df)


def load_background(path: Path | None = None) -> BackgroundCorpus:
    """Read a background statistics file (`# key: value` header lines, then `term<TAB>df`)."""
    p = path or DEFAULT_PATH
    meta: dict[str, str] = {}
    df: dict[str, int] = {}
    with gzip.open(p, "rt", encoding="utf-8") as fh:
        for line in fh:
            if line.startswith("#"):
                key, _, value = line[1:].partition(":")
                key, value = key.strip(), value.strip()
                # Several `source` lines: keep them all, one per line.
                meta[key] = f"{meta[key]}\n{value}" if key in meta else value
                continue
            term, _, count = line.rstrip("\n").partition("\t")
            if term and count:
                df[term] = int(count)
    if "n_docs" not in meta or "total_terms" not in meta:
        raise ValueError(f"{p}: not a background statistics file (missing n_docs/total_terms)")
    if int(meta.get("extractor_version", EXTRACTOR_VERSION)) != EXTRACTOR_VERSION:
        raise ValueError(
            f"{p}: built by term extractor v{meta['extractor_version']}, need v{EXTRACTOR_VERSION}"
        )
    return BackgroundCorpus(int(meta["n_docs"]), int(meta["total_terms"]), df, meta)


def build_background(
    docs: Iterable[str],
    extractor: TermExtractor,
    *,
    batch_size: int = 2000,
    on_batch: Callable[[int], None] | None = None,
) -> BackgroundCorpus:
    """Count, for each term, the documents containing it."""
    df: Counter[str] = Counter()
    n_docs = 0
    total = 0
    batch: list[str] = []

    def flush() -> None:
        nonlocal n_docs, total
        for occs in extractor.extract_batch(batch):
            n_docs += 1
            total += len(occs)
            df.update({o.term for o in occs})
        if on_batch:
            on_batch(len(batch))
        batch.clear()

    for doc in docs:
        batch.append(doc)
        if len(batch) >= batch_size:
            flush()
    if batch:
        flush()
    return BackgroundCorpus(n_docs, total, dict(df))


def write_background(bg: BackgroundCorpus, path: Path, *, min_df: int, sources: list[str]) -> int:
    """Write the statistics (terms with df >= min_df, most frequent first); returns terms written.

    Written aside and renamed over `path` (`atomic_file`): the default target is the file shipped in
    the package, and a build killed or failing half-way through an in-place write left it truncated,
    so that every KeywordService then failed to load it."""
    kept = sorted(((t, c) for t, c in bg.df.items() if c >= min_df), key=lambda p: (-p[1], p[0]))
    with (
        atomic_file(path, binary=True, fsync=True) as raw,
        # The target's name in the gzip header, not the temporary's.
        gzip.GzipFile(path.name, "wb", compresslevel=9, fileobj=raw) as gz,
        io.TextIOWrapper(gz, encoding="utf-8") as fh,
    ):
        fh.write(f"# n_docs: {bg.n_docs}\n# total_terms: {bg.total_terms}\n")
        fh.write(f"# extractor_version: {EXTRACTOR_VERSION}\n# min_df: {min_df}\n")
        for s in sources:
            fh.write(f"# source: {s}\n")
        for term, count in kept:
            fh.write(f"{term}\t{count}\n")
    return len(kept)


# -- readers for the public corpora the shipped file was built from ------------------------------


def tsv_column(path: Path, column: str) -> Iterator[str]:
    with path.open(encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh, delimiter="\t", quoting=csv.QUOTE_NONE)
        for row in reader:
            text = (row.get(column) or "").strip()
            if text:
                yield text


def shared_corpus_docs(shared_data: Path) -> tuple[list[str], list[str]]:
    """Documents (deduplicated, in file order) and source lines from ../shared/data: NSMC reviews
    (CC0), KorSTS and KorNLI sentences (CC BY-SA 4.0)."""
    seen: set[str] = set()
    docs: list[str] = []
    sources: list[str] = []

    def take(texts: Iterable[str]) -> int:
        n = 0
        for t in texts:
            if t not in seen:
                seen.add(t)
                docs.append(t)
                n += 1
        return n

    nsmc = shared_data / "nsmc"
    if nsmc.is_dir():
        n = sum(take(tsv_column(nsmc / f, "document")) for f in ("ratings_train.txt", "ratings_test.txt"))
        sources.append(f"NSMC (github.com/e9t/nsmc, CC0 1.0): {n} reviews")
    korsts = shared_data / "korsts"
    if korsts.is_dir():
        n = 0
        for f in ("sts-train.tsv", "sts-dev.tsv"):
            n += take(tsv_column(korsts / f, "sentence1")) + take(tsv_column(korsts / f, "sentence2"))
        sources.append(f"KorSTS (github.com/kakaobrain/kor-nlu-datasets, CC BY-SA 4.0): {n} sentences")
    kornli = shared_data / "kornli"
    if kornli.is_dir():
        n = 0
        for f in ("xnli.dev.ko.tsv", "xnli.test.ko.tsv"):
            n += take(tsv_column(kornli / f, "sentence1")) + take(tsv_column(kornli / f, "sentence2"))
        sources.append(
            f"KorNLI XNLI dev/test (github.com/kakaobrain/kor-nlu-datasets, CC BY-SA 4.0): {n} sentences"
        )
    return docs, sources
