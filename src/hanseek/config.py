"""Settings from HANSEEK_* environment variables (pydantic-settings).

One `Settings` object is built at start-up (CLI command or app lifespan) and passed down; nothing
reads the environment after that, so tests can build their own settings without touching globals.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


def _default_data_dir() -> Path:
    # The repository's ./data when run from a checkout (git-ignored), else the user's home.
    return Path.cwd() / "data"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HANSEEK_", env_file=None, extra="ignore")

    data_dir: Path = Field(default_factory=_default_data_dir, description="Where generated files live")
    database_url: str | None = Field(
        default=None, description="External PostgreSQL (with pgvector); unset = embedded server"
    )
    host: str = "127.0.0.1"
    port: int = 8000
    api_key: SecretStr | None = Field(default=None, description="Required on write endpoints when set")
    protect_reads: bool = Field(default=False, description="Also require the API key on read endpoints")

    text_model: str = Field(
        default="e5-small", description="'e5-small' (bundled), a registered model name, a path or hub id"
    )
    text_backend: str = Field(default="torch", description="torch | onnx | onnx-int8")
    model_poll_seconds: float = Field(
        default=5.0, ge=0.0, description="How often a server checks the active text model (`models use`)"
    )
    embed_dim: int = 384
    encode_batch_size: int = 32
    max_text_chars: int = 20_000
    max_batch_items: int = 1_000
    # Characters per /encode request, all texts together: windows of long texts are encoded one after
    # another on the shared encoder, so 1000 texts of 20,000 characters meant minutes of CPU for one
    # request while every other caller of the encoder waited.
    max_encode_chars: int = Field(default=100_000, ge=1)
    max_body_bytes: int = 16 * 1024 * 1024
    pool_min_size: int = 1
    pool_max_size: int = 8
    load_demo: bool = Field(default=True, description="Load the bundled demo data on `serve` when empty")

    @property
    def models_dir(self) -> Path:
        return self.data_dir / "models"

    @property
    def pgdata_dir(self) -> Path:
        return self.data_dir / "pgdata"

    @property
    def media_dir(self) -> Path:
        return self.data_dir / "media"

    def ensure_dirs(self) -> None:
        for d in (self.data_dir, self.models_dir, self.media_dir):
            d.mkdir(parents=True, exist_ok=True)


def load_settings(**overrides: object) -> Settings:
    return Settings(**overrides)  # type: ignore[arg-type]
