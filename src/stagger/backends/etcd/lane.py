"""The read lane: etcd's unary reads as gRPC over one HTTP/2 connection per endpoint, spoken
on the event loop itself.

Why it exists: a grpc.aio call costs the server ~300 µs of CPU whatever it asks (its poller
thread hands every completion to the event loop: ~20 system calls and GIL hand-offs per
call), and the batched reads of the FleetLock hot path are one such call each. Here a call
is one write (HEADERS and DATA frames together) and its answer is parsed in the loop's own
`data_received`: ~70-90 µs, and etcd spends less on it too (BENCHMARKS.md, "The FleetLock
hot path against a bare app").

Rules of this file:
- Reads only (safe to repeat). A call gives etcd's response message, or None whenever the
  lane has no sure answer (not connected yet, the connection lost or told to go away, the
  stream reset, no complete message, a message over grpc's 4 MiB limit, no answer in time);
  the caller (client.py) then makes the same call through grpc, which owns failover,
  authentication and every error an operator sees. So the lane never changes an answer,
  only what it costs.
- A complete response message is etcd's answer: a gRPC server sends a unary call's message
  only when the call succeeded (a failed call ends with a status and no message). So the
  lane never decodes a header block (HPACK): it reads frames, not headers, and writes its
  own headers as HPACK literals that use no table.
- It speaks only what a gRPC client must: the preface, SETTINGS and their ACK, PING ACKs,
  WINDOW_UPDATE (it grants the largest windows, and tracks the connection's send window),
  RST_STREAM and GOAWAY.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import struct
from dataclasses import dataclass, field
from typing import cast

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, RST_STREAM, SETTINGS, PING, GOAWAY, WINDOW_UPDATE = 0, 1, 3, 4, 6, 7, 8
END_STREAM = ACK = 0x1
END_HEADERS = 0x4
PADDED = 0x8
CANCEL = 0x8  # RST_STREAM's error code for a call we gave up on
SETTINGS_MAX_CONCURRENT_STREAMS = 0x3
SETTINGS_INITIAL_WINDOW_SIZE = 0x4
SETTINGS_ENABLE_PUSH = 0x2
MAX_WINDOW = 2**31 - 1
DEFAULT_WINDOW = 65_535
MAX_FRAME = 16_384  # every peer accepts frames this big: a request must fit in one
MAX_MESSAGE = 4 * 1024 * 1024  # grpc's own receive limit: a bigger answer goes through grpc
LAST_STREAM = 2**31 - 1
RETRY_CONNECT = 5.0  # seconds between attempts to (re)open a lane that failed to open

_FRAME_HEAD = struct.Struct(">IBI")  # (length << 8 | type), flags, stream


def frame(kind: int, flags: int, stream: int, payload: bytes = b"") -> bytes:
    return _FRAME_HEAD.pack((len(payload) << 8) | kind, flags, stream) + payload


def hpack_int(value: int, prefix_bits: int, first: int = 0) -> bytes:
    """An HPACK integer (RFC 7541, 5.1) with `prefix_bits` bits in the first byte."""
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes([first | value])
    out = bytearray([first | limit])
    value -= limit
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _string(raw: bytes) -> bytes:
    return hpack_int(len(raw), 7) + raw  # not Huffman-coded


def header_block(
    path: bytes, authority: bytes, *, tls: bool, metadata: tuple[tuple[str, str], ...] = ()
) -> bytes:
    """The HEADERS of a gRPC call, as HPACK that touches no table (RFC 7541): the static
    entries `:method POST` and `:scheme`, and literals "without indexing"."""
    block = bytearray(b"\x83" + (b"\x87" if tls else b"\x86"))  # :method POST, :scheme
    block += hpack_int(4, 4) + _string(path)  # :path (static name 4)
    block += hpack_int(1, 4) + _string(authority)  # :authority (static name 1)
    block += hpack_int(31, 4) + _string(b"application/grpc")  # content-type (static name 31)
    for name, value in (("te", "trailers"), *metadata):
        block += b"\x00" + _string(name.encode()) + _string(value.encode())
    return bytes(block)


@dataclass(eq=False)
class _Call:
    future: asyncio.Future[bytes | None]
    timer: asyncio.TimerHandle | None = None
    parts: list[bytes] = field(default_factory=list)
    size: int = 0


class Connection(asyncio.Protocol):
    """One HTTP/2 connection carrying unary gRPC calls; `ready` once the server's SETTINGS
    came; `closed` for good after a loss, a GOAWAY or a call that timed out."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.ready = False
        self.closed = False
        self._buffer = bytearray()
        self._calls: dict[int, _Call] = {}
        self._next_stream = 1
        self._send_window = DEFAULT_WINDOW  # the connection's, as the server grants it
        self._stream_window = DEFAULT_WINDOW  # each new stream's, from the server's SETTINGS
        self._max_streams = 100
        self._consumed = 0  # bytes of DATA received since our last WINDOW_UPDATE

    # --- asyncio.Protocol -----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport = cast(asyncio.Transport, transport)  # uvloop's too
        settings = struct.pack(
            ">HIHI", SETTINGS_ENABLE_PUSH, 0, SETTINGS_INITIAL_WINDOW_SIZE, MAX_WINDOW
        )
        grant = struct.pack(">I", MAX_WINDOW - DEFAULT_WINDOW)
        transport.write(
            PREFACE + frame(SETTINGS, 0, 0, settings) + frame(WINDOW_UPDATE, 0, 0, grant)
        )

    def connection_lost(self, exc: Exception | None) -> None:
        self._shut()

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        replies: list[bytes] = []
        start = 0
        end = len(buffer)
        while end - start >= 9:
            head, flags, stream = _FRAME_HEAD.unpack_from(buffer, start)
            length, kind = head >> 8, head & 0xFF
            if end - start - 9 < length:
                break
            payload = bytes(buffer[start + 9 : start + 9 + length])
            start += 9 + length
            self._frame(kind, flags, stream & LAST_STREAM, payload, replies)
        del buffer[:start]
        if replies and self.transport is not None and not self.closed:
            self.transport.write(b"".join(replies))

    # --- frames ---------------------------------------------------------------------------

    def _frame(self, kind: int, flags: int, stream: int, payload: bytes, out: list[bytes]) -> None:
        if kind == DATA:
            self._consumed += len(payload)
            if self._consumed > MAX_WINDOW // 2:  # give the connection's window back
                out.append(frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", self._consumed)))
                self._consumed = 0
            call = self._calls.get(stream)
            if call is not None:
                if flags & PADDED and payload:
                    payload = payload[1 : len(payload) - payload[0]]
                call.parts.append(payload)
                call.size += len(payload)
                if call.size > MAX_MESSAGE + 5:
                    out.append(frame(RST_STREAM, 0, stream, struct.pack(">I", CANCEL)))
                    self._finish(stream, ended=False)
                elif flags & END_STREAM:  # no trailers: not a complete gRPC answer
                    self._finish(stream, ended=False)
        elif kind == HEADERS:
            if flags & END_STREAM:  # the trailers (or a trailers-only failure)
                self._finish(stream, ended=True)
        elif kind == SETTINGS:
            if not flags & ACK:
                self._settings(payload)
                out.append(frame(SETTINGS, ACK, 0))
        elif kind == PING:
            if not flags & ACK:
                out.append(frame(PING, ACK, 0, payload))
        elif kind == WINDOW_UPDATE:
            if stream == 0 and len(payload) == 4:
                self._send_window += int.from_bytes(payload, "big") & LAST_STREAM
        elif kind == RST_STREAM:
            self._finish(stream, ended=False)
        elif kind == GOAWAY:
            self.close()

    def _settings(self, payload: bytes) -> None:
        for i in range(0, len(payload) - 5, 6):
            key, value = struct.unpack_from(">HI", payload, i)
            if key == SETTINGS_INITIAL_WINDOW_SIZE:
                self._stream_window = value
            elif key == SETTINGS_MAX_CONCURRENT_STREAMS:
                self._max_streams = value
        self.ready = True

    def _finish(self, stream: int, *, ended: bool) -> None:
        call = self._calls.pop(stream, None)
        if call is None:
            return
        if call.timer is not None:
            call.timer.cancel()
        if call.future.done():
            return
        message = b"".join(call.parts) if ended else b""
        # A complete, uncompressed gRPC message: its 5-byte prefix says its length.
        if (
            len(message) >= 5
            and message[0] == 0
            and int.from_bytes(message[1:5], "big") == len(message) - 5
        ):
            call.future.set_result(message[5:])
            return
        call.future.set_result(None)

    # --- calls ----------------------------------------------------------------------------

    def call(self, headers: bytes, request: bytes, within: float) -> asyncio.Future[bytes | None]:
        """Send one unary call; its future gives the response message or None."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[bytes | None] = loop.create_future()
        body = b"\0" + struct.pack(">I", len(request)) + request
        stream = self._next_stream
        if (
            self.closed
            or not self.ready
            or self.transport is None
            or len(headers) > MAX_FRAME
            or len(body) > min(MAX_FRAME, self._send_window, self._stream_window)
            or len(self._calls) >= self._max_streams
            or stream >= LAST_STREAM
        ):
            if stream >= LAST_STREAM:
                self.close()  # stream ids are spent: the next call opens a new connection
            future.set_result(None)
            return future
        self._next_stream += 2
        self._send_window -= len(body)
        call = self._calls[stream] = _Call(future)
        call.timer = loop.call_later(within, self._expire, stream)
        self.transport.write(
            frame(HEADERS, END_HEADERS, stream, headers) + frame(DATA, END_STREAM, stream, body)
        )
        return future

    def _expire(self, stream: int) -> None:
        # No answer in time: this connection may be dead; the caller goes on through grpc.
        self._finish(stream, ended=False)
        self.close()

    def close(self) -> None:
        self._shut()
        if self.transport is not None:
            self.transport.close()

    def _shut(self) -> None:
        self.closed = True
        for stream in list(self._calls):
            self._finish(stream, ended=False)


class Lane:
    """The read lane to one endpoint: opened in the background on first use (that call, and
    any while it opens, go through grpc), reopened after a loss, at most every
    RETRY_CONNECT seconds after a failure to open."""

    def __init__(self, host: str, port: int, context: ssl.SSLContext | None) -> None:
        self.host = host
        self.port = port
        self.context = context
        self.authority = (f"[{host}]:{port}" if ":" in host else f"{host}:{port}").encode()
        self._connection: Connection | None = None
        self._opening: asyncio.Task[None] | None = None
        self._retry_at = 0.0
        self._headers: dict[tuple[bytes, tuple[tuple[str, str], ...]], bytes] = {}

    def headers(self, path: bytes, metadata: tuple[tuple[str, str], ...] | None) -> bytes:
        key = (path, metadata or ())
        block = self._headers.get(key)
        if block is None:
            if len(self._headers) > 16:  # a new auth token: the old ones are done with
                self._headers.clear()
            block = self._headers[key] = header_block(
                path, self.authority, tls=self.context is not None, metadata=metadata or ()
            )
        return block

    async def call(
        self,
        path: bytes,
        request: bytes,
        metadata: tuple[tuple[str, str], ...] | None,
        within: float,
    ) -> bytes | None:
        connection = self._connection
        if connection is None or connection.closed or not connection.ready:
            self._open()
            return None
        return await connection.call(self.headers(path, metadata), request, within)

    def _open(self) -> None:
        loop = asyncio.get_running_loop()
        if self._opening is not None or loop.time() < self._retry_at:
            return
        if self._connection is not None and not self._connection.closed:
            return  # opened, waiting for the server's SETTINGS
        self._opening = loop.create_task(self._connect())

    async def _connect(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            _, protocol = await asyncio.wait_for(
                loop.create_connection(
                    Connection,
                    self.host,
                    self.port,
                    ssl=self.context,
                    server_hostname=self.host if self.context is not None else None,
                ),
                timeout=RETRY_CONNECT,
            )
            self._connection = protocol
        except (TimeoutError, OSError, ssl.SSLError):
            self._retry_at = loop.time() + RETRY_CONNECT
        finally:
            self._opening = None

    async def close(self) -> None:
        if self._opening is not None:
            self._opening.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._opening
        if self._connection is not None:
            self._connection.close()
            self._connection = None
