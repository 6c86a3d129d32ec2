"""Loads every feature's bundled demo data (idempotent), so `make run` shows something real."""

from __future__ import annotations

import importlib
import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hanseek.api.state import AppState

log = logging.getLogger("hanseek.demo")

FEATURES = ("feed", "images", "keywords", "sentiment")


def load_all(state: AppState) -> dict[str, dict[str, int]]:
    """Call `hanseek.<feature>.demo.load_demo(db, settings, encoder)` for each feature that ships one."""
    results: dict[str, dict[str, int]] = {}
    for feature in FEATURES:
        name = f"hanseek.{feature}.demo"
        try:
            module: Any = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:  # this feature ships no demo data; anything else is a real error
                continue
            raise
        log.info("loading demo data for %s", feature)
        results[feature] = module.load_demo(state.db, state.settings, state.text_encoder)
    return results
