"""Forgetting a node (`Backend.forget`): the contract, checked on SQLite, a real etcd and the
FleetLock client talking to a real stagger server (`DELETE /v1/nodes/{id}`)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from server_support import RunningServer, running
from stagger.backends.factory import open_backend
from stagger.backends.protocol import Backend
from stagger.core.cycle.node_state import State
from stagger.core.errors import InvalidInput
from stagger.core.fleet_view import fleet_nodes
from stagger.core.forget import NodeHoldsSlot
from stagger.core.node_report import NodeReport
from stagger.core.semaphore import Action
from stagger.server.settings import ServerSettings, Token, digest

OP = "operator:alice"
ADMIN = {"authorization": "Bearer admin-secret"}


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RunningServer]:
    tokens = (
        Token("admin", digest("admin-secret"), admin=True),
        Token("web-node", digest("web-secret"), admin=False, groups=frozenset({"web"})),
    )
    with running(ServerSettings(backend_url=f"sqlite:///{tmp_path}/s.db", tokens=tokens)) as srv:
        yield srv


@pytest.fixture(params=["sqlite", "etcd", "server"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/stagger.db"
    elif request.param == "etcd":
        url = f"{request.getfixturevalue('etcd_server').url}?prefix=forget-{tmp_path.name}/"
    else:
        srv: RunningServer = request.getfixturevalue("server")
        url = f"fleetlock+{srv.url}/?token=admin-secret&retries=0"
    b = open_backend(url)
    yield b
    await b.close()


async def test_forgetting_a_reported_node_removes_it_from_the_nodes(store: Backend) -> None:
    await store.report(NodeReport("gone", "web", State.IDLE))
    await store.report(NodeReport("kept", "web", State.IDLE))
    assert await store.forget("gone", by=OP) is True
    assert [n.id for n in await store.nodes()] == ["kept"]


async def test_forgetting_an_unknown_node_returns_false_and_writes_nothing(
    store: Backend,
) -> None:
    await store.set_max("web", 2, by=OP)
    before = await store.history()
    assert await store.forget("never-seen", by=OP) is False
    assert await store.history() == before


async def test_a_forget_is_recorded_in_the_history_of_the_reports_group(store: Backend) -> None:
    await store.set_max("web", 2, by=OP)
    await store.report(NodeReport("gone", "web", State.IDLE))
    await store.forget("gone", by=OP)
    (event, *_) = await store.history("web")
    assert (event.action, event.id, event.by, event.group) == (
        Action.FORGOTTEN,
        "gone",
        OP,
        "web",
    )


async def test_forgetting_a_node_of_a_group_never_written_does_not_create_the_group(
    store: Backend,
) -> None:
    await store.report(NodeReport("gone", "web", State.IDLE))
    assert await store.forget("gone", by=OP) is True
    assert (await store.status()).groups == ()
    assert await store.history() == []


async def test_a_node_that_holds_a_slot_cannot_be_forgotten(store: Backend) -> None:
    await store.report(NodeReport("busy", "web", State.REBOOTING))
    await store.acquire("web", "busy")
    with pytest.raises(NodeHoldsSlot, match=r"stagger unlock --group web --id busy"):
        await store.forget("busy", by=OP)
    assert [n.id for n in await store.nodes()] == ["busy"]


async def test_a_slot_held_in_another_group_than_the_report_also_refuses(store: Backend) -> None:
    await store.report(NodeReport("busy", "web", State.IDLE))
    await store.acquire("db", "busy")
    with pytest.raises(NodeHoldsSlot) as caught:
        await store.forget("busy", by=OP)
    assert caught.value.group == "db"


async def test_a_node_released_by_an_operator_can_then_be_forgotten(store: Backend) -> None:
    await store.report(NodeReport("stuck", "web", State.REBOOTING))
    await store.acquire("web", "stuck")
    await store.release("web", "stuck", by=OP)
    assert await store.forget("stuck", by=OP) is True


async def test_a_forgotten_node_is_not_listed_from_its_earlier_locks(store: Backend) -> None:
    await store.report(NodeReport("old", "web", State.IDLE))
    await store.acquire("web", "old")
    await store.release("web", "old")
    await store.forget("old", by=OP)
    snap = await store.status()
    views = fleet_nodes(
        await store.nodes(),
        {g.group: g.holds for g in snap.groups},
        await store.history(),
        snap.now,
    )
    assert views == []


async def test_a_forgotten_node_whose_agent_still_runs_comes_back_with_its_next_report(
    store: Backend,
) -> None:
    await store.report(NodeReport("alive", "web", State.IDLE))
    await store.forget("alive", by=OP)
    await store.report(NodeReport("alive", "web", State.IDLE))
    assert [n.id for n in await store.nodes()] == ["alive"]


async def test_forgetting_a_bad_id_is_refused(store: Backend) -> None:
    with pytest.raises(InvalidInput):
        await store.forget("bad\nid", by=OP)


# --- the endpoint -----------------------------------------------------------------------------


def test_forgetting_through_the_api_needs_an_admin_token(server: RunningServer) -> None:
    r = httpx.delete(server.url + "/v1/nodes/x", headers={"authorization": "Bearer web-secret"})
    assert (r.status_code, r.json()["kind"]) == (403, "forbidden")


def test_the_api_refuses_to_forget_a_holder_with_409_naming_the_group(
    server: RunningServer,
) -> None:
    proto = {"authorization": "Bearer web-secret", "fleet-lock-protocol": "true"}
    body = {"client_params": {"id": "web-node", "group": "web"}}
    assert httpx.post(server.url + "/v1/pre-reboot", json=body, headers=proto).status_code == 200
    r = httpx.delete(server.url + "/v1/nodes/web-node", headers=ADMIN)
    assert r.status_code == 409
    assert (r.json()["kind"], r.json()["group"]) == ("node_holds_slot", "web")
