"""Write model directories that transformers and sentence-transformers load as they are.

A saved text encoder is `config.json` + `model.safetensors` + tokenizer files, sentence-transformers
metadata (modules.json, mean pooling, normalise, prompts), a model card (README.md) and
`hanseek.json` (kind, base model, prompts, training facts and scores). Saving is atomic: everything
goes into a temporary sibling directory that is swapped into place. The sentiment registry saves its
model directories the same way.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

from hanseek.files import TEMP_SUFFIX, remove_dead_writers, shared_mode

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
        # NaN / Infinity (a validation score of a model trained before session 19) read as null:
        # PostgreSQL's jsonb refuses them, so such a card could not be registered or used.
        data = json.loads((model_dir / MARKER).read_text(encoding="utf-8"), parse_constant=lambda _: None)
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def publishable(root: Path) -> None:
    """mkdtemp (and some writers) create private 0700/0600 entries; models are plain shared data."""
    dir_mode, file_mode = shared_mode(directory=True), shared_mode()
    for p in [root, *root.rglob("*")]:
        p.chmod(dir_mode if p.is_dir() else file_mode)


@contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Exclusive lock on `path` (created if missing) across processes and threads (flock is held per
    open file). Writers of one model directory take turns under `.NAME.lock` beside it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def exchange_paths(a: Path, b: Path) -> bool:
    """Swap two paths atomically (Linux renameat2 RENAME_EXCHANGE); False where that is unavailable."""
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (22, 38, 95):  # EINVAL, ENOSYS, EOPNOTSUPP: this file system or kernel cannot
        return False
    if err == errno.ENOENT and os.path.lexists(a) and not os.path.lexists(b):
        return False  # `b` was removed meanwhile: nothing to exchange with, a plain rename installs `a`
    raise OSError(err, os.strerror(err), str(b))


def atomic_model_dir(
    dest: Path, write: Callable[[Path], object], *, replace: bool = False, lock: Path | None = None
) -> Path:
    """Run `write(tmp)` on a fresh sibling directory, then swap it in as `dest`: readers see the old
    directory or the new one, never none (where the file system cannot exchange two paths, the old
    one is renamed away first). Concurrent writers of one `dest` take turns: under their own
    `file_lock`, or under `lock`, which is held for the swap only (a failed write leaves nothing).
    Temp directories of writers that were killed (SIGKILL, power loss) are removed first."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.exists() and not replace:
        raise FileExistsError(f"{dest} already exists")
    remove_stale_temps(dest)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent))
    try:
        with _writer_claim(tmp):
            write(tmp)
            publishable(tmp)
            with file_lock(lock) if lock is not None else nullcontext():
                _swap_in(tmp, dest, replace=replace)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    # Again after the write: a leftover too fresh to judge at the start (a rerun straight after a
    # kill) is old enough now.
    remove_stale_temps(dest)
    return dest


@contextmanager
def _writer_claim(tmp: Path) -> Iterator[None]:
    """Hold an flock on the temp directory while writing it: the kernel drops it when the writer
    dies (even by SIGKILL), which is how `remove_stale_temps` tells a dead writer's leftover from a
    live writer's work. Callers' own locks cannot tell: some cover only the swap (sentiment) or
    nothing at all (training saves), so concurrent writers of one name are allowed."""
    fd = os.open(tmp, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def remove_stale_temps(dest: Path) -> list[Path]:
    """Delete temp directories that killed writers of `dest` left beside it (`.NAME.<8 chars>.tmp`);
    a model's copy is 0.5-1 GB and nothing else would ever remove it. Returns what was removed."""
    return remove_dead_writers(
        dest.parent, re.compile(re.escape(f".{dest.name}") + TEMP_SUFFIX), directories=True
    )


def _swap_in(tmp: Path, dest: Path, *, replace: bool) -> None:
    if not replace:
        # Another writer may have created `dest` since the check above: a directory rename never
        # lands on a non-empty directory, so this cannot overwrite its model.
        try:
            tmp.rename(dest)
        except OSError as exc:
            if exc.errno in (errno.EEXIST, errno.ENOTEMPTY):
                raise FileExistsError(f"{dest} already exists") from exc
            raise
        return
    if dest.exists() and exchange_paths(tmp, dest):
        shutil.rmtree(tmp, ignore_errors=True)  # now holds the previous directory
        return
    if dest.exists():
        old = dest.with_name(f".{dest.name}.old-{os.getpid()}")
        dest.rename(old)
        shutil.rmtree(old, ignore_errors=True)
    tmp.rename(dest)


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

    from hanseek.encoders.transformer import quiet_load

    def write(tmp: Path) -> None:
        with quiet_load(True):  # local files: no "Writing model shards" bar in the CLI's output
            net.save_pretrained(str(tmp), safe_serialization=True)
        tokenizer.save_pretrained(str(tmp))
        sentence_transformers_files(tmp, int(net.config.hidden_size), max_length, prompts)
        (tmp / "README.md").write_text(card, encoding="utf-8")
        write_json(tmp / MARKER, {**marker, "prompts": prompts})

    return atomic_model_dir(dest, write, replace=replace)
