"""The etcd read lane (backends/etcd/lane.py): a complete response message is the answer;
anything else (a failure status, a reset stream, GOAWAY, a cut message, silence) is None,
and the client then asks through grpc, so an answer never changes, only its cost. Against a
scripted HTTP/2 peer for the protocol, and a real etcd for the client."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import struct
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import trustme
from aetcd import rpc

from etcd_support import ETCD, EtcdCluster, free_port
from stagger.backends.etcd.client import ClientSettings, Endpoint, EtcdClient, put
from stagger.backends.etcd.lane import (
    DATA,
    END_HEADERS,
    END_STREAM,
    GOAWAY,
    HEADERS,
    PING,
    PREFACE,
    RST_STREAM,
    SETTINGS,
    Lane,
    frame,
    hpack_int,
)

PATH = b"/etcdserverpb.KV/Range"
STATUS_HEADERS = b"\x88"  # ":status 200", static entry 8: the lane never reads it
TRAILERS = b"\x00\x0bgrpc-status\x010"


def message(payload: bytes) -> bytes:
    return b"\0" + struct.pack(">I", len(payload)) + payload


def ok(stream: int, payload: bytes) -> bytes:
    return (
        frame(HEADERS, END_HEADERS, stream, STATUS_HEADERS)
        + frame(DATA, 0, stream, message(payload))
        + frame(HEADERS, END_HEADERS | END_STREAM, stream, TRAILERS)
    )


Script = Callable[[int, bytes], bytes]  # (stream, request message) -> what the peer writes


@dataclass
class Peer:
    """An HTTP/2 server that answers each call with what `script` says, in `chunk`-byte
    writes, and records the frames it got."""

    script: Script
    chunk: int = 1 << 20
    frames: list[tuple[int, int, int, bytes]] = field(default_factory=list)
    port: int = 0

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        assert await reader.readexactly(len(PREFACE)) == PREFACE
        writer.write(frame(SETTINGS, 0, 0, struct.pack(">HI", 3, 1000)))
        bodies: dict[int, bytes] = {}
        try:
            while True:
                head = await reader.readexactly(9)
                length = int.from_bytes(head[:3], "big")
                kind, flags = head[3], head[4]
                stream = int.from_bytes(head[5:9], "big")
                payload = await reader.readexactly(length)
                self.frames.append((kind, flags, stream, payload))
                if kind == DATA:
                    bodies[stream] = bodies.get(stream, b"") + payload
                    if flags & END_STREAM:
                        out = self.script(stream, bodies.pop(stream)[5:])
                        for i in range(0, len(out), self.chunk):
                            writer.write(out[i : i + self.chunk])
                            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            writer.close()


@contextlib.asynccontextmanager
async def lane_to(script: Script, chunk: int = 1 << 20) -> AsyncIterator[tuple[Lane, Peer]]:
    """A lane to a Peer running `script`, open (the first call only opens it)."""
    p = Peer(script, chunk)
    server = await asyncio.start_server(p.serve, "127.0.0.1", 0)
    lane = Lane("127.0.0.1", server.sockets[0].getsockname()[1], None)
    try:
        assert await lane.call(PATH, b"x", None, 1.0) is None  # not open yet: opens it
        for _ in range(500):
            connection = lane._connection
            if connection is not None and connection.ready:
                break
            await asyncio.sleep(0.01)
        yield lane, p
    finally:
        await lane.close()
        server.close()


def test_hpack_integers_are_rfc_7541s() -> None:
    # RFC 7541, C.1.1-C.1.3
    assert hpack_int(10, 5) == b"\x0a"
    assert hpack_int(1337, 5) == b"\x1f\x9a\x0a"
    assert hpack_int(42, 8) == b"\x2a"


async def test_a_complete_message_is_the_answer_even_cut_into_pieces() -> None:
    async with lane_to(lambda stream, req: ok(stream, b"answer to " + req), chunk=3) as (lane, p):
        assert await lane.call(PATH, b"q1", None, 5.0) == b"answer to q1"
        answers = await asyncio.gather(*(lane.call(PATH, b"q%d" % i, None, 5.0) for i in range(5)))
        assert answers == [b"answer to q%d" % i for i in range(5)]
    assert any(kind == SETTINGS and flags == 1 for kind, flags, _, _ in p.frames)  # ACKed


async def test_the_call_carries_its_path_and_metadata_as_literals() -> None:
    async with lane_to(lambda stream, req: ok(stream, b"")) as (lane, p):
        assert await lane.call(PATH, b"q", (("token", "t0k3n"),), 5.0) == b""
    block = [payload for kind, _, stream, payload in p.frames if kind == HEADERS][-1]
    assert PATH in block
    assert b"application/grpc" in block
    assert b"\x00\x05token\x05t0k3n" in block


@pytest.mark.parametrize(
    "reply",
    [
        # a failure: trailers only, no message
        lambda stream: frame(HEADERS, END_HEADERS | END_STREAM, stream, TRAILERS),
        # the stream reset
        lambda stream: frame(RST_STREAM, 0, stream, struct.pack(">I", 2)),
        # a message cut short (its prefix says 100 bytes)
        lambda stream: (
            frame(DATA, 0, stream, b"\0" + struct.pack(">I", 100) + b"short")
            + frame(HEADERS, END_HEADERS | END_STREAM, stream, TRAILERS)
        ),
        # a message without trailers
        lambda stream: frame(DATA, END_STREAM, stream, message(b"no trailers")),
        # a compressed message
        lambda stream: (
            frame(DATA, 0, stream, b"\1" + message(b"zip")[1:])
            + frame(HEADERS, END_HEADERS | END_STREAM, stream, TRAILERS)
        ),
    ],
    ids=["failure", "reset", "cut", "no-trailers", "compressed"],
)
async def test_no_sure_answer_is_none(reply: Callable[[int], bytes]) -> None:
    async with lane_to(lambda stream, req: reply(stream)) as (lane, _):
        assert await lane.call(PATH, b"q", None, 5.0) is None
        assert lane._connection is not None
        assert not lane._connection.closed  # still in use


async def test_goaway_and_silence_close_the_connection_and_the_lane_reopens() -> None:
    replies = iter(
        [
            lambda stream: frame(GOAWAY, 0, 0, struct.pack(">II", 0, 0)),
            lambda stream: frame(PING, 0, 0, b"12345678"),  # and then nothing
        ]
    )
    async with lane_to(lambda stream, req: next(replies)(stream)) as (lane, p):
        first = lane._connection
        assert await lane.call(PATH, b"q", None, 5.0) is None
        assert first is not None
        assert first.closed
        assert await lane.call(PATH, b"q", None, 5.0) is None  # closed: reopens
        for _ in range(500):
            now = lane._connection
            if now is not first and now is not None and now.ready:
                break
            await asyncio.sleep(0.01)
        second = lane._connection
        assert second is not None
        assert second is not first
        assert second.ready
        assert await lane.call(PATH, b"q", None, 0.2) is None  # no answer in time
        assert second.closed
    assert (PING, 1, 0, b"12345678") in p.frames  # the PING was answered


async def test_a_request_too_big_for_one_frame_is_left_to_grpc() -> None:
    async with lane_to(lambda stream, req: ok(stream, b"")) as (lane, p):
        assert await lane.call(PATH, b"x" * 20_000, None, 5.0) is None
    assert not any(kind == DATA and len(payload) > 16_384 for kind, _, _, payload in p.frames)


# --- through the client, on a real etcd ------------------------------------------------------


async def wait_open(client: EtcdClient) -> Lane:
    lane = client._member(0).lane
    for _ in range(500):
        connection = lane._connection
        if connection is not None and connection.ready:
            return lane
        await asyncio.sleep(0.01)
    raise AssertionError("the read lane did not open")


async def test_reads_through_the_lane_answer_what_grpc_answers(etcd_server: EtcdCluster) -> None:
    m = etcd_server.members[0]
    client = EtcdClient(ClientSettings((Endpoint("127.0.0.1", m.client_port),)))
    key = f"test-{uuid.uuid4().hex[:12]}/k".encode()
    try:
        await client.txn(rpc.TxnRequest(success=[put(key, b"v1")]))
        by_grpc = await client.range(rpc.RangeRequest(key=key))  # the lane opens meanwhile
        lane = await wait_open(client)
        calls = 0
        real = lane.call

        async def counted(*args: object) -> bytes | None:
            nonlocal calls
            answer = await real(*args)  # type: ignore[arg-type]
            calls += answer is not None
            return answer

        lane.call = counted  # type: ignore[method-assign]
        by_lane = await client.range(rpc.RangeRequest(key=key))
        assert calls == 1
        assert list(by_lane.kvs) == list(by_grpc.kvs)
        txn = rpc.TxnRequest(success=[rpc.RequestOp(request_range=rpc.RangeRequest(key=key))])
        (found,) = (await client.read_txn(txn)).responses
        assert calls == 2
        assert [kv.value for kv in found.response_range.kvs] == [b"v1"]
    finally:
        await client.close()


@pytest.mark.parametrize(
    "script",
    [
        lambda stream, req: frame(RST_STREAM, 0, stream, struct.pack(">I", 2)),
        lambda stream, req: ok(stream, b"\xff\xff not a RangeResponse"),
    ],
    ids=["reset", "not-protobuf"],
)
async def test_a_read_the_lane_cannot_answer_goes_through_grpc(
    etcd_server: EtcdCluster, script: Script
) -> None:
    m = etcd_server.members[0]
    client = EtcdClient(ClientSettings((Endpoint("127.0.0.1", m.client_port),)))
    key = f"test-{uuid.uuid4().hex[:12]}/k".encode()
    try:
        await client.txn(rpc.TxnRequest(success=[put(key, b"v1")]))
        async with lane_to(script) as (lane, p):
            client._member(0).lane = lane  # a lane that never gives etcd's answer
            resp = await client.range(rpc.RangeRequest(key=key))
            assert [kv.value for kv in resp.kvs] == [b"v1"]
            assert any(kind == HEADERS and PATH in block for kind, _, _, block in p.frames)
    finally:
        await client.close()


@pytest.fixture
def secure_etcd(tmp_path: Path) -> Iterator[ClientSettings]:
    """A single-member etcd of its own that takes TLS with client certificates (a CA made by
    trustme) and has authentication on (user root): how a production cluster is reached."""
    ca = trustme.CA()
    files = {
        "ca": ca.cert_pem,
        "server": ca.issue_cert("127.0.0.1").private_key_and_cert_chain_pem,
        "client": ca.issue_cert("stagger-client").private_key_and_cert_chain_pem,
    }
    paths = {name: tmp_path / f"{name}.pem" for name in files}
    for name, blob in files.items():
        blob.write_to_path(str(paths[name]))
    port, peer = free_port(), free_port()
    url = f"https://127.0.0.1:{port}"
    log = open(tmp_path / "etcd.log", "ab")  # noqa: SIM115
    proc = subprocess.Popen(
        [
            ETCD, "--name", "m", "--data-dir", str(tmp_path / "data"),
            "--listen-client-urls", url, "--advertise-client-urls", url,
            "--listen-peer-urls", f"http://127.0.0.1:{peer}",
            "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer}",
            "--initial-cluster", f"m=http://127.0.0.1:{peer}",
            "--listen-metrics-urls", f"http://127.0.0.1:{free_port()}",
            "--cert-file", str(paths["server"]), "--key-file", str(paths["server"]),
            "--trusted-ca-file", str(paths["ca"]), "--client-cert-auth",
            "--logger=zap", "--log-level=error",
        ],
        stdout=log, stderr=log,
    )  # fmt: skip
    ctl = [
        shutil.which("etcdctl") or "/usr/bin/etcdctl", f"--endpoints={url}",
        f"--cacert={paths['ca']}", f"--cert={paths['client']}", f"--key={paths['client']}",
    ]  # fmt: skip
    try:
        deadline = time.monotonic() + 15
        while subprocess.run([*ctl, "endpoint", "health"], capture_output=True).returncode:
            assert time.monotonic() < deadline, "the TLS etcd did not become healthy"
            time.sleep(0.1)
        for step in (
            ["user", "add", "root:pw", "--interactive=false"],
            ["user", "grant-role", "root", "root"],
            ["auth", "enable"],
        ):
            subprocess.run([*ctl, *step], check=True, capture_output=True)
        yield ClientSettings(
            (Endpoint("127.0.0.1", port),),
            tls=True,
            ca_cert=paths["ca"],
            cert=paths["client"],
            username="root",
            password="pw",
        )
    finally:
        proc.kill()
        proc.wait()
        log.close()


async def test_the_lane_reads_over_tls_with_the_auth_token(secure_etcd: ClientSettings) -> None:
    client = EtcdClient(secure_etcd)
    try:
        await client.txn(rpc.TxnRequest(success=[put(b"k", b"v1")]))
        await client.range(rpc.RangeRequest(key=b"k"))  # through grpc: the lane opens
        lane = await wait_open(client)
        real = lane.call
        answered = 0

        async def counted(*args: object) -> bytes | None:
            nonlocal answered
            answer = await real(*args)  # type: ignore[arg-type]
            answered += answer is not None
            return answer

        lane.call = counted  # type: ignore[method-assign]
        resp = await client.range(rpc.RangeRequest(key=b"k"))
        assert [kv.value for kv in resp.kvs] == [b"v1"]
        assert answered == 1  # the lane answered: TLS and the token worked
    finally:
        await client.close()
