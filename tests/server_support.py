"""A real stagger server for tests: uvicorn on a socket bound to 127.0.0.1:0, run in a
thread, stopped at teardown. Imported by the server test modules."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import IO, Any

import httpx
import uvicorn

from stagger.backends.protocol import Backend
from stagger.server.app import StaggerServer, build_app, uvicorn_config
from stagger.server.settings import ServerSettings

PROTO = {"fleet-lock-protocol": "true"}


def body(node_id: str, group: str = "default") -> dict[str, Any]:
    return {"client_params": {"id": node_id, "group": group}}


def free_socket() -> socket.socket:
    """A socket bound to a free loopback port, handed to uvicorn (no race for the port)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    return sock


class RunningServer:
    def __init__(self, settings: ServerSettings, backend: Backend | None = None) -> None:
        self.sock = free_socket()
        self.port = int(self.sock.getsockname()[1])
        self.settings = replace(settings, host="127.0.0.1", port=self.port)
        self.app: StaggerServer = build_app(self.settings, backend)
        config = uvicorn_config(self.settings, self.app, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True
        )

    @property
    def url(self) -> str:
        scheme = "https" if self.settings.tls_enabled else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.thread.start()
        deadline = time.monotonic() + 15
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the test server did not start (see the log above)")
            time.sleep(0.01)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)
        self.sock.close()


@contextmanager
def running(settings: ServerSettings, backend: Backend | None = None) -> Iterator[RunningServer]:
    """A server on `settings` (and on `backend` when given: an instrumented real store)."""
    srv = RunningServer(settings, backend)
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


@contextmanager
def server_process(
    tmp_path: Path, config: str, *flags: str, output: IO[bytes] | int = subprocess.DEVNULL
) -> Iterator[str]:
    """`stagger server --config FILE [flags]` as its own process (stdout and stderr to
    `output`), on a free loopback port and a SQLite file in `tmp_path`, once it answers
    /readyz; yields its URL, terminated at the end. `config` goes on after the `[server]`
    table's listen and backend lines."""
    sock = free_socket()
    port = sock.getsockname()[1]
    sock.close()  # the server binds it again at once; nothing else here takes ports
    path = tmp_path / "server.toml"
    path.write_text(
        f'[server]\nlisten = "127.0.0.1:{port}"\nbackend = "sqlite:///{tmp_path}/s.db"\n{config}'
    )
    stagger = str(Path(sys.executable).parent / "stagger")
    proc = subprocess.Popen(
        [stagger, "server", "--config", str(path), *flags], stdout=output, stderr=output
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(url + "/readyz").status_code == 200:
                    break
            time.sleep(0.05)
        yield url
    finally:
        proc.terminate()
        proc.wait(10)
