"""Page rendering shared by all features, and the home page."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from hanseek import __version__

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


def render(request: Request, template: str, **context: Any) -> HTMLResponse:
    context.setdefault("features", FEATURES)
    context.setdefault("version", __version__)
    return templates.TemplateResponse(request, template, context)


@router.get("/", response_class=HTMLResponse)
def home(request: Request) -> HTMLResponse:
    return render(request, "home.html")


def mount_static(app: FastAPI) -> None:
    app.mount("/static", StaticFiles(directory=str(WEB_DIR / "static")), name="static")
