"""API-key checks for write (and optionally read) endpoints."""

from __future__ import annotations

import hmac

from fastapi import Request

from hanseek.api.errors import ProblemError
from hanseek.api.state import get_state


def _check(request: Request) -> None:
    key = get_state(request).settings.api_key
    if key is None:
        return
    given = request.headers.get("x-api-key", "")
    auth = request.headers.get("authorization", "")
    if not given and auth.lower().startswith("bearer "):
        given = auth[7:]
    # Constant-time comparison so the key cannot be guessed byte by byte from response timing.
    if not hmac.compare_digest(given.encode(), key.get_secret_value().encode()):
        raise ProblemError(401, "Unauthorized", "A valid API key is required (X-API-Key header).")


def require_write_key(request: Request) -> None:
    _check(request)


def require_read_key(request: Request) -> None:
    if get_state(request).settings.protect_reads:
        _check(request)
