"""Per-application state built in the lifespan: settings, database, encoders, feature services.

Feature services are created lazily on first use, so an app that never serves images never loads an
image model; everything is torn down with the app (no module-level mutable state).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from fastapi import Request

from hanseek.config import Settings

if TYPE_CHECKING:
    from hanseek.encoders.base import TextEncoder
    from hanseek.store.db import Database

T = TypeVar("T")


class AppState:
    def __init__(self, settings: Settings, db: Database) -> None:
        self.settings = settings
        self.db = db
        self._lock = threading.Lock()
        self._services: dict[str, Any] = {}
        self.ready = False

    def service(self, name: str, factory: Callable[[AppState], T]) -> T:
        """The named service, built once by `factory(state)` (thread-safe)."""
        svc = self._services.get(name)
        if svc is None:
            with self._lock:
                svc = self._services.get(name)
                if svc is None:
                    svc = factory(self)
                    self._services[name] = svc
        return svc

    @property
    def text_encoder(self) -> TextEncoder:
        from hanseek.encoders.registry import load_text_encoder

        return self.service("text_encoder", lambda st: load_text_encoder(st.settings))

    def close_services(self) -> None:
        """Release services (models, caches) built for this app; the database stays open."""
        for svc in self._services.values():
            close = getattr(svc, "close", None)
            if callable(close):
                close()
        self._services.clear()

    def close(self) -> None:
        self.close_services()
        self.db.close()


def get_state(request: Request) -> AppState:
    state: AppState = request.app.state.hanseek
    return state
