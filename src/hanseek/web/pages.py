"""Page rendering shared by all features, and the home page."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from hanseek import __version__
from hanseek.api.security import key_mode
from hanseek.api.state import get_state

WEB_DIR = Path(__file__).parent
templates = Jinja2Templates(directory=str(WEB_DIR / "templates"))

# Features shown on the home page and in the navigation: (path, title, description).
FEATURES: list[tuple[str, str, str]] = [
    ("/feed", "Feed", "A personalised feed of community posts next to the latest and popular feeds."),
    ("/images", "Image search", "Find images by example or by a Korean or English description."),
    ("/cloze", "Blanks (빈칸)", "Weigh the words of a study page and turn the key words into blanks."),
    ("/sentiment", "Sentiment", "Is a review positive or negative?"),
    ("/docs", "API", "The OpenAPI reference of every endpoint."),
]

router = APIRouter(include_in_schema=False)


def reads_need_key(request: Request) -> bool:
    """Under protect_reads a page must not show, without the key, what the read API would refuse
    (subject names, model names): the page's script asks the API for them with the key instead."""
    return key_mode(get_state(request).settings) == "read"


def render(request: Request, template: str, **context: Any) -> HTMLResponse:
    context.setdefault("key_mode", key_mode(get_state(request).settings))
    context.setdefault("features", FEATURES)
    context.setdefault("version", __version__)
    return templates.TemplateResponse(request, template, context)


@router.get("/", response_class=HTMLResponse)
def home(request: Request) -> HTMLResponse:
    return render(request, "home.html")


def mount_static(app: FastAPI) -> None:
    app.mount("/static", StaticFiles(directory=str(WEB_DIR / "static")), name="static")
