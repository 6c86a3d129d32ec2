"""Shared fixtures: each area keeps its fixtures in tests/fixtures/<area>.py."""

import logging
import os
from collections.abc import Iterator
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


@pytest.fixture(autouse=True)
def _logging_config_restored() -> Iterator[None]:
    """A test that runs `hanseek serve` through CliRunner configures logging with a handler on that
    runner's stderr, which is closed once it returns: later log records then printed "--- Logging
    error ---" with a traceback into other tests' CLI output. Each test gets the loggers back as it
    found them."""
    names = ("hanseek", "uvicorn", "uvicorn.access", "transformers")
    saved = {
        n: (list(logging.getLogger(n).handlers), logging.getLogger(n).level, logging.getLogger(n).propagate)
        for n in names
    }
    yield
    for name, (handlers, level, propagate) in saved.items():
        logger = logging.getLogger(name)
        logger.handlers[:] = handlers
        logger.setLevel(level)
        logger.propagate = propagate
