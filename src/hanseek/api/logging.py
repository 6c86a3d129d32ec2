"""Structured (JSON) access logs; never logs bodies, headers, query strings or secrets.

Bodies, headers and query strings are never logged. The configured secrets (API key, database
password) are also masked in every formatted record, wherever else they might turn up: a client
that puts the key in a URL path, an exception message that quotes a value.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING

import psycopg
from psycopg.conninfo import conninfo_to_dict
from starlette.types import ASGIApp, Message, Receive, Scope, Send

if TYPE_CHECKING:
    from hanseek.config import Settings

access = logging.getLogger("hanseek.access")


MASK = "***"


class JsonFormatter(logging.Formatter):
    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        forms: set[str] = set()
        for secret in secrets:
            if secret:
                # As written, and as json.dumps escapes it inside a string.
                forms.update((secret, json.dumps(secret, ensure_ascii=False)[1:-1]))
        self._secrets = sorted(forms, key=len, reverse=True)

    def format(self, record: logging.LogRecord) -> str:
        return self._mask(self._format(record))

    def _mask(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        return text

    def _format(self, record: logging.LogRecord) -> str:
        data = {"ts": round(record.created, 3), "level": record.levelname, "logger": record.name}
        if isinstance(record.msg, dict):
            data.update(record.msg)
        else:
            data["msg"] = record.getMessage()
        if record.exc_info:
            data["exc"] = self.formatException(record.exc_info)
        return json.dumps(data, ensure_ascii=False)


def secrets_of(settings: Settings) -> list[str]:
    """The values that must never be logged: the API key and the database URL's password."""
    out = []
    if settings.api_key is not None:
        out.append(settings.api_key.get_secret_value())
    if settings.database_url:
        with contextlib.suppress(psycopg.ProgrammingError):
            password = conninfo_to_dict(settings.database_url).get("password")
            if password:
                out.append(str(password))
    return out


def configure_logging(level: str = "INFO", *, secrets: Iterable[str] = ()) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter(secrets))
    root = logging.getLogger("hanseek")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False
    _route_uvicorn(handler)
    _route_transformers(handler)


def _route_uvicorn(handler: logging.Handler) -> None:
    """uvicorn's own messages (a request its HTTP parser rejects: "Invalid HTTP request received",
    a worker that died) go through the JSON handler too. `serve` starts uvicorn with `log_config=None`,
    so uvicorn does not put its plain-text handlers back over these."""
    for name in ("uvicorn", "uvicorn.access"):
        log = logging.getLogger(name)
        log.handlers[:] = [handler]
        log.propagate = False


def _route_transformers(handler: logging.Handler) -> None:
    """transformers writes its warnings through a handler of its own and draws tqdm bars ("Loading
    weights") on stderr, which the server's log shares: its warnings go through the JSON handler,
    and the bars are off, so that every line a server writes parses as JSON."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_default_handler()
    hf_logging.disable_progress_bar()
    logging.getLogger("transformers").handlers[:] = [handler]


class RequestLog:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def wrapped(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, wrapped)
        finally:
            access.info(
                {
                    "event": "request",
                    "method": scope["method"],
                    "path": scope["path"],
                    "status": status,
                    "ms": round((time.perf_counter() - start) * 1000, 2),
                }
            )
