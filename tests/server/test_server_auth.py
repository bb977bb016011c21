"""Auth: admin tokens may do everything, node tokens only FleetLock calls and heartbeats in
their groups, and nobody else anything but the probes, /metrics and /openapi.json. Bearer and
HTTP Basic (the secret as the password) are both accepted. A real server on SQLite."""

from __future__ import annotations

import base64
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from server_support import PROTO, RunningServer, body, running
from stagger.core.errors import ConfigError
from stagger.server.settings import (
    ServerSettings,
    admin_tokens_from_file,
    node_tokens_from_file,
)

ADMIN = "admin-secret-1"
NODE = "node-secret-web"

# (name, method, path, json, audience) — audience: "node" (FleetLock/heartbeat, group web),
# "admin" (status and admin API), "open" (probes, metrics, the API document).
ENDPOINTS: list[tuple[str, str, str, dict[str, Any] | None, str]] = [
    ("pre-reboot", "POST", "/v1/pre-reboot", body("web-07", "web"), "node"),
    ("steady-state", "POST", "/v1/steady-state", body("web-07", "web"), "node"),
    ("touch", "POST", "/v1/groups/web/holds/web-07/touch", None, "node"),
    ("status", "GET", "/v1/status", None, "admin"),
    ("history", "GET", "/v1/history", None, "admin"),
    ("group", "GET", "/v1/groups/web", None, "admin"),
    ("group-history", "GET", "/v1/groups/web/history", None, "admin"),
    ("set-max", "PUT", "/v1/groups/web/max", {"max": 2}, "admin"),
    ("pause", "POST", "/v1/groups/web/pause", {"reason": "r"}, "admin"),
    ("resume", "POST", "/v1/groups/web/resume", None, "admin"),
    ("pause-fleet", "POST", "/v1/pause", {"reason": "r"}, "admin"),
    ("resume-fleet", "POST", "/v1/resume", None, "admin"),
    ("unlock", "DELETE", "/v1/groups/web/holds/n1", None, "admin"),
    ("healthz", "GET", "/healthz", None, "open"),
    ("readyz", "GET", "/readyz", None, "open"),
    ("metrics", "GET", "/metrics", None, "open"),
    ("openapi", "GET", "/openapi.json", None, "open"),
]


def basic(user: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{secret}".encode()).decode()


CREDENTIALS = {
    "none": None,
    "bad": "Bearer not-a-token",
    "node": f"Bearer {NODE}",
    "node-basic": basic("web-07", NODE),
    "admin": f"Bearer {ADMIN}",
    "admin-basic": basic("alice", ADMIN),
}


def expected(audience: str, who: str) -> int:
    if audience == "open":
        return 200
    if who in ("none", "bad"):
        return 401
    if who.startswith("admin") or audience == "node":
        return 200
    return 403


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    d = tmp_path_factory.mktemp("auth")
    (d / "admin").write_text(f"# admins\n{ADMIN}\n")
    (d / "nodes").write_text(f"web-07:{NODE}:web\ndb-01:node-secret-db:db\n")
    tokens = (*admin_tokens_from_file(d / "admin"), *node_tokens_from_file(d / "nodes"))
    settings = ServerSettings(backend_url=f"sqlite:///{d}/s.db", tokens=tokens)
    with running(settings) as srv:
        yield srv


def call(
    server: RunningServer, method: str, path: str, doc: Any, auth: str | None
) -> httpx.Response:
    headers = dict(PROTO)
    if auth is not None:
        headers["authorization"] = auth
    return httpx.request(method, server.url + path, json=doc, headers=headers, timeout=10)


@pytest.mark.parametrize("who", list(CREDENTIALS))
@pytest.mark.parametrize(
    ("name", "method", "path", "doc", "audience"), ENDPOINTS, ids=[e[0] for e in ENDPOINTS]
)
def test_auth_matrix(
    server: RunningServer,
    who: str,
    name: str,
    method: str,
    path: str,
    doc: Any,
    audience: str,
) -> None:
    r = call(server, method, path, doc, CREDENTIALS[who])
    assert r.status_code == expected(audience, who), r.text
    if r.status_code == 401:
        assert r.json()["kind"] == "unauthorized"
        assert "Bearer" in r.headers["www-authenticate"]
        assert "Basic" in r.headers["www-authenticate"]
    if r.status_code == 403:
        assert r.json()["kind"] == "forbidden"


@pytest.mark.parametrize("path", ["/v1/pre-reboot", "/v1/steady-state"])
def test_a_node_token_is_forbidden_outside_its_groups(server: RunningServer, path: str) -> None:
    r = call(server, "POST", path, body("web-07", "db"), CREDENTIALS["node"])
    assert (r.status_code, r.json()["kind"]) == (403, "forbidden")


def test_a_node_token_cannot_heartbeat_outside_its_groups(server: RunningServer) -> None:
    r = call(server, "POST", "/v1/groups/db/holds/web-07/touch", None, CREDENTIALS["node"])
    assert r.status_code == 403


def test_credentials_in_the_url_work_as_zincati_sends_them(server: RunningServer) -> None:
    url = server.url.replace("http://", f"http://web-07:{NODE}@") + "/v1/pre-reboot"
    assert httpx.post(url, json=body("web-07", "web"), headers=PROTO).status_code == 200


@pytest.mark.parametrize(
    "header",
    ["Basic !!!notbase64", "Basic " + base64.b64encode(b"no-colon").decode(), "Digest x", "Bearer"],
)
def test_malformed_credentials_are_unauthorized(server: RunningServer, header: str) -> None:
    r = call(server, "POST", "/v1/pre-reboot", body("n1", "web"), header)
    assert (r.status_code, r.json()["kind"]) == (401, "unauthorized")


def test_secrets_never_appear_in_the_log(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "admin").write_text(ADMIN)
    settings = ServerSettings(
        backend_url="etcd://127.0.0.1:9?timeout=0.2",  # failing backend: errors get logged
        tokens=tuple(admin_tokens_from_file(tmp_path / "admin")),
    )
    caplog.set_level(logging.DEBUG)
    with running(settings) as srv:
        call(srv, "POST", "/v1/pre-reboot", body("n", "web"), f"Bearer {ADMIN}")
        call(srv, "GET", "/v1/status", None, basic("u", ADMIN))
        call(srv, "GET", "/v1/status", None, "Bearer wrong-secret")
    assert caplog.records, "the failing backend should have been logged"
    assert ADMIN not in caplog.text
    assert "wrong-secret" not in caplog.text


def test_the_token_digest_is_not_in_the_settings_repr(tmp_path: Path) -> None:
    (tmp_path / "admin").write_text(ADMIN)
    tokens = admin_tokens_from_file(tmp_path / "admin")
    assert tokens[0].digest not in repr(ServerSettings(tokens=tuple(tokens)))


@pytest.mark.parametrize(
    "line", ["no-colons", "a:b", "a::web", "a:b:bad_group", "evil/../x:s:web", ".hidden:s:web"]
)
def test_a_malformed_node_token_line_is_a_config_error(tmp_path: Path, line: str) -> None:
    (tmp_path / "nodes").write_text(line)
    with pytest.raises(ConfigError):
        node_tokens_from_file(tmp_path / "nodes")


def test_an_empty_token_file_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "admin").write_text("# nothing\n\n")
    with pytest.raises(ConfigError, match="holds no token"):
        admin_tokens_from_file(tmp_path / "admin")
