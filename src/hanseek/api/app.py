"""FastAPI app factory: lifespan owns the database and services; routers are thin shells."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi_offline import FastAPIOffline

from hanseek import __version__
from hanseek.api.errors import install_error_handlers
from hanseek.api.head import HeadAsGet
from hanseek.api.limits import BodySizeLimit, JsonTextGuard, UrlUtf8Guard
from hanseek.api.logging import RequestLog
from hanseek.api.openapi import install_openapi
from hanseek.api.routers import health
from hanseek.api.security import ApiKeyGate, CrossOriginGuard, HostGuard
from hanseek.api.state import AppState
from hanseek.config import Settings
from hanseek.web import pages

log = logging.getLogger("hanseek.api")


def create_app(settings: Settings, *, state: AppState | None = None) -> FastAPI:
    """Build the app. Pass `state` to share an already-open database (tests, CLI); otherwise the
    lifespan opens the database from settings and closes it on shutdown."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        own = state is None
        st = state
        if st is None:
            from hanseek.store.db import Database

            settings.ensure_dirs()
            st = AppState(settings, Database.open(settings))
            try:
                st.db.migrate()
            except BaseException:
                st.close()  # the pool and the embedded server it may have started
                raise
        app.state.hanseek = st
        st.ready = True
        try:
            yield
        finally:
            st.ready = False
            if own:
                st.close()

    # FastAPIOffline: /docs and /redoc load Swagger UI and ReDoc from the installed package
    # (under /static-offline-docs) instead of FastAPI's CDN links, which an offline machine cannot reach.
    app = FastAPIOffline(
        title="hanseek",
        version=__version__,
        description="Korean content understanding: personalized feed, semantic and image search, "
        "word weights and blanks, sentiment.",
        lifespan=lifespan,
    )
    if state is not None:
        app.state.hanseek = state
    install_error_handlers(app)
    app.add_middleware(HeadAsGet)  # the access log (outside it) still says HEAD
    app.add_middleware(UrlUtf8Guard)  # before routing: a name from bytes that are not UTF-8 is no name
    # The body is checked when the app first reads it (routing done), after the key is checked and
    # before any byte of it is parsed; refusals are still access-logged.
    app.add_middleware(JsonTextGuard)
    app.add_middleware(ApiKeyGate)
    # Before the key check: where no key is set, another site's page must still not write through
    # the user's browser.
    app.add_middleware(CrossOriginGuard)
    app.add_middleware(HostGuard)  # a rebound name passes the origin checks: it is same-origin
    app.add_middleware(RequestLog)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)

    app.include_router(health.router)
    app.include_router(pages.router)
    _include_feature_routers(app)
    pages.mount_static(app)
    install_openapi(app, settings)
    return app


def _include_feature_routers(app: FastAPI) -> None:
    # One router per feature; each module defines `router`. Listed explicitly so an import error
    # in a feature fails loudly at start-up instead of silently dropping its endpoints.
    from hanseek.api.routers import encode, feed, images, keywords, sentiment

    for module in (encode, feed, images, keywords, sentiment):
        app.include_router(module.router)


def app_from_env() -> FastAPI:
    """The app from HANSEEK_* settings, for `uvicorn --factory` worker processes (`hanseek serve
    --workers N`): each worker opens its own pool and services on the shared database."""
    from hanseek.api.logging import configure_logging, secrets_of
    from hanseek.config import load_settings

    settings = load_settings()
    configure_logging(secrets=secrets_of(settings))
    return create_app(settings)
