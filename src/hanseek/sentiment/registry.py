"""Trained sentiment models on disk: ``<models_dir>/sentiment/NAME/`` with a ``card.json``.

A card says what a model is (kind, base model, config), what it was trained on (domains, sizes) and
how well it did on held-out data, so a model directory can be judged without loading it. The default
model is named in ``<models_dir>/sentiment/DEFAULT``.
"""

from __future__ import annotations

import json
import re
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
from pydantic import BaseModel, Field

from hanseek import __version__
from hanseek.config import Settings
from hanseek.encoders.model_store import atomic_model_dir, file_lock
from hanseek.files import atomic_file

CARD = "card.json"
_DEFAULT = "DEFAULT"
_DEFAULT_LOCK = ".DEFAULT.lock"  # taken inside a model's own lock, never the other way round
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")

ModelKind = Literal["baseline", "transformer"]


class SentimentModel(Protocol):
    kind: str

    def predict_proba(self, texts: list[str]) -> np.ndarray: ...

    def save(self, directory: Path) -> None: ...


class ModelCard(BaseModel):
    name: str
    kind: ModelKind
    domains: list[str]
    train_size: int
    dev_size: int = 0
    created: str = Field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    train_seconds: float = 0.0
    base_model: str | None = None
    config: dict[str, Any] = Field(default_factory=dict)
    metrics: dict[str, float] = Field(
        default_factory=dict, description="held-out accuracies, e.g. {'test/movie': 0.88, 'dev/movie': 0.88}"
    )
    info: dict[str, Any] = Field(default_factory=dict)
    labels: list[str] = Field(default_factory=lambda: ["negative", "positive"])
    hanseek_version: str = __version__


class ModelNotFound(LookupError):
    pass


class ModelLoadError(RuntimeError):
    """A model directory exists but cannot be loaded (damaged, or from an incompatible version)."""


def models_root(settings: Settings) -> Path:
    return settings.models_dir / "sentiment"


def check_name(name: str) -> str:
    if not _NAME.fullmatch(name):
        raise ValueError(f"invalid model name {name!r}: letters, digits, '.', '_', '-' (max 64)")
    return name


def model_dir(root: Path, name: str) -> Path:
    return root / check_name(name)


def read_card(directory: Path) -> ModelCard:
    """The card of the model in `directory`, named by the directory: a model copied or renamed
    (`cp -r s1 s1-old`) is `s1-old` everywhere, whatever its card.json was written with."""
    card = ModelCard.model_validate_json((directory / CARD).read_text(encoding="utf-8"))
    return card if card.name == directory.name else card.model_copy(update={"name": directory.name})


def list_cards(root: Path) -> list[ModelCard]:
    if not root.is_dir():
        return []
    cards = []
    for d in sorted(root.iterdir()):
        if d.is_dir() and not d.name.startswith(".") and (d / CARD).is_file():
            try:
                cards.append(read_card(d))
            except (OSError, ValueError):
                continue  # a half-written or foreign directory is not a model
    return cards


def save_model(root: Path, model: SentimentModel, card: ModelCard) -> Path:
    """Write the model into a temporary directory, then swap it in, so a reader never sees a
    half-written model (or none) and a failed save leaves the previous one in place. Savers of one
    name (server workers training the demo model at once) take turns."""
    target = model_dir(root, card.name)

    def write(tmp: Path) -> None:
        model.save(tmp)
        (tmp / CARD).write_text(card.model_dump_json(indent=2) + "\n", encoding="utf-8")

    return atomic_model_dir(target, write, replace=True, lock=root / f".{card.name}.lock")


def delete_model(root: Path, name: str) -> None:
    d = model_dir(root, name)
    # The saver's lock: a save of this name finishes before the delete, or starts after it.
    with file_lock(root / f".{name}.lock"):
        if not (d / CARD).is_file():
            raise ModelNotFound(f"no sentiment model named {name!r}")
        shutil.rmtree(d)
        # Read and cleared under the lock that DEFAULT's writers take. Read before the rmtree and
        # cleared after without it, a `set_default` of another model in between was undone.
        with file_lock(root / _DEFAULT_LOCK):
            if _default_file(root) == name:
                (root / _DEFAULT).unlink(missing_ok=True)


def _default_file(root: Path) -> str | None:
    """What DEFAULT says, whether or not that model exists."""
    try:
        return (root / _DEFAULT).read_text(encoding="utf-8").strip() or None
    except OSError:
        return None


def default_name(root: Path) -> str | None:
    name = _default_file(root)
    return name if name and _NAME.fullmatch(name) and (root / name / CARD).is_file() else None


def set_default(root: Path, name: str) -> None:
    d = model_dir(root, name)
    if not (d / CARD).is_file():  # checked before the lock too: no lock file for a name never saved
        raise ModelNotFound(f"no sentiment model named {name!r}")
    # delete_model's lock: without it a delete between the check and the write left DEFAULT naming
    # a deleted model, which a later, unrelated model saved under that name would then become.
    with file_lock(root / f".{name}.lock"):
        if not (d / CARD).is_file():
            raise ModelNotFound(f"no sentiment model named {name!r}")
        # A card that `list_cards` skips is no model to serve. Until session 18 it was accepted: then
        # every request naming no model was a 503 and /sentiment/models named a default not listed.
        try:
            read_card(d)
        except (OSError, ValueError) as e:
            raise ModelLoadError(
                f"sentiment model {name!r} has a {CARD} that cannot be read: retrain it or pick another"
            ) from e
        # One temporary per writer, with the mode an ordinary write gives (a server running as
        # another user reads it).
        with (
            file_lock(root / _DEFAULT_LOCK),
            atomic_file(root / _DEFAULT, prefix=f".{_DEFAULT}.", suffix="") as fh,
        ):
            fh.write(name + "\n")


def card_json(card: ModelCard) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(card.model_dump_json())
    return out
