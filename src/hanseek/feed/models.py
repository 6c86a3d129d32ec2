"""Validated inputs and outputs of the feed (pydantic), shared by the API, the CLI and the service."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    field_validator,
    model_validator,
)

from hanseek.config import MAX_BATCH_ITEMS_CAP
from hanseek.text.storable import unstorable

EventKind = Literal["read", "like", "comment"]
PathName = Literal["auto", "exact", "exact-sql", "approx"]
MethodName = Literal["ranked", "similar"]
# An id (post, user, community): what the database's CHECKs allow, without surrounding spaces. The
# API's path parameters take the same bounds (api.routers.feed.PathId).
IDENT_MAX = 200
# Far above any text model's width (e5-small 384, large models 1024-4096): a bound for validation,
# the posts' column checks the real dimension.
MAX_EMBEDDING_DIM = 8192
IDENT_PATTERN = r"^\S(.*\S)?$"


def storable(v: str) -> str:
    """Refused while validating, with the field's name, so a file is checked row by row before
    anything is written."""
    if problem := unstorable(v):
        raise ValueError(problem)
    return v


Ident = Annotated[
    str, Field(min_length=1, max_length=IDENT_MAX, pattern=IDENT_PATTERN), AfterValidator(storable)
]


def no_slash(v: str) -> str:
    # A user id is a path segment (/users/{id}/feed): with a "/" in it, no URL could name the user.
    if "/" in v:
        raise ValueError("a user id cannot contain '/' (it is part of URL paths such as /users/{id}/feed)")
    return v


UserIdent = Annotated[Ident, AfterValidator(no_slash)]


EARLIEST_EVENT = datetime(1970, 1, 1, tzinfo=UTC)
EVENT_CLOCK_SKEW = timedelta(days=1)  # clients' clocks run ahead; a day covers any time zone mix-up


def as_utc(v: datetime) -> datetime:
    """`v` in UTC; a timestamp without a zone is taken as UTC, so the same file loads the same on any
    machine. ValueError when the moment falls outside datetime's years 1-9999 in UTC (e.g.
    0001-01-01T00:00+09:00), which PostgreSQL would store as a BC date that later reads fail on."""
    if v.tzinfo is None:
        return v.replace(tzinfo=UTC)
    try:
        return v.astimezone(UTC)
    except OverflowError:
        raise ValueError(f"{v.isoformat()} is outside years 1-9999 in UTC") from None


class PostIn(BaseModel):
    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    id: Ident
    community: Ident
    author: Annotated[str, AfterValidator(storable)] | None = Field(default=None, max_length=200)
    title: Annotated[str, AfterValidator(storable)] = Field(default="", max_length=1_000)
    body: Annotated[str, AfterValidator(storable)] = Field(default="", max_length=100_000)
    category: Annotated[str, AfterValidator(storable)] | None = Field(default=None, max_length=200)
    created_at: datetime
    likes: int = Field(default=0, ge=0, le=2_000_000_000)
    comments: int = Field(default=0, ge=0, le=2_000_000_000)
    embedding: list[float] | None = Field(
        default=None,
        max_length=MAX_EMBEDDING_DIM,
        description="A precomputed vector (skips encoding); must match the model's dimension",
    )

    @field_validator("created_at")
    @classmethod
    def _tz(cls, v: datetime) -> datetime:
        return as_utc(v)

    @field_validator("embedding")
    @classmethod
    def _finite(cls, v: list[float] | None) -> list[float] | None:
        if v is None:
            return v
        if not v or not all(math.isfinite(x) for x in v):
            raise ValueError("embedding must be a non-empty list of finite numbers")
        if not any(x != 0.0 for x in v):
            raise ValueError("embedding must not be all zeros (cosine is undefined)")
        return v

    @model_validator(mode="after")
    def _has_content(self) -> PostIn:
        if not self.title and not self.body and self.embedding is None:
            raise ValueError("a post needs a title or a body (or a precomputed embedding)")
        return self


class EventIn(BaseModel):
    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    user_id: UserIdent
    post_id: Ident
    kind: EventKind = "read"
    at: datetime | None = Field(default=None, description="When it happened (default: now)")
    id: Annotated[str, AfterValidator(storable)] | None = Field(
        default=None,
        max_length=200,
        description="Idempotency key, unique across all users (e.g. a UUID; a per-user counter would "
        "make another user's event a duplicate); default derived from (user, post, kind, at). A "
        "retried batch with the same keys is not counted twice.",
    )

    # `at` as written, with its UTC offset: the default key of events stored before session 14 hashed
    # it (events.legacy_event_keys). `at` itself is in UTC.
    _at_as_written: datetime | None = PrivateAttr(default=None)

    @field_validator("at")
    @classmethod
    def _tz(cls, v: datetime | None) -> datetime | None:
        if v is None:
            return None
        at = as_utc(v)
        # An event is something that happened: one dated years ahead froze the post's trend
        # counters until then, and dates at the ends of the calendar broke ranker training.
        if at < EARLIEST_EVENT:
            raise ValueError(f"{at.isoformat()} is before {EARLIEST_EVENT.date()}")
        if at > datetime.now(UTC) + EVENT_CLOCK_SKEW:
            raise ValueError(
                f"{at.isoformat()} is in the future (more than a day ahead of the server's clock)"
            )
        # Converted to UTC by `_utc`, once the offset it was written with is kept.
        return v if v.tzinfo is not None else at

    @model_validator(mode="after")
    def _utc(self) -> EventIn:
        self._at_as_written = self.at
        if self.at is not None:
            self.at = self.at.astimezone(UTC)
        return self

    @property
    def at_as_written(self) -> datetime | None:
        """`at` with the UTC offset it was given with (UTC when given without one), while `at` is
        still that moment (not after a model_copy that changed it)."""
        w = self._at_as_written
        return w if w is not None and w == self.at else None


class MembershipIn(BaseModel):
    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    user_id: UserIdent
    community: Ident


class PostsBatch(BaseModel):
    posts: list[PostIn] = Field(min_length=1, max_length=MAX_BATCH_ITEMS_CAP)


class EventsBatch(BaseModel):
    events: list[EventIn] = Field(min_length=1, max_length=MAX_BATCH_ITEMS_CAP)


class MembershipsIn(BaseModel):
    communities: list[Ident] = Field(max_length=1000)


class IngestResult(BaseModel):
    inserted: int
    updated: int
    encoded: int


class EventsResult(BaseModel):
    accepted: int
    duplicates: int
    users_created: int


class Why(BaseModel):
    """The user's interaction closest to the recommended post."""

    post_id: str
    title: str
    similarity: float


class FeedItem(BaseModel):
    id: str
    community: str
    author: str | None
    title: str
    snippet: str
    category: str | None
    created_at: datetime
    likes: int
    comments: int
    score: float
    source: str = Field(
        description="Where the post came from: similar | latest | popular | short (nearest to a recent "
        "read), joined with + when several sources found it"
    )
    why: Why | None = None


class FeedOut(BaseModel):
    user_id: str | None
    kind: Literal["personalized", "latest", "popular", "cold-start", "ranked"]
    ranker: str | None = Field(default=None, description="The re-ranker that ordered a ranked feed")
    cold_start: bool = False
    path: str | None = Field(default=None, description="exact-memory | exact-sql | approx-hnsw")
    estimated_candidates: int | None = None
    communities: list[str]
    k: int
    days: int | None
    at: datetime
    items: list[FeedItem]
    note: str | None = None
    took_ms: float


class UserOut(BaseModel):
    id: str
    communities: list[str]
    events: int
    profile_weight: float
    created_at: datetime
