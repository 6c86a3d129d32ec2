"""A real `hanseek serve` in a child process on loopback, for the reliability tests and the load bench.

The child is the installed console script, so what is exercised is exactly what an operator runs:
settings from HANSEEK_* variables, the embedded PostgreSQL under the data dir, uvicorn's signal
handling. Its stdout and stderr go to one log file that tests search (secrets must never appear).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from urllib.parse import quote

import httpx

HANSEEK = Path(sys.executable).with_name("hanseek")
REPO = Path(__file__).resolve().parents[1]


def text_model() -> str:
    """HANSEEK_TEXT_MODEL if set; else the checkout's converted e5-small (what `make test` prepares),
    so a fresh data dir does not convert its own copy; else the bundled name."""
    explicit = os.environ.get("HANSEEK_TEXT_MODEL")
    if explicit:
        return explicit
    cached = Path(os.environ.get("HANSEEK_TEST_MODELS_DIR", REPO / "data" / "models")) / "e5-small"
    return str(cached) if (cached / "config.json").is_file() else "e5-small"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServeProcess:
    """`hanseek serve --no-demo` on 127.0.0.1 with its own data dir (and any extra HANSEEK_* env)."""

    def __init__(
        self,
        data_dir: Path,
        *,
        env: dict[str, str] | None = None,
        port: int | None = None,
        args: Sequence[str] = (),
    ) -> None:
        self.data_dir = data_dir
        self.args = list(args)  # extra `hanseek serve` options, e.g. ["--workers", "2"]
        self.port = port or free_port()
        self.extra_env = dict(env or {})
        self.log_path = data_dir.parent / f"{data_dir.name}.serve.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pgdata(self) -> Path:
        return self.data_dir / "pgdata"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def db_url(self) -> str:
        """The embedded server's connection URL (its unix socket), from the data dir's postmaster.pid."""
        lines = (self.pgdata / "postmaster.pid").read_text().splitlines()
        port, socket_dir = lines[3].strip(), lines[4].strip()
        return f"postgresql://postgres@/hanseek?host={quote(socket_dir, safe='/')}&port={port}"

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("HANSEEK_")}
        env.update(
            HANSEEK_DATA_DIR=str(self.data_dir),
            HANSEEK_HOST="127.0.0.1",
            HANSEEK_PORT=str(self.port),
            HANSEEK_LOAD_DEMO="false",
            HANSEEK_TEXT_MODEL=text_model(),
        )
        env.update(self.extra_env)
        return env

    def start(self, timeout: float = 180.0) -> ServeProcess:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")  # noqa: SIM115 - the child owns it until it exits
        try:
            self.proc = subprocess.Popen(
                [str(HANSEEK), "serve", "--no-demo", *self.args],
                env=self.env(),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # a Ctrl-C meant for pytest does not reach it
            )
        finally:
            log.close()
        deadline = time.monotonic() + timeout
        with httpx.Client(timeout=5.0) as client:
            while True:
                if self.proc.poll() is not None:
                    code = self.proc.returncode
                    raise RuntimeError(f"hanseek serve exited with {code}:\n{self.log_tail()}")
                with contextlib.suppress(httpx.HTTPError):
                    if client.get(f"{self.base_url}/readyz").status_code == 200:
                        return self
                if time.monotonic() > deadline:
                    self.kill()
                    raise RuntimeError(f"hanseek serve not ready after {timeout:.0f}s:\n{self.log_tail()}")
                time.sleep(0.2)

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, chars: int = 4000) -> str:
        return self.log_text()[-chars:]

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL the hanseek process (not the database server it started)."""
        if self.alive():
            assert self.proc is not None
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)

    def terminate(self, timeout: float = 60.0) -> int:
        """SIGTERM (what systemd, docker and Ctrl-C-like stops send); the exit code."""
        assert self.proc is not None
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout)

    def stop(self) -> None:
        """Whatever state it is in: end the process, then make sure its database server is gone."""
        if self.alive():
            try:
                self.terminate(timeout=60)
            except subprocess.TimeoutExpired:
                self.kill()
        from hanseek.store.server import running_pid, stop_server

        if self.pgdata.exists() and running_pid(self.pgdata) is not None:
            with contextlib.suppress(Exception):
                stop_server(self.pgdata, immediate=True)

    def __enter__(self) -> ServeProcess:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
