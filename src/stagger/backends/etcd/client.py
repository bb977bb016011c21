"""A small etcd v3 client with endpoint failover, over aetcd's gRPC bindings, and the
builders of the requests it sends.

Rules of this file:
- It owns talking to the cluster (channels, TLS, auth token, failover, timeouts, watch
  streams) and the shape of single etcd requests (`put`, `delete`, `range_op`, `unchanged`,
  `prefix_end`, `ttl_seconds`). It knows nothing about semaphores: which keys hold what, and what a
  change writes, is layout.py's; the backend and roles.py send what those decide.

aetcd's own `Client` talks to one host:port, has no TLS, one timeout for every call and no
range limits; so this module opens the gRPC channels itself (plain or TLS, with an auth
token) and calls aetcd's generated stubs (`aetcd.rpc`) directly.

Failover rules:
- Every call has one budget (`timeout`), shared by all the endpoints it tries. A call that
  fails because an endpoint is down, has no leader or did not answer moves to the next
  endpoint, round and round with a short pause, until the budget is spent; then
  BackendUnavailable names every endpoint.
- A read is safe to repeat. A write (`txn`) is not: when one fails after it was sent, etcd may
  still apply it, so the caller gets `OutcomeUnknown` and must re-read before answering.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import grpc
from aetcd import rpc

from stagger.core.errors import BackendUnavailable, ConfigError

T = TypeVar("T")
# Keys one range of `range_all` asks for: ~1,000 node reports are ~0.3 MB, far under grpc's
# 4 MiB answer limit even for reports many times the usual size.
RANGE_CHUNK = 1000

DEFAULT_PORT = 2379
DEFAULT_TIMEOUT = 5.0

# Codes after which another endpoint (or the same one a moment later) may well succeed:
# the member is down, has no leader yet, lost its connection to the leader, or timed out.
_RETRYABLE = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.CANCELLED,
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.INTERNAL,
    }
)
# Codes that no other endpoint will answer differently: wrong credentials or permissions.
_AUTH = frozenset({grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.UNAUTHENTICATED})


@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int = DEFAULT_PORT

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


@dataclass(frozen=True)
class ClientSettings:
    """How to reach the cluster. TLS is on when `tls` is set; the CA, the client certificate
    and its key are each optional (system CAs are used without `ca_cert`; a client
    certificate file may also hold its key)."""

    endpoints: tuple[Endpoint, ...]
    timeout: float = DEFAULT_TIMEOUT
    tls: bool = False
    ca_cert: Path | None = None
    cert: Path | None = None
    key: Path | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)

    def where(self) -> str:
        return ", ".join(str(e) for e in self.endpoints)


class OutcomeUnknown(Exception):
    """A write was sent but no answer came back: etcd may or may not apply it."""

    def __init__(self, endpoint: Endpoint, details: str) -> None:
        super().__init__(f"write to etcd at {endpoint} has an unknown outcome: {details}")
        self.endpoint = endpoint


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigError(
            f"cannot read the etcd {what} file {path} ({exc.strerror}): check the path "
            "and that stagger may read it"
        ) from exc


def channel_credentials(settings: ClientSettings) -> Any:
    """gRPC TLS credentials from the optional CA, client certificate and key files."""
    ca = _read(settings.ca_cert, "CA certificate") if settings.ca_cert else None
    cert = _read(settings.cert, "client certificate") if settings.cert else None
    key = _read(settings.key, "client key") if settings.key else None
    if key is not None and cert is None:
        raise ConfigError(
            "an etcd client key was given without a client certificate: give the "
            "certificate too (cert=PATH), or drop the key"
        )
    if cert is not None and key is None:
        if b"PRIVATE KEY" not in cert:
            raise ConfigError(
                f"the etcd client certificate {settings.cert} holds no private key: give the "
                "key file too (key=PATH)"
            )
        key = cert
    return grpc.ssl_channel_credentials(
        root_certificates=ca, private_key=key, certificate_chain=cert
    )


class _Member:
    """One endpoint's channel, stubs and auth token (opened lazily, reused)."""

    def __init__(self, endpoint: Endpoint, settings: ClientSettings, creds: Any) -> None:
        self.endpoint = endpoint
        target = str(endpoint)
        if creds is not None:
            self.channel = grpc.aio.secure_channel(target, creds)
        else:
            self.channel = grpc.aio.insecure_channel(target)
        self.kv = rpc.KVStub(self.channel)
        self.lease = rpc.LeaseStub(self.channel)
        self.maintenance = rpc.MaintenanceStub(self.channel)
        self.watch = rpc.WatchStub(self.channel)
        self.auth = rpc.AuthStub(self.channel)
        self.metadata: tuple[tuple[str, str], ...] | None = None
        self._settings = settings

    async def authenticate(self, deadline: float) -> None:
        s = self._settings
        if s.username is None or self.metadata is not None:
            return
        resp = await self.auth.Authenticate(
            rpc.AuthenticateRequest(name=s.username, password=s.password or ""), timeout=deadline
        )
        self.metadata = (("token", resp.token),)

    async def close(self) -> None:
        await self.channel.close()


Call = Callable[[_Member, float], Awaitable[T]]


class EtcdClient:
    """Calls etcd through whichever endpoint answers, starting with the last one that did."""

    def __init__(self, settings: ClientSettings, *, rng: random.Random | None = None) -> None:
        if not settings.endpoints:
            raise ConfigError("no etcd endpoint given: write etcd://HOST:PORT[,HOST:PORT...]")
        if settings.timeout <= 0:
            raise ConfigError("the etcd timeout must be a positive number of seconds, like 5")
        if settings.password is not None and settings.username is None:
            raise ConfigError("an etcd password was given without a username: give username=")
        self.settings = settings
        self._creds = channel_credentials(settings) if settings.tls else None
        self._members: dict[int, _Member] = {}
        self._current = 0
        self._rng = rng or random.Random()

    def _member(self, index: int) -> _Member:
        member = self._members.get(index)
        if member is None:
            member = _Member(self.settings.endpoints[index], self.settings, self._creds)
            self._members[index] = member
        return member

    def _unavailable(self, last: str) -> BackendUnavailable:
        s = self.settings
        return BackendUnavailable(
            f"etcd at {s.where()} did not answer within {s.timeout:g} s ({last}); is it "
            f"running? (`etcdctl --endpoints={','.join(map(str, s.endpoints))} endpoint health`)"
        )

    async def call(self, fn: Call[T], *, write: bool = False) -> T:
        """Run `fn(member, per_call_timeout)` on the first endpoint that answers. With
        `write=True`, a failure after the request may have been sent raises OutcomeUnknown."""
        loop = asyncio.get_running_loop()
        s = self.settings
        deadline = loop.time() + s.timeout
        n = len(s.endpoints)
        # A black-holed endpoint must not eat the whole budget when others may answer.
        slice_ = max(1.0, s.timeout / n)
        last = "no attempt made"
        tried_in_round = 0
        reauthed = False
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise self._unavailable(last)
            index = self._current
            member = self._member(index)
            per_call = min(remaining, slice_)
            sent = False
            try:
                await member.authenticate(per_call)
                sent = True
                return await fn(member, per_call)
            except grpc.aio.AioRpcError as exc:
                code, details = exc.code(), exc.details() or ""
                if code in _AUTH or "authentication failed" in details:
                    member.metadata = None
                    if code is grpc.StatusCode.UNAUTHENTICATED and not reauthed and sent:
                        reauthed = True  # the token expired: log in again, once
                        continue
                    raise self._auth_error(member.endpoint, details) from exc
                if code not in _RETRYABLE:
                    raise BackendUnavailable(
                        f"etcd at {member.endpoint} refused the request ({details}); "
                        "check the etcd logs and the cluster's health"
                    ) from exc
                # gRPC says this when no connection was made: the request never left us.
                never_sent = "failed to connect to all addresses" in details
                if write and sent and not never_sent:
                    self._current = (index + 1) % n
                    raise OutcomeUnknown(member.endpoint, details) from exc
                last = f"{member.endpoint}: {details or code.name}"
            self._current = (index + 1) % n
            tried_in_round += 1
            if tried_in_round >= n:
                # Every endpoint failed once: give an election a moment before the next round.
                tried_in_round = 0
                pause = min(self._rng.uniform(0.05, 0.2), max(0.0, deadline - loop.time()))
                await asyncio.sleep(pause)

    def _auth_error(self, endpoint: Endpoint, details: str) -> BackendUnavailable:
        # Never echo the password; the server's details do not contain it.
        return BackendUnavailable(
            f"etcd at {endpoint} rejected user {self.settings.username!r} ({details}); "
            "check the username, password and the user's role for the key prefix"
        )

    # --- the calls the backend and roles.py use ------------------------------------------

    async def range(self, request: Any) -> Any:
        async def go(m: _Member, t: float) -> Any:
            return await m.kv.Range(request, timeout=t, metadata=m.metadata)

        return await self.call(go)

    async def read_txn(self, request: Any) -> Any:
        """A transaction of reads only (one consistent snapshot): safe to repeat."""

        async def go(m: _Member, t: float) -> Any:
            return await m.kv.Txn(request, timeout=t, metadata=m.metadata)

        return await self.call(go)

    async def txn(self, request: Any) -> Any:
        """A transaction that writes. Raises OutcomeUnknown when it may or may not apply."""

        async def go(m: _Member, t: float) -> Any:
            return await m.kv.Txn(request, timeout=t, metadata=m.metadata)

        return await self.call(go, write=True)

    async def lease_grant(self, ttl: int) -> int:
        """A new lease; repeating a grant at worst leaves an unused lease that expires."""

        async def go(m: _Member, t: float) -> int:
            resp = await m.lease.LeaseGrant(rpc.LeaseGrantRequest(TTL=ttl), timeout=t,
                                            metadata=m.metadata)  # fmt: skip
            return int(resp.ID)

        return await self.call(go)

    async def lease_keepalive(self, lease_id: int) -> int:
        """Refresh a lease once; returns its new TTL, 0 when etcd no longer knows it."""

        async def go(m: _Member, t: float) -> int:
            stream = m.lease.LeaseKeepAlive(
                iter([rpc.LeaseKeepAliveRequest(ID=lease_id)]), timeout=t, metadata=m.metadata
            )
            async for reply in stream:
                return int(reply.TTL)
            return 0

        return await self.call(go)

    async def range_all(
        self, key: bytes, range_end: bytes, *, keys_only: bool = False, revision: int = 0
    ) -> tuple[list[Any], int]:
        """Every key-value in [key, range_end) as of one revision, and that revision, read
        RANGE_CHUNK keys at a time: one range of a whole fleet's reports passes grpc's 4 MiB
        answer limit from about 14,000 nodes. The first range's revision (or `revision`, to
        read beside an earlier read) pins the others: one snapshot."""
        kvs: list[Any] = []
        while True:
            resp = await self.range(
                rpc.RangeRequest(
                    key=key,
                    range_end=range_end,
                    limit=RANGE_CHUNK,
                    revision=revision,
                    keys_only=keys_only,
                )
            )
            revision = revision or int(resp.header.revision)
            kvs.extend(resp.kvs)
            if not resp.more or not resp.kvs:
                return kvs, revision
            key = resp.kvs[-1].key + b"\0"

    async def watch(self, create: Any) -> WatchStream:
        """A watch (`create`: a WatchCreateRequest) on the endpoint that answered last. etcd
        ends it when that member loses its leader (`hasleader`), so a member cut off from the
        cluster cannot keep it silently behind; a broken stream moves the next call on."""
        index = self._current
        member = self._member(index)
        try:
            await member.authenticate(self.settings.timeout)
        except grpc.aio.AioRpcError as exc:
            self._current = (index + 1) % len(self.settings.endpoints)
            details = exc.details() or exc.code().name
            if exc.code() in _AUTH:
                raise self._auth_error(member.endpoint, details) from exc
            raise self._unavailable(f"{member.endpoint}: {details}") from exc

        def broken(details: str, code: Any = None) -> BackendUnavailable:
            if code in _AUTH or "authentication failed" in details:
                member.metadata = None  # the token expired: the next watch logs in again
            elif self._current == index:
                self._current = (index + 1) % len(self.settings.endpoints)
            return BackendUnavailable(f"the watch on etcd at {member.endpoint} broke ({details})")

        metadata = (*(member.metadata or ()), ("hasleader", "true"))
        return WatchStream(member.watch, create, metadata, broken)

    async def lease_revoke(self, lease_id: int) -> None:
        """Best effort: a lease we could not revoke still ends at its TTL."""

        async def go(m: _Member, t: float) -> None:
            await m.lease.LeaseRevoke(rpc.LeaseRevokeRequest(ID=lease_id), timeout=t,
                                      metadata=m.metadata)  # fmt: skip

        with contextlib.suppress(BackendUnavailable, grpc.aio.AioRpcError):
            await self.call(go)

    async def status(self) -> Any:
        async def go(m: _Member, t: float) -> Any:
            return await m.maintenance.Status(rpc.StatusRequest(), timeout=t,
                                              metadata=m.metadata)  # fmt: skip

        return await self.call(go)

    async def close(self) -> None:
        members, self._members = list(self._members.values()), {}
        for m in members:
            with contextlib.suppress(Exception):
                await m.close()


class WatchStream:
    """One etcd watch stream: the create request first, a progress request on `progress()`;
    its responses in order by iterating it, until the stream breaks (BackendUnavailable)."""

    def __init__(
        self,
        stub: Any,
        create: Any,
        metadata: tuple[tuple[str, str], ...],
        broken: Callable[..., BackendUnavailable],
    ) -> None:
        self._asks: asyncio.Queue[Any] = asyncio.Queue()
        self._asks.put_nowait(rpc.WatchRequest(create_request=create))
        # The request side stays open as long as the watch: etcd may end a watch whose
        # client closed it.
        self._call = stub.Watch(self._requests(), metadata=metadata)
        self._broken = broken

    async def _requests(self) -> AsyncIterator[Any]:
        while True:
            yield await self._asks.get()

    def progress(self) -> None:
        """Ask etcd for a response now (an answer proves the stream alive)."""
        self._asks.put_nowait(rpc.WatchRequest(progress_request=rpc.WatchProgressRequest()))

    async def __aiter__(self) -> AsyncIterator[Any]:
        try:
            async for response in self._call:
                yield response
        except grpc.aio.AioRpcError as exc:
            raise self._broken(exc.details() or exc.code().name, exc.code()) from exc
        raise self._broken("etcd ended it")

    def close(self) -> None:
        self._call.cancel()


# --- request builders -----------------------------------------------------------------


def put(key: bytes, value: bytes, lease: int = 0) -> Any:
    return rpc.RequestOp(request_put=rpc.PutRequest(key=key, value=value, lease=lease))


def delete(key: bytes, range_end: bytes = b"") -> Any:
    return rpc.RequestOp(request_delete_range=rpc.DeleteRangeRequest(key=key, range_end=range_end))


def range_op(key: bytes, *, prefix: bool = False) -> Any:
    end = prefix_end(key) if prefix else b""
    return rpc.RequestOp(request_range=rpc.RangeRequest(key=key, range_end=end))


def unchanged(key: bytes, revision: int) -> Any:
    """The guard "`key` is as read at `revision`" (0: absent, and nobody created it since)."""
    if revision == 0:
        return rpc.Compare(
            key=key, target=rpc.Compare.CREATE, result=rpc.Compare.EQUAL, create_revision=0
        )
    return rpc.Compare(
        key=key, target=rpc.Compare.MOD, result=rpc.Compare.EQUAL, mod_revision=revision
    )


def prefix_end(prefix: bytes) -> bytes:
    """The first key after every key that starts with `prefix` (etcd's range_end)."""
    end = bytearray(prefix)
    while end:
        if end[-1] < 0xFF:
            end[-1] += 1
            return bytes(end)
        end.pop()
    return b"\0"


def ttl_seconds(ttl: timedelta | None) -> int | None:
    """An etcd lease's whole seconds for `ttl`, at least 1 (None: no lease)."""
    return None if ttl is None else max(1, math.ceil(ttl.total_seconds()))
