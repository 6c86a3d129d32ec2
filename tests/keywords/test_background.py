import gzip
from collections.abc import Iterator
from pathlib import Path

import pytest

from hanseek.keywords.background import build_background, load_background, write_background
from hanseek.keywords.terms import TermExtractor
from hanseek.text.analyzer import default_analyzer


def test_shipped_background_statistics() -> None:
    bg = load_background()
    assert bg.n_docs > 200_000 and bg.total_terms > bg.n_docs
    assert "CC0" in bg.meta["source"] and "CC BY-SA 4.0" in bg.meta["source"]
    assert bg.df["영화"] > 10_000  # most of it is movie reviews
    assert 0 < bg.df.get("시대", 0) < bg.df["영화"]
    assert "뗀석기" not in bg.df  # history terms are rare in everyday text: high IDF


def test_build_write_load_roundtrip(tmp_path: Path) -> None:
    docs = ["사과를 먹었다", "사과와 배", "배를 탔다", "사과"]
    bg = build_background(docs, TermExtractor(default_analyzer()), batch_size=3)
    assert (bg.n_docs, bg.df["사과"], bg.df["배"]) == (4, 3, 2)
    path = tmp_path / "bg.tsv.gz"
    assert write_background(bg, path, min_df=2, sources=["toy: 4 docs", "second"]) == 2
    again = load_background(path)
    assert again.df == {"사과": 3, "배": 2} and again.n_docs == 4
    assert again.meta["source"] == "toy: 4 docs\nsecond"
    stale = tmp_path / "stale.tsv.gz"
    with gzip.open(stale, "wt", encoding="utf-8") as fh:
        fh.write("# n_docs: 1\n# total_terms: 1\n# extractor_version: 999\n사과\t1\n")
    with pytest.raises(ValueError, match="extractor"):
        load_background(stale)


class _FailingSources(list[str]):
    """Sources whose second line fails: a build that dies half-way through writing the file."""

    def __iter__(self) -> Iterator[str]:
        yield from super().__iter__()
        raise OSError("disk full")


def test_a_failed_write_leaves_the_previous_file(tmp_path: Path) -> None:
    """The build wrote its gzip in place: a kill or an error half-way truncated the target (by default
    the statistics shipped in the package), and every KeywordService then failed to load it."""
    bg = build_background(["사과를 먹었다", "사과와 배", "배를 탔다"], TermExtractor(default_analyzer()))
    path = tmp_path / "bg.tsv.gz"
    write_background(bg, path, min_df=1, sources=["first"])
    before = path.read_bytes()
    with pytest.raises(OSError, match="disk full"):
        write_background(bg, path, min_df=1, sources=_FailingSources(["second"]))
    assert path.read_bytes() == before and load_background(path).meta["source"] == "first"
    assert [p.name for p in tmp_path.iterdir()] == ["bg.tsv.gz"]  # no temporary left behind
    assert b"bg.tsv" in before[:40] and b".tmp" not in before[:40]  # the gzip header names the target
