"""`hanseek serve`: the API and web pages on the embedded (or external) database."""

from __future__ import annotations

import os
import signal
import socket
from types import FrameType
from typing import Any

import typer
import uvicorn
from uvicorn.supervisors import Multiprocess

WORKER_HEALTHCHECK_SECONDS = 120


class TcpConfig(uvicorn.Config):
    """uvicorn's config, binding one TCP listener per worker process in an SO_REUSEPORT group.

    Why not uvicorn's one socket shared by the workers: asyncio accepts every pending connection in
    one go (up to `backlog`), so keep-alive connections opened together all land on whichever worker
    woke first. Measured on the 1M-post feed benchmark (2 workers, wrk with 16 connections): 151-168
    requests/s when one worker held them all, 302-401 when they were spread. With SO_REUSEPORT the
    kernel spreads connections over the workers' sockets by a hash of the addresses.

    The socket is also created with `proto` IPPROTO_TCP: uvicorn binds with `proto` 0, accepted
    connections inherit it and asyncio then never sets TCP_NODELAY on them, so every keep-alive
    response waits for the client's delayed ACK (measured: /healthz 0.9 ms with one process, 44 ms
    with two; uvicorn issue #3149)."""

    def bind_socket(self) -> socket.socket:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind((self.host, self.port))
        except OSError:
            sock.close()
            raise
        if self.port == 0:  # the next workers join the port the first one was given
            self.port = sock.getsockname()[1]
        sock.set_inheritable(True)
        return sock


class ReusePortMultiprocess(Multiprocess):
    """uvicorn's worker supervisor, giving every worker it starts (at start-up, on SIGHUP, in place
    of a dead one) a listener of its own from `TcpConfig.bind_socket`."""

    @property
    def sockets(self) -> list[socket.socket]:
        return [self.config.bind_socket()]

    @sockets.setter
    def sockets(self, value: list[socket.socket]) -> None:
        if value:
            raise ValueError("each worker binds its own socket: pass sockets=[]")


def check_port_free(host: str, port: int) -> None:
    """Fail when something already listens on the port: a second hanseek started with SO_REUSEPORT
    would otherwise silently share the port (and its traffic) with the first."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT leftovers are fine
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise OSError(exc.errno, f"cannot listen on {host}:{port}: {exc.strerror}") from exc


def _absorb(signum: int, frame: FrameType | None) -> None:
    """The signal uvicorn re-raises after its graceful shutdown: already handled, nothing to do."""


def _run_workers(host: str, port: int, workers: int) -> None:
    config = TcpConfig(
        "hanseek.api.app:app_from_env",
        factory=True,
        workers=workers,
        host=host,
        port=port,
        log_level="warning",
        log_config=None,  # its loggers go through hanseek's JSON handler (api.logging)
        timeout_graceful_shutdown=10,
        # uvicorn kills a worker that misses a 5 s health ping; loading a large feed index holds the
        # interpreter for longer than that (measured: 1M posts).
        timeout_worker_healthcheck=WORKER_HEALTHCHECK_SECONDS,
    )
    ReusePortMultiprocess(config, sockets=[]).run()


def _export_cli_overrides(s: Any, host: str | None, port: int | None) -> None:
    """Options given on the command line reach worker processes through the environment."""
    if host:
        os.environ["HANSEEK_HOST"] = s.host
    if port:
        os.environ["HANSEEK_PORT"] = str(s.port)
    # The demo, if any, was loaded here; workers must not load it again concurrently.
    os.environ["HANSEEK_LOAD_DEMO"] = "false"


def _check_feature_settings(s: Any) -> None:
    """What the services read on their first request, checked before listening: until session 19 a
    bad HANSEEK_FEED_* or HANSEEK_IMAGE_* value let the server report ready and then answer every
    feed or image request with a 500. A settings error reaches `cli.main` as one line."""
    from hanseek.cli.common import err_console
    from hanseek.feed.settings import load_feed_settings
    from hanseek.images.config import ImageSettings

    load_feed_settings()
    ImageSettings()
    if s.protect_reads and (s.api_key is None or not s.api_key.get_secret_value()):
        # Protecting reads without a key protects nothing: almost certainly a deployment mistake.
        err_console.print(
            "[red]error:[/red] HANSEEK_PROTECT_READS is on but HANSEEK_API_KEY is not set: set a key, "
            "or turn HANSEEK_PROTECT_READS off"
        )
        raise typer.Exit(1)


def serve(
    host: str | None = typer.Option(None, help="Bind address (default HANSEEK_HOST or 127.0.0.1)"),
    port: int | None = typer.Option(None, min=1, max=65535, help="Port (default HANSEEK_PORT or 8000)"),
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
    from hanseek.cli.common import console, err_console, open_db, settings

    s = settings()
    if host:
        s.host = host
    if port:
        s.port = port
    if demo is not None:
        s.load_demo = demo
    _check_feature_settings(s)
    configure_logging(secrets=secrets_of(s))
    try:
        check_port_free(s.host, s.port)
    except OSError as exc:
        err_console.print(f"[red]error:[/red] {exc.strerror} (another server? choose a port with --port)")
        raise typer.Exit(1) from None
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
                        app,
                        host=s.host,
                        port=s.port,
                        log_level="warning",
                        log_config=None,  # its loggers go through hanseek's JSON handler (api.logging)
                        timeout_graceful_shutdown=10,
                    )
            finally:
                for sig, handler in previous.items():
                    signal.signal(sig, handler)
        finally:
            # open_db closes the pool and stops the embedded server; release models first.
            state.close_services()
    console.print("hanseek stopped.")
