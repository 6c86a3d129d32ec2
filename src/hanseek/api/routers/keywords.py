"""Word weights, blanks (빈칸), subject corpora and page-photo OCR; plus the /cloze page."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, File, Query, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from hanseek.api.errors import BadRequest, NotFound, ProblemError, TooLarge
from hanseek.api.limits import check_batch
from hanseek.api.openapi import problems
from hanseek.api.security import require_read_key, require_write_key
from hanseek.api.state import AppState, get_state
from hanseek.config import MAX_BATCH_ITEMS_CAP
from hanseek.keywords.cloze import Cloze, ClozeOptions
from hanseek.keywords.ingest import (
    MAX_TITLE_CHARS,
    DocInput,
    IngestError,
    Split,
    TooManyDocuments,
    dictionary_weights,
    documents_from_text,
    parse_dictionary_csv,
)
from hanseek.keywords.ocr import InvalidImage, OcrUnavailable
from hanseek.keywords.scoring import Method, ScoringParams, TermWeight
from hanseek.keywords.service import InvalidText, KeywordService, PageWeights, TextTooLong
from hanseek.keywords.store import StaleStatistics, Subject, SubjectDeleted, UnknownSubject
from hanseek.keywords.terms import normalize_term
from hanseek.web.pages import reads_need_key, render

# No prefix: the same router serves the /cloze page (the app includes one `router` per feature).
router = APIRouter(tags=["keywords"])

MAX_DICTIONARY_WORDS = 100_000


def service(state: AppState) -> KeywordService:
    return state.service(
        "keywords",
        lambda st: KeywordService(st.db, max_text_chars=st.settings.max_text_chars),
    )


def _svc(request: Request) -> KeywordService:
    return service(get_state(request))


class _Errors:
    """Maps the service's exceptions to problem documents (4xx, or 503 when OCR is missing)."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        if exc is None:
            return
        if isinstance(exc, UnknownSubject):
            raise NotFound(f"unknown subject {exc.args[0]!r}; create it or add documents first") from exc
        if isinstance(exc, TextTooLong):
            raise TooLarge(str(exc)) from exc
        if isinstance(exc, InvalidText | IngestError | InvalidImage):
            raise BadRequest(str(exc)) from exc
        if isinstance(exc, OcrUnavailable):
            raise ProblemError(503, "OCR unavailable", str(exc)) from exc
        if isinstance(exc, SubjectDeleted):  # between two batches of one add: as `_written` says it
            raise ProblemError(409, "Subject deleted", str(exc)) from exc
        if isinstance(exc, StaleStatistics):
            raise ProblemError(409, "Stale statistics", str(exc)) from exc


def errors() -> _Errors:
    return _Errors()


def _written(svc: KeywordService, name: str) -> SubjectOut:
    """The subject a write just committed to, read again for the answer."""
    try:
        return _subject(svc.subject(name))
    except UnknownSubject as exc:  # a DELETE of the subject committed in between
        raise ProblemError(
            409, "Subject deleted", f"subject {name.strip()!r} was deleted by another request during this one"
        ) from exc


# -- request and response models -------------------------------------------------------------


class ScoringFields(BaseModel):
    subject: str | None = Field(None, description="Subject whose corpus, dictionary and keywords to use")
    method: Method = Field(Method.BM25, description="dictionary | tfidf | bm25 | combined | tf")
    k1: float = Field(1.2, ge=0, le=10, description="BM25 term-frequency saturation")
    b: float = Field(0.75, ge=0, le=1, description="BM25 length normalisation strength")
    length_norm: bool = Field(True, description="BM25 page-length normalisation (false: b = 0)")
    subject_weight: float = Field(0.5, ge=0, le=1, description="share of the subject corpus in the IDF")
    combine_alpha: float = Field(0.5, ge=0, le=1, description="combined: share of BM25 vs dictionary")
    use_floor: bool = Field(True, description="apply the subject's keyword floor")
    floor: float | None = Field(None, ge=0, le=1, description="floor override (default: the subject's)")

    def params(self) -> ScoringParams:
        return ScoringParams(
            method=self.method,
            k1=self.k1,
            b=self.b,
            length_norm=self.length_norm,
            subject_weight=self.subject_weight,
            combine_alpha=self.combine_alpha,
            floor=self.floor,
        )


class WeightsRequest(ScoringFields):
    text: str = Field(..., description="The page text")
    limit: int | None = Field(None, ge=1, le=10_000, description="Return only the best N words")


class WeightsBatchRequest(ScoringFields):
    texts: list[str] = Field(
        ...,
        min_length=1,
        max_length=MAX_BATCH_ITEMS_CAP,
        description="Pages (at most settings.max_batch_items)",
    )
    limit: int | None = Field(None, ge=1, le=10_000, description="Return only the best N words per page")


class Occurrence(BaseModel):
    start: int
    end: int
    surface: str


class WordWeight(BaseModel):
    term: str = Field(..., description="Dictionary form (stems with 다, Latin lower-cased)")
    tag: str = Field(..., description="NNG, NNP, NNC (noun compound), VV, VA, SL, SH")
    weight: float = Field(..., description="Normalised to [0, 1] on the page, after the floor")
    score: float = Field(..., description="The method's raw score")
    count: int
    parts: list[str] = Field(default_factory=list, description="Morphemes of a compound")
    components: dict[str, float | int | bool]
    occurrences: list[Occurrence]


class WeightsResponse(BaseModel):
    subject: str | None
    method: Method
    floor: float | None
    corpus_docs: int
    background_docs: int
    terms: list[WordWeight]


def _word(w: TermWeight) -> WordWeight:
    return WordWeight(
        term=w.term,
        tag=w.tag,
        weight=round(w.weight, 6),
        score=round(w.score, 6),
        count=w.count,
        parts=list(w.occurrences[0].parts) if w.occurrences else [],
        components={k: round(v, 6) if isinstance(v, float) else v for k, v in w.components.items()},
        occurrences=[Occurrence(start=o.start, end=o.end, surface=o.surface) for o in w.occurrences],
    )


def _weights_response(page: PageWeights, limit: int | None) -> WeightsResponse:
    ws = page.weights[:limit] if limit else page.weights
    return WeightsResponse(
        subject=page.subject,
        method=page.params.method,
        floor=page.params.floor,
        corpus_docs=page.corpus_docs,
        background_docs=page.background_docs,
        terms=[_word(w) for w in ws],
    )


class ClozeRequest(ScoringFields):
    text: str = Field(..., description="The page text")
    ratio: float | None = Field(
        None, gt=0, le=1, description="Share of candidate words to blank (default 0.2)"
    )
    count: int | None = Field(None, ge=1, le=10_000, description="Number of blanks (instead of ratio)")
    allow_duplicates: bool = Field(False, description="Blank every occurrence of a chosen word")
    predicates: bool = Field(False, description="Also blank verb/adjective stems")
    foreign: bool = Field(True, description="Also blank foreign words (Latin, Hanja)")

    @model_validator(mode="after")
    def _one_of(self) -> ClozeRequest:
        if self.ratio is not None and self.count is not None:
            raise ValueError("give either ratio or count, not both")
        return self

    def options(self) -> ClozeOptions:
        return ClozeOptions(
            ratio=self.ratio,
            count=self.count,
            allow_duplicates=self.allow_duplicates,
            predicates=self.predicates,
            foreign=self.foreign,
        )


class BlankOut(BaseModel):
    number: int
    answer: str = Field(..., description="The text the blank replaces")
    term: str
    tag: str
    weight: float
    start: int
    end: int


class Segment(BaseModel):
    text: str | None = None
    blank: int | None = None


class ClozeResponse(BaseModel):
    subject: str | None
    method: Method
    text: str = Field(..., description="The page with numbered blanks")
    blanks: list[BlankOut] = Field(..., description="The answer key, in reading order")
    segments: list[Segment] = Field(..., description="Text pieces and blank numbers, in order")
    candidates: int


def _cloze_response(cz: Cloze, page: PageWeights) -> ClozeResponse:
    blanks = [BlankOut(**{**b.__dict__, "weight": round(b.weight, 6)}) for b in cz.blanks]
    segments = [Segment(text=s) if isinstance(s, str) else Segment(blank=s.number) for s in cz.segments]
    return ClozeResponse(
        subject=page.subject,
        method=page.params.method,
        text=cz.text,
        blanks=blanks,
        segments=segments,
        candidates=cz.candidates,
    )


class SubjectOut(BaseModel):
    name: str
    documents: int
    total_terms: int
    floor: float | None
    dictionary_words: int
    keywords: int


def _subject(s: Subject) -> SubjectOut:
    return SubjectOut(
        name=s.name,
        documents=s.n_docs,
        total_terms=s.total_terms,
        floor=s.floor,
        dictionary_words=s.dictionary_size,
        keywords=s.keyword_count,
    )


class SubjectIn(BaseModel):
    # No max_length here: pydantic would count the raw input, so the NFD form of a name (two or three
    # code points a syllable) could be refused while the same name in a path is accepted. The
    # service checks the length once, after NFC, for every endpoint that names a subject.
    name: str = Field(..., min_length=1, description="At most 100 characters in NFC")


class DocumentIn(BaseModel):
    text: str = Field(..., min_length=1)
    title: str | None = Field(None, max_length=MAX_TITLE_CHARS)
    source: str | None = Field(None, max_length=500)


class DocumentsIn(BaseModel):
    documents: list[DocumentIn] = Field(
        default_factory=list, max_length=MAX_BATCH_ITEMS_CAP, description="Documents as they are"
    )
    content: str | None = Field(None, description="Alternatively one file's content, split by `kind`/`split`")
    kind: Literal["text", "markdown", "jsonl"] = "text"
    split: Split = Split.AUTO


class DocumentOut(BaseModel):
    id: int
    title: str | None
    source: str | None
    terms: int
    created: bool = True
    chars: int | None = None


class DocumentsOut(BaseModel):
    subject: SubjectOut
    documents: list[DocumentOut]


class DictionaryIn(BaseModel):
    weights: dict[str, float] | None = Field(None, description="word -> weight (>= 0)")
    csv: str | None = Field(None, description="Alternatively CSV text: word,weight rows")
    replace: bool = True

    @field_validator("weights", mode="before")
    @classmethod
    def _not_too_many(cls, value: Any) -> Any:
        # Counted before pydantic checks every entry (a dict's max_length is checked after them):
        # a body of a million bad weights would otherwise hold the event loop for seconds.
        if isinstance(value, dict) and len(value) > MAX_DICTIONARY_WORDS:
            raise PydanticCustomError(
                "too_long",
                "Dictionary should have at most {max_length} entries, not {actual_length}",
                {"max_length": MAX_DICTIONARY_WORDS, "actual_length": len(value)},
            )
        if isinstance(value, dict):
            # One error for the first bad weight: building one per entry for 100,000 of them held
            # the event loop for a second (security review of session 19's change).
            for word, weight in value.items():
                if not _number(weight):
                    raise PydanticCustomError(
                        "float_parsing", "weight of '{word}' is not a number", {"word": str(word)[:100]}
                    )
        return value


def _number(value: Any) -> bool:
    if isinstance(value, str):
        try:
            float(value)
        except ValueError:
            return False
        return True
    return isinstance(value, int | float)  # bool too, as pydantic's float accepts it


class KeywordsIn(BaseModel):
    words: list[str] = Field(..., max_length=MAX_DICTIONARY_WORDS, description="The subject's keyword list")
    floor: float | None = Field(None, ge=0, le=1, description="Minimum weight of a listed word")
    replace: bool = True

    @field_validator("words", mode="before")
    @classmethod
    def _first_bad_word(cls, value: Any) -> Any:
        # As DictionaryIn's weights: one error for the first word that is not text, not one per word.
        if isinstance(value, list) and len(value) <= MAX_DICTIONARY_WORDS:
            for i, word in enumerate(value):
                if not isinstance(word, str):
                    raise PydanticCustomError("string_type", "words[{i}] is not a string", {"i": i})
        return value


class OcrOut(BaseModel):
    text: str
    chars: int


# -- weights and blanks ---------------------------------------------------------------------


@router.post(
    "/keywords/weights",
    response_model=WeightsResponse,
    dependencies=[Depends(require_read_key)],
    responses=problems(404),
)
def weights(body: WeightsRequest, request: Request) -> WeightsResponse:
    """Weigh every content word of a page (nouns, compounds, stems, foreign words)."""
    svc = _svc(request)
    with errors():
        page = svc.weights(body.text, body.subject, body.params(), use_floor=body.use_floor)
    return _weights_response(page, body.limit)


@router.post(
    "/keywords/weights/batch",
    response_model=list[WeightsResponse],
    dependencies=[Depends(require_read_key)],
    responses=problems(404),
)
def weights_batch(body: WeightsBatchRequest, request: Request) -> list[WeightsResponse]:
    """Weigh many pages in one call: the morphological analysis runs on Kiwi's worker threads (a
    single request holds the interpreter lock while Kiwi analyses, so this is how one process uses
    several cores)."""
    state = get_state(request)
    check_batch(len(body.texts), state.settings, "texts")
    svc = service(state)
    with errors():
        pages = svc.weights_batch(body.texts, body.subject, body.params(), use_floor=body.use_floor)
    return [_weights_response(p, body.limit) for p in pages]


@router.post(
    "/keywords/cloze",
    response_model=ClozeResponse,
    dependencies=[Depends(require_read_key)],
    responses=problems(404),
)
def cloze(body: ClozeRequest, request: Request) -> ClozeResponse:
    """Turn the best-weighted words of a page into numbered blanks, with the answer key."""
    svc = _svc(request)
    with errors():
        cz, page = svc.cloze(body.text, body.subject, body.params(), body.options(), use_floor=body.use_floor)
    return _cloze_response(cz, page)


@router.post(
    "/keywords/ocr", response_model=OcrOut, dependencies=[Depends(require_read_key)], responses=problems(503)
)
async def ocr(request: Request, image: Annotated[UploadFile, File(description="A page photo")]) -> OcrOut:
    """Text of a page photo (Tesseract, Korean). 503 when Tesseract or its Korean data is missing."""
    svc = _svc(request)
    data = await image.read()
    with errors():
        text = await run_in_threadpool(svc.ocr_text, data)
    return OcrOut(text=text, chars=len(text))


# -- corpora ------------------------------------------------------------------------------


@router.get("/keywords/subjects", response_model=list[SubjectOut], dependencies=[Depends(require_read_key)])
def list_subjects(request: Request) -> list[SubjectOut]:
    """Every subject with its corpus size, dictionary and keyword counts."""
    return [_subject(s) for s in _svc(request).subjects()]


@router.post(
    "/keywords/subjects",
    response_model=SubjectOut,
    status_code=201,
    dependencies=[Depends(require_write_key)],
    responses=problems(409),
)
def create_subject(body: SubjectIn, request: Request) -> SubjectOut:
    """Create an empty subject (201); an existing one is returned as it is."""
    with errors():
        return _subject(_svc(request).create_subject(body.name))


@router.get(
    "/keywords/subjects/{name}",
    response_model=SubjectOut,
    dependencies=[Depends(require_read_key)],
    responses=problems(404),
)
def get_subject(name: str, request: Request) -> SubjectOut:
    """One subject's corpus size, dictionary and keyword counts."""
    with errors():
        return _subject(_svc(request).subject(name))


@router.delete(
    "/keywords/subjects/{name}",
    status_code=204,
    dependencies=[Depends(require_write_key)],
    responses=problems(404),
)
def delete_subject(name: str, request: Request) -> None:
    """Delete a subject with its documents, statistics, dictionary and keywords."""
    with errors():
        _svc(request).delete_subject(name)


@router.get(
    "/keywords/subjects/{name}/documents",
    response_model=list[DocumentOut],
    dependencies=[Depends(require_read_key)],
    responses=problems(404),
)
def list_documents(
    name: str,
    request: Request,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
    after: Annotated[
        int | None,
        Query(
            ge=0,
            le=2**63 - 1,
            description="The last id of the previous page: the page starts after it, so documents "
            "removed meanwhile do not make one go unlisted (as `offset` would)",
        ),
    ] = None,
) -> list[DocumentOut]:
    """The subject's documents in the order they were added (titles and sizes, not their text)."""
    with errors():
        docs = _svc(request).documents(name, limit=limit, offset=offset, after=after)
    return [
        DocumentOut(id=d.id, title=d.title, source=d.source, terms=d.n_terms, chars=d.chars) for d in docs
    ]


@router.post(
    "/keywords/subjects/{name}/documents",
    response_model=DocumentsOut,
    status_code=201,
    dependencies=[Depends(require_write_key)],
    responses=problems(409),
)
def add_documents(name: str, body: DocumentsIn, request: Request) -> DocumentsOut:
    """Add documents to a subject's corpus (created if new); statistics update in the same transaction."""
    state = get_state(request)
    svc, settings = service(state), state.settings
    with errors():
        docs = [DocInput(d.text, d.title, d.source) for d in body.documents]
        check_batch(len(docs), settings, "documents")
        if body.content is not None:
            # Counted as split, before the rest is converted: a file of a million headings was
            # converted section by section (13 s for 4 MB) before the count refused it (until session 18).
            room = settings.max_batch_items - len(docs)
            try:
                docs += documents_from_text(
                    body.content, kind=body.kind, source=None, split=body.split, max_documents=room
                )
            except TooManyDocuments as exc:
                raise TooLarge(
                    f"more than {settings.max_batch_items:,} documents in one request (those given plus "
                    f"those split from content); the limit is {settings.max_batch_items:,}"
                ) from exc
        if not docs:
            raise InvalidText("no documents given (documents[] or content)")
        for i, d in enumerate(docs):
            if len(d.body) > settings.max_text_chars:
                raise TooLarge(
                    f"document {i} has {len(d.body):,} characters; the limit is {settings.max_text_chars:,}",
                )
        stored = svc.add_documents(name, docs)
    return DocumentsOut(
        subject=_written(svc, name),
        documents=[
            DocumentOut(id=s.id, title=s.title, source=s.source, terms=s.n_terms, created=s.created)
            for s in stored
        ],
    )


@router.delete(
    "/keywords/subjects/{name}/documents/{doc_id}",
    status_code=204,
    dependencies=[Depends(require_write_key)],
    responses=problems(404),
)
def remove_document(name: str, doc_id: int, request: Request) -> None:
    """Remove one document; the subject's statistics are updated in the same transaction."""
    with errors():
        if not _svc(request).remove_document(name, doc_id):
            raise NotFound(f"document {doc_id} is not in subject {name!r}")


@router.put(
    "/keywords/subjects/{name}/dictionary",
    response_model=SubjectOut,
    dependencies=[Depends(require_write_key)],
    responses=problems(409),
)
def put_dictionary(name: str, body: DictionaryIn, request: Request) -> SubjectOut:
    """Set the subject dictionary (word → weight), from JSON or CSV text."""
    svc = _svc(request)
    with errors():
        weights: dict[str, float] = {}
        if body.csv is not None:
            weights.update(parse_dictionary_csv(body.csv))
        weights.update(dictionary_weights(body.weights or {}))
        if body.csv is None and body.weights is None:
            raise InvalidText("give weights or csv")
        if len(weights) > MAX_DICTIONARY_WORDS:
            raise TooLarge(f"more than {MAX_DICTIONARY_WORDS} words")
        svc.set_dictionary(name, weights, replace=body.replace)
    return _written(svc, name)


@router.put(
    "/keywords/subjects/{name}/keywords",
    response_model=SubjectOut,
    dependencies=[Depends(require_write_key)],
    responses=problems(409),
)
def put_keywords(name: str, body: KeywordsIn, request: Request) -> SubjectOut:
    """Set the subject keyword list; listed words never weigh less than the floor."""
    svc = _svc(request)
    with errors():
        words = [t for t in (normalize_term(w) for w in body.words) if t]
        if len(words) > MAX_DICTIONARY_WORDS:
            raise TooLarge(f"more than {MAX_DICTIONARY_WORDS} words")
        svc.set_keywords(name, words, floor=body.floor, replace=body.replace)
    return _written(svc, name)


# -- page -----------------------------------------------------------------------------------


@router.get("/cloze", response_class=HTMLResponse, include_in_schema=False)
def cloze_page(request: Request) -> HTMLResponse:
    subjects = [] if reads_need_key(request) else [s.name for s in _svc(request).subjects()]
    return render(request, "cloze.html", subjects=subjects, methods=[m.value for m in Method])
