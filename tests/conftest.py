"""Shared fixtures: each area keeps its fixtures in tests/fixtures/<area>.py."""

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("HANSEEK_SHARED_DATA", REPO.parent / "shared" / "data"))

pytest_plugins = ["tests.fixtures.store", "tests.fixtures.encoders", "tests.fixtures.api"]


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data sets not found at {SHARED_DATA}")
    return SHARED_DATA
