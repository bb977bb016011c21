"""The server's connections send what one pass of the event loop writes as one write
(server/guard.py CorkedTransport): a response's head and body leave together. On a real
socket pair and the running event loop."""

from __future__ import annotations

import asyncio
import socket

from stagger.server.guard import CorkedTransport


async def corked_pair() -> tuple[CorkedTransport, socket.socket]:
    ours, peer = socket.socketpair()
    peer.setblocking(False)
    loop = asyncio.get_running_loop()
    transport, _ = await loop.connect_accepted_socket(asyncio.Protocol, ours)
    return CorkedTransport(transport, loop), peer  # type: ignore[arg-type]


def received(peer: socket.socket) -> bytes | None:
    try:
        return peer.recv(65536)
    except BlockingIOError:
        return None


async def test_writes_of_one_pass_leave_together_at_its_end() -> None:
    corked, peer = await corked_pair()
    corked.write(b"HTTP/1.1 423 Locked\r\ncontent-length: 2\r\n\r\n")
    corked.write(b"{}")
    assert received(peer) is None  # nothing left during the pass
    await asyncio.sleep(0)
    assert received(peer) == b"HTTP/1.1 423 Locked\r\ncontent-length: 2\r\n\r\n{}"
    corked.write(b"next")  # a later pass sends its own writes
    await asyncio.sleep(0)
    assert received(peer) == b"next"
    corked.close()
    peer.close()


async def test_closing_sends_what_is_pending_first() -> None:
    corked, peer = await corked_pair()
    corked.write(b"last words")
    corked.close()
    assert corked.is_closing()
    for _ in range(10):
        await asyncio.sleep(0)
    peer.setblocking(True)
    peer.settimeout(5)
    assert peer.recv(65536) == b"last words"
    assert peer.recv(65536) == b""  # then the end of the stream
    peer.close()
