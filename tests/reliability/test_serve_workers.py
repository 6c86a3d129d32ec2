"""`hanseek serve --workers N`: several server processes on one port, one embedded database."""

from __future__ import annotations

import json
import os
import signal
import socket
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from bench._serve import ServeProcess

from hanseek.cli.serve import ReusePortMultiprocess, TcpConfig, check_port_free
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
    # Each worker listens on a socket of its own in the port's SO_REUSEPORT group, so the kernel
    # spreads connections over them (uvicorn's one shared listener handed all the keep-alive
    # connections opened together to whichever worker woke first). Checked on the sockets
    # themselves: how the kernel's hash spreads a handful of test connections is the kernel's
    # business, and an earlier assertion on it failed once in CI (15 of 16 on one worker).
    listening = _listening_on(srv.port)
    listeners = {pid: _sockets_held(pid) & listening for pid in pids}
    assert all(len(inodes) == 1 for inodes in listeners.values()), listeners
    assert len(set().union(*listeners.values())) == len(pids), listeners
    assert _sockets_held(srv.pid) & listening == set()  # the supervisor accepts nothing itself
    conns = [socket.create_connection(("127.0.0.1", srv.port)) for _ in range(16)]
    try:
        for c in conns:
            c.sendall(b"GET /feeds-index HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        answered = {int(json.loads(_read_response(c))["pid"]) for c in conns}
    finally:
        for c in conns:
            c.close()
    assert answered <= pids, answered
    assert running_pid(srv.pgdata) is not None

    assert srv.proc is not None
    srv.proc.send_signal(signal.SIGINT)
    assert srv.proc.wait(timeout=90) == 0
    assert "hanseek stopped." in srv.log_text()
    assert running_pid(srv.pgdata) is None  # the database stops with the last process


def _sockets_held(pid: int) -> set[int]:
    """The inodes of the sockets process `pid` holds open."""
    held: set[int] = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:  # closed since the listing
            continue
        if target.startswith("socket:["):
            held.add(int(target[len("socket:[") : -1]))
    return held


def _listening_on(port: int) -> set[int]:
    """The inodes of the TCP sockets in LISTEN state on `port`."""
    listening: set[int] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        if not Path(table).exists():
            continue
        for row in Path(table).read_text().splitlines()[1:]:
            cols = row.split()
            local_port = int(cols[1].rsplit(":", 1)[1], 16)
            if local_port == port and cols[3] == "0A":  # 0A: TCP_LISTEN
                listening.add(int(cols[9]))
    return listening


def _read_response(conn: socket.socket) -> bytes:
    """The body of one HTTP/1.1 response with a Content-Length."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += conn.recv(65536)
    head, body = data.split(b"\r\n\r\n", 1)
    lines = head.split(b"\r\n")
    length = next(int(x.split(b":", 1)[1]) for x in lines if x.lower().startswith(b"content-length:"))
    while len(body) < length:
        body += conn.recv(65536)
    return body


def test_each_worker_gets_a_listener_on_the_same_port_and_a_second_server_is_refused() -> None:
    config = TcpConfig("hanseek.api.app:app_from_env", factory=True, host="127.0.0.1", port=0, workers=2)
    first = config.bind_socket()
    second = config.bind_socket()
    try:
        port = first.getsockname()[1]
        assert port != 0 and second.getsockname()[1] == port and config.port == port
        first.listen()  # a worker serving
        second.listen()
        with pytest.raises(OSError, match=f"cannot listen on 127.0.0.1:{port}"):
            check_port_free("127.0.0.1", port)
    finally:
        first.close()
        second.close()
    check_port_free("127.0.0.1", port)  # free again once the workers' listeners are gone
    with socket.socket() as shared, pytest.raises(ValueError, match="binds its own socket"):
        ReusePortMultiprocess(config, sockets=[shared])


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


def test_serve_refuses_a_port_something_listens_on(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from hanseek.cli import app

    monkeypatch.setenv("HANSEEK_DATA_DIR", str(tmp_path))
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = CliRunner().invoke(app, ["serve", "--port", str(port), "--no-demo", "--workers", "2"])
    assert result.exit_code == 1
    assert f"cannot listen on 127.0.0.1:{port}" in " ".join(result.output.split())
    assert not (tmp_path / "pgdata").exists()  # refused before the database was started
