"""Liveness and readiness."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from hanseek.api.state import get_state

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """Liveness: the process answers. It does not touch the database (see /readyz)."""
    return {"status": "ok"}


@router.get(
    "/readyz",
    responses={
        503: {"description": "Not ready: the database does not answer (the same body, `database: false`)"}
    },
)
def readyz(request: Request) -> JSONResponse:
    """Readiness: 200 when the database answers, 503 (same body, `database: false`) while it does not."""
    state = get_state(request)
    db_ok = state.ready and state.db.ping()
    body = {"status": "ready" if db_ok else "not ready", "database": db_ok}
    return JSONResponse(body, status_code=200 if db_ok else 503)
