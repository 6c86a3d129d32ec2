"""What a model directory says about how to use it: prompts (query/passage prefixes), max length."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

E5_PROMPTS = {"query": "query: ", "passage": "passage: "}


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def read_prompts(model_dir: Path) -> dict[str, str] | None:
    """Prompts recorded in the directory: hanseek.json, else sentence-transformers' config; None if
    the directory says nothing (an empty dict means "explicitly no prompts")."""
    for name in ("hanseek.json", "config_sentence_transformers.json"):
        prompts = _read_json(model_dir / name).get("prompts")
        if isinstance(prompts, dict):
            return {k: v for k, v in prompts.items() if k in ("query", "passage") and isinstance(v, str)}
    return None


def looks_like_e5(name: str) -> bool:
    base = name.rstrip("/").rsplit("/", 1)[-1].lower()
    return base.startswith("e5") or "-e5-" in f"-{base}" or base.startswith("multilingual-e5")


def resolve_prompts(
    model: str | Path, model_dir: Path | None, prompts: dict[str, str] | str | None
) -> dict[str, str]:
    """`prompts`: a dict (used as is), "none", or None/"auto" (directory metadata, else e5 by name)."""
    if isinstance(prompts, dict):
        return dict(prompts)
    if prompts == "none":
        return {}
    if model_dir is not None:
        found = read_prompts(model_dir)
        if found is not None:
            return found
    return dict(E5_PROMPTS) if looks_like_e5(str(model)) else {}


def max_seq_length(model_dir: Path | None) -> int | None:
    if model_dir is None:
        return None
    value = _read_json(model_dir / "sentence_bert_config.json").get("max_seq_length")
    return int(value) if isinstance(value, int) and value > 0 else None
