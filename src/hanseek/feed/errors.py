"""Feed errors; the API turns them into 404 / 422 problem documents, the CLI into messages."""

from __future__ import annotations


class FeedError(Exception):
    pass


class NotFoundError(FeedError):
    """An unknown user or post."""


class InvalidInput(FeedError):
    """Input that passed type checks but cannot be applied (unknown posts in events, wrong dimension)."""
