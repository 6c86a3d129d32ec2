"""HEAD answered as GET without the body (RFC 9110 §9.3.2).

FastAPI's routes take only the methods they declare, so every page and GET endpoint answered a HEAD
(`curl -I`, link checkers, uptime monitors) with 405 — only the static files, which Starlette serves,
knew it. Declaring HEAD on each route would also list a second operation per path in the OpenAPI
document; one middleware keeps the document as it is."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class HeadAsGet:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return
        ended = False

        async def headers_only(message: Message) -> None:
            # The GET's status and headers (Content-Length included), then one empty end of body;
            # what the handler goes on producing is dropped.
            nonlocal ended
            if message["type"] == "http.response.start":
                await send(message)
            elif message["type"] == "http.response.body" and not ended:
                ended = True
                await send({"type": "http.response.body", "body": b"", "more_body": False})

        await self.app({**scope, "method": "GET"}, receive, headers_only)
