"""On-disk checkpoints of a training run, so a killed run resumes where it stopped.

A checkpoint holds everything the next step depends on: the trainable weights, the optimizer and
learning-rate schedule, the batch order and every random generator (dropout draws from torch's), the
losses and validation history, and the best weights so far. A resumed run therefore ends with the
same weights as one that was never interrupted. The file is written aside and renamed, so a kill
during the write leaves the previous checkpoint; the temporary such a kill leaves is removed by the
next run's start or save.

A checkpoint is only resumed by the run it belongs to: its fingerprint covers the configuration, the
base model and the training data. Anything else is refused rather than silently mixed.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hanseek.files import TEMP_SUFFIX, atomic_file, remove_dead_writers


class CheckpointMismatch(ValueError):
    """The checkpoint on disk belongs to another run (other data, settings or base model)."""


def fingerprint(config: dict[str, Any], base: str, items: Sequence[Any]) -> str:
    h = hashlib.sha256()
    h.update(json.dumps({"config": config, "base": base}, sort_keys=True, default=str).encode())
    for item in items:
        h.update(json.dumps(item, ensure_ascii=False).encode())
        h.update(b"\n")
    return h.hexdigest()


def remove_stale_temps(path: Path) -> list[Path]:
    """Delete the temporaries (`.NAME.pt.<random>.tmp`) that saves killed part-way (SIGKILL, power
    loss) left beside `path` and beside every other checkpoint of its kind in that folder (a run
    never resumed under its name would keep them for good); each holds a whole training state, up
    to GBs. Saves claim theirs, so a live writer's is left alone. Returns them."""
    pattern = re.compile(r"\..+" + re.escape(path.suffix) + TEMP_SUFFIX)
    return remove_dead_writers(path.parent, pattern, directories=False)


def save(path: Path, state: dict[str, Any]) -> None:
    import torch

    remove_stale_temps(path)
    with atomic_file(path, binary=True, fsync=True, claim=True) as fh:
        torch.save(state, fh)
    # Again after the write: a leftover too fresh to judge before it (a rerun straight after a kill)
    # is old enough now.
    remove_stale_temps(path)


def load(path: Path, expected: str) -> dict[str, Any] | None:
    """The checkpoint at `path` if there is one; CheckpointMismatch if it is another run's. Killed
    saves' temporaries in its folder are removed first (a run start), not only at the next save."""
    import torch

    remove_stale_temps(path)
    if not path.exists():
        return None
    try:
        # weights_only: tensors and plain containers only, so a planted file cannot run code.
        state: dict[str, Any] = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # any unreadable file is reported the same way
        raise CheckpointMismatch(f"checkpoint {path} cannot be read ({e}); pass --restart") from e
    if state.get("fingerprint") != expected:
        raise CheckpointMismatch(
            f"checkpoint {path} is from a run with other data or settings; "
            "run it again with the same options to resume it, or pass --restart to discard it"
        )
    return state
