"""/docs and /redoc render in headless Chromium with every request kept on the server itself.

Machines like ours reach no CDN, and FastAPI's own pages load Swagger UI and ReDoc from one: they
were blank here. Requests to any other host are aborted, and the test fails if one of them was for
code, styles or data. Images are let go: ReDoc's "powered by" badge comes from cdn.redoc.ly and is
simply missing offline.
"""

from __future__ import annotations

from typing import Any

import pytest

pytestmark = pytest.mark.browser


def _keep_on(page: Any, live_server: str) -> list[str]:
    elsewhere: list[str] = []

    def route(r: Any) -> None:
        if r.request.url.startswith(live_server):
            r.continue_()
        else:
            if r.request.resource_type != "image":
                elsewhere.append(r.request.url)
            r.abort()

    page.route("**/*", route)
    return elsewhere


def test_swagger_ui_renders_offline(live_server: str, page: Any) -> None:
    elsewhere = _keep_on(page, live_server)
    page.goto(live_server + "/docs")
    page.locator(".swagger-ui .info .title").filter(has_text="hanseek").wait_for(timeout=30_000)
    feed = page.locator(".opblock-summary-path", has_text="/users/{user_id}/feed")
    feed.first.wait_for()
    feed.first.click()
    # The problem document, as the OpenAPI document declares it for this route's 404.
    page.locator(".responses-table .response-col_status", has_text="404").first.wait_for()
    assert elsewhere == []


def test_redoc_renders_offline(live_server: str, page: Any) -> None:
    elsewhere = _keep_on(page, live_server)
    page.goto(live_server + "/redoc")
    page.locator("h1", has_text="hanseek").first.wait_for(timeout=30_000)
    assert elsewhere == []
