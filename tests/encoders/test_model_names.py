"""Model names that would stand where the active-model pointer is written, or on the sentiment
models' folder, are refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hanseek.config import Settings
from hanseek.encoders.base import EncoderError
from hanseek.encoders.model_registry import active_pointer, check_name, write_active_pointer


@pytest.mark.parametrize(
    "name,holder",
    [
        ("active.json", "the active-model pointer"),
        ("active.tmp", "the active-model pointer"),
        ("Active.JSON", "the active-model pointer"),
        ("sentiment", "the sentiment models' folder"),
    ],
)
def test_names_other_things_hold_are_reserved(name: str, holder: str) -> None:
    with pytest.raises(EncoderError, match=f"the name of {holder}"):
        check_name(name)


def test_ordinary_names_pass() -> None:
    for name in ("e5-small", "active", "active.json2", "my.active.tmp"):
        assert check_name(name) == name


def test_the_pointer_is_written_beside_a_directory_named_like_the_old_temporary(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    write_active_pointer(settings, "e5-small")
    (settings.models_dir / "active.tmp").mkdir()  # an existing install's model of that name
    write_active_pointer(settings, "other")
    assert active_pointer(settings) == "other"
    assert sorted(p.name for p in settings.models_dir.iterdir()) == ["active.json", "active.tmp"]


def test_a_pointer_naming_a_reserved_name_is_ignored(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    settings.models_dir.mkdir(parents=True)
    (settings.models_dir / "active.json").write_text(json.dumps({"name": "active.tmp"}))
    assert active_pointer(settings) is None


def test_training_refuses_a_reserved_name(tiny_bert_dir: Path, tmp_path: Path) -> None:
    from hanseek.train.simcse import SimCSEConfig
    from hanseek.train.simcse_job import SimCSEJob, run_simcse

    job = SimCSEJob(name="active.tmp", base=str(tiny_bert_dir), config=SimCSEConfig(steps=1))
    with pytest.raises(EncoderError, match="the name of the active-model pointer"):
        run_simcse(Settings(data_dir=tmp_path), job)
