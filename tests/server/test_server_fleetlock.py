"""FleetLock v1 conformance, written from the spec (coreos/zincati
docs/development/fleetlock/protocol.md; ../shared/reference/fleetlock.md §1) plus the
client behaviours of Zincati and Flatcar. Every test talks HTTP to a real uvicorn server on
127.0.0.1, over SQLite and over a real etcd."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import backend_url
from server_support import PROTO, RunningServer, body, running
from stagger.api import ErrorKind
from stagger.server.settings import ServerSettings, UnknownGroups

KINDS = {k.value for k in ErrorKind}


@pytest.fixture(scope="module", params=["sqlite", "etcd"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    """One server per backend for the module; tests isolate themselves by group name."""
    if request.param == "etcd":
        pytest.importorskip("stagger.backends.etcd")
    url = backend_url(request.param, request, tmp_path_factory.mktemp("fleetlock"))
    with running(ServerSettings(backend_url=url)) as srv:
        yield srv


@pytest.fixture
def client(server: RunningServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=10) as c:
        yield c


@pytest.fixture
def group(client: httpx.Client) -> str:
    """A fresh group with max 1."""
    return new_group(client, 1)


def new_group(client: httpx.Client, max_: int) -> str:
    name = f"g-{uuid.uuid4().hex[:10]}"
    r = client.put(f"/v1/groups/{name}/max", json={"max": max_})
    assert r.status_code == 200, r.text
    return name


def lock(client: httpx.Client, node_id: str, group: str, **kw: Any) -> httpx.Response:
    return client.post("/v1/pre-reboot", json=body(node_id, group), headers=PROTO, **kw)


def unlock(client: httpx.Client, node_id: str, group: str) -> httpx.Response:
    return client.post("/v1/steady-state", json=body(node_id, group), headers=PROTO)


def assert_error(r: httpx.Response, status: int, kind: ErrorKind) -> dict[str, Any]:
    """The spec's error shape: a 4xx/5xx, a JSON object with non-empty string kind and
    value, sent as application/json, with a kind from our fixed set."""
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/json"
    doc = r.json()
    assert isinstance(doc, dict)
    assert isinstance(doc["kind"], str)
    assert doc["kind"]
    assert isinstance(doc["value"], str)
    assert doc["value"]
    assert doc["kind"] in KINDS
    assert doc["kind"] == kind.value
    return doc


# --- success ------------------------------------------------------------------------------


def test_pre_reboot_grants_a_free_slot_with_200_and_an_empty_json_object(
    client: httpx.Client, group: str
) -> None:
    r = lock(client, "node-a", group)
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json"
    assert r.json() == {}


def test_steady_state_releases_the_slot_for_another_node(client: httpx.Client, group: str) -> None:
    assert lock(client, "node-a", group).status_code == 200
    assert unlock(client, "node-a", group).status_code == 200
    assert lock(client, "node-b", group).status_code == 200


def test_zincati_pretty_printed_body_is_accepted(client: httpx.Client, group: str) -> None:
    raw = json.dumps(body("c988d2509fdf5cdcbed39037c56406fb", group), indent=2)
    r = client.post("/v1/pre-reboot", content=raw, headers=PROTO)
    assert r.status_code == 200


def test_unknown_fields_in_the_body_are_ignored(client: httpx.Client, group: str) -> None:
    doc = {"client_params": {"id": "a", "group": group, "extra": 1}, "more": True}
    assert client.post("/v1/pre-reboot", json=doc, headers=PROTO).status_code == 200


def test_protocol_header_value_is_compared_case_insensitively(
    client: httpx.Client, group: str
) -> None:
    r = client.post(
        "/v1/pre-reboot", json=body("a", group), headers={"Fleet-Lock-Protocol": "True"}
    )
    assert r.status_code == 200


# --- semantics: a counting semaphore with recursive locking and ownership -----------------


def test_lock_is_recursive_and_takes_one_slot_only(client: httpx.Client) -> None:
    group = new_group(client, 2)
    for _ in range(3):
        assert lock(client, "node-a", group).status_code == 200
    assert lock(client, "node-b", group).status_code == 200
    assert_error(lock(client, "node-c", group), 423, ErrorKind.FAILED_LOCK_SEMAPHORE_FULL)


def test_a_full_group_denies_with_failed_lock_semaphore_full(
    client: httpx.Client, group: str
) -> None:
    assert lock(client, "node-a", group).status_code == 200
    doc = assert_error(lock(client, "node-b", group), 423, ErrorKind.FAILED_LOCK_SEMAPHORE_FULL)
    assert "node-a" in doc["value"]
    assert doc["holders"] == ["node-a"]
    assert doc["max"] == 1


def test_a_denial_follows_every_change_of_the_group(client: httpx.Client, group: str) -> None:
    """The server decides once per group value what non-holders get, and encodes that
    denial once per place in the queue: each change (a pause, a resume, a new holder, a new
    max) must show."""
    client.post(f"/v1/groups/{group}/pause", json={"reason": "freeze 7"})
    doc = assert_error(lock(client, "x1", group), 423, ErrorKind.FAILED_LOCK_PAUSED)
    assert "freeze 7" in doc["value"]
    assert doc["position"] == 1
    client.post(f"/v1/groups/{group}/resume")
    doc = assert_error(lock(client, "node-a", group), 423, ErrorKind.FAILED_LOCK_QUEUED)
    assert doc["position"] == 2, "x1 asked first, during the pause"
    assert lock(client, "x1", group).status_code == 200
    for asker, place in (("node-a", 1), ("x2", 2)):
        doc = assert_error(lock(client, asker, group), 423, ErrorKind.FAILED_LOCK_SEMAPHORE_FULL)
        assert (doc["holders"], doc["position"]) == (["x1"], place)
    assert unlock(client, "x1", group).status_code == 200
    assert lock(client, "node-a", group).status_code == 200
    doc = assert_error(lock(client, "x2", group), 423, ErrorKind.FAILED_LOCK_SEMAPHORE_FULL)
    assert doc["holders"] == ["node-a"]
    assert client.put(f"/v1/groups/{group}/max", json={"max": 2}).status_code == 200
    assert lock(client, "x2", group).status_code == 200
    doc = assert_error(lock(client, "node-b", group), 423, ErrorKind.FAILED_LOCK_SEMAPHORE_FULL)
    assert doc["holders"] == ["node-a", "x2"]
    assert doc["max"] == 2


def test_max_n_admits_exactly_n_distinct_ids(client: httpx.Client) -> None:
    group = new_group(client, 3)
    codes = [lock(client, f"n{i}", group).status_code for i in range(5)]
    assert codes == [200, 200, 200, 423, 423]


def test_unlock_without_a_slot_is_a_success(client: httpx.Client, group: str) -> None:
    assert unlock(client, "never-locked", group).status_code == 200


def test_unbalanced_unlocks_after_a_lock_all_succeed(client: httpx.Client, group: str) -> None:
    assert lock(client, "node-a", group).status_code == 200
    assert [unlock(client, "node-a", group).status_code for _ in range(3)] == [200] * 3


def test_only_the_holder_can_release_its_slot(client: httpx.Client, group: str) -> None:
    assert lock(client, "node-a", group).status_code == 200
    assert unlock(client, "node-b", group).status_code == 200  # a no-op success
    assert_error(lock(client, "node-c", group), 423, ErrorKind.FAILED_LOCK_SEMAPHORE_FULL)


def test_ids_are_case_sensitive(client: httpx.Client, group: str) -> None:
    assert lock(client, "Node", group).status_code == 200
    assert_error(lock(client, "node", group), 423, ErrorKind.FAILED_LOCK_SEMAPHORE_FULL)


def test_groups_are_separate_buckets(client: httpx.Client) -> None:
    web, db = new_group(client, 1), new_group(client, 1)
    assert lock(client, "a", web).status_code == 200
    assert lock(client, "b", db).status_code == 200


def test_a_paused_group_denies_with_failed_lock_paused(client: httpx.Client, group: str) -> None:
    r = client.post(f"/v1/groups/{group}/pause", json={"reason": "incident 42"})
    assert r.status_code == 200, r.text
    doc = assert_error(lock(client, "node-a", group), 423, ErrorKind.FAILED_LOCK_PAUSED)
    assert "incident 42" in doc["value"]


def test_a_holder_can_release_while_its_group_is_paused(client: httpx.Client, group: str) -> None:
    assert lock(client, "node-a", group).status_code == 200
    client.post(f"/v1/groups/{group}/pause", json={"reason": "freeze"})
    assert unlock(client, "node-a", group).status_code == 200
    status = client.get(f"/v1/groups/{group}").json()
    assert status["holds"] == []


def test_a_holder_locking_again_while_paused_keeps_its_slot(
    client: httpx.Client, group: str
) -> None:
    assert lock(client, "node-a", group).status_code == 200
    client.post(f"/v1/groups/{group}/pause", json={"reason": "freeze"})
    assert lock(client, "node-a", group).status_code == 200


async def test_concurrent_locks_never_exceed_max_and_never_fail(
    server: RunningServer, client: httpx.Client
) -> None:
    group = new_group(client, 3)
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as ac:
        responses = await asyncio.gather(
            *(
                ac.post("/v1/pre-reboot", json=body(f"n{i}", group), headers=PROTO)
                for i in range(40)
            )
        )
        held = (await ac.get(f"/v1/groups/{group}")).json()["held"]
    codes = sorted(r.status_code for r in responses)
    assert codes == [200] * 3 + [423] * 37
    assert held == 3


async def test_concurrent_cycles_release_every_slot_without_errors(
    server: RunningServer, client: httpx.Client
) -> None:
    group = new_group(client, 2)

    async def cycle(ac: httpx.AsyncClient, node: str) -> list[int]:
        codes = []
        for _ in range(5):
            codes.append(
                (await ac.post("/v1/pre-reboot", json=body(node, group), headers=PROTO)).status_code
            )
            codes.append(
                (
                    await ac.post("/v1/steady-state", json=body(node, group), headers=PROTO)
                ).status_code
            )
        return codes

    async with httpx.AsyncClient(base_url=server.url, timeout=30) as ac:
        results = await asyncio.gather(*(cycle(ac, f"n{i}") for i in range(8)))
        held = (await ac.get(f"/v1/groups/{group}")).json()["held"]
    flat = [c for codes in results for c in codes]
    assert set(flat) <= {200, 423}
    assert all(codes[i] == 200 for codes in results for i in range(1, len(codes), 2))
    assert held == 0


# --- request validation --------------------------------------------------------------------


def test_missing_protocol_header_is_an_invalid_request(client: httpx.Client, group: str) -> None:
    r = client.post("/v1/pre-reboot", json=body("a", group))
    assert_error(r, 400, ErrorKind.INVALID_REQUEST)


def test_protocol_header_other_than_true_is_an_invalid_request(
    client: httpx.Client, group: str
) -> None:
    r = client.post("/v1/pre-reboot", json=body("a", group), headers={"fleet-lock-protocol": "1"})
    assert_error(r, 400, ErrorKind.INVALID_REQUEST)


@pytest.mark.parametrize(
    "raw",
    [
        b"not json",
        b"[]",
        b"{}",
        b'{"client_params": "x"}',
        b'{"client_params": {"group": "default"}}',
        b'{"client_params": {"id": "", "group": "default"}}',
        b'{"client_params": {"id": 7, "group": "default"}}',
        b'{"client_params": {"id": "a\\u0000b", "group": "default"}}',
    ],
)
def test_a_malformed_body_or_id_is_an_invalid_request(client: httpx.Client, raw: bytes) -> None:
    assert_error(
        client.post("/v1/pre-reboot", content=raw, headers=PROTO), 400, ErrorKind.INVALID_REQUEST
    )


@pytest.mark.parametrize(
    "group", ["", "has space", "slash/y", "ünïcode", "under_score", None, "x" * 129]
)
def test_a_group_outside_the_spec_regex_is_an_invalid_group(
    client: httpx.Client, group: str | None
) -> None:
    doc = {"client_params": {"id": "a", "group": group}}
    assert_error(
        client.post("/v1/pre-reboot", json=doc, headers=PROTO), 400, ErrorKind.INVALID_GROUP
    )


def test_steady_state_validates_like_pre_reboot(client: httpx.Client) -> None:
    doc = {"client_params": {"id": "a", "group": "bad group"}}
    assert_error(
        client.post("/v1/steady-state", json=doc, headers=PROTO), 400, ErrorKind.INVALID_GROUP
    )
    assert_error(client.post("/v1/steady-state", json=body("a")), 400, ErrorKind.INVALID_REQUEST)


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PATCH"])
@pytest.mark.parametrize("path", ["/v1/pre-reboot", "/v1/steady-state"])
def test_other_methods_get_405_with_a_kind(client: httpx.Client, method: str, path: str) -> None:
    r = client.request(method, path, json=body("a"), headers=PROTO)
    assert_error(r, 405, ErrorKind.METHOD_NOT_ALLOWED)
    assert r.headers["allow"] == "POST"


def test_a_body_over_64_kib_gets_413(client: httpx.Client, group: str) -> None:
    doc = body("a", group)
    doc["padding"] = "x" * (64 * 1024)
    r = client.post("/v1/pre-reboot", json=doc, headers=PROTO)
    assert_error(r, 413, ErrorKind.PAYLOAD_TOO_LARGE)


def test_a_chunked_body_over_64_kib_gets_413(client: httpx.Client) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"client_params": {"id": "a", "group": "default"}, "pad": "'
        for _ in range(20):
            yield b"x" * 4096
        yield b'"}'

    r = client.post("/v1/pre-reboot", content=chunks(), headers=PROTO)
    assert_error(r, 413, ErrorKind.PAYLOAD_TOO_LARGE)


# --- URL joining of real clients -------------------------------------------------------------


@pytest.mark.parametrize("path", ["/v1/pre-reboot", "//v1/pre-reboot", "/v1/pre-reboot/"])
def test_endpoints_answer_whatever_the_base_url_slashes(
    server: RunningServer, group: str, path: str
) -> None:
    r = httpx.post(server.url + path, json=body("a", group), headers=PROTO)
    assert r.status_code == 200


def test_an_unknown_path_is_a_404_with_a_kind(client: httpx.Client) -> None:
    assert_error(
        client.post("/v2/pre-reboot", json=body("a"), headers=PROTO), 404, ErrorKind.NOT_FOUND
    )


# --- settings: prefix and unknown groups -------------------------------------------------------


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/stagger.db"


@pytest.mark.parametrize(
    "path",
    [
        "/fleet_lock/v1/pre-reboot",  # Zincati, base_url with a trailing slash
        "/fleet_lock//v1/pre-reboot",  # Flatcar's client adding one more slash
        "/v1/pre-reboot",  # Zincati, base_url without a trailing slash (last segment lost)
    ],
)
def test_a_path_prefix_is_served_as_clients_join_it(sqlite_url: str, path: str) -> None:
    with running(ServerSettings(backend_url=sqlite_url, prefix="/fleet_lock/")) as srv:
        r = httpx.post(srv.url + path, json=body("a"), headers=PROTO)
    assert r.status_code == 200


def test_unknown_groups_are_created_with_the_default_max(sqlite_url: str) -> None:
    with (
        running(ServerSettings(backend_url=sqlite_url, default_max=2)) as srv,
        httpx.Client(base_url=srv.url) as c,
    ):
        assert [lock(c, n, "fresh").status_code for n in "abc"] == [200, 200, 423]


def test_refuse_policy_answers_unknown_group_for_a_group_not_configured(sqlite_url: str) -> None:
    settings = ServerSettings(
        backend_url=sqlite_url, unknown_groups=UnknownGroups.REFUSE, groups={"web": 2}
    )
    with running(settings) as srv, httpx.Client(base_url=srv.url) as c:
        assert_error(lock(c, "a", "other"), 404, ErrorKind.UNKNOWN_GROUP)
        assert_error(unlock(c, "a", "other"), 404, ErrorKind.UNKNOWN_GROUP)
        assert [lock(c, n, "web").status_code for n in "abc"] == [200, 200, 423]


def test_refuse_policy_accepts_a_group_an_operator_created(sqlite_url: str) -> None:
    settings = ServerSettings(backend_url=sqlite_url, unknown_groups=UnknownGroups.REFUSE)
    with running(settings) as srv, httpx.Client(base_url=srv.url) as c:
        assert c.put("/v1/groups/db/max", json={"max": 1}).status_code == 200
        assert lock(c, "a", "db").status_code == 200


def test_configured_groups_keep_a_max_changed_live_across_a_restart(sqlite_url: str) -> None:
    settings = ServerSettings(backend_url=sqlite_url, groups={"web": 2})
    with running(settings) as srv, httpx.Client(base_url=srv.url) as c:
        assert c.put("/v1/groups/web/max", json={"max": 5}).status_code == 200
    with running(settings) as srv, httpx.Client(base_url=srv.url) as c:
        assert c.get("/v1/groups/web").json()["max"] == 5


# --- two servers, one etcd: stateless servers behave as one -----------------------------------


@pytest.fixture
def two_servers(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[RunningServer, RunningServer]]:
    url = backend_url("etcd", request, tmp_path)
    settings = ServerSettings(backend_url=url, groups={"web": 3})
    with running(settings) as a, running(settings) as b:
        yield a, b


async def test_two_servers_on_one_etcd_never_over_grant_and_never_fail(
    two_servers: tuple[RunningServer, RunningServer],
) -> None:
    a, b = two_servers
    max_, clients, cycles = 3, 12, 8
    believed = 0  # clients between a 200 from pre-reboot and sending steady-state
    peak = 0
    codes: list[int] = []

    async def client(i: int) -> None:
        nonlocal believed, peak
        node = f"node-{i}"
        async with httpx.AsyncClient(timeout=30) as ac:
            done = 0
            for attempt in range(cycles * 50):
                srv = (a, b)[(i + attempt) % 2]
                r = await ac.post(f"{srv.url}/v1/pre-reboot", json=body(node, "web"), headers=PROTO)
                codes.append(r.status_code)
                if r.status_code != 200:
                    await asyncio.sleep(0.002)
                    continue
                believed += 1
                peak = max(peak, believed)
                assert believed <= max_
                await asyncio.sleep(0.003)
                believed -= 1
                other = (a, b)[(i + attempt + 1) % 2]
                r = await ac.post(
                    f"{other.url}/v1/steady-state", json=body(node, "web"), headers=PROTO
                )
                codes.append(r.status_code)
                done += 1
                if done == cycles:
                    return
            pytest.fail(f"{node} completed only {done} of {cycles} cycles")

    await asyncio.gather(*(client(i) for i in range(clients)))
    assert set(codes) <= {200, 423}, "no 5xx, no CAS conflict reaches a client"
    assert 1 <= peak <= max_
    async with httpx.AsyncClient() as ac:
        doc = (await ac.get(f"{a.url}/v1/groups/web")).json()
    assert doc["held"] == 0
    history = list(reversed(await _history(b.url)))  # oldest first: the committed order
    assert sum(e["action"] == "acquired" for e in history) == clients * cycles
    # Replaying the committed history: never more than max held, and the slots were really
    # contended (the store, not the clients' timing, says how many were held at once).
    held, most = 0, 0
    for e in history:
        held += {"acquired": 1, "released": -1}.get(e["action"], 0)
        most = max(most, held)
        assert held <= max_
    assert most == max_, "the slots were actually contended"


async def _history(url: str) -> list[dict[str, Any]]:
    async with httpx.AsyncClient() as ac:
        r = await ac.get(f"{url}/v1/groups/web/history", params={"limit": 1000})
    events: list[dict[str, Any]] = r.json()["events"]
    return events
