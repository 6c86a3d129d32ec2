"""API-key checks for write (and optionally read) endpoints.

Routes declare what they need with the dependencies `require_write_key` / `require_read_key`.
`ApiKeyGate` (an ASGI middleware) enforces the same declaration *before* the request body is read,
so an unauthenticated client can neither make the server spool a multipart upload to disk nor learn
anything from body validation errors; the dependencies also cover routes that read no body, and
apps built without the middleware.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from typing import Any, Literal
from urllib.parse import urlsplit

from fastapi import Request
from pydantic import SecretStr
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hanseek.api.errors import ProblemError
from hanseek.api.limits import send_problem
from hanseek.api.state import get_state
from hanseek.config import Settings, is_ip, is_loopback

Access = Literal["write", "read", "open"]
KeyMode = Literal["none", "write", "read"]

UNAUTHORIZED_DETAIL = "A valid API key is required (X-API-Key header or Authorization: Bearer)."
CHALLENGE = (("WWW-Authenticate", 'ApiKey header="X-API-Key"'),)


def _digest(value: str) -> bytes:
    return hashlib.sha256(value.encode("utf-8", "surrogateescape")).digest()


def key_matches(given: str, key: SecretStr) -> bool:
    """Constant-time check. Both sides are hashed first: `compare_digest` on inputs of different
    lengths returns at once, which would tell an attacker the key's length."""
    return hmac.compare_digest(_digest(given), _digest(key.get_secret_value()))


def presented_key(headers: Mapping[str, str]) -> str:
    """The key a client sent: `X-API-Key`, else an `Authorization: Bearer` token, else ''."""
    given = headers.get("x-api-key", "")
    auth = headers.get("authorization", "")
    if not given and auth[:7].lower() == "bearer ":
        given = auth[7:].strip()
    return given


def _configured(key: SecretStr | None) -> SecretStr | None:
    # An empty HANSEEK_API_KEY means "no key", as an unset one does (it could not be presented anyway).
    return key if key is not None and key.get_secret_value() else None


def key_mode(settings: Settings) -> KeyMode:
    """What a client must present, for the pages: nothing, the key for writes, or it for everything."""
    if _configured(settings.api_key) is None:
        return "none"
    return "read" if settings.protect_reads else "write"


def _check(request: Request) -> None:
    key = _configured(get_state(request).settings.api_key)
    if key is not None and not key_matches(presented_key(request.headers), key):
        raise ProblemError(401, "Unauthorized", UNAUTHORIZED_DETAIL, headers=dict(CHALLENGE))


def require_write_key(request: Request) -> None:
    _check(request)


def require_read_key(request: Request) -> None:
    if get_state(request).settings.protect_reads:
        _check(request)


def route_access(route: Any) -> Access:
    """What a route declares: 'write' if any of its dependencies (at any depth) is
    `require_write_key`, else 'read' for `require_read_key`, else 'open'."""
    calls: set[Any] = set()
    stack = list(getattr(getattr(route, "dependant", None), "dependencies", []))
    while stack:
        dep = stack.pop()
        calls.add(dep.call)
        stack.extend(dep.dependencies)
    if require_write_key in calls:
        return "write"
    if require_read_key in calls:
        return "read"
    return "open"


class ApiKeyGate:
    """Refuse a request that lacks the key its route needs at its first body read, before any byte
    of the body is parsed (JSON) or spooled to disk (multipart).

    The check runs when the app first calls `receive`: routing has chosen the route by then
    (`scope["route"]`) and the route's declared dependencies say what it needs. Routes that never
    read a body are refused by the dependencies themselves. The refusal is an HTTPException, which
    FastAPI's body reader re-raises unchanged (any other exception there becomes a 400).
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._access: dict[int, Access] = {}

    def _route_access(self, route: Any) -> Access:
        if route is None:
            return "open"
        access = self._access.get(id(route))
        if access is None:
            access = self._access[id(route)] = route_access(route)
        return access

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = getattr(scope["app"].state, "hanseek", None)
        settings = None if state is None else state.settings
        key = None if settings is None else _configured(settings.api_key)
        if settings is None or key is None:
            await self.app(scope, receive, send)
            return
        checked = False

        async def gated_receive() -> Message:
            nonlocal checked
            if not checked:
                checked = True
                access = self._route_access(scope.get("route"))
                needed = access == "write" or (access == "read" and settings.protect_reads)
                if needed and not key_matches(presented_key(Headers(scope=scope)), key):
                    raise HTTPException(401, UNAUTHORIZED_DETAIL, headers=dict(CHALLENGE))
            return await receive()

        await self.app(scope, gated_receive, send)


SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class CrossOriginGuard:
    """Refuse (403) a write that a browser sends on behalf of another site.

    Without an API key (the default on loopback) any web page the user visits could POST to the
    service through the user's browser: a multipart upload needs no CORS preflight, and a page on
    another origin planted an image this way (security review, session 19). Browsers say where a
    request comes from in `Sec-Fetch-Site`; writes are let through when it is `same-origin` (the
    service's own pages and /docs) or `none` (typed by the user), or when there is no such header
    and either no `Origin` (curl, scripts, other servers) or an `Origin` naming this host — the
    check Go's `http.CrossOriginProtection` makes. Reads stay open to other origins, as before."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] not in SAFE_METHODS and _cross_origin(scope):
            await send_problem(
                send, 403, "Forbidden", "cross-origin write refused: send it from the service's own pages"
            )
            return
        await self.app(scope, receive, send)


def _cross_origin(scope: Scope) -> bool:
    headers = Headers(scope=scope)
    site = headers.get("sec-fetch-site")
    if site is not None:
        return site not in ("same-origin", "none")
    origin = headers.get("origin")
    if origin is None:
        return False
    # Browsers send no Sec-Fetch-Site to plain-HTTP hosts other than loopback (a LAN name, a
    # reverse proxy on http): there the page's own writes carry only Origin. A proxy may rewrite
    # Host and say the original in X-Forwarded-Host (a page on another site cannot set that header
    # without a CORS preflight, which the service never grants).
    hosts = [headers.get("host", "")] + [h.strip() for h in headers.get("x-forwarded-host", "").split(",")]
    return not any(_same_origin(origin, host) for host in hosts if host)


_DEFAULT_PORTS = {"http": 80, "https": 443}


def _same_origin(origin: str, host: str) -> bool:
    """Whether `origin` (scheme://host[:port]) names `host` (a Host header: host[:port]); a port left
    out on either side is the Origin scheme's default, since a proxy may add or drop it."""
    parts = urlsplit(origin)
    try:
        theirs = urlsplit(f"//{host}")
        port_o = parts.port or _DEFAULT_PORTS.get(parts.scheme)
        port_h = theirs.port or _DEFAULT_PORTS.get(parts.scheme)
    except ValueError:  # a port that is not a number
        return False
    return bool(parts.hostname) and parts.hostname == theirs.hostname and port_o == port_h


class HostGuard:
    """Refuse (400) a request whose `Host` names a host this service does not answer to.

    DNS rebinding: a page on a name the attacker controls re-points that name at 127.0.0.1, and the
    browser then treats the service as the page's own origin, so it can read every answer and write
    (its requests are same-origin, which `CrossOriginGuard` lets through). Such requests still carry
    the attacker's name in `Host`. IP addresses and localhost cannot be re-pointed, so they are always
    answered; other names only when listed in HANSEEK_ALLOWED_HOSTS, or when the service listens
    beyond loopback and no list is set (a deliberate exposure, where the API key is the protection)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            state = getattr(scope["app"].state, "hanseek", None)
            host = Headers(scope=scope).get("host")
            if state is not None and not host_allowed(state.settings, host):
                shown = (host or "")[:100]
                await send_problem(
                    send,
                    400,
                    "Unknown host",
                    f"this server does not answer to the host {shown!r} (it answers to localhost, IP "
                    "addresses and the names in HANSEEK_ALLOWED_HOSTS): a guard against DNS rebinding",
                )
                return
        await self.app(scope, receive, send)


def host_allowed(settings: Settings, host: str | None) -> bool:
    """Whether a request's `Host` header (host[:port]; None when absent) is one to answer."""
    if host is None:
        return True  # HTTP/1.0 without Host: browsers always send one
    try:
        split = urlsplit(f"//{host}")
        split.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        return False
    name = (split.hostname or "").rstrip(".")
    if not name or split.username is not None or split.path:
        return False
    if is_ip(name) or is_loopback(name):
        return True
    rules = settings.allowed_hosts or ([] if is_loopback(settings.host) else ["*"])
    return any(_matches(name, rule.rstrip(".")) for rule in rules)


def _matches(name: str, rule: str) -> bool:
    if rule.startswith("*"):  # '*' any name, '*.example.com' the names under example.com
        return name.endswith(rule[1:])
    return name == rule
