"""Writing files: whole or not at all, with the permissions an ordinary write gives.

`tempfile.mkstemp` and `mkdtemp` create 0600/0700 entries, and a rename keeps them: a model, a media
file or a setting written that way cannot be read by a server running as another OS user. The mode
a plain `open()` would have given is 0666/0777 less the process umask.
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

_UMASK = re.compile(r"^Umask:\s*([0-7]+)$", re.MULTILINE)
# A temporary younger than this may belong to a writer between creating it and taking its flock.
CLAIM_GRACE_S = 5.0
# What mkstemp / mkdtemp add between a temporary's prefix and its ".tmp": 8 characters of their alphabet.
TEMP_SUFFIX = r"\.[a-z0-9_]{8}\.tmp"


def umask() -> int:
    """The process umask, read without changing it (`os.umask` can only be read by setting it,
    which would leave another thread creating files under the wrong mask meanwhile)."""
    try:
        found = _UMASK.search(Path("/proc/self/status").read_text())
    except OSError:
        found = None
    return int(found.group(1), 8) if found else 0o022


def shared_mode(directory: bool = False) -> int:
    return (0o777 if directory else 0o666) & ~umask()


@contextmanager
def atomic_file(
    path: Path,
    *,
    binary: bool = False,
    prefix: str | None = None,
    suffix: str = ".tmp",
    fsync: bool = False,
    claim: bool = False,
) -> Iterator[IO[Any]]:
    """A file to write `path` through: a temporary beside it (`prefix` + random + `suffix`; by default
    `.NAME.<random>.tmp`) that, when the block ends without an error, gets the mode an ordinary write
    gives and replaces `path` (after an fsync with `fsync`). A reader or a crash never sees half a
    file, an earlier version stays until the new one is complete, and an error removes the temporary.
    `claim`: hold an flock on the temporary until it is renamed, so that `remove_dead_writers` can
    tell one a killed writer left (large files nothing else would remove) from one being written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        prefix=f".{path.name}." if prefix is None else prefix, suffix=suffix, dir=path.parent
    )
    # A duplicate descriptor (same open file, same lock) outlives the file object closed below.
    held = os.dup(fd) if claim else None
    if held is not None:
        fcntl.flock(held, fcntl.LOCK_EX)
    try:
        with os.fdopen(fd, "wb" if binary else "w", encoding=None if binary else "utf-8") as fh:
            yield fh
            fh.flush()
            if fsync:
                os.fsync(fh.fileno())
            os.fchmod(fh.fileno(), shared_mode())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    finally:
        if held is not None:
            os.close(held)


def write_text_atomic(path: Path, text: str) -> None:
    """Write `text` (UTF-8) to `path` whole or not at all (`atomic_file`)."""
    with atomic_file(path) as fh:
        fh.write(text)


def left_by_dead_writer(path: Path, *, directory: bool = False) -> bool:
    """Whether a writer's temporary (a file, or a directory with `directory`) was left by a process
    that died: older than CLAIM_GRACE_S and no flock held on it, since the kernel drops a process's
    locks when it dies, even by SIGKILL. Gone already, a symlink, or not what its name says: no."""
    try:
        if time.time() - path.stat().st_mtime < CLAIM_GRACE_S:
            return False
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | (os.O_DIRECTORY if directory else 0))
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)  # also releases the lock just taken
    return True


def remove_dead_writers(folder: Path, name: re.Pattern[str], *, directories: bool) -> list[Path]:
    """Delete the directories (or files) in `folder` whose name fully matches `name` and that writers
    killed half-way left there (`left_by_dead_writer`): copies nothing else would ever remove.
    Returns them."""
    try:
        candidates = [p for p in folder.iterdir() if name.fullmatch(p.name)]
    except FileNotFoundError:
        return []
    removed = []
    for path in candidates:
        if left_by_dead_writer(path, directory=directories):
            if directories:
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
            removed.append(path)
    return removed
