"""Review sentiment: POST /sentiment, GET /sentiment/models, and the /sentiment page."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, Field

from hanseek.api.errors import BadRequest, NotFound, ProblemError
from hanseek.api.limits import check_batch, check_lengths, check_total_chars
from hanseek.api.openapi import problem_response, problems
from hanseek.api.security import require_read_key
from hanseek.api.state import AppState, get_state
from hanseek.config import MAX_BATCH_ITEMS_CAP
from hanseek.sentiment.registry import ModelLoadError, ModelNotFound, check_name
from hanseek.sentiment.service import SentimentService
from hanseek.text import normalize
from hanseek.web.pages import reads_need_key, render

router = APIRouter(tags=["sentiment"])


def service(state: AppState) -> SentimentService:
    return state.service("sentiment", lambda st: SentimentService(st.settings))


class SentimentIn(BaseModel):
    texts: list[str] = Field(
        ..., max_length=MAX_BATCH_ITEMS_CAP, description="Reviews to classify (at least one, each non-empty)"
    )
    model: str | None = Field(None, description="A trained model's name; default: the default model")


class SentimentResult(BaseModel):
    label: Literal["positive", "negative"]
    probability: float = Field(..., description="Probability of `label`")
    positive_probability: float = Field(..., description="Probability that the review is positive")
    model: str


class SentimentOut(BaseModel):
    model: str
    results: list[SentimentResult]


class ModelOut(BaseModel):
    name: str
    kind: str
    domains: list[str]
    train_size: int
    metrics: dict[str, float]
    created: str
    default: bool
    info: dict[str, Any] = Field(default_factory=dict)


class ModelsOut(BaseModel):
    default: str | None
    models: list[ModelOut]


def _check(body: SentimentIn, state: AppState) -> None:
    if not body.texts:
        raise BadRequest("texts is empty: send at least one review")
    check_batch(len(body.texts), state.settings, "texts")
    for i, t in enumerate(body.texts):
        # normalize() drops zero-width characters, BOMs and control characters: a text of only
        # those is as empty as blanks are (the model would answer its bare intercept).
        if not normalize(t).strip():
            raise BadRequest(f"texts[{i}] is empty")
    check_lengths(body.texts, state.settings, "texts")
    if body.model is not None:
        try:
            check_name(body.model)
        except ValueError as e:
            raise BadRequest(str(e)) from e


@router.post(
    "/sentiment",
    response_model=SentimentOut,
    dependencies=[Depends(require_read_key)],
    summary="Classify reviews as positive or negative",
    responses={
        **problems(404, 503),
        413: problem_response(
            413,
            "Over a size limit: more texts than HANSEEK_MAX_BATCH_ITEMS, a text longer than "
            "HANSEEK_MAX_TEXT_CHARS, or, when a transformer model answers, more characters in all "
            "than HANSEEK_MAX_ENCODE_CHARS.",
        ),
    },
)
def classify(body: SentimentIn, request: Request) -> SentimentOut:
    """Label each review positive or negative with the default model or the one named, with probabilities.

    When a transformer model answers, all texts of one request together may hold at most
    `HANSEEK_MAX_ENCODE_CHARS` characters (as for `/encode`); more is a 413."""
    state = get_state(request)
    _check(body, state)
    svc = service(state)
    try:
        loaded = svc.resolve(body.model)
        if loaded.card.kind == "transformer":
            # Until session 18 there was no such cap: 1,000 texts of 20,000 characters ran for hours.
            check_total_chars(
                body.texts, state.settings.max_encode_chars, "texts", "HANSEEK_MAX_ENCODE_CHARS"
            )
        card, preds = svc.predict_with(loaded, body.texts)
    except ModelNotFound as e:
        if body.model:
            raise NotFound(str(e)) from e
        raise ProblemError(503, "No sentiment model", f"{e}; run `hanseek sentiment train`") from e
    except ModelLoadError as e:
        raise ProblemError(503, "Sentiment model unavailable", f"{e}; retrain it or pick another") from e
    return SentimentOut(
        model=card.name,
        results=[
            SentimentResult(
                label=p.label,  # type: ignore[arg-type]
                probability=p.probability,
                positive_probability=p.positive_probability,
                model=card.name,
            )
            for p in preds
        ],
    )


@router.get(
    "/sentiment/models",
    response_model=ModelsOut,
    dependencies=[Depends(require_read_key)],
    summary="Trained sentiment models and their held-out accuracy",
)
def list_models(request: Request) -> ModelsOut:
    """Every trained model, its domains, training size and accuracy on its held-out test split; which one is
    the default."""
    svc = service(get_state(request))
    default = svc.default_model()
    return ModelsOut(
        default=default,
        models=[
            ModelOut(
                name=c.name,
                kind=c.kind,
                domains=c.domains,
                train_size=c.train_size,
                metrics=c.metrics,
                created=c.created,
                default=c.name == default,
                info={k: v for k, v in c.info.items() if k in ("demo", "source", "timings")},
            )
            for c in svc.cards()
        ],
    )


@router.get("/sentiment", response_class=HTMLResponse, include_in_schema=False)
def sentiment_page(request: Request) -> HTMLResponse:
    if reads_need_key(request):
        return render(request, "sentiment.html", models=[], default=None)
    svc = service(get_state(request))
    names = [c.name for c in svc.cards()]
    # The page names the model that will answer, also when no default was set (the demo baseline).
    return render(request, "sentiment.html", models=names, default=svc.answering_model())
