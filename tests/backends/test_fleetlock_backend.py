"""The FleetLock client backend against a real stagger server (and a real airlock-like
server for foreign-server behaviour), each on 127.0.0.1."""

from __future__ import annotations

import json
import random
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from server_support import RunningServer, free_socket, running
from stagger.backends.factory import open_backend
from stagger.backends.fleetlock import FleetLockBackend, server_backend_url
from stagger.backends.protocol import Backend
from stagger.core.cycle.node_state import State
from stagger.core.errors import BackendUnavailable, ConfigError, InvalidInput
from stagger.core.node_report import NodeReport
from stagger.core.secrets import mask_url as redact
from stagger.core.semaphore import QUEUE_LIMIT, Denied, DenyReason, Granted, NotHeld, Released
from stagger.server.settings import ServerSettings, admin_tokens_from_file


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RunningServer]:
    settings = ServerSettings(backend_url=f"sqlite:///{tmp_path}/s.db", prefix="/fleet_lock")
    with running(settings) as srv:
        yield srv


@pytest.fixture
async def fl(server: RunningServer) -> AsyncIterator[Backend]:
    b = open_backend(f"fleetlock+{server.url}/fleet_lock/")
    yield b
    await b.close()


def test_it_is_a_backend(server: RunningServer) -> None:
    assert isinstance(open_backend(f"fleetlock+{server.url}/"), Backend)


@pytest.mark.parametrize(
    "suffix", ["/fleet_lock", "/fleet_lock/", "/fleet_lock//", "//fleet_lock/"]
)
async def test_base_urls_work_with_and_without_the_trailing_slash(
    server: RunningServer, suffix: str
) -> None:
    b = open_backend(f"fleetlock+{server.url}{suffix}")
    try:
        assert isinstance(await b.acquire("web", "a"), Granted)
    finally:
        await b.close()


async def test_acquire_is_granted_then_denied_with_the_holders(fl: Backend) -> None:
    assert isinstance(await fl.acquire("web", "a"), Granted)
    denied = await fl.acquire("web", "b")
    assert isinstance(denied, Denied)
    assert (denied.reason, denied.max, denied.holders) == (DenyReason.FULL, 1, ("a",))


async def test_a_paused_group_is_denied_with_the_pause(fl: Backend) -> None:
    await fl.pause("web", by="operator:alice", reason="incident 7")
    denied = await fl.acquire("web", "a")
    assert isinstance(denied, Denied)
    assert denied.reason is DenyReason.PAUSED
    assert denied.pause is not None
    assert denied.pause.reason == "incident 7"


async def test_pacing_and_queue_denials_come_back_with_until_and_position(fl: Backend) -> None:
    await fl.set_max("web", 1, by="operator:t")
    assert await fl.set_pace("web", timedelta(minutes=5), by="operator:t") == timedelta(minutes=5)
    assert isinstance(await fl.acquire("web", "a"), Granted)
    await fl.release("web", "a")
    paced = await fl.acquire("web", "b")
    assert isinstance(paced, Denied)
    assert paced.reason is DenyReason.PACING
    assert paced.until is not None
    assert paced.position == 1
    queued = await fl.acquire("web", "c")
    assert isinstance(queued, Denied)
    assert (queued.reason, queued.position) == (DenyReason.PACING, 2)
    assert await fl.set_pace("web", None, by="operator:t") is None
    behind = await fl.acquire("web", "c")
    assert isinstance(behind, Denied)
    assert (behind.reason, behind.position) == (DenyReason.QUEUED, 2)
    assert await fl.set_max("web", 50, by="operator:t", percent=True) == 50
    (status,) = (await fl.status("web")).groups
    assert [w.id for w in status.semaphore.queue(status.now)] == ["b", "c"]
    assert status.semaphore.max_percent == 50


async def test_release_frees_the_slot(fl: Backend) -> None:
    await fl.acquire("web", "a")
    assert isinstance(await fl.release("web", "a"), Released)
    assert isinstance(await fl.acquire("web", "b"), Granted)


async def test_an_operator_release_goes_through_the_admin_api(fl: Backend) -> None:
    await fl.acquire("web", "a")
    out = await fl.release("web", "a", by="operator:bob")
    assert isinstance(out, Released)
    assert out.by == "operator:bob"
    assert isinstance(await fl.release("web", "a", by="operator:bob"), NotHeld)
    assert (await fl.history("web"))[0].by == "operator:bob"


async def test_touch_tells_whether_the_slot_is_still_held(fl: Backend) -> None:
    await fl.acquire("web", "a")
    hold = await fl.touch("web", "a")
    assert hold is not None
    assert hold.id == "a"
    await fl.release("web", "a", by="operator:bob")
    assert await fl.touch("web", "a") is None


async def test_set_max_status_and_history_go_through_the_server(fl: Backend) -> None:
    assert await fl.set_max("web", 2, by="operator:alice") == 2
    await fl.acquire("web", "a")
    snap = await fl.status()
    [web] = [g for g in snap.groups if g.group == "web"]
    assert (web.semaphore.max, [h.id for h in web.holds]) == (2, ["a"])
    one = await fl.status("web")
    assert one.groups[0].semaphore.max == 2
    actions = [e.action.value for e in await fl.history("web")]
    assert actions == ["acquired", "max_changed"]


async def test_fleet_pause_and_resume(fl: Backend) -> None:
    until = datetime.now(UTC) + timedelta(hours=1)
    p = await fl.pause(None, by="operator:alice", reason="move", until=until)
    assert p.until == until
    snap = await fl.status("web")
    assert snap.groups[0].pause is not None
    assert isinstance(await fl.acquire("web", "a"), Denied)
    lifted = await fl.resume(None, by="operator:alice")
    assert lifted is not None
    assert lifted.reason == "move"
    assert isinstance(await fl.acquire("web", "a"), Granted)


async def test_configure_goes_through_the_servers_admin_api(fl: Backend) -> None:
    sem = await fl.configure("web", by="operator:x", hold_ttl=timedelta(hours=1))
    assert (sem.hold_ttl, sem.stale_after) == (timedelta(hours=1), timedelta(minutes=15))
    (web,) = (await fl.status("web")).groups
    assert web.semaphore.hold_ttl == timedelta(hours=1)
    sem = await fl.configure(
        "web", by="operator:x", hold_ttl=None, stale_after=timedelta(minutes=1)
    )
    assert (sem.hold_ttl, sem.stale_after) == (None, timedelta(minutes=1))


async def test_ping_succeeds_on_a_ready_server(fl: Backend) -> None:
    await fl.ping()


async def test_a_server_that_is_not_listening_is_unavailable_after_retries() -> None:
    sock = free_socket()
    port = sock.getsockname()[1]
    sock.close()
    b = FleetLockBackend.from_url(
        f"fleetlock+http://127.0.0.1:{port}/", retries=2, rng=random.Random(1)
    )
    try:
        with pytest.raises(BackendUnavailable, match="after 3 tries"):
            await b.acquire("web", "a")
    finally:
        await b.close()


async def test_a_bad_group_is_refused_before_any_request(fl: Backend) -> None:
    with pytest.raises(InvalidInput):
        await fl.acquire("bad group", "a")


# --- auth and URLs --------------------------------------------------------------------------


@pytest.fixture
def secured(tmp_path: Path) -> Iterator[RunningServer]:
    (tmp_path / "admin").write_text("s3cret/+@\n")
    settings = ServerSettings(
        backend_url=f"sqlite:///{tmp_path}/s.db",
        tokens=tuple(admin_tokens_from_file(tmp_path / "admin")),
    )
    with running(settings) as srv:
        yield srv


async def test_a_token_option_is_sent_as_bearer(secured: RunningServer) -> None:
    b = open_backend(f"fleetlock+{secured.url}/", token="s3cret/+@")
    try:
        assert isinstance(await b.acquire("web", "a"), Granted)
    finally:
        await b.close()


async def test_credentials_in_the_url_are_sent_as_basic(secured: RunningServer) -> None:
    url = f"fleetlock+{secured.url}/".replace("//127", "//node:s3cret%2F%2B%40@127")
    b = open_backend(url)
    try:
        assert isinstance(await b.acquire("web", "a"), Granted)
        assert "s3cret" not in b.url
    finally:
        await b.close()


async def test_missing_credentials_say_how_to_give_them(secured: RunningServer) -> None:
    b = open_backend(f"fleetlock+{secured.url}/")
    try:
        with pytest.raises(ConfigError, match="token"):
            await b.acquire("web", "a")
    finally:
        await b.close()


def test_redact_hides_passwords_and_tokens() -> None:
    url = "fleetlock+https://node:secret@host:8443/p/?token=abc&timeout=3"
    assert redact(url) == "fleetlock+https://node:***@host:8443/p/?token=***&timeout=3"


@pytest.mark.parametrize(
    "url", ["fleetlock+ftp://h/", "fleetlock+http:///nohost", "fleetlock+http://h/?bogus=1"]
)
def test_bad_urls_are_config_errors(url: str) -> None:
    with pytest.raises(ConfigError):
        FleetLockBackend.from_url(url)


def test_a_server_url_maps_to_its_backend_url() -> None:
    assert server_backend_url("http://h:8080/") == "fleetlock+http://h:8080/"
    with pytest.raises(ConfigError):
        server_backend_url("h:8080")


# --- a foreign server: airlock's behaviour ------------------------------------------------


class Airlock:
    """airlock's HTTP behaviour (reference/fleetlock.md §2), served for real: any method,
    text/plain JSON errors, a full semaphore as 500 `failed_lock`, and a CAS conflict (also
    500 `failed_lock`) on the first steady-state."""

    def __init__(self, slots: int = 1) -> None:
        self.slots = slots
        self.holders: list[str] = []
        self.conflicts = 1

    @staticmethod
    def _err(status: int, kind: str, value: str) -> Response:
        return Response(
            json.dumps({"kind": kind, "value": value}) + "\n", status, media_type="text/plain"
        )

    async def lock(self, request: Request) -> Response:
        node = json.loads(await request.body())["client_params"]["id"]
        if node not in self.holders:
            if len(self.holders) >= self.slots:
                return self._err(
                    500, "failed_lock", f"all {self.slots} semaphore slots currently locked"
                )
            self.holders.append(node)
        return Response(b"", 200)

    async def unlock(self, request: Request) -> Response:
        node = json.loads(await request.body())["client_params"]["id"]
        if self.conflicts:
            self.conflicts -= 1
            return self._err(500, "failed_lock", "conflict on semaphore detected, aborting")
        if node in self.holders:
            self.holders.remove(node)
        return Response(b"", 200)


@contextmanager
def serving(app: Starlette) -> Iterator[str]:
    """`app` on a free loopback port, as a fleetlock backend URL."""
    sock = free_socket()
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started and thread.is_alive():
        thread.join(0.01)
    try:
        yield f"fleetlock+http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(15)
        sock.close()


@pytest.fixture
def airlock() -> Iterator[tuple[str, Airlock]]:
    state = Airlock()
    app = Starlette(
        routes=[
            Route("/v1/pre-reboot", state.lock, methods=["POST", "GET"]),
            Route("/v1/steady-state", state.unlock, methods=["POST", "GET"]),
        ]
    )
    with serving(app) as url:
        yield url, state


async def test_airlocks_full_semaphore_500_is_a_denial(airlock: tuple[str, Airlock]) -> None:
    url, _ = airlock
    b = open_backend(url, retries=0)
    try:
        assert isinstance(await b.acquire("default", "a"), Granted)
        denied = await b.acquire("default", "b")
        assert isinstance(denied, Denied)
        assert (denied.reason, denied.max) == (DenyReason.FULL, 1)
    finally:
        await b.close()


async def test_airlocks_conflict_500_is_retried(airlock: tuple[str, Airlock]) -> None:
    url, state = airlock
    b = open_backend(url, retries=2, rng=random.Random(0))
    try:
        await b.acquire("default", "a")
        assert isinstance(await b.release("default", "a"), Released)
        assert state.holders == []
    finally:
        await b.close()


async def test_admin_operations_on_a_foreign_server_say_it_is_not_stagger(
    airlock: tuple[str, Airlock],
) -> None:
    b = open_backend(airlock[0])
    try:
        with pytest.raises(ConfigError, match="not a stagger server"):
            await b.status()
        hold = await b.touch("default", "a")  # no heartbeat in FleetLock: assumed kept
        assert hold is not None
    finally:
        await b.close()


# --- a stagger server of another version -------------------------------------------------


@pytest.fixture
def other_version() -> Iterator[str]:
    """A server that answers stagger's endpoints with 200 and documents of another shape."""

    async def unknown_shape(request: Request) -> Response:
        return Response(json.dumps({"shape": "from another version"}), 200)

    app = Starlette(
        routes=[
            Route("/v1/status", unknown_shape, methods=["GET"]),
            Route("/v1/nodes/{node}/report", unknown_shape, methods=["POST"]),
            Route("/v1/nodes/{node}", unknown_shape, methods=["DELETE"]),
        ]
    )
    with serving(app) as url:
        yield url


async def test_an_answer_of_another_version_is_said_for_every_call(other_version: str) -> None:
    b = open_backend(other_version, retries=0)
    calls: dict[str, Callable[[], Awaitable[object]]] = {
        "show status": lambda: b.status(),
        "a node report": lambda: b.report(NodeReport("web-1", "web", State.IDLE)),
        "forget": lambda: b.forget("web-1", by="operator:alice"),
    }
    try:
        for what, call in calls.items():
            with pytest.raises(BackendUnavailable) as err:
                await call()
            assert f"answered {what} with a document this stagger cannot read" in str(err.value)
            assert "are both the same version?" in str(err.value)
    finally:
        await b.close()


async def test_a_denial_beyond_the_full_queue_comes_back_with_the_queues_length(
    fl: Backend, tmp_path: Path
) -> None:
    store = open_backend(f"sqlite:///{tmp_path}/s.db")  # the server's store, filled directly
    try:
        await store.set_max("web", 1, by="operator:t")
        assert isinstance(await store.acquire("web", "holder"), Granted)
        for i in range(QUEUE_LIMIT):
            await store.acquire("web", f"w{i:04d}")
    finally:
        await store.close()
    late = await fl.acquire("web", "late")
    assert isinstance(late, Denied)
    assert (late.reason, late.position, late.queue_full) == (DenyReason.FULL, None, QUEUE_LIMIT)
    assert late.sentence().endswith(
        f"the queue is full ({QUEUE_LIMIT} nodes wait): this node has no place yet and keeps "
        "asking; it joins the queue when a place frees"
    )


async def test_status_reads_a_row_per_holder_not_every_report(
    fl: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    from stagger.backends.node_pages import holder_reports

    await fl.set_max("web", 2, by="test")
    # ids that prefix one another: the holder's own row must be the one found
    for node_id in ("n1", "n10", "n100", "n11", "n2", "n20", *(f"m{i}" for i in range(60))):
        state = State.HALTED if node_id == "n1" else State.IDLE
        await fl.report(NodeReport(node_id, "web", state))
    await fl.report(NodeReport("n2", "db", State.HALTED))  # n2 now reports for another group
    assert isinstance(await fl.acquire("web", "n1"), Granted)
    assert isinstance(await fl.acquire("web", "n2"), Granted)
    pages: list[object] = []
    real = fl.node_page  # type: ignore[attr-defined]

    async def counted(query: object, silent_after: timedelta) -> object:
        pages.append(query)
        return await real(query, silent_after)

    monkeypatch.setattr(fl, "node_page", counted)
    stored = await holder_reports(fl, await fl.status("web"))
    assert {(r.id, r.group, r.state) for r in stored.reports} == {
        ("n1", "web", State.HALTED),
    }  # n2's report is of db: its row in web is its lock alone, no report
    assert len(pages) == 2  # one small page per holder
