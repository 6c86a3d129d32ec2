"""`hanseek serve`: the API and web pages on the embedded (or external) database."""

from __future__ import annotations

import os
import signal
import socket
from types import FrameType
from typing import Any

import typer
import uvicorn

WORKER_HEALTHCHECK_SECONDS = 120


class TcpConfig(uvicorn.Config):
    """uvicorn's config with a listening socket that says it is TCP.

    With --workers, uvicorn binds the socket itself with `proto` 0; accepted connections inherit it
    and asyncio then never sets TCP_NODELAY on them, so every keep-alive response waits for the
    client's delayed ACK (measured here: /healthz 0.9 ms with one process, 44 ms with two;
    uvicorn issue #3149)."""

    def bind_socket(self) -> socket.socket:
        sock = super().bind_socket()
        if sock.family in (socket.AF_INET, socket.AF_INET6) and sock.proto == 0:
            sock = socket.socket(sock.family, sock.type, socket.IPPROTO_TCP, fileno=sock.detach())
            sock.set_inheritable(True)
        return sock


def _absorb(signum: int, frame: FrameType | None) -> None:
    """The signal uvicorn re-raises after its graceful shutdown: already handled, nothing to do."""


def _run_workers(host: str, port: int, workers: int) -> None:
    from uvicorn.supervisors import Multiprocess

    config = TcpConfig(
        "hanseek.api.app:app_from_env",
        factory=True,
        workers=workers,
        host=host,
        port=port,
        log_level="warning",
        timeout_graceful_shutdown=10,
        # uvicorn kills a worker that misses a 5 s health ping; loading a large feed index holds the
        # interpreter for longer than that (measured: 1M posts).
        timeout_worker_healthcheck=WORKER_HEALTHCHECK_SECONDS,
    )
    Multiprocess(config, sockets=[config.bind_socket()]).run()


def _export_cli_overrides(s: Any, host: str | None, port: int | None) -> None:
    """Options given on the command line reach worker processes through the environment."""
    if host:
        os.environ["HANSEEK_HOST"] = s.host
    if port:
        os.environ["HANSEEK_PORT"] = str(s.port)
    # The demo, if any, was loaded here; workers must not load it again concurrently.
    os.environ["HANSEEK_LOAD_DEMO"] = "false"


def serve(
    host: str | None = typer.Option(None, help="Bind address (default HANSEEK_HOST or 127.0.0.1)"),
    port: int | None = typer.Option(None, help="Port (default HANSEEK_PORT or 8000)"),
    demo: bool | None = typer.Option(None, "--demo/--no-demo", help="Load the demo data when missing"),
    workers: int = typer.Option(
        1,
        min=1,
        max=64,
        help="Server processes. Each has its own pool, models and feed index; on 2 cores, 2 processes "
        "serve about twice the requests of one, at twice the memory",
    ),
) -> None:
    """Serve the API and the web pages until Ctrl-C (which stops the embedded database too)."""

    from hanseek.api.app import create_app
    from hanseek.api.logging import configure_logging, secrets_of
    from hanseek.api.state import AppState
    from hanseek.cli.common import console, open_db, settings

    s = settings()
    if host:
        s.host = host
    if port:
        s.port = port
    if demo is not None:
        s.load_demo = demo
    configure_logging(secrets=secrets_of(s))
    with open_db(s) as db:
        state = AppState(s, db)
        try:
            if s.load_demo:
                from hanseek.demo import load_all

                with console.status("loading demo data…"):
                    for feature, counts in load_all(state).items():
                        console.print(f"demo {feature}: " + ", ".join(f"{k}={v}" for k, v in counts.items()))
            console.print(
                f"hanseek serving on [bold]http://{s.host}:{s.port}[/]"
                + (f" with {workers} worker processes" if workers > 1 else "")
                + " (Ctrl-C to stop)"
            )
            # uvicorn drains in-flight requests on SIGTERM/SIGINT, then re-raises the signal once its own
            # handlers are gone: with the default handlers that killed the process before the `finally`
            # below could stop the embedded database. Absorb that re-raise so the shutdown completes.
            previous = {sig: signal.signal(sig, _absorb) for sig in (signal.SIGINT, signal.SIGTERM)}
            try:
                if workers > 1:
                    # Workers are fresh interpreters: they read the same HANSEEK_* environment and
                    # attach to the database this process keeps running (and stops at the end).
                    _export_cli_overrides(s, host, port)
                    _run_workers(s.host, s.port, workers)
                else:
                    # One process serves with the state built here (demo already loaded into it).
                    app = create_app(s, state=state)
                    uvicorn.run(
                        app, host=s.host, port=s.port, log_level="warning", timeout_graceful_shutdown=10
                    )
            finally:
                for sig, handler in previous.items():
                    signal.signal(sig, handler)
        finally:
            # open_db closes the pool and stops the embedded server; release models first.
            state.close_services()
    console.print("hanseek stopped.")
