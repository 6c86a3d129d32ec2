"""Korean morphology: a typed, thread-safe wrapper over kiwipiepy.

One `Kiwi` instance holds ~300 MB of model, so an analyzer shares one instance between threads
rather than keeping one per thread. kiwipiepy >= 0.22 makes analysis calls safe to run
concurrently, but adding user words rebuilds the instance's dictionary, so analysis takes a shared
lock and `add_user_words` an exclusive one. Batched calls use Kiwi's own worker pool.
"""

from __future__ import annotations

import bisect
import functools
import itertools
import os
import re
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from hanseek.text.normalize import NormalizedText, normalize_with_map

NOUN_TAGS = frozenset({"NNG", "NNP"})
PREDICATE_TAGS = frozenset({"VV", "VA"})
FOREIGN_TAGS = frozenset({"SL", "SH"})
# Parts of speech a user word may be registered as (Kiwi accepts any tag; these are the ones that
# make sense for a subject dictionary).
USER_WORD_TAGS = frozenset({"NNG", "NNP", "NNB", "NR", "NP", "VV", "VA", "MAG", "XR", "SL", "SH"})


@dataclass(frozen=True, slots=True)
class Morpheme:
    """One morpheme. `start`/`length` index the text passed to the analyzer (not the normalised
    text), so `text[m.start:m.end]` is the surface the morpheme came from. Contracted syllables
    share a span (했다 → 하/XSV and 었/EP both cover 했)."""

    form: str
    tag: str
    start: int
    length: int

    @property
    def end(self) -> int:
        return self.start + self.length

    @property
    def len(self) -> int:
        return self.length

    @property
    def is_noun(self) -> bool:
        return self.tag in NOUN_TAGS

    @property
    def is_predicate(self) -> bool:
        return self.tag in PREDICATE_TAGS


UserWord = tuple[str, str, float]

# A page shorter than this is analysed in one call: handing pieces to Kiwi's pool costs more than
# it saves.
SPLIT_MIN_CHARS = 600
# Target piece length when a long page is cut: Kiwi's pool balances many small pieces better than
# one per worker (measured on a 2,000-character page, 2 workers: one call 13.4 ms; 2 pieces 9.7 ms;
# 4 pieces 6.9 ms; 6 pieces 5.9 ms).
PIECE_CHARS = 300
# Where a page may be cut without changing the analysis: after a sentence end or a line break.
_SENTENCE_GAP = re.compile(r"(?<=[.!?。…\n])\s+")


class _SharedExclusiveLock:
    """Many readers or one writer; a waiting writer blocks new readers so it cannot starve."""

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._readers = 0
        self._writer = False
        self._writers_waiting = 0

    @contextmanager
    def shared(self) -> Iterator[None]:
        with self._cond:
            while self._writer or self._writers_waiting:
                self._cond.wait()
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                if self._readers == 0:
                    self._cond.notify_all()

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        with self._cond:
            self._writers_waiting += 1
            while self._writer or self._readers:
                self._cond.wait()
            self._writers_waiting -= 1
            self._writer = True
        try:
            yield
        finally:
            with self._cond:
                self._writer = False
                self._cond.notify_all()


def _base_tag(tag: str) -> str:
    # Kiwi marks (ir)regular conjugation as VV-I / VA-R; the base tag is what callers select on.
    return tag.split("-", 1)[0]


def _content(m: Morpheme, *, foreign: bool) -> bool:
    return m.tag in NOUN_TAGS or m.tag in PREDICATE_TAGS or (foreign and m.tag in FOREIGN_TAGS)


def content_form(m: Morpheme, *, with_da: bool = False) -> str:
    """The dictionary form of a content morpheme: stems optionally with 다, Latin lower-cased."""
    if m.tag in PREDICATE_TAGS and with_da:
        return m.form + "다"
    if m.tag == "SL":
        return m.form.lower()
    return m.form


class KoreanAnalyzer:
    """Normalise, analyse and pick content words from Korean text (kiwipiepy + kiwipiepy-model).

    `frozen=True` refuses later `add_user_words`, for instances shared process-wide."""

    def __init__(
        self,
        *,
        user_words: Iterable[UserWord] = (),
        num_workers: int | None = None,
        model_type: str | None = None,
        frozen: bool = False,
    ) -> None:
        from kiwipiepy import Kiwi

        workers = num_workers if num_workers is not None else min(4, os.cpu_count() or 1)
        kwargs: dict[str, Any] = {"num_workers": max(1, workers)}
        if model_type is not None:
            kwargs["model_type"] = model_type
        self._kiwi = Kiwi(**kwargs)
        self._lock = _SharedExclusiveLock()
        self._user_words: list[UserWord] = []
        self._frozen = False
        self.add_user_words(user_words)
        self._frozen = frozen

    @property
    def user_words(self) -> tuple[UserWord, ...]:
        return tuple(self._user_words)

    @property
    def num_workers(self) -> int:
        """Kiwi worker threads used by the batch methods."""
        return int(self._kiwi.num_workers)

    @property
    def frozen(self) -> bool:
        return self._frozen

    # -- dictionary ---------------------------------------------------------------------------

    def add_user_words(self, words: Iterable[UserWord]) -> int:
        """Register (word, tag, score) entries; returns how many were new to Kiwi. A positive
        score makes Kiwi prefer the word over splitting it (e.g. 빗살무늬토기 as one NNP)."""
        items = list(words)
        if not items:
            return 0
        if self._frozen:
            raise RuntimeError("this analyzer is shared and frozen; build your own KoreanAnalyzer")
        for word, tag, _score in items:
            if not word.strip():
                raise ValueError("empty user word")
            if tag not in USER_WORD_TAGS:
                raise ValueError(f"unsupported tag {tag!r} for user word {word!r}")
        added = 0
        with self._lock.exclusive():
            for word, tag, score in items:
                if self._kiwi.add_user_word(word.strip(), tag, float(score)):
                    added += 1
                self._user_words.append((word.strip(), tag, float(score)))
        return added

    # -- analysis -----------------------------------------------------------------------------

    @staticmethod
    def normalize(text: str) -> str:
        """NFC, full-width ASCII folded, control characters dropped, white space collapsed."""
        return normalize_with_map(text).text

    def morphemes(self, text: str) -> list[Morpheme]:
        """Morphemes of `text` with offsets into `text` itself (normalisation is internal)."""
        norm = normalize_with_map(text)
        if not norm.text:
            return []
        cuts = _cut_points(norm.text, _pieces(len(norm.text)))
        if not cuts:
            with self._lock.shared():
                tokens = self._kiwi.tokenize(norm.text)
            return _to_morphemes(tokens, norm)
        # A long page is cut at sentence ends and its pieces analysed on Kiwi's worker threads, so
        # one request uses every core. Kiwi reads some context across sentences, so a few morphemes
        # next to a cut can differ from one call (tests/text measures it on the study notes).
        bounds = [0, *cuts, len(norm.text)]
        pieces = [norm.text[a:b] for a, b in itertools.pairwise(bounds)]
        with self._lock.shared():
            results = list(self._kiwi.tokenize(pieces))
        out: list[Morpheme] = []
        for offset, tokens in zip(bounds, results, strict=False):
            out.extend(_to_morphemes(tokens, norm, offset=offset))
        return out

    def morphemes_batch(self, texts: Sequence[str]) -> list[list[Morpheme]]:
        """`morphemes` for many texts at once on Kiwi's worker threads; order is kept. A long text is
        cut into the same pieces as `morphemes` cuts it, so both give the same morphemes."""
        norms = [normalize_with_map(t) for t in texts]
        out: list[list[Morpheme]] = [[] for _ in texts]
        pieces: list[tuple[int, int, str]] = []  # (text index, offset in its cleaned text, piece)
        for i, norm in enumerate(norms):
            if norm.text:
                bounds = [0, *_cut_points(norm.text, _pieces(len(norm.text))), len(norm.text)]
                pieces += [(i, a, norm.text[a:b]) for a, b in itertools.pairwise(bounds)]
        if not pieces:
            return out
        with self._lock.shared():
            # The batch API yields lazily; consume it while holding the lock.
            results = list(self._kiwi.tokenize([p for _, _, p in pieces]))
        for (i, offset, _), tokens in zip(pieces, results, strict=True):
            out[i].extend(_to_morphemes(tokens, norms[i], offset=offset))
        return out

    def content_morphemes(self, text: str, *, foreign: bool = True) -> list[Morpheme]:
        """Nouns (NNG, NNP), verb/adjective stems (VV, VA) and, if `foreign`, SL/SH words."""
        return [m for m in self.morphemes(text) if _content(m, foreign=foreign)]

    def content_words(self, text: str, *, with_da: bool = False, foreign: bool = True) -> list[str]:
        """Content words in text order (repeats kept): nouns, verb/adjective stems (with 다 if
        `with_da`), foreign words (Latin lower-cased, Hanja) if `foreign`."""
        return [content_form(m, with_da=with_da) for m in self.content_morphemes(text, foreign=foreign)]

    def content_words_batch(
        self, texts: Sequence[str], *, with_da: bool = False, foreign: bool = True
    ) -> list[list[str]]:
        return [
            [content_form(m, with_da=with_da) for m in ms if _content(m, foreign=foreign)]
            for ms in self.morphemes_batch(texts)
        ]

    def tokens_for_bm25(self, text: str) -> list[str]:
        """Index/query terms: content-word forms (stems without 다), Latin lower-cased. Particles
        and endings are gone, so 서울에서 and 서울 match."""
        return self.content_words(text, with_da=False, foreign=True)

    def tokens_for_bm25_batch(self, texts: Sequence[str]) -> list[list[str]]:
        return self.content_words_batch(texts, with_da=False, foreign=True)


def _pieces(length: int) -> int:
    """How many pieces a text of `length` characters is analysed in. It depends on the length only,
    never on the machine's cores, so a page is analysed the same everywhere."""
    return 1 if length < SPLIT_MIN_CHARS else -(-length // PIECE_CHARS)


def _cut_points(text: str, parts: int) -> list[int]:
    """Up to `parts - 1` cut positions at sentence gaps, each nearest an equal share of the text."""
    if parts < 2:
        return []
    gaps = [m.end() for m in _SENTENCE_GAP.finditer(text) if 0 < m.end() < len(text)]
    if not gaps:
        return []
    cuts: set[int] = set()
    for i in range(1, parts):
        target = len(text) * i / parts
        j = bisect.bisect_left(gaps, target)
        near = [gaps[x] for x in (j - 1, j) if 0 <= x < len(gaps)]
        cuts.add(min(near, key=lambda g: abs(g - target)))
    return sorted(cuts)


def _to_morphemes(tokens: Iterable[Any], norm: NormalizedText, offset: int = 0) -> list[Morpheme]:
    if norm.identity:
        # Clean input (the common case): Kiwi's offsets are already offsets into the caller's text.
        return [Morpheme(t.form, _base_tag(t.tag), t.start + offset, t.len) for t in tokens]
    out = []
    for t in tokens:
        start, end = norm.span(int(t.start) + offset, int(t.len))
        out.append(Morpheme(form=str(t.form), tag=_base_tag(str(t.tag)), start=start, length=end - start))
    return out


@functools.lru_cache(maxsize=1)
def default_analyzer() -> KoreanAnalyzer:
    """A process-wide analyzer without user words. It is frozen (immutable once built), so sharing
    it cannot leak one caller's dictionary into another's results."""
    return KoreanAnalyzer(frozen=True)
