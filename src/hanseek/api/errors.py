"""Errors as RFC 9457 `application/problem+json`; bad input is a 4xx, never a 500 with a traceback."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import psycopg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from hanseek.store.db import ROLLED_BACK

log = logging.getLogger("hanseek.api")

PROBLEM_JSON = "application/problem+json"


class ProblemError(Exception):
    """Raise from a router or service to answer with a problem document."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str | None = None,
        *,
        headers: Mapping[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail or title)
        self.status = status
        self.title = title
        self.detail = detail
        self.headers = dict(headers or {})
        self.extra = extra


class NotFound(ProblemError):
    def __init__(self, detail: str) -> None:
        super().__init__(404, "Not Found", detail)


class BadRequest(ProblemError):
    def __init__(self, detail: str) -> None:
        super().__init__(422, "Invalid input", detail)


class TooLarge(ProblemError):
    """Over a size limit: items per batch, characters per text, files per upload."""

    def __init__(self, detail: str) -> None:
        super().__init__(413, "Payload Too Large", detail)


def problem(
    status: int,
    title: str,
    detail: str | None = None,
    *,
    headers: Mapping[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    body: dict[str, Any] = {"type": "about:blank", "title": title, "status": status}
    if detail:
        body["detail"] = detail
    body.update(extra)
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


MAX_LISTED_ERRORS = 20


def _jsonable_errors(errors: Any) -> list[dict[str, Any]]:
    # pydantic puts the offending value (possibly bytes or a float NaN) in `input`/`ctx`: keep it printable.
    out = []
    for e in errors:
        out.append(
            {
                "loc": [str(p) for p in e.get("loc", ())],
                "msg": str(e.get("msg", "")),
                "type": str(e.get("type", "")),
            }
        )
    return out


def _error_detail(error: dict[str, Any]) -> str:
    """`field.path: message`, the request part (body, query, path) left out."""
    where = ".".join(p for p in error["loc"] if p not in ("body", "query", "path"))
    return f"{where}: {error['msg']}" if where else str(error["msg"])


def _reason(exc: Exception, fallback: str) -> str:
    """The database's one-line reason (its DETAIL lines may quote the refused row)."""
    return (str(exc).strip().splitlines() or [fallback])[0][:300]


def _is_page_visit(request: Request) -> bool:
    """A person's browser asking for a page that does not exist (a mistyped address): no route
    matched, and the request asks for HTML. API clients, and 404s a route raises, stay problem+json."""
    return (
        request.method == "GET"
        and "route" not in request.scope
        and "text/html" in request.headers.get("accept", "")
    )


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ProblemError)
    async def _problem(_: Request, exc: ProblemError) -> JSONResponse:
        return problem(exc.status, exc.title, exc.detail, headers=exc.headers, **exc.extra)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        raw = exc.errors()
        # A list past its declared length is a size limit, answered as the other limits are (413).
        too_long = next((e for e in raw if e.get("type") == "too_long"), None)
        if too_long is not None:
            return problem(413, "Payload Too Large", _error_detail(_jsonable_errors([too_long])[0]))
        # The first few, and how many: a body of many bad items once answered with 94 MB of errors
        # (converted only as far as answered: 100,000 of them cost 0.2 s of the event loop).
        listed = _jsonable_errors(raw[:MAX_LISTED_ERRORS])
        first = listed[0] if listed else {"loc": [], "msg": "invalid request"}
        return problem(422, "Invalid input", _error_detail(first), errors=listed, error_count=len(raw))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 404 and _is_page_visit(request):
            from hanseek.web.pages import render

            page = render(request, "not_found.html", path=request.url.path)
            page.status_code = 404
            return page
        if exc.status_code == 400:
            # Only the framework raises 400: Starlette for a multipart body it cannot parse ("Missing
            # boundary", "Invalid multipart data."), FastAPI for any other body it fails to read. A
            # JSON body it cannot parse is already a 422, as all bad input here is (and is declared).
            return problem(422, "Invalid input", f"The body could not be read: {exc.detail}")
        title = {
            401: "Unauthorized",
            404: "Not Found",
            405: "Method Not Allowed",
            413: "Payload Too Large",
            422: "Invalid input",
        }
        return problem(
            exc.status_code, title.get(exc.status_code, "Error"), str(exc.detail), headers=exc.headers
        )

    @app.exception_handler(psycopg.DataError)
    async def _data(request: Request, exc: psycopg.DataError) -> JSONResponse:
        # SQLSTATE class 22 ("data exception") and psycopg's own refusals (a NUL character in text)
        # are about the values a client sent, wherever a feature forgot to check them: a 4xx, with
        # the database's one-line reason. The traceback stays in the log for the feature's owner.
        log.warning("data error on %s %s", request.method, request.url.path, exc_info=exc)
        return problem(422, "Invalid input", f"The database refused a value: {_reason(exc, 'invalid value')}")

    @app.exception_handler(psycopg.IntegrityError)
    async def _integrity(request: Request, exc: psycopg.IntegrityError) -> JSONResponse:
        # A CHECK or NOT NULL constraint refused a value the client sent (the edge should have said
        # so first: a 422 like the data errors above). Any other integrity error (a unique or
        # foreign key violation) is a conflict with what is stored, often a concurrent change.
        log.warning("integrity error on %s %s", request.method, request.url.path, exc_info=exc)
        reason = _reason(exc, "constraint violated")
        if isinstance(exc, psycopg.errors.CheckViolation | psycopg.errors.NotNullViolation):
            return problem(422, "Invalid input", f"The database refused a value: {reason}")
        return problem(409, "Conflict", f"The request conflicts with stored data: {reason}")

    async def _rolled_back(request: Request, exc: Exception) -> JSONResponse:
        # A deadlock or serialization failure with concurrent writers: nothing of this request was
        # saved, and the same request again may well succeed.
        log.warning("transaction rolled back on %s %s", request.method, request.url.path, exc_info=exc)
        return problem(
            409, "Conflict", "The request collided with concurrent changes and nothing was saved; retry it."
        )

    for rolled_back in ROLLED_BACK:
        app.add_exception_handler(rolled_back, _rolled_back)

    @app.exception_handler(Exception)
    async def _unhandled(request: Request, exc: Exception) -> JSONResponse:
        # Logged with the traceback for operators; the client only gets a generic message.
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return problem(500, "Internal Server Error", "The server failed to handle this request.")
