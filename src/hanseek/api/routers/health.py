"""Liveness and readiness."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from hanseek.api.state import get_state

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz")
def readyz(request: Request) -> JSONResponse:
    state = get_state(request)
    db_ok = state.ready and state.db.ping()
    body = {"status": "ready" if db_ok else "not ready", "database": db_ok}
    return JSONResponse(body, status_code=200 if db_ok else 503)
