"""Settings from HANSEEK_* environment variables (pydantic-settings).

One `Settings` object is built at start-up (CLI command or app lifespan) and passed down; nothing
reads the environment after that, so tests can build their own settings without touching globals.
"""

from __future__ import annotations

import ipaddress
import json
import re
from pathlib import Path
from typing import Annotated, Any, Literal, Self

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from pydantic_settings.exceptions import SettingsError

# The most items one request body may list, whatever HANSEEK_MAX_BATCH_ITEMS says: request models
# declare it, so pydantic refuses a longer list before checking its items. A 2 MB body of a million
# bad items took 17 s of the event loop (every request waited) and answered 94 MB of errors.
MAX_BATCH_ITEMS_CAP = 10_000


def _default_data_dir() -> Path:
    # The repository's ./data when run from a checkout (git-ignored), else the user's home.
    return Path.cwd() / "data"


class Settings(BaseSettings):
    # An empty variable (`HANSEEK_HOST=` in a compose file) means unset: until session 19 an empty
    # host listened on every interface and an empty data dir put the database in the working dir.
    model_config = SettingsConfigDict(
        env_prefix="HANSEEK_", env_file=None, extra="ignore", env_ignore_empty=True
    )

    data_dir: Path = Field(default_factory=_default_data_dir, description="Where generated files live")
    database_url: str | None = Field(
        default=None, description="External PostgreSQL (with pgvector); unset = embedded server"
    )
    host: str = Field(default="127.0.0.1", min_length=1)
    port: int = Field(default=8000, ge=1, le=65535)
    # NoDecode: written comma-separated, as host lists usually are; a JSON list is read too.
    allowed_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Host names the service answers to besides localhost and IP addresses "
        "('*' any, '*.example.com' its subdomains); unset: none when bound to loopback, any otherwise",
    )
    api_key: SecretStr | None = Field(default=None, description="Required on write endpoints when set")
    protect_reads: bool = Field(default=False, description="Also require the API key on read endpoints")

    text_model: str = Field(
        default="e5-small", description="'e5-small' (bundled), a registered model name, a path or hub id"
    )
    text_backend: Literal["torch", "onnx", "onnx-int8"] = Field(
        default="torch", description="torch | onnx | onnx-int8"
    )
    model_poll_seconds: float = Field(
        default=5.0, ge=0.0, description="How often a server checks the active text model (`models use`)"
    )
    # Must equal the posts' vector column (384 as the migrations create it); checked when the feed
    # service opens the database.
    embed_dim: int = Field(default=384, ge=1)
    encode_batch_size: int = Field(default=32, ge=1)
    max_text_chars: int = Field(default=20_000, ge=1)
    max_batch_items: int = Field(default=1_000, ge=1, le=MAX_BATCH_ITEMS_CAP)
    # Characters per /encode request, all texts together: windows of long texts are encoded one after
    # another on the shared encoder, so 1000 texts of 20,000 characters meant minutes of CPU for one
    # request while every other caller of the encoder waited.
    max_encode_chars: int = Field(default=100_000, ge=1)
    max_body_bytes: int = Field(default=16 * 1024 * 1024, ge=1)
    pool_min_size: int = Field(default=1, ge=0)
    pool_max_size: int = Field(default=8, ge=1)
    load_demo: bool = Field(default=True, description="Load the bundled demo data on `serve` when empty")

    @field_validator("allowed_hosts", mode="before")
    @classmethod
    def _split_hosts(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = _json_list(value.strip())
        if isinstance(value, list):
            value = [v.strip().lower() if isinstance(v, str) else v for v in value]
            value = [v for v in value if v != ""]
        return value

    @field_validator("allowed_hosts")
    @classmethod
    def _check_hosts(cls, value: list[str]) -> list[str]:
        for entry in value:
            if entry != "*" and not _HOST_NAME.fullmatch(entry.removeprefix("*.")) and not is_ip(entry):
                raise ValueError(
                    f"{entry!r} is not a host name: write names only, without scheme, port or path "
                    "(feed.example.com, *.example.com or *), separated by commas"
                )
        return value

    @model_validator(mode="after")
    def _pool_sizes(self) -> Self:
        if self.pool_max_size < self.pool_min_size:
            raise ValueError(
                f"HANSEEK_POOL_MAX_SIZE ({self.pool_max_size}) is below HANSEEK_POOL_MIN_SIZE "
                f"({self.pool_min_size})"
            )
        return self

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


def _json_list(text: str) -> Any:
    if text.startswith("["):
        try:
            return json.loads(text)
        except ValueError:
            pass  # '[::1], …': an IPv6 address first
    return text.split(",")


# Letters, digits, '-' and '_' (container names), dot-separated labels.
_HOST_NAME = re.compile(r"[a-z0-9_](?:[a-z0-9_-]{0,62})(?:\.[a-z0-9_](?:[a-z0-9_-]{0,62}))*\.?")


def _address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The IPv4 or IPv6 address `host` writes (brackets allowed around the latter), else None."""
    try:
        return ipaddress.ip_address(host.removeprefix("[").removesuffix("]"))
    except ValueError:
        return None


def is_ip(host: str) -> bool:
    return _address(host) is not None


def is_loopback(host: str) -> bool:
    """Whether a bind address or host name is this machine only: localhost, 127.0.0.0/8 or ::1."""
    if host == "localhost" or host.endswith(".localhost"):
        return True
    address = _address(host)
    return address is not None and address.is_loopback


def load_settings(**overrides: object) -> Settings:
    return Settings(**overrides)  # type: ignore[arg-type]


# Settings classes by the title pydantic gives their errors, with their variables' prefix.
_PREFIXES = {"Settings": "HANSEEK_", "FeedSettings": "HANSEEK_FEED_", "ImageSettings": "HANSEEK_IMAGE_"}


def is_settings_error(exc: BaseException) -> bool:
    """A bad HANSEEK_* variable: a failed check of a settings class, or a value pydantic-settings
    could not parse (a list that is not JSON)."""
    return isinstance(exc, SettingsError) or (isinstance(exc, ValidationError) and exc.title in _PREFIXES)


def settings_error_message(exc: ValidationError | SettingsError) -> str:
    """One line naming each bad variable, what is wrong and the value given."""
    if isinstance(exc, SettingsError):
        found = re.search(r'field "(\w+)"', str(exc))
        name = found.group(1) if found else None
        prefix = next(
            (p for title, p in _PREFIXES.items() if name in _settings_class(title).model_fields), "HANSEEK_"
        )
        var = f"{prefix}{name.upper()}" if name else "a HANSEEK_ variable"
        return f'invalid setting: {var} cannot be parsed (a list is written in JSON, e.g. ["title", "body"])'
    prefix = _PREFIXES.get(exc.title, "HANSEEK_")
    parts = []
    for err in exc.errors(include_url=False):
        msg = str(err["msg"]).removeprefix("Value error, ")
        if err["loc"]:
            var = prefix + "_".join(str(x) for x in err["loc"][:1]).upper()
            parts.append(f"{var}: {msg} (got {err['input']!r})")
        else:
            parts.append(msg)
    return "invalid setting: " + "; ".join(parts)


def _settings_class(title: str) -> type[BaseSettings]:
    if title == "FeedSettings":
        from hanseek.feed.settings import FeedSettings

        return FeedSettings
    if title == "ImageSettings":
        from hanseek.images.config import ImageSettings

        return ImageSettings
    return Settings
