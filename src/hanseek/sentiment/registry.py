"""Trained sentiment models on disk: ``<models_dir>/sentiment/NAME/`` with a ``card.json``.

A card says what a model is (kind, base model, config), what it was trained on (domains, sizes) and
how well it did on held-out data, so a model directory can be judged without loading it. The default
model is named in ``<models_dir>/sentiment/DEFAULT``.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
from pydantic import BaseModel, Field

from hanseek import __version__
from hanseek.config import Settings

CARD = "card.json"
_DEFAULT = "DEFAULT"
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
    if not _NAME.match(name):
        raise ValueError(f"invalid model name {name!r}: letters, digits, '.', '_', '-' (max 64)")
    return name


def model_dir(root: Path, name: str) -> Path:
    return root / check_name(name)


def read_card(directory: Path) -> ModelCard:
    return ModelCard.model_validate_json((directory / CARD).read_text(encoding="utf-8"))


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
    half-written model and a failed save leaves the previous one in place."""
    target = model_dir(root, card.name)
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{card.name}.", dir=root))
    try:
        model.save(tmp)
        (tmp / CARD).write_text(card.model_dump_json(indent=2) + "\n", encoding="utf-8")
        # One saver of a name at a time (server workers training the demo model at once, two
        # trainings under one name), and an exchange, so the name never points at nothing.
        with _locked(root, card.name):
            if target.exists() and _exchange(tmp, target):
                shutil.rmtree(tmp, ignore_errors=True)  # now holds the previous model
            elif target.exists():  # no atomic exchange here: a moment without the model
                old = Path(tempfile.mkdtemp(prefix=f".{card.name}.old.", dir=root))
                old.rmdir()
                target.rename(old)
                tmp.rename(target)
                shutil.rmtree(old, ignore_errors=True)
            else:
                tmp.rename(target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


@contextlib.contextmanager
def _locked(root: Path, name: str) -> Iterator[None]:
    with open(root / f".{name}.lock", "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically (Linux renameat2 RENAME_EXCHANGE); False where that is unavailable."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (22, 38, 95):  # EINVAL, ENOSYS, EOPNOTSUPP: this file system or kernel cannot
        return False
    raise OSError(err, os.strerror(err), str(b))


def delete_model(root: Path, name: str) -> None:
    d = model_dir(root, name)
    if not (d / CARD).is_file():
        raise ModelNotFound(f"no sentiment model named {name!r}")
    was_default = default_name(root) == name  # read first: without its card it is no default
    shutil.rmtree(d)
    if was_default:
        (root / _DEFAULT).unlink(missing_ok=True)


def default_name(root: Path) -> str | None:
    try:
        name = (root / _DEFAULT).read_text(encoding="utf-8").strip()
    except OSError:
        return None
    return name if name and _NAME.match(name) and (root / name / CARD).is_file() else None


def set_default(root: Path, name: str) -> None:
    if not (model_dir(root, name) / CARD).is_file():
        raise ModelNotFound(f"no sentiment model named {name!r}")
    root.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{_DEFAULT}.", dir=root)  # one per writer
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(name + "\n")
    os.replace(tmp, root / _DEFAULT)


def card_json(card: ModelCard) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(card.model_dump_json())
    return out
