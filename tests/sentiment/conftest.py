"""Sentiment test fixtures: one Kiwi analyzer and the real review data sets, loaded once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from hanseek.sentiment.baseline import DEFAULT_KIWI_MODEL
from hanseek.sentiment.datasets import DomainData, default_sources, find_source, load_domain
from hanseek.text.analyzer import KoreanAnalyzer


@pytest.fixture(scope="session")
def kiwi() -> KoreanAnalyzer:
    return KoreanAnalyzer(model_type=DEFAULT_KIWI_MODEL, frozen=True)


@pytest.fixture(scope="session")
def movie(shared_data: Path) -> DomainData:
    return load_domain(find_source("movie", default_sources(shared_data)))


@pytest.fixture(scope="session")
def game(shared_data: Path) -> DomainData:
    return load_domain(find_source("game", default_sources(shared_data)))
