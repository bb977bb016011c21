"""`dashboard_auth`: the dashboard asks for the admin token (the browser's own password
prompt, HTTP Basic, the token as the password); by default it is readable without one. And
an admin act a browser sends from another site's page is refused, so credentials a browser
keeps for the dashboard cannot be used by that page. A real server on SQLite."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from server_support import PROTO, RunningServer, body, running
from stagger.core.errors import ConfigError
from stagger.server.settings import ServerSettings, admin_tokens_from_file, node_tokens_from_file

ADMIN = "admin-secret-1"
NODE = "node-secret-web"


def basic(secret: str, user: str = "alice") -> dict[str, str]:
    return {"authorization": "Basic " + base64.b64encode(f"{user}:{secret}".encode()).decode()}


def settings_for(d: Path, dashboard_auth: bool) -> ServerSettings:
    (d / "admin").write_text(f"{ADMIN}\n")
    (d / "nodes").write_text(f"web-07:{NODE}:web\n")
    tokens = (*admin_tokens_from_file(d / "admin"), *node_tokens_from_file(d / "nodes"))
    return ServerSettings(
        backend_url=f"sqlite:///{d}/s.db", tokens=tokens, dashboard_auth=dashboard_auth
    )


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with running(settings_for(tmp_path_factory.mktemp("dash"), True)) as srv:
        httpx.post(
            srv.url + "/v1/pre-reboot", json=body("web-07", "web"), headers=PROTO | basic(NODE)
        )
        yield srv


@pytest.mark.parametrize("path", ["/", "/dashboard/live"])
def test_without_a_token_the_browser_is_asked_for_one(guarded: RunningServer, path: str) -> None:
    r = httpx.get(guarded.url + path)
    assert r.status_code == 401
    assert r.headers["www-authenticate"].startswith("Basic ")
    assert "web-07" not in r.text


@pytest.mark.parametrize("path", ["/", "/dashboard/live"])
def test_a_node_token_or_a_wrong_one_does_not_open_the_dashboard(
    guarded: RunningServer, path: str
) -> None:
    for secret in (NODE, "wrong"):
        r = httpx.get(guarded.url + path, headers=basic(secret))
        assert r.status_code == 401
        assert "web-07" not in r.text


@pytest.mark.parametrize("path", ["/", "/dashboard/live"])
def test_the_admin_token_as_the_password_opens_it(guarded: RunningServer, path: str) -> None:
    r = httpx.get(guarded.url + path, headers=basic(ADMIN))
    assert r.status_code == 200
    assert "web-07" in r.text


def test_by_default_the_dashboard_is_readable_without_a_token(tmp_path: Path) -> None:
    with running(settings_for(tmp_path, False)) as srv:
        assert httpx.get(srv.url + "/").status_code == 200
        assert httpx.get(srv.url + "/v1/status").status_code == 401


def test_dashboard_auth_without_an_admin_token_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="dashboard_auth needs an admin token"):
        ServerSettings(dashboard_auth=True)


def test_an_admin_act_sent_from_another_sites_page_is_refused(guarded: RunningServer) -> None:
    doc = {"reason": "from a form elsewhere"}
    for foreign in ({"origin": "http://evil.example"}, {"sec-fetch-site": "cross-site"}):
        r = httpx.post(guarded.url + "/v1/pause", json=doc, headers=basic(ADMIN) | foreign)
        assert (r.status_code, r.json()["kind"]) == (403, "forbidden")
    mine = {"origin": guarded.url, "sec-fetch-site": "same-origin"}
    assert httpx.post(guarded.url + "/v1/pause", json=doc, headers=basic(ADMIN) | mine).is_success
    assert httpx.post(guarded.url + "/v1/resume", headers=basic(ADMIN) | mine).is_success
