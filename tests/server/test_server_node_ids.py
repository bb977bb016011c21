"""Every id that can hold a slot can be released, touched, reported and forgotten: an id
that could not be (a '/', a leading '.', a control character) is refused at the door with the
rule, on every path that takes one, by the server and by `stagger lock`. A real server on
SQLite, auth off (the id rule does not depend on who calls)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from cli_support import run
from server_support import PROTO, RunningServer, body, running
from stagger.server.settings import ServerSettings

# What real clients send: Zincati's and Flatcar's app-specific machine ids (32 hex digits),
# hostnames and FQDNs, UUIDs, host:port, snake_case.
GOOD = [
    "e0f3745b108f471cbd4883c6fbed8cdd",
    "web-07",
    "web-07.prod.example.com",
    "2f1c0e4a-7d3b-4a8e-9c61-0b5d3e2f4a10",
    "db-1:5432",
    "node_7",
    "x" * 256,
]
BAD = ["evil/../x", "..", ".hidden", "a b", "\u0007", "tab\there", "é", "a?b", "a#b", "x" * 257]
RULE = "1 to 256 characters from A-Z, a-z, 0-9, '.', '_', ':' and '-', not starting with '.'"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    d: Path = tmp_path_factory.mktemp("ids")
    with running(ServerSettings(backend_url=f"sqlite:///{d}/s.db", default_max=1000)) as srv:
        yield srv


@pytest.mark.parametrize("node_id", GOOD)
def test_an_id_that_can_lock_can_be_touched_reported_unlocked_and_forgotten(
    server: RunningServer, node_id: str
) -> None:
    url, segment = server.url, quote(node_id, safe="")
    assert httpx.post(url + "/v1/pre-reboot", json=body(node_id, "web"), headers=PROTO).is_success
    touched = httpx.post(f"{url}/v1/groups/web/holds/{segment}/touch")
    assert touched.json()["held"] is True
    report = {"group": "web", "state": "rebooting"}
    assert httpx.post(f"{url}/v1/nodes/{segment}/report", json=report).is_success
    unlocked = httpx.delete(f"{url}/v1/groups/web/holds/{segment}")
    assert unlocked.json()["released"] is True
    assert httpx.delete(f"{url}/v1/nodes/{segment}").json()["forgotten"] is True


@pytest.mark.parametrize("node_id", BAD)
def test_an_id_that_could_not_be_released_cannot_lock(server: RunningServer, node_id: str) -> None:
    r = httpx.post(server.url + "/v1/pre-reboot", json=body(node_id, "web"), headers=PROTO)
    assert (r.status_code, r.json()["kind"]) == (400, "invalid_request")
    assert RULE in r.json()["value"]
    holds = httpx.get(server.url + "/v1/groups/web").json()["holds"]
    assert node_id not in [h["id"] for h in holds]


@pytest.mark.parametrize("node_id", [i for i in BAD if "/" not in i and i != ".."])
@pytest.mark.parametrize(
    ("method", "template"),
    [
        ("POST", "/v1/groups/web/holds/{}/touch"),
        ("DELETE", "/v1/groups/web/holds/{}"),
        ("POST", "/v1/nodes/{}/report"),
        ("DELETE", "/v1/nodes/{}"),
    ],
)
def test_every_path_that_takes_an_id_states_the_rule(
    server: RunningServer, node_id: str, method: str, template: str
) -> None:
    url = server.url + template.format(quote(node_id, safe=""))
    r = httpx.request(method, url, json={"group": "web", "state": "idle"})
    assert (r.status_code, r.json()["kind"]) == (400, "invalid_request")
    assert RULE in r.json()["value"]


def test_stagger_lock_refuses_such_an_id_with_the_rule(tmp_path: Path) -> None:
    r = run("lock", "--id", "evil/../x", backend=f"sqlite:///{tmp_path}/s.db")
    assert r.code == 2
    assert RULE in r.err
    assert "Traceback" not in r.err


def test_stagger_lock_through_the_server_refuses_it_too(server: RunningServer) -> None:
    r = run("lock", "--id", "evil/../x", "--group", "web", backend=f"fleetlock+{server.url}/")
    assert r.code == 2, r.err
    assert RULE in r.err
