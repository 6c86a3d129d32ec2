"""The OpenAPI document says what clients really get: problem documents, and where the key is needed.

FastAPI describes every 422 as its own `HTTPValidationError` (`detail` a list, `application/json`),
but `errors.install_error_handlers` answers every error with an RFC 9457 problem document, and it
knows nothing of `security.require_write_key`. Routes declare their feature-specific errors with
`problems(404, 503)`; `install_openapi` adds what holds for every route of this instance: 422 for
routes with parameters or a body, 413 for routes with a body, 409 for write routes (a collision with
concurrent writers), and 401 plus the security schemes for routes that need the key under the
instance's settings (none when no key is configured).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field
from starlette.routing import BaseRoute

from hanseek.api.errors import PROBLEM_JSON
from hanseek.api.security import SAFE_METHODS, key_mode, route_access
from hanseek.config import Settings

_REF = "#/components/schemas/"

DESCRIPTIONS: dict[int, str] = {
    400: "The `Host` header names a host this service does not answer to (`HANSEEK_ALLOWED_HOSTS`).",
    401: "The API key is missing or wrong (`X-API-Key` header or `Authorization: Bearer`).",
    403: "A browser sent this from another site's page (`Sec-Fetch-Site` / `Origin`): refused.",
    404: "What the path names does not exist.",
    409: "The request conflicts with stored data (often a concurrent change); retrying may succeed.",
    413: "Over a size limit: the body, the number of items in it, or the length of a text in it.",
    422: "Invalid input: `detail` says which field and why (`errors` lists the first 20 for validation, "
    "`error_count` how many there were).",
    503: "A model or program the operation needs is not installed or could not be loaded.",
}

# Security scheme names in `components.securitySchemes`; either one satisfies a route.
_SCHEMES: dict[str, dict[str, str]] = {
    "ApiKeyHeader": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
    "BearerKey": {"type": "http", "scheme": "bearer", "description": "The same key as a bearer token."},
}


class ValidationIssue(BaseModel):
    loc: list[str] = Field(description='Where: e.g. ["body", "texts", "0"]')
    msg: str
    type: str


class Problem(BaseModel):
    """An RFC 9457 problem document (`application/problem+json`); features may add members."""

    model_config = ConfigDict(extra="allow")

    type: str = Field("about:blank", description="Always about:blank: `title` and `status` say it all")
    title: str = Field(description='Short and fixed per kind: "Invalid input", "Not Found", …')
    status: int = Field(description="The HTTP status code, repeated")
    detail: str | None = Field(None, description="What went wrong with this request, for a person")
    errors: list[ValidationIssue] | None = Field(
        None, description="The first 20 failing fields (422 from validation)"
    )
    error_count: int | None = Field(None, description="How many fields failed (422 from validation)")


def problems(*codes: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` entries for a route's own error statuses, all problem documents."""
    return {code: problem_response(code) for code in codes}


def problem_response(code: int, description: str | None = None) -> dict[str, Any]:
    """One `responses=` entry: a problem document, described in general or in the route's words."""
    return {
        "description": description or DESCRIPTIONS[code],
        "content": {PROBLEM_JSON: {"schema": {"$ref": _REF + "Problem"}}},
    }


def install_openapi(app: FastAPI, settings: Settings) -> None:
    """Wrap `app.openapi` so the generated document is completed once, on first use."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        # The key mode as the security dependencies see it: read from the settings now, not at install.
        mode = key_mode(settings)
        keyed, protect_reads = mode != "none", mode == "read"
        schema = generate()
        components = schema.setdefault("components", {})
        schemas = components.setdefault("schemas", {})
        schemas.update(_model_schemas())
        for route in api_routes(app.routes):
            if not isinstance(route, APIRoute) or not route.include_in_schema:
                continue
            access = route_access(route)
            needs_key = keyed and (access == "write" or (access == "read" and protect_reads))
            for method in route.methods or ():
                op = schema["paths"].get(route.path_format, {}).get(method.lower())
                if op is not None:
                    _complete(
                        op, needs_key=needs_key, writes=access == "write", unsafe=method not in SAFE_METHODS
                    )
        if keyed:
            components["securitySchemes"] = dict(_SCHEMES)
        for name in ("HTTPValidationError", "ValidationError"):
            schemas.pop(name, None)  # no route refers to FastAPI's own 422 model any more
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def api_routes(routes: Iterable[BaseRoute]) -> Iterator[BaseRoute]:
    """Every route, descending into included routers (FastAPI >= 0.16x keeps them nested, and the
    project's routers have no prefix, so a route's own path is its path in the app)."""
    for route in routes:
        inner = getattr(route, "original_router", None)
        if inner is not None:
            yield from api_routes(inner.routes)
        else:
            yield route


def _complete(op: dict[str, Any], *, needs_key: bool, writes: bool, unsafe: bool) -> None:
    responses: dict[str, Any] = op.setdefault("responses", {})
    responses.setdefault("400", problem_response(400))  # security.HostGuard, on every operation
    declared = PROBLEM_JSON in responses.get("422", {}).get("content", {})
    if not declared and ("422" in responses or op.get("parameters") or "requestBody" in op):
        responses["422"] = problem_response(422)  # in place of FastAPI's HTTPValidationError
    if "requestBody" in op:
        responses.setdefault("413", problem_response(413))
    if writes:  # a write can collide with concurrent writers (errors.py answers that with a 409)
        responses.setdefault("409", problem_response(409))
    if unsafe:  # security.CrossOriginGuard
        responses.setdefault("403", problem_response(403))
    if needs_key:
        responses["401"] = problem_response(401)
        op["security"] = [{name: []} for name in _SCHEMES]
    op["responses"] = dict(sorted(responses.items()))


def _model_schemas() -> dict[str, Any]:
    schema = Problem.model_json_schema(ref_template=_REF + "{model}")
    defs = schema.pop("$defs", {})
    return {**defs, "Problem": schema}
