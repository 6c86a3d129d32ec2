"""POST /encode: texts -> L2-normalised vectors from the service's text encoder."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field

from hanseek.api.errors import ProblemError
from hanseek.api.limits import check_batch, check_lengths, check_total_chars
from hanseek.api.openapi import problems
from hanseek.api.security import require_read_key
from hanseek.api.state import get_state
from hanseek.config import MAX_BATCH_ITEMS_CAP

router = APIRouter(tags=["encode"])


class EncodeRequest(BaseModel):
    texts: list[str] = Field(
        ...,
        min_length=1,
        max_length=MAX_BATCH_ITEMS_CAP,
        description="Texts to embed: at most HANSEEK_MAX_BATCH_ITEMS, each at most HANSEEK_MAX_TEXT_CHARS "
        "characters, all together at most HANSEEK_MAX_ENCODE_CHARS (100,000)",
    )
    kind: Literal["query", "passage"] = Field(
        "passage", description="'query' for search queries, 'passage' for stored content (e5 prefixes)"
    )


class EncodeResponse(BaseModel):
    model: str
    dim: int
    kind: Literal["query", "passage"]
    vectors: list[list[float]]


@router.post(
    "/encode",
    response_model=EncodeResponse,
    dependencies=[Depends(require_read_key)],
    responses=problems(503),
)
def encode(body: EncodeRequest, request: Request) -> EncodeResponse:
    """Embed texts with the active text model: L2-normalised vectors; `kind` picks e5's query or passage
    prefix."""
    state = get_state(request)
    check_batch(len(body.texts), state.settings, "texts")
    check_lengths(body.texts, state.settings, "texts")
    check_total_chars(body.texts, state.settings.max_encode_chars, "texts", "HANSEEK_MAX_ENCODE_CHARS")
    from hanseek.encoders.base import EncoderError
    from hanseek.encoders.batching import BatchingEncoder

    try:
        state.text_encoder  # noqa: B018 - follows a model switch (`hanseek models use`)
        # Requests that arrive together are encoded as one batch.
        encoder = state.service("text_encoder_batched", lambda st: BatchingEncoder(st.text_encoder))
    except EncoderError as e:
        raise ProblemError(503, "Model unavailable", str(e)) from e
    vectors = encoder.encode(body.texts, kind=body.kind)
    return EncodeResponse(model=encoder.name, dim=encoder.dim, kind=body.kind, vectors=vectors.tolist())
