"""Review file loaders on the real files and on small files with each format's quirks; splits."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hanseek.sentiment.datasets import (
    DomainSource,
    Reviews,
    dedupe,
    default_sources,
    find_source,
    load_domain,
    read_reviews,
    split,
    stratified_split_indices,
)


def test_nsmc_train_matches_source_md(shared_data: Path) -> None:
    r = read_reviews(shared_data / "nsmc" / "ratings_train.txt", "movie")
    # SOURCE.md: 150,000 rows, 75,173 negative / 74,827 positive, 5 empty documents.
    assert len(r) == 150_000 - 5
    neg, pos = r.label_counts()
    assert 75_173 - 5 <= neg <= 75_173 and 74_827 - 5 <= pos <= 74_827
    assert all(r.texts) and all("\t" not in t for t in r.texts)
    # pandas' (double) CSV quoting is undone (raw: 623 fields start with '"""'; one review is all quotes).
    assert sum(t.startswith('""') for t in r.texts) <= 1
    assert '영화 끝나갈때쯤에 멍하다가 다보고나면 한마디 나올거임 "ㅈ같다."' in r.texts


def test_nsmc_test_and_steam(shared_data: Path) -> None:
    test = read_reviews(shared_data / "nsmc" / "ratings_test.txt")
    assert len(test) == 50_000 - 3
    steam = read_reviews(shared_data / "steam_partial" / "steam_test.txt", "game")
    assert len(steam) == 30_002
    assert steam.label_counts() == (14_975, 15_027)
    assert not any(t.endswith("\r") for t in steam.texts)  # CRLF endings stripped


def test_default_sources_and_domains(shared_data: Path, movie: object, game: object) -> None:
    names = [s.name for s in default_sources(shared_data)]
    assert names[:2] == ["movie", "game"]
    assert "shopping" not in names  # not on these machines; drops in by path
    with pytest.raises(KeyError, match="shopping"):
        find_source("shopping", default_sources(shared_data))
    from hanseek.sentiment.datasets import DomainData

    assert isinstance(movie, DomainData) and isinstance(game, DomainData)
    assert len(movie.test) == 49_997  # official split kept as published
    # Steam: no official test split, a 20% stratified hold-out disjoint from train/dev by text.
    assert 0.19 < len(game.test) / (len(game.train) + len(game.dev) + len(game.test)) < 0.21
    assert not set(game.test.texts) & (set(game.train.texts) | set(game.dev.texts))
    assert not set(movie.dev.texts) & set(movie.train.texts)
    assert len(set(movie.train.texts)) == len(movie.train)  # deduplicated


def test_label_text_formats(tmp_path: Path) -> None:
    # Steam-style: no header, CRLF, BOM, 0/1 labels.
    steam = tmp_path / "steam.txt"
    steam.write_bytes("\ufeff1\t재밌어요\r\n0\t  별로   예요 \r\n1\t \r\n".encode())
    r = read_reviews(steam)
    assert r.texts == ["재밌어요", "별로 예요"] and r.labels.tolist() == [1, 0]
    # Naver-shopping-style star ratings: 1-2 negative, 4-5 positive, 3 dropped; 1 is a rating here.
    shop = tmp_path / "naver_shopping.txt"
    shop.write_text(
        "5\t배송 빠르고 좋아요\n1\t최악\n3\t그냥 그래요\n2\t별로\n4\t괜찮아요\n", encoding="utf-8"
    )
    r = read_reviews(shop, "shopping")
    assert r.texts == ["배송 빠르고 좋아요", "최악", "별로", "괜찮아요"]
    assert r.labels.tolist() == [1, 0, 0, 1]
    # With a header line.
    headed = tmp_path / "headed.txt"
    headed.write_text("label\tdocument\n0\t노잼\n", encoding="utf-8")
    assert read_reviews(headed).texts == ["노잼"]


def test_shopping_drops_in_by_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shop = tmp_path / "shop.txt"
    shop.write_text("".join(f"{5 if i % 2 else 1}\t리뷰 {i}\n" for i in range(40)), encoding="utf-8")
    monkeypatch.setenv("HANSEEK_SHOPPING_REVIEWS", str(shop))
    src = find_source("shopping", default_sources(tmp_path))
    d = load_domain(src)
    assert len(d.train) + len(d.dev) + len(d.test) == 40
    other = default_sources(tmp_path, extra={"cafe": shop})
    assert [s.name for s in other] == ["shopping", "cafe"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("1\t좋다\n1\t둘\t셋\n", ":2: expected 2"),
        ("x1\t좋다\n", "no labelled reviews"),  # a header-looking first line is skipped: nothing left
        ("", "no labelled reviews"),
        ("3\t그저 그렇다\n", "no labelled reviews"),  # neutral rows are skipped
        ("1\t좋다\nabc\t나쁘다\n", "not an integer"),
        ("1\t좋다\n7\t나쁘다\n", "labels must be"),
        ("0\t좋다\n5\t나쁘다\n", "mixes 0"),
    ],
)
def test_malformed_files(tmp_path: Path, content: str, message: str) -> None:
    f = tmp_path / "bad.txt"
    f.write_text(content, encoding="utf-8")
    with pytest.raises(ValueError, match=message):
        read_reviews(f)


def test_dedupe_drops_conflicts() -> None:
    r = Reviews(["a", "b", "a", "c", "b"], np.array([1, 0, 1, 1, 1]))
    d = dedupe(r)
    assert d.texts == ["a", "c"] and d.labels.tolist() == [1, 1]


def test_splits_are_stratified_and_deterministic() -> None:
    rng = np.random.default_rng(0)
    labels = (rng.random(10_000) < 0.3).astype(np.int64)
    r = Reviews([f"t{i}" for i in range(10_000)], labels)
    rest, held = split(r, 0.2, seed=5)
    rest2, held2 = split(r, 0.2, seed=5)
    assert held.texts == held2.texts and rest.texts == rest2.texts
    assert len(held) + len(rest) == len(r) and not set(held.texts) & set(rest.texts)
    assert abs(held.labels.mean() - labels.mean()) < 0.002  # class ratio kept
    assert abs(len(held) - 2000) <= 1
    _, other = split(r, 0.2, seed=6)
    assert other.texts != held.texts
    sample = r.sample(500, seed=1)
    assert len(sample) == 500 and abs(sample.labels.mean() - labels.mean()) < 0.01
    with pytest.raises(ValueError):
        stratified_split_indices(labels, 1.0, 0)


def test_official_test_kept_and_carved_split(tmp_path: Path) -> None:
    f = tmp_path / "r.txt"
    f.write_text("".join(f"{i % 2}\t리뷰 {i}\n" for i in range(100)) + "1\t리뷰 1\n", encoding="utf-8")
    d = load_domain(DomainSource("x", f, None, test_fraction=0.2))
    assert len(d.test) == 20 and len(d.dev) == 8 and len(d.train) == 72
    d2 = load_domain(DomainSource("x", f, f))
    assert len(d2.test) == 101  # an official test file is not deduplicated


def test_valid_unicode() -> None:
    from hanseek.sentiment.datasets import valid_unicode

    assert valid_unicode("좋아요") == "좋아요"
    assert valid_unicode("\ud800좋아") == "?좋아"


def test_a_domain_too_small_for_its_splits_is_refused(tmp_path: Path) -> None:
    f = tmp_path / "tiny.txt"
    f.write_text("1\t좋다\n1\t최고\n0\t별로\n0\t나쁘다\n", encoding="utf-8")
    with pytest.raises(ValueError, match="test split has no review of one label"):
        load_domain(DomainSource("tiny", f))
