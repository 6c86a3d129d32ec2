"""`KeywordService`: corpora, word weights, blanks and OCR intake; the API and CLI are thin shells."""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

from hanseek.keywords.background import BackgroundCorpus, load_background
from hanseek.keywords.cloze import Cloze, ClozeOptions, make_cloze
from hanseek.keywords.ingest import DocInput
from hanseek.keywords.ocr import OcrEngine
from hanseek.keywords.scoring import Method, ScoringParams, TermWeight, score_page
from hanseek.keywords.store import (
    CorpusStore,
    DocumentInfo,
    NewDocument,
    StoredDocument,
    Subject,
    SubjectContext,
    UnknownSubject,
)
from hanseek.keywords.terms import TermExtractor, TermOccurrence
from hanseek.store.db import Database
from hanseek.text.analyzer import KoreanAnalyzer, default_analyzer
from hanseek.text.storable import unstorable

DEFAULT_FLOOR = 0.5
MAX_SUBJECT_CHARS = 100


# Dictionary weights are stored as `real`: above this they overflow (a database error, not a weight).
MAX_WEIGHT = 3.4e38


# A word of a dictionary or keyword list: far longer than any term, and short enough for the
# btree of the terms' primary keys (a 1,000-syllable "word" was a ProgramLimitExceeded traceback).
MAX_TERM_CHARS = 100


def _check_term_lengths(terms: Iterable[str]) -> None:
    for term in terms:
        if len(term) > MAX_TERM_CHARS:
            raise InvalidText(
                f"the word {term[:20]!r}… has {len(term):,} characters; a word has at most {MAX_TERM_CHARS}"
            )


class InvalidText(ValueError):
    pass


def subject_key(name: str) -> str:
    """How a subject name is stored and looked up: trimmed and NFC, so the NFD form of a name (as some
    systems type or paste it) is the same subject."""
    return unicodedata.normalize("NFC", name.strip())


def _check_storable(value: str, what: str) -> None:
    """JSON Lines content may decode to text PostgreSQL cannot hold."""
    if problem := unstorable(value):
        raise InvalidText(f"{what} {problem}")


class TextTooLong(InvalidText):
    """Over `max_text_chars`: a size limit, answered as the API's other limits are (413)."""


__all__ = ["DEFAULT_FLOOR", "InvalidText", "KeywordService", "PageWeights", "UnknownSubject"]


@dataclass(frozen=True)
class PageWeights:
    text: str
    subject: str | None
    params: ScoringParams
    occurrences: tuple[TermOccurrence, ...]
    weights: tuple[TermWeight, ...]
    corpus_docs: int
    background_docs: int


def resolve_floor(params: ScoringParams, ctx: SubjectContext, use_floor: bool) -> ScoringParams:
    """The floor in effect: none when not asked for; else the request's, the subject's or the default."""
    if not use_floor:
        return replace(params, floor=None)
    floor = params.floor if params.floor is not None else ctx.floor
    return replace(params, floor=DEFAULT_FLOOR if floor is None else floor)


class KeywordService:
    def __init__(
        self,
        db: Database | None,
        *,
        analyzer: KoreanAnalyzer | None = None,
        background: BackgroundCorpus | None = None,
        max_text_chars: int = 20_000,
        ocr: OcrEngine | None = None,
    ) -> None:
        self.store = CorpusStore(db) if db is not None else None
        self.extractor = TermExtractor(analyzer or default_analyzer())
        self.background = background or load_background()
        self.max_text_chars = max_text_chars
        self.ocr = ocr or OcrEngine()

    # -- validation ---------------------------------------------------------------------------

    def check_text(self, text: str, field: str = "text") -> str:
        """`text` non-blank and within `max_text_chars`; messages name it as `field`."""
        if not text or not text.strip():
            raise InvalidText(f"{field} is empty")
        if len(text) > self.max_text_chars:
            # Worded as api.limits.check_lengths words the other text limits.
            raise TextTooLong(f"{field} has {len(text):,} characters; the limit is {self.max_text_chars:,}")
        return text

    @staticmethod
    def check_subject(name: str) -> str:
        """The stored form of a subject name (trimmed, NFC), or InvalidText. A name must fit in a
        URL path segment (`/keywords/subjects/{name}`), so "/" and control characters are refused."""
        name = subject_key(name)
        if not name:
            raise InvalidText("subject name is empty")
        if len(name) > MAX_SUBJECT_CHARS:
            raise InvalidText(f"subject name longer than {MAX_SUBJECT_CHARS} characters")
        if "/" in name or any(unicodedata.category(c) in ("Cc", "Cs") for c in name):
            raise InvalidText("a subject name cannot contain '/' or control characters")
        if "\ufffd" in name:
            # What a decoder leaves for bytes that were not UTF-8 (a path with %FF): names made of
            # different bytes would be one subject. Since session 18.
            raise InvalidText(
                "a subject name cannot contain U+FFFD, the replacement character for text that was not"
                " valid UTF-8"
            )
        return name

    def _store(self) -> CorpusStore:
        if self.store is None:
            raise RuntimeError("this KeywordService has no database")
        return self.store

    # -- weights and blanks -------------------------------------------------------------------

    def context(self, subject: str | None, terms: Iterable[str]) -> SubjectContext:
        if subject is None:
            return SubjectContext.empty()
        return self._store().context(subject_key(subject), terms)

    def weigh_occurrences(
        self,
        text: str,
        occs: Sequence[TermOccurrence],
        ctx: SubjectContext,
        params: ScoringParams,
        *,
        use_floor: bool,
        subject: str | None = None,
    ) -> PageWeights:
        effective = resolve_floor(params, ctx, use_floor)
        weights = score_page(
            occs,
            effective,
            subject=ctx.stats,
            background=self.background.stats,
            dictionary=ctx.dictionary,
            floor_words=ctx.keywords,
        )
        return PageWeights(
            text=text,
            subject=subject,
            params=effective,
            occurrences=tuple(occs),
            weights=tuple(weights),
            corpus_docs=ctx.stats.n_docs,
            background_docs=self.background.n_docs,
        )

    def weights(
        self,
        text: str,
        subject: str | None = None,
        params: ScoringParams | None = None,
        *,
        use_floor: bool = True,
    ) -> PageWeights:
        """Weights of every term on the page, best first."""
        self.check_text(text)
        params = params or ScoringParams()
        occs = self.extractor.extract(text)
        ctx = self.context(subject, (o.term for o in occs))
        return self.weigh_occurrences(text, occs, ctx, params, use_floor=use_floor, subject=subject)

    def weights_batch(
        self,
        texts: Sequence[str],
        subject: str | None = None,
        params: ScoringParams | None = None,
        *,
        use_floor: bool = True,
    ) -> list[PageWeights]:
        """`weights` for many pages: morphology runs on Kiwi's worker threads, one subject lookup."""
        for i, t in enumerate(texts):
            self.check_text(t, field=f"texts[{i}]")
        params = params or ScoringParams()
        all_occs = self.extractor.extract_batch(texts)
        ctx = self.context(subject, {o.term for occs in all_occs for o in occs})
        return [
            self.weigh_occurrences(t, occs, ctx, params, use_floor=use_floor, subject=subject)
            for t, occs in zip(texts, all_occs, strict=True)
        ]

    def cloze(
        self,
        text: str,
        subject: str | None = None,
        params: ScoringParams | None = None,
        options: ClozeOptions | None = None,
        *,
        use_floor: bool = True,
    ) -> tuple[Cloze, PageWeights]:
        page = self.weights(text, subject, params, use_floor=use_floor)
        return make_cloze(text, page.weights, options or ClozeOptions()), page

    # -- corpora ------------------------------------------------------------------------------

    def add_documents(
        self,
        subject: str,
        docs: Sequence[DocInput],
        *,
        batch_size: int = 64,
        on_progress: Callable[[int], None] | None = None,
    ) -> list[StoredDocument]:
        """Analyse and store documents. All are checked before anything is written; then each batch
        of `batch_size` is one transaction (statistics always match the stored documents). A subject
        deleted by another request after the first batch committed is SubjectDeleted (a 409)."""
        subject = self.check_subject(subject)
        store = self._store()
        for n, d in enumerate(docs):
            if not d.body.strip():
                raise InvalidText(f"document {n} is empty")
            for what, value in (("text", d.body), ("title", d.title), ("source", d.source)):
                if value is not None:
                    _check_storable(value, f"document {n}'s {what}")
        out: list[StoredDocument] = []
        for i in range(0, len(docs), batch_size):
            chunk = docs[i : i + batch_size]
            occs = self.extractor.extract_batch([d.body for d in chunk])
            new = [
                NewDocument(body=d.body, terms=[o.term for o in oc], title=d.title, source=d.source)
                for d, oc in zip(chunk, occs, strict=True)
            ]
            # Only the first batch may create the subject; later ones add to that very row or fail
            # (SubjectDeleted: a DELETE committed between batches). Re-creating it by name answered
            # 201 with the ids of the earlier batches, which the DELETE had removed.
            out.extend(store.add_documents(subject, new, subject_id=out[0].subject_id if out else None))
            if on_progress:
                on_progress(len(chunk))
        return out

    def remove_document(self, subject: str, doc_id: int) -> bool:
        return self._store().remove_document(subject_key(subject), doc_id)

    def subjects(self) -> list[Subject]:
        return self._store().subjects()

    def subject(self, name: str) -> Subject:
        return self._store().subject(subject_key(name))

    def create_subject(self, name: str) -> Subject:
        return self._store().ensure_subject(self.check_subject(name))

    def delete_subject(self, name: str) -> None:
        self._store().delete_subject(subject_key(name))

    def documents(
        self, subject: str, *, limit: int = 100, offset: int = 0, after: int | None = None
    ) -> list[DocumentInfo]:
        if limit < 1 or offset < 0 or (after is not None and after < 0):
            raise InvalidText("limit must be at least 1, offset and after at least 0")
        return self._store().documents(subject_key(subject), limit=limit, offset=offset, after=after)

    def set_dictionary(self, subject: str, weights: Mapping[str, float], *, replace: bool = True) -> int:
        for word, w in weights.items():
            if not 0 <= w <= MAX_WEIGHT:
                raise InvalidText(f"weight of {word!r} must be a number from 0 to {MAX_WEIGHT:.1e}")
        _check_term_lengths(weights)
        return self._store().set_dictionary(self.check_subject(subject), weights, replace=replace)

    def set_keywords(
        self, subject: str, words: Iterable[str], *, floor: float | None = None, replace: bool = True
    ) -> int:
        words = list(words)
        _check_term_lengths(words)
        # One name and one transaction: a floor set apart could fail after the keywords were stored.
        return self._store().set_keywords(self.check_subject(subject), words, replace=replace, floor=floor)

    # -- OCR ----------------------------------------------------------------------------------

    def ocr_text(self, image: bytes) -> str:
        text = self.ocr.image_to_text(image)
        if not text.strip():
            raise InvalidText("no text was recognised in the image")
        return text[: self.max_text_chars]


def method_of(name: str) -> Method:
    try:
        return Method(name)
    except ValueError:
        raise InvalidText(
            f"unknown method {name!r}; use one of {', '.join(m.value for m in Method)}"
        ) from None
