"""Pure-ASGI request body checks: size (refuse oversized bodies before they are read into memory)
and text validity (no unpaired surrogates in JSON).

A declared Content-Length over the limit is refused before the app runs. A body without one
(chunked transfer) is counted as it streams; going over raises `BodyTooLarge`, an HTTPException,
because FastAPI's body reader re-raises those unchanged but turns any other exception from
`receive` into a misleading "400 error parsing the body".
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from urllib.parse import unquote_to_bytes

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hanseek.api.errors import TooLarge
from hanseek.config import Settings


def check_batch(n: int, settings: Settings, noun: str) -> None:
    """`n` items against `HANSEEK_MAX_BATCH_ITEMS`: 413 beyond it, in the same words everywhere."""
    if n > settings.max_batch_items:
        raise TooLarge(f"{n:,} {noun} in one request; the limit is {settings.max_batch_items:,}")


def check_lengths(texts: Sequence[str], settings: Settings, field: str) -> None:
    """Each text against `HANSEEK_MAX_TEXT_CHARS`: 413 naming the first one beyond it."""
    for i, text in enumerate(texts):
        if len(text) > settings.max_text_chars:
            raise TooLarge(
                f"{field}[{i}] has {len(text):,} characters; the limit is {settings.max_text_chars:,}"
            )


def check_total_chars(texts: Sequence[str], limit: int, field: str, setting: str) -> None:
    """All texts together against `limit` (413)."""
    total = sum(len(t) for t in texts)
    if total > limit:
        raise TooLarge(
            f"{field} have {total:,} characters in all; the limit per request is {limit:,} ({setting}): "
            "send fewer or shorter texts per request"
        )


class BodyTooLarge(HTTPException):
    def __init__(self, max_bytes: int) -> None:
        super().__init__(413, _detail(max_bytes))


def _detail(max_bytes: int) -> str:
    mib = max_bytes / (1 << 20)
    limit = f"{mib:g} MiB ({max_bytes:,} bytes; " if mib >= 1 else f"{max_bytes:,} bytes ("
    return f"The request is larger than the limit of {limit}HANSEEK_MAX_BODY_BYTES)."


class BodySizeLimit:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = -1
                if declared > self.max_bytes or declared < 0:
                    await self._reject(send)
                    return
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge:
            # Reached only when no exception handler answered (a body read outside FastAPI's reader).
            if not started:
                await self._reject(send)

    async def _reject(self, send: Send) -> None:
        await send_problem(send, 413, "Payload Too Large", _detail(self.max_bytes))


class UrlUtf8Guard:
    """Refuse (422) a request whose path or query string, once percent-decoded, is not UTF-8.

    The server decodes such bytes to U+FFFD, so `/users/%FE` and `/users/%FF` (or `?user_id=%FF`)
    named one user "\ufffd"; until session 18 such paths created users and subjects of that name. A
    name that really holds U+FFFD arrives as `%EF%BF%BD`, which is UTF-8, and goes on."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            for part, raw in (("path", scope.get("raw_path")), ("query string", scope.get("query_string"))):
                if isinstance(raw, bytes) and not _percent_decodes_to_utf8(raw.replace(b"+", b" ")):
                    await send_problem(
                        send,
                        422,
                        "Invalid input",
                        f"the {part} was not valid UTF-8 (percent-encode the UTF-8 bytes of each name)",
                    )
                    return
        await self.app(scope, receive, send)


def _percent_decodes_to_utf8(raw: bytes) -> bool:
    try:
        unquote_to_bytes(raw).decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


async def send_problem(send: Send, status: int, title: str, detail: str) -> None:
    body = json.dumps({"type": "about:blank", "title": title, "status": status, "detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/problem+json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


# A JSON escape of a UTF-16 surrogate (\uD800-\uDFFF): the only way a request can carry text that is
# not valid Unicode, since raw bytes must decode as UTF-8. Paired ones encode astral characters.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def _has_lone_surrogate(body: bytes) -> bool:
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError):
        return False  # not JSON: the app's own parser reports it
    stack = [doc]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def _undecodable_as(body: bytes) -> str | None:
    """The encoding JSON's rules detect for `body`, when the body is not valid in it; else None."""
    encoding = json.detect_encoding(body)
    try:
        body.decode(encoding)
    except UnicodeDecodeError:
        return encoding
    return None


class JsonTextGuard:
    """Refuse, with a 422, JSON bodies that are not text.

    - Bytes invalid in the encoding JSON's rules detect (UTF-8 unless a UTF-16/32 byte order says
      otherwise). FastAPI's reader would meet them as a UnicodeDecodeError and answer a bare "400
      There was an error parsing the body", a status the OpenAPI document does not declare.
    - Strings holding unpaired surrogates (e.g. "\\ud800"). Python's json accepts them, but nothing
      downstream can: PostgreSQL, tokenizers and the JSON response encoder all fail on such a str, as
      500s in whatever feature meets it first.

    Checked lazily on the app's first body read (so routing and the API-key gate have run). Ordinary
    requests pay one decode and one regex scan; only bodies with a surrogate escape are parsed here.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        content_type = dict(scope["headers"]).get(b"content-type", b"application/json").lower()
        if b"json" not in content_type:
            await self.app(scope, receive, send)
            return
        consumed = False

        async def checked_receive() -> Message:
            nonlocal consumed
            if consumed:
                return await receive()
            consumed = True
            chunks = []
            while True:
                message = await receive()
                if message["type"] != "http.request":
                    return message  # client went away
                chunks.append(message.get("body", b""))
                if not message.get("more_body", False):
                    break
            body = b"".join(chunks)
            if body and (encoding := _undecodable_as(body)):
                raise HTTPException(422, f"The body is not JSON text: it is not valid {encoding.upper()}.")
            if _SURROGATE_ESCAPE.search(body) and _has_lone_surrogate(body):
                raise HTTPException(
                    422, "The JSON text contains an unpaired UTF-16 surrogate escape (\\uD800-\\uDFFF)."
                )
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, checked_receive, send)
