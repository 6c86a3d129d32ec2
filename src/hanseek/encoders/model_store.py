"""Write model directories that transformers and sentence-transformers load as they are.

A saved text encoder is `config.json` + `model.safetensors` + tokenizer files, sentence-transformers
metadata (modules.json, mean pooling, normalise, prompts), a model card (README.md) and
`hanseek.json` (kind, base model, prompts, training facts and scores). Saving is atomic: everything
goes into a temporary sibling directory that is renamed into place.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

MARKER = "hanseek.json"
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"


def write_json(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")


def sentence_transformers_files(dest: Path, dim: int, max_len: int, prompts: dict[str, str]) -> None:
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
    ]
    write_json(dest / "modules.json", modules)
    write_json(dest / "sentence_bert_config.json", {"max_seq_length": max_len, "do_lower_case": False})
    write_json(
        dest / "1_Pooling" / "config.json",
        {
            "word_embedding_dimension": dim,
            "pooling_mode_cls_token": False,
            "pooling_mode_mean_tokens": True,
            "pooling_mode_max_tokens": False,
            "pooling_mode_mean_sqrt_len_tokens": False,
            "pooling_mode_weightedmean_tokens": False,
            "pooling_mode_lasttoken": False,
            "include_prompt": True,
        },
    )
    (dest / "2_Normalize").mkdir(exist_ok=True)
    write_json(
        dest / "config_sentence_transformers.json",
        {"prompts": prompts, "default_prompt_name": None, "similarity_fn_name": "cosine"},
    )


def read_marker(model_dir: Path) -> dict[str, Any]:
    try:
        data = json.loads((model_dir / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def publishable(root: Path) -> None:
    """mkdtemp (and some writers) create private 0700/0600 entries; models are plain shared data."""
    umask = os.umask(0)
    os.umask(umask)
    for p in [root, *root.rglob("*")]:
        p.chmod((0o777 if p.is_dir() else 0o666) & ~umask)


def atomic_model_dir(dest: Path, write: Callable[[Path], None], *, replace: bool = False) -> Path:
    """Run `write(tmp)` on a fresh sibling directory, then rename it to `dest`."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.exists() and not replace:
        raise FileExistsError(f"{dest} already exists")
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent))
    try:
        write(tmp)
        publishable(tmp)
        if dest.exists():
            old = dest.with_name(f".{dest.name}.old-{os.getpid()}")
            dest.rename(old)
            shutil.rmtree(old, ignore_errors=True)
        tmp.rename(dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dest


def save_text_encoder(
    net: Any,
    tokenizer: Any,
    dest: Path,
    *,
    prompts: dict[str, str],
    max_length: int,
    marker: dict[str, Any],
    card: str,
    replace: bool = False,
) -> Path:
    """Save a trained transformers encoder as a complete, self-describing model directory."""

    def write(tmp: Path) -> None:
        net.save_pretrained(str(tmp), safe_serialization=True)
        tokenizer.save_pretrained(str(tmp))
        sentence_transformers_files(tmp, int(net.config.hidden_size), max_length, prompts)
        (tmp / "README.md").write_text(card, encoding="utf-8")
        write_json(tmp / MARKER, {**marker, "prompts": prompts})

    return atomic_model_dir(dest, write, replace=replace)
