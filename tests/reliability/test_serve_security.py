"""Security of a running `hanseek serve`: what listens where, and what reaches the logs."""

from __future__ import annotations

import json
import os
import pwd
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import psutil
import psycopg
import pytest
from bench._serve import HANSEEK, ServeProcess

from hanseek.store.server import SYSTEM_USER, running_pid

from .conftest import API_KEY

pytestmark = pytest.mark.slow

DB_PASSWORD = "db-pw-9c1e55d0a3"


@pytest.fixture(scope="module")
def served(store_tmp_root: Path) -> Iterator[ServeProcess]:
    srv = ServeProcess(
        store_tmp_root / "serve-security", env={"HANSEEK_API_KEY": API_KEY, "HANSEEK_PROTECT_READS": "true"}
    )
    with srv:
        yield srv


def _tree(pid: int) -> list[psutil.Process]:
    proc = psutil.Process(pid)
    return [proc, *proc.children(recursive=True)]


def test_database_has_no_network_listener(served: ServeProcess) -> None:
    pid = running_pid(served.pgdata)
    assert pid is not None
    procs = _tree(pid)
    inet = [c for p in procs for c in p.net_connections(kind="inet")]
    assert inet == [], f"PostgreSQL has inet sockets: {inet}"
    unix = [c.laddr for c in psutil.Process(pid).net_connections(kind="unix")]
    assert any(".s.PGSQL." in str(path) for path in unix), unix
    url = served.db_url()
    socket_dir = Path(parse_qs(urlsplit(url).query)["host"][0])
    with psycopg.connect(url) as conn:
        assert conn.execute("SHOW listen_addresses").fetchone() == ("",)
        assert conn.execute("SHOW unix_socket_permissions").fetchone() == ("0700",)
    # The socket's directory: private to the server's user (who alone may connect, trust auth).
    st = socket_dir.stat()
    assert st.st_mode & 0o077 == 0, oct(st.st_mode)
    owner = SYSTEM_USER if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name
    assert pwd.getpwuid(st.st_uid).pw_name == owner
    assert (served.pgdata.stat().st_mode & 0o077) in (0, 0o050), oct(served.pgdata.stat().st_mode)


def test_http_listens_on_loopback_only(served: ServeProcess) -> None:
    listening = [
        c for c in psutil.Process(served.pid).net_connections(kind="inet") if c.status == psutil.CONN_LISTEN
    ]
    assert listening and all(c.laddr.ip == "127.0.0.1" for c in listening), listening


def test_protect_reads_on_the_real_server(served: ServeProcess) -> None:
    with httpx.Client(base_url=served.base_url, timeout=30) as c:
        assert c.get("/users").status_code == 401
        assert c.get("/users", headers={"X-API-Key": API_KEY}).status_code == 200
        assert c.get("/readyz").status_code == 200


def test_a_request_the_http_parser_rejects_is_logged_as_json(served: ServeProcess) -> None:
    # Korean sent unencoded in the query, as curl sends it: uvicorn's parser answers 400 itself,
    # before any app code, and logs a warning of its own.
    with socket.create_connection(("127.0.0.1", served.port), timeout=30) as conn:
        conn.sendall("GET /images/search?q=고양이 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
        head = conn.recv(4096)
    assert head.startswith(b"HTTP/1.1 400"), head
    deadline = time.monotonic() + 10
    while "Invalid HTTP request" not in served.log_text() and time.monotonic() < deadline:
        time.sleep(0.1)
    lines = [line for line in served.log_text().splitlines() if "Invalid HTTP request" in line]
    assert lines, served.log_tail()
    for line in lines:
        record = json.loads(line)  # not uvicorn's plain "WARNING:  Invalid HTTP request received."
        assert record["logger"].startswith("uvicorn") and record["level"] == "WARNING", record


def test_secrets_never_reach_the_logs(served: ServeProcess, store_tmp_root: Path) -> None:
    """Requests that carry the key every way a client might (right, wrong, in a header, as a bearer
    token, mistakenly in the query string or a body), errors included; then every log is searched."""
    with httpx.Client(base_url=served.base_url, timeout=30) as c:
        good = {"X-API-Key": API_KEY}
        c.get("/users", headers=good)
        c.get("/users", headers={"Authorization": f"Bearer {API_KEY}"})
        c.get("/users", headers={"X-API-Key": API_KEY + "x"})
        c.get("/users", params={"api_key": API_KEY}, headers=good)
        c.get(f"/users/{API_KEY}", headers=good)  # 404 whose detail names the id: the access log must not
        c.post("/events", json={"events": [{"user_id": API_KEY, "post_id": "none"}]}, headers=good)
        c.post("/encode", json={"texts": API_KEY}, headers=good)  # 422 that would echo the input
        c.post("/posts", content=b"{" + API_KEY.encode(), headers=good)
    # A second server on the same database through an external URL with a password (trust auth on
    # the private socket ignores it): the password must not be printed either.
    external = served.db_url().replace("postgres@", f"postgres:{DB_PASSWORD}@")
    second = ServeProcess(store_tmp_root / "serve-security-ext", env={"HANSEEK_DATABASE_URL": external})
    with second:
        assert httpx.get(f"{second.base_url}/readyz", timeout=30).status_code == 200
    assert DB_PASSWORD not in second.log_text()
    # And when that URL is wrong, the error names the URL without its password.
    bad = external.replace("/hanseek?", "/no_such_db?")
    out = subprocess.run(
        [str(HANSEEK), "db", "status"],
        env={**second.env(), "HANSEEK_DATABASE_URL": bad},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode != 0
    assert "no_such_db" in out.stdout + out.stderr and DB_PASSWORD not in out.stdout + out.stderr

    served.stop()
    logs = {
        "serve": served.log_text(),
        "postgres": (served.pgdata / "server.log").read_text(errors="replace"),
    }
    assert "/users" in logs["serve"]  # the access log did record these requests,
    assert '"path": "/users/***"' in logs["serve"]  # with the key masked where a client put it
    for name, text in logs.items():
        assert API_KEY not in text, f"API key in the {name} log"
        assert DB_PASSWORD not in text, f"database password in the {name} log"


def test_settings_never_print_the_key() -> None:
    from pydantic import SecretStr

    from hanseek.config import Settings

    s = Settings(api_key=SecretStr(API_KEY), database_url=f"postgresql://u:{DB_PASSWORD}@h/db")
    assert API_KEY not in repr(s) and API_KEY not in str(s.model_dump())
    from hanseek.store.db import redact_url

    assert DB_PASSWORD not in redact_url(s.database_url or "")
