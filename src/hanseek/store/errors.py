"""Exceptions raised by the store: one base type so callers can catch every store failure at once."""

from __future__ import annotations


class StoreError(RuntimeError):
    """The database cannot be reached, started, or used as hanseek needs it."""


class MigrationError(StoreError):
    """A migration file is malformed, failed to apply, or was edited after it was applied."""
