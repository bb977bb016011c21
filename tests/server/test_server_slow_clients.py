"""Slow clients do not hold connections: a request not read whole within `read_timeout`
(headers and body) closes its connection, an oversized header block is cut, and a
connection that sent its request in time is answered however long the app takes. Real
sockets against a real server on 127.0.0.1, with a small timeout."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from server_support import RunningServer, running
from stagger.server.guard import MAX_HEADER_BYTES
from stagger.server.settings import ServerSettings

TIMEOUT = 0.5
# How long a test waits for the server to close a connection: far above TIMEOUT, so a slow
# machine does not fail the test, far below "forever".
PATIENCE = 10.0


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    d: Path = tmp_path_factory.mktemp("slow")
    settings = ServerSettings(backend_url=f"sqlite:///{d}/s.db", read_timeout=TIMEOUT)
    with running(settings) as srv:
        yield srv


def connect(srv: RunningServer) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", srv.port), timeout=PATIENCE)
    return sock


def closed_by_server(sock: socket.socket) -> bool:
    """Read until the server closes (True) or PATIENCE passes (False)."""
    deadline = time.monotonic() + PATIENCE
    while time.monotonic() < deadline:
        try:
            if sock.recv(65536) == b"":
                return True
        except TimeoutError:
            return False
        except ConnectionResetError:
            return True
    return False


def test_half_a_header_line_is_closed_after_the_read_timeout(server: RunningServer) -> None:
    with connect(server) as sock:
        sock.sendall(b"POST /v1/pre-reboot HTTP/1.1\r\nHost: 127.0.0.1\r\nfleet-lock-")
        assert closed_by_server(sock)


def test_a_connection_that_sends_nothing_is_closed(server: RunningServer) -> None:
    with connect(server) as sock:
        assert closed_by_server(sock)


def test_a_body_trickled_slower_than_the_timeout_is_closed(server: RunningServer) -> None:
    with connect(server) as sock:
        sock.sendall(
            b"POST /v1/pre-reboot HTTP/1.1\r\nHost: 127.0.0.1\r\nfleet-lock-protocol: true\r\n"
            b"content-type: application/json\r\ncontent-length: 60\r\n\r\n{"
        )
        for _ in range(int(PATIENCE / 0.2)):
            try:
                sock.sendall(b" ")
            except OSError:
                break  # the server closed the connection
            time.sleep(0.2)
        assert closed_by_server(sock)


def test_headers_trickled_one_byte_at_a_time_are_cut_at_the_deadline(
    server: RunningServer,
) -> None:
    with connect(server) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\n")
        started = time.monotonic()
        cut = False
        while time.monotonic() - started < PATIENCE:
            try:
                sock.sendall(b"x")
            except OSError:
                cut = True
                break
            time.sleep(0.05)
        assert cut or closed_by_server(sock)


def test_an_oversized_header_block_is_cut(server: RunningServer) -> None:
    with connect(server) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        try:
            sock.sendall(b"x-filler: " + b"a" * (MAX_HEADER_BYTES + 1024) + b"\r\n")
        except OSError:
            return  # cut while sending
        assert closed_by_server(sock)


def test_a_prompt_client_on_a_kept_alive_connection_is_answered_each_time(
    server: RunningServer,
) -> None:
    with connect(server) as sock:
        for _ in range(3):
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            answer = sock.recv(65536)
            assert answer.startswith(b"HTTP/1.1 200"), answer
            time.sleep(TIMEOUT * 1.5)  # idle between requests is the keep-alive's business


def test_requests_beyond_max_connections_get_503_until_connections_close(tmp_path: Path) -> None:
    settings = ServerSettings(
        backend_url=f"sqlite:///{tmp_path}/s.db", read_timeout=PATIENCE, max_connections=3
    )
    request = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    with running(settings) as srv:
        idle = [connect(srv), connect(srv)]
        with connect(srv) as third:
            third.sendall(request)
            assert third.recv(65536).startswith(b"HTTP/1.1 503")
        for sock in idle:
            sock.close()
        deadline = time.monotonic() + PATIENCE
        while time.monotonic() < deadline:
            with connect(srv) as again:
                again.sendall(request)
                if again.recv(65536).startswith(b"HTTP/1.1 200"):
                    return
            time.sleep(0.05)  # the server has not yet seen the idle ones close
        raise AssertionError("no request was served after the idle connections closed")
