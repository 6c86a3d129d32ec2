"""Reliability fixtures: an API-key-protected app on its own scratch database, and real `hanseek serve`
processes with their own data dirs (for the kill / shutdown / log tests)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from bench._serve import ServeProcess
from fastapi.testclient import TestClient
from pydantic import SecretStr

from hanseek.api.app import create_app
from hanseek.api.state import AppState
from hanseek.config import Settings
from hanseek.store.db import Database
from tests.fixtures.api import contract_client

API_KEY = "rel-test-key-6f1d2c9a8b7e"


@pytest.fixture(scope="session")
def rel_state(
    store_tmp_root: Path, make_scratch_url: Callable[[], str], text_encoder: Any
) -> Iterator[AppState]:
    """An AppState with HANSEEK_API_KEY set, on a database of its own: these tests write hostile data
    through every endpoint, which must not leak into other areas' tests on the shared database.
    It uses the session's e5-small instead of loading a second copy."""
    data_dir = store_tmp_root / "reliability"
    data_dir.mkdir(exist_ok=True)
    settings = Settings(data_dir=data_dir, database_url=make_scratch_url(), api_key=SecretStr(API_KEY))
    settings.ensure_dirs()
    db = Database.open(settings)
    db.migrate()
    state = AppState(settings, db)
    state.service("text_encoder", lambda st: text_encoder)
    state.ready = True
    yield state
    state.close()


@pytest.fixture(scope="session")
def rel_app(rel_state: AppState) -> Any:
    return create_app(rel_state.settings, state=rel_state)


@pytest.fixture(scope="session")
def rel_client(rel_app: Any, rel_state: AppState) -> Iterator[TestClient]:
    """A client that does not send the key (tests add it where they mean to)."""
    with contract_client(rel_app, rel_state.settings) as c:
        yield c


@pytest.fixture(scope="session")
def authed_client(rel_app: Any, rel_state: AppState) -> Iterator[TestClient]:
    with contract_client(rel_app, rel_state.settings, headers={"X-API-Key": API_KEY}) as c:
        yield c


@pytest.fixture()
def serve_process(store_tmp_root: Path) -> Iterator[Callable[..., ServeProcess]]:
    """Factory for `hanseek serve` children (not started); every one is stopped at teardown."""
    made: list[ServeProcess] = []

    def make(
        data_dir: Path | None = None, env: dict[str, str] | None = None, args: tuple[str, ...] = ()
    ) -> ServeProcess:
        proc = ServeProcess(data_dir or store_tmp_root / f"serve-{uuid.uuid4().hex[:8]}", env=env, args=args)
        made.append(proc)
        return proc

    yield make
    for proc in made:
        proc.stop()
