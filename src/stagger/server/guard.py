"""What uvicorn does not do for us, at the connection: a deadline for reading each request
(uvicorn only times out idle keep-alive connections, so a client that sends half a header
line and waits would hold its connection forever), a cap on header bytes, and the names of
a client certificate (mutual TLS) handed to the app in the scope.

One protocol class, a subclass of uvicorn's own (httptools when installed, else h11), made
per server by `guarded_protocol`. Documented in docs/server.md ("Limits"). It also sends
each response in one write (CorkedTransport).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from uvicorn.protocols.http.auto import AutoHTTPProtocol

from stagger.server.auth import CLIENT_CERT_NAMES

# A request line and headers beyond this are not a FleetLock or API client.
MAX_HEADER_BYTES = 64 * 1024


def cert_names(cert: Mapping[str, Any] | None) -> frozenset[str]:
    """The node names a client certificate carries: its subject CN and its DNS SANs (the
    dict `ssl.SSLSocket.getpeercert()` returns)."""
    if not cert:
        return frozenset()
    names: set[str] = set()
    for rdn in cert.get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                names.add(value)
    for kind, value in cert.get("subjectAltName", ()):
        if kind == "DNS":
            names.add(value)
    return frozenset(names)


class CorkedTransport:
    """A connection's transport whose writes made in one pass of the event loop go out as one
    write, at the end of that pass: uvicorn writes a response's head and its body
    separately, and each write to a socket is a system call, the largest cost of a short
    answer. Everything else is the transport's own; closing sends what is pending first."""

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] = []

    def write(self, data: bytes) -> None:
        if not self._pending:
            self._loop.call_soon(self._flush)
        self._pending.append(data)

    def _flush(self) -> None:
        pending = self._pending
        if not pending:
            return
        self._pending = []
        if not self._transport.is_closing():
            self._transport.write(pending[0] if len(pending) == 1 else b"".join(pending))

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


def guarded_protocol(read_timeout: float) -> type[asyncio.Protocol]:
    """uvicorn's HTTP protocol with a `read_timeout` (seconds) for each request: counted from
    its first byte (or from the connection for the first request) until its body is read
    whole; a request not read by then closes the connection. Time the app spends answering
    is not counted."""
    base: Any = AutoHTTPProtocol

    class Guarded(base):  # type: ignore[misc]
        _deadline: asyncio.TimerHandle | None = None
        _started_with: object = None
        _header_bytes = 0

        def connection_made(self, transport: asyncio.Transport) -> None:
            super().connection_made(transport)
            self.transport = CorkedTransport(transport, self.loop)
            names = cert_names(transport.get_extra_info("peercert"))
            if names:
                inner: Any = getattr(self, "app")  # noqa: B009 (set by the base class)

                async def app(scope: Any, receive: Any, send: Any) -> None:
                    scope[CLIENT_CERT_NAMES] = names
                    await inner(scope, receive, send)

                self.app = app
            self._arm()

        def data_received(self, data: bytes) -> None:
            cycle = self.cycle
            if self._deadline is None and (cycle is None or cycle.response_complete):
                self._arm()
            reading_headers = self._deadline is not None and self.cycle is self._started_with
            super().data_received(data)
            cycle = self.cycle
            if reading_headers and cycle is self._started_with:
                # The headers are still not complete after this chunk.
                self._header_bytes += len(data)
                if self._header_bytes > MAX_HEADER_BYTES:
                    self._close()
                    return
            if cycle is not None and not cycle.more_body and not cycle.response_complete:
                self._disarm()  # read whole: the app is answering

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def _arm(self) -> None:
            self._started_with = self.cycle
            self._header_bytes = 0
            self._deadline = self.loop.call_later(read_timeout, self._expired)

        def _disarm(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None

        def _expired(self) -> None:
            self._deadline = None
            self._close()

        def _close(self) -> None:
            self._disarm()
            if not self.transport.is_closing():
                self.transport.close()

    return Guarded
