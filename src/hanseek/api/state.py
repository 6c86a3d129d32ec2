"""Per-application state built in the lifespan: settings, database, encoders, feature services.

Feature services are created lazily on first use, so an app that never serves images never loads an
image model; everything is torn down with the app (no module-level mutable state).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from fastapi import Request

from hanseek.config import Settings

if TYPE_CHECKING:
    from hanseek.encoders.base import TextEncoder
    from hanseek.store.db import Database

T = TypeVar("T")
log = logging.getLogger(__name__)


class AppState:
    def __init__(self, settings: Settings, db: Database) -> None:
        self.settings = settings
        self.db = db
        self._lock = threading.Lock()
        self._services: dict[str, Any] = {}
        self.ready = False
        # Following `hanseek models use`: only for an encoder this state built from the registry.
        self._follows_registry = False
        self._model_checked = 0.0
        self._model_loading: threading.Thread | None = None
        # One model load at a time: the background poll and a writer that finds the switch in its
        # transaction can ask for the same model together, and it should be read from disk once.
        self._load_lock = threading.Lock()

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
        """The active text model. A switch (`hanseek models use`) is picked up without a restart:
        at most every `model_poll_seconds` the catalogue's active model is compared with the loaded
        one, and a different one is loaded in the background; requests use the current encoder
        until the new one is ready. An explicit HANSEEK_TEXT_MODEL pins the model."""
        enc = self.service("text_encoder", self._build_text_encoder)
        if self._follows_registry:
            self._maybe_follow_active_model(enc)
        return enc

    def text_encoder_is_active(self, conn: Any, encoder: TextEncoder) -> bool:
        """In a writer's transaction, before it stores vectors made by `encoder`: whether `encoder`
        is still the active model. The switch lock is taken shared, so a re-embedding's swap (which
        takes it exclusively, first) either committed before — then the new model is loaded now,
        synchronously, and False tells the writer to encode again — or waits until this write
        commits and then re-embeds what it wrote. Always True for a pinned or injected encoder."""
        from hanseek.encoders.reembed import locked_active_model

        if not self._follows_registry:
            return True
        active = locked_active_model(conn)
        if active is None or active == encoder.name:
            return True
        self._model_checked = time.monotonic()
        if not self._load_active(active):
            from hanseek.encoders.base import EncoderError

            raise EncoderError(f"the active text model {active} could not be loaded (see the server log)")
        return False

    def _build_text_encoder(self, st: AppState) -> TextEncoder:
        from hanseek.encoders.registry import load_text_encoder

        enc = load_text_encoder(st.settings)
        self._follows_registry = "text_model" not in st.settings.model_fields_set
        self._model_checked = time.monotonic()
        return enc

    def _maybe_follow_active_model(self, current: TextEncoder) -> None:
        now = time.monotonic()
        if now - self._model_checked < self.settings.model_poll_seconds or self._model_loading is not None:
            return
        self._model_checked = now
        try:
            with self.db.connection() as conn:
                row = conn.execute("SELECT name FROM models WHERE active").fetchone()
        except Exception as exc:  # the catalogue is advisory here: keep serving with what is loaded
            log.warning("active text model check failed: %s", exc)
            return
        if row is None or row[0] == current.name:
            return
        name = str(row[0])
        thread = threading.Thread(
            target=self._load_in_background, args=(name,), name="text-model-load", daemon=True
        )
        self._model_loading = thread
        thread.start()

    def _load_in_background(self, name: str) -> None:
        try:
            self._load_active(name)
        finally:
            self._model_loading = None

    def _load_active(self, name: str) -> bool:
        with self._load_lock:
            current = self._services.get("text_encoder")
            if current is not None and current.name == name:
                return True  # loaded meanwhile (the background poll and a writer can both ask)
            return self._load(name)

    def _load(self, name: str) -> bool:
        from hanseek.encoders.registry import load_text_encoder

        try:
            enc = load_text_encoder(self.settings, name)
            with self._lock:
                self._services["text_encoder"] = enc
                # Wrappers built over the previous encoder are rebuilt on their next use; the old
                # batcher stops once requests that already hold it are surely done.
                old = self._services.pop("text_encoder_batched", None)
            if old is not None and callable(getattr(old, "close", None)):
                timer = threading.Timer(30.0, old.close)
                timer.daemon = True
                timer.start()
            log.info("text model switched to %s", name)
            return True
        except Exception:
            log.exception("loading the active text model %s failed; keeping the current one", name)
            return False

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
