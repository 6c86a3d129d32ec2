"""`hanseek serve --workers N`: several server processes on one port, one embedded database."""

from __future__ import annotations

import signal
import socket
import time
from collections.abc import Callable

import httpx
import pytest
from bench._serve import ServeProcess

from hanseek.cli.serve import TcpConfig
from hanseek.store.server import running_pid


@pytest.mark.slow
def test_two_workers_share_the_port_and_the_database(serve_process: Callable[..., ServeProcess]) -> None:
    srv = serve_process(args=("--workers", "2")).start()
    pids: set[int] = set()
    with httpx.Client(base_url=srv.base_url, timeout=30) as client:
        # A write through one worker is visible through every worker: one database behind them.
        r = client.put("/users/w-user/memberships", json={"communities": ["c1"]})
        assert r.status_code == 200, r.text
        deadline = time.monotonic() + 60
        while len(pids) < 2 and time.monotonic() < deadline:
            with httpx.Client(base_url=srv.base_url, timeout=30) as fresh:  # new connection, any worker
                status = fresh.get("/feeds-index").json()
                pids.add(int(status["pid"]))
                assert fresh.get("/users/w-user").json()["communities"] == ["c1"]
    assert len(pids) == 2 and srv.pid not in pids
    assert running_pid(srv.pgdata) is not None

    assert srv.proc is not None
    srv.proc.send_signal(signal.SIGINT)
    assert srv.proc.wait(timeout=90) == 0
    assert "hanseek stopped." in srv.log_text()
    assert running_pid(srv.pgdata) is None  # the database stops with the last process


def test_worker_listener_is_tcp_so_connections_get_nodelay() -> None:
    # asyncio sets TCP_NODELAY only on accepted sockets whose proto is IPPROTO_TCP; they inherit it
    # from the listener (uvicorn issue #3149: 44 ms per keep-alive request with --workers).
    config = TcpConfig("hanseek.api.app:app_from_env", factory=True, host="127.0.0.1", port=0, workers=2)
    sock = config.bind_socket()
    try:
        assert sock.proto == socket.IPPROTO_TCP and sock.get_inheritable()
        sock.listen()
        with socket.create_connection(sock.getsockname()[:2]):
            conn, _ = sock.accept()
            with conn:
                assert conn.proto == socket.IPPROTO_TCP
    finally:
        sock.close()
