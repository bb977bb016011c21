"""A webhook receiver on 127.0.0.1 for the notification tests (a pytest plugin: conftest.py
lists it, so the `receiver` fixture is there for every test file)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

WAIT = 15.0  # seconds: the longest any test waits for a notification (bounded loops)


class Receiver:
    """A webhook receiver: records every POST; can fail the first N, or hang until released."""

    def __init__(self) -> None:
        self.received: list[tuple[str, dict[str, Any], dict[str, str]]] = []
        self.fail_first = 0
        self.hang = threading.Event()  # set: requests hang until `release` is set
        self.release = threading.Event()
        self.hanging = threading.Event()  # set while a request is hanging
        self.attempts = 0
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("content-length", 0)))
                with receiver.lock:
                    receiver.attempts += 1
                    failing = receiver.attempts <= receiver.fail_first
                if receiver.hang.is_set():
                    receiver.hanging.set()
                    receiver.release.wait(WAIT)
                    receiver.hanging.clear()
                if failing:
                    self.send_response(500)
                    self.end_headers()
                    return
                with receiver.lock:
                    receiver.received.append((self.path, json.loads(raw), dict(self.headers)))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"

    def docs(self, path: str) -> list[dict[str, Any]]:
        with self.lock:
            return [d for p, d, _ in self.received if p == path]

    def wait_for(self, path: str, n: int) -> list[dict[str, Any]]:
        deadline = time.monotonic() + WAIT
        while len(self.docs(path)) < n and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.docs(path)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    r.thread.start()
    try:
        yield r
    finally:
        r.release.set()
        r.httpd.shutdown()
        r.httpd.server_close()
