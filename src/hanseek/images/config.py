"""Image settings (HANSEEK_IMAGE_* environment variables), read once when the image service is built."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class ImageSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="HANSEEK_IMAGE_", env_file=None, extra="ignore", env_ignore_empty=True
    )

    model: str = Field(
        default="auto",
        description="auto | efficientnet-lite0 | descriptor | a CLIP model directory or hub id",
    )
    text_tower: str | None = Field(
        default=None, description="Multilingual text model mapped into the CLIP space (CLIP models only)"
    )
    max_pixels: int = Field(default=40_000_000, ge=1, description="Decompression-bomb limit (width × height)")
    max_file_bytes: int = Field(default=15 * 1024 * 1024, ge=1)
    max_batch_files: int = Field(default=64, ge=1)
    thumbnail_px: int = Field(default=256, ge=16, le=1024)
    auto_labels: bool = Field(
        default=True, description="Store the image model's class names as searchable text"
    )
    label_top_k: int = Field(default=3, ge=1, le=10)
    label_min_prob: float = Field(default=0.05, ge=0.0, le=1.0)
    near_duplicate_score: float = Field(
        default=0.85,
        ge=-1.0,
        le=1.0,
        allow_inf_nan=False,
        description="Report an upload as a near-duplicate of a stored image at this score",
    )
    exact_max_candidates: int = Field(default=20_000, ge=0)
    ef_search: int = Field(default=100, ge=1, le=1000)
