"""Feed configuration (HANSEEK_FEED_* environment variables), built once when the service starts."""

from __future__ import annotations

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from hanseek.feed.text import KNOWN_FIELDS


class FeedSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="HANSEEK_FEED_", env_file=None, extra="ignore", env_ignore_empty=True
    )

    # Weights per event kind in the user's weighted mean. The original system counted a read once and
    # a like or comment as a stronger signal; the exact numbers are configuration, not law.
    weight_read: float = Field(default=1.0, ge=0.0)
    weight_like: float = Field(default=3.0, ge=0.0)
    weight_comment: float = Field(default=4.0, ge=0.0)
    # 0 disables time decay. Otherwise an event's weight halves every `decay_half_life_days` relative
    # to newer events of the same user (the mean is a ratio, so only relative ages matter).
    decay_half_life_days: float = Field(default=0.0, ge=0.0)

    # Post text = fields joined in this order; a field listed twice weighs more in the encoder input.
    text_fields: list[str] = Field(default_factory=lambda: ["title", "category", "body"], min_length=1)
    max_body_chars: int = Field(default=1000, ge=0)

    # The API's defaults (k 20, days 30) and `feed show`'s (k 10, days 30) are part of their
    # documented signatures; these are the bounds they enforce.
    max_k: int = Field(default=200, ge=1, le=1000)  # 1000: pgvector's widest HNSW scan (store.vectors)
    max_days: int = Field(default=3650, ge=1)

    # Planner: above this many estimated candidate rows the SQL exact path costs more than the
    # approximate one (≈3 µs per row in pgvector); the in-process index is exact up to `memory_max_rows`.
    exact_max_candidates: int = Field(default=20_000, ge=0)
    memory_max_rows: int = Field(default=400_000, ge=0)
    # `auto` takes the HNSW path only for broad filters, where the in-process exact scan costs
    # ~50 ms at 600k candidates; pgvector's widest scan (ef_search 1000) still beats that, and on the
    # 1M-post benchmark recall@20 rose from 0.38-0.76 at ef_search 200 to 0.86-0.96 (docs/feed.md).
    hnsw_ef_search: int = Field(default=1000, ge=1, le=1000)
    hnsw_max_scan_tuples: int = Field(default=100_000, ge=1)

    # Serve the exact path from an in-process matrix kept in step with PostgreSQL.
    memory_index: bool = True
    # numpy BLAS with one thread (see hanseek/feed/blas.py for the measurements behind this).
    single_thread_blas: bool = True
    # At start-up, read the posts of this many recent days (and the feed's indexes) into
    # PostgreSQL's buffers, so the first requests after a restart do not wait on disk; 0 turns it off.
    warm_cache_days: int = Field(default=30, ge=0)
    # How long a process may serve from its index before checking PostgreSQL for other writers'
    # changes when no NOTIFY arrived (a safety net for dropped notifications).
    index_poll_seconds: float = Field(default=2.0, ge=0.0)
    # Event counts (post_stats) change with every events batch; other processes pick them up at
    # most this often (a sync per batch in every process cost more than fresher counts are worth).
    stats_sync_seconds: float = Field(default=1.0, ge=0.0)

    # Cold start: the share of the page taken from the popular list (the rest is latest).
    cold_start_popular_share: float = Field(default=0.5, ge=0.0, le=1.0)
    popular_half_life_days: float = Field(default=0.0, ge=0.0)
    # How many of the user's interactions are compared to explain each item (nearest read post).
    explain_history: int = Field(default=200, ge=0)
    # Ranked feed: at most this share of a page from one community or one author (1 = no cap).
    diversity_share: float = Field(default=0.5, gt=0.0, le=1.0)
    # How often a serving process asks which trained re-ranker is active (hot swap).
    ranker_poll_seconds: float = Field(default=10.0, ge=0.0)

    @field_validator("text_fields")
    @classmethod
    def _known_fields(cls, fields: list[str]) -> list[str]:
        # A misspelt field was skipped: every post then embedded the same (empty) text.
        if unknown := [f for f in fields if f not in KNOWN_FIELDS]:
            raise ValueError(f"unknown post field {unknown[0]!r}; known: {', '.join(KNOWN_FIELDS)}")
        return fields

    def event_weight(self, kind: str) -> float:
        weights = {"read": self.weight_read, "like": self.weight_like, "comment": self.weight_comment}
        return weights[kind]


def load_feed_settings(**overrides: object) -> FeedSettings:
    return FeedSettings(**overrides)  # type: ignore[arg-type]
