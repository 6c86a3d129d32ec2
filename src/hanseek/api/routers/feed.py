"""Feed endpoints: posts, events, memberships, the personalised feed and its baselines; /feed page."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.responses import HTMLResponse

from hanseek.api.errors import BadRequest, NotFound, ProblemError
from hanseek.api.limits import check_batch
from hanseek.api.openapi import problems
from hanseek.api.security import require_read_key, require_write_key
from hanseek.api.state import AppState, get_state
from hanseek.encoders.base import EncoderError
from hanseek.feed.errors import InvalidInput, NotFoundError
from hanseek.feed.models import (
    IDENT_MAX,
    IDENT_PATTERN,
    EventsBatch,
    EventsResult,
    FeedOut,
    IngestResult,
    MembershipsIn,
    MethodName,
    PathName,
    PostsBatch,
    UserOut,
)
from hanseek.feed.service import FeedService
from hanseek.web.pages import render

router = APIRouter(tags=["feed"])
read = [Depends(require_read_key)]
write = [Depends(require_write_key)]

Days = Annotated[
    str,
    Query(pattern=r"^(\d{1,5}|all)$", description="Date window in days ending at `at`, or 'all' for none"),
]
# The upper bound is `HANSEEK_FEED_MAX_K` (the service checks it), so a deployment can raise it.
K = Annotated[int, Query(ge=1, description="How many posts: 1 to `HANSEEK_FEED_MAX_K` (200 unless set)")]
At = Annotated[datetime | None, Query(description="Evaluate the feed as of this time (default: now)")]


# Ids in the path obey the request bodies' rule (feed.models.Ident), so a user created by a
# membership call is one the events endpoint accepts, and an over-long id is a 422, not a database
# constraint violation. Post ids and community names may hold "/" (URLs as ids, boards such as
# "인권/성평등"): they are the routes' last segment, taken with Starlette's `:path` converter, since
# a client's %2F reaches the router decoded. User ids, which routes continue after, cannot hold "/".
PathId = Annotated[
    str,
    Path(
        min_length=1,
        max_length=IDENT_MAX,
        pattern=IDENT_PATTERN,
        description=f"1-{IDENT_MAX} characters, no edge spaces",
    ),
]


def build_service(state: AppState) -> FeedService:
    from hanseek.feed.settings import load_feed_settings

    return FeedService(
        state.db,
        dim=state.settings.embed_dim,
        settings=load_feed_settings(),
        encoder=lambda: state.text_encoder,
        encoder_is_active=state.text_encoder_is_active,
    )


def feed_service(request: Request) -> FeedService:
    return get_state(request).service("feed", build_service)


Service = Annotated[FeedService, Depends(feed_service)]


@contextmanager
def _errors() -> Iterator[None]:
    try:
        yield
    except NotFoundError as e:
        raise NotFound(str(e)) from e
    except InvalidInput as e:
        raise BadRequest(str(e)) from e
    except EncoderError as e:  # the text model could not be loaded (posts without an embedding)
        raise ProblemError(503, "Model unavailable", str(e)) from e


def _days(days: str) -> int | None:
    return None if days == "all" else int(days)


@router.post("/posts", response_model=IngestResult, dependencies=write, responses=problems(503))
def ingest_posts(body: PostsBatch, request: Request, svc: Service) -> IngestResult:
    """Insert or update posts (by id), all-or-nothing. Posts without `embedding` are encoded."""
    check_batch(len(body.posts), get_state(request).settings, "posts")
    with _errors():
        return svc.ingest_posts(body.posts)


@router.delete("/posts/{post_id:path}", status_code=204, dependencies=write, responses=problems(404))
def delete_post(post_id: PathId, svc: Service) -> Response:
    """Delete a post: it leaves every feed, and its events leave the users' profiles."""
    with _errors():
        svc.delete_post(post_id)
    return Response(status_code=204)


@router.post("/events", response_model=EventsResult, dependencies=write)
def record_events(body: EventsBatch, request: Request, svc: Service) -> EventsResult:
    """Record reads/likes/comments, all-or-nothing; retried events (same keys) are not double-counted."""
    check_batch(len(body.events), get_state(request).settings, "events")
    with _errors():
        return svc.record_events(body.events)


@router.put("/users/{user_id}/memberships", response_model=UserOut, dependencies=write)
def set_memberships(user_id: PathId, body: MembershipsIn, svc: Service) -> UserOut:
    """Set the user's communities (creates the user when new)."""
    with _errors():
        return svc.set_memberships(user_id, body.communities, replace=True)


@router.post("/users/{user_id}/memberships/{community:path}", response_model=UserOut, dependencies=write)
def join(user_id: PathId, community: PathId, svc: Service) -> UserOut:
    """Add one community to the user's (creates the user when new)."""
    with _errors():
        return svc.set_memberships(user_id, [community], replace=False)


@router.delete(
    "/users/{user_id}/memberships/{community:path}",
    response_model=UserOut,
    dependencies=write,
    responses=problems(404),
)
def leave(user_id: PathId, community: PathId, svc: Service) -> UserOut:
    """Remove one community from the user's; 404 for an unknown user."""
    with _errors():
        return svc.remove_membership(user_id, community)


@router.get("/users", response_model=list[str], dependencies=read)
def list_users(svc: Service, limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> list[str]:
    """User ids in id order (at most `limit`)."""
    return svc.list_users(limit)


@router.get("/users/{user_id}", response_model=UserOut, dependencies=read, responses=problems(404))
def get_user(user_id: PathId, svc: Service) -> UserOut:
    """The user's communities, event count and profile weight."""
    with _errors():
        return svc.get_user(user_id)


@router.get("/users/{user_id}/feed", response_model=FeedOut, dependencies=read, responses=problems(404))
def user_feed(
    user_id: PathId,
    svc: Service,
    k: K = 20,
    days: Days = "30",
    path: Annotated[PathName, Query(description="auto | exact | exact-sql | approx")] = "auto",
    method: Annotated[MethodName, Query(description="ranked (re-ranker over several sources) | similar")] = (
        "ranked"
    ),
    at: At = None,
) -> FeedOut:
    """Top-k unread posts from the user's communities and the window, each with the nearest post they
    interacted with. `ranked`: candidates (similar, latest, popular, near recent reads) re-ranked by
    the active model; `similar`: cosine to the user's vector (without interactions: popular + latest)."""
    with _errors():
        return svc.feed(user_id, k=k, days=_days(days), path=path, at=at, method=method)


@router.get("/feeds/{kind}", response_model=FeedOut, dependencies=read, responses=problems(404))
def baseline(
    kind: Literal["latest", "popular"],
    svc: Service,
    user_id: str | None = None,
    community: Annotated[list[str] | None, Query(description="Communities (default: the user's)")] = None,
    k: K = 20,
    days: Days = "30",
    at: At = None,
) -> FeedOut:
    """The baselines with the feed's filters: newest first, or by likes + comments."""
    with _errors():
        return svc.baseline_feed(kind, user_id=user_id, communities=community, k=k, days=_days(days), at=at)


@router.get("/feeds-index", dependencies=read)
def index_status(svc: Service) -> dict[str, object]:
    """State of this process's in-process feed index."""
    return svc.index_status()


@router.get("/feed", response_class=HTMLResponse, include_in_schema=False)
def feed_page(request: Request) -> HTMLResponse:
    return render(request, "feed.html")
