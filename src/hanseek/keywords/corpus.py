"""An in-memory subject corpus with the same statistics as the database one (evaluation, tests)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping

from hanseek.keywords.scoring import CorpusStats
from hanseek.keywords.store import SubjectContext


class MemoryCorpus:
    def __init__(
        self,
        *,
        dictionary: Mapping[str, float] | None = None,
        keywords: Iterable[str] = (),
        floor: float | None = None,
    ) -> None:
        self.df: Counter[str] = Counter()
        self.n_docs = 0
        self.total_terms = 0
        self.dictionary = dict(dictionary or {})
        self.keywords = frozenset(keywords)
        self.floor = floor

    def add(self, terms: Iterable[str]) -> None:
        """Add one document given the term of each of its occurrences."""
        seq = list(terms)
        self.n_docs += 1
        self.total_terms += len(seq)
        self.df.update(set(seq))

    def stats(self) -> CorpusStats:
        return CorpusStats(self.n_docs, self.total_terms, dict(self.df))

    def context(self, terms: Iterable[str]) -> SubjectContext:
        wanted = set(terms)
        return SubjectContext(
            stats=CorpusStats(self.n_docs, self.total_terms, {t: self.df[t] for t in wanted if self.df[t]}),
            dictionary={t: w for t, w in self.dictionary.items() if t in wanted},
            keywords=self.keywords & wanted,
            floor=self.floor,
        )
