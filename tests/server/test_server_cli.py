"""`stagger server` as operators run it: a real process on 127.0.0.1, settings from flags and
from a config file's [server] table."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from etcd_support import free_port
from server_support import PROTO, body
from stagger.cli.server import EXPOSED_WARNING, build_settings, load_server_config
from stagger.config.server_section import ServerConfig
from stagger.core.errors import ConfigError
from stagger.server.settings import UnknownGroups

STAGGER = [sys.executable, "-m", "stagger"]


@contextmanager
def stagger_server(*args: str) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    port = free_port()
    proc = subprocess.Popen(
        [*STAGGER, "server", "--listen", f"127.0.0.1:{port}", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "NO_COLOR": "1"},
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                httpx.get(url + "/healthz", timeout=0.5)
                break
            except httpx.TransportError:
                time.sleep(0.05)
        yield url, proc
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def test_the_server_command_serves_fleetlock(tmp_path: Path) -> None:
    with stagger_server("--backend", f"sqlite:///{tmp_path}/s.db", "--group", "web=2") as (url, _):
        assert (
            httpx.post(url + "/v1/pre-reboot", json=body("a", "web"), headers=PROTO).status_code
            == 200
        )
        assert httpx.get(url + "/v1/groups/web").json()["max"] == 2


def test_settings_come_from_the_config_files_server_table(tmp_path: Path) -> None:
    (tmp_path / "admin").write_text("tok\n")
    (tmp_path / "c.toml").write_text(
        f"""
[agent]
backend = "sqlite:///{tmp_path}/s.db"

[server]
prefix = "/fleet_lock"
unknown_groups = "refuse"
admin_token_files = ["{tmp_path}/admin"]

[server.groups]
web = 1
"""
    )
    with stagger_server("--config", str(tmp_path / "c.toml")) as (url, _):
        auth = {"authorization": "Bearer tok", **PROTO}
        r = httpx.post(url + "/fleet_lock/v1/pre-reboot", json=body("a", "web"), headers=auth)
        assert r.status_code == 200
        r = httpx.post(url + "/fleet_lock/v1/pre-reboot", json=body("a", "db"), headers=auth)
        assert r.json()["kind"] == "unknown_group"
        assert httpx.get(url + "/v1/status").status_code == 401


def test_a_bad_backend_url_is_one_sentence_and_exit_2(tmp_path: Path) -> None:
    r = subprocess.run(
        [*STAGGER, "server", "--listen", f"127.0.0.1:{free_port()}", "--backend", "nope://x"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    assert "scheme" in r.stderr


def test_flags_win_over_the_config_file() -> None:
    config = ServerConfig.model_validate({"listen": "127.0.0.1:9000", "prefix": "/a"})
    settings = build_settings(config, None, listen="127.0.0.1:9001", unknown_groups="refuse")
    assert (settings.port, settings.prefix, settings.unknown_groups) == (
        9001,
        "/a",
        UnknownGroups.REFUSE,
    )


def test_listening_beyond_loopback_without_tokens_is_flagged_as_exposed() -> None:
    config = ServerConfig.model_validate({})
    assert build_settings(config, None, listen="0.0.0.0:8080").exposed_without_auth
    assert not build_settings(config, None, listen="127.0.0.1:8080").exposed_without_auth
    assert not build_settings(config, None, listen="[::1]:8080").exposed_without_auth
    assert "WITHOUT AUTHENTICATION" in EXPOSED_WARNING


@pytest.mark.parametrize(
    "table",
    [
        'listen = "nope"',
        "default_max = -1",
        'unknown_groups = "maybe"',
        "bogus = 1",
        'read_timeout = "0s"',
        'read_timeout = "2h"',
        "max_connections = 0",
    ],
)
def test_a_bad_server_table_names_the_key(tmp_path: Path, table: str) -> None:
    (tmp_path / "c.toml").write_text(f"[server]\n{table}\n")
    with pytest.raises(ConfigError, match=r"\[server\]|server"):
        load_server_config(tmp_path / "c.toml")


@pytest.mark.parametrize("flag", ["--tls-cert", "--tls-client-ca"])
def test_tls_needs_readable_files(tmp_path: Path, flag: str) -> None:
    with pytest.raises(ConfigError):
        build_settings(
            ServerConfig.model_validate({}),
            None,
            **{flag[2:].replace("-", "_"): tmp_path / "missing.pem"},
        )  # type: ignore[arg-type]


def test_a_token_in_both_the_admin_and_the_node_file_is_refused_at_start(tmp_path: Path) -> None:
    (tmp_path / "admin").write_text("shared-secret\n")
    (tmp_path / "nodes").write_text("web-07:shared-secret:web\n")
    for f in ("admin", "nodes"):
        (tmp_path / f).chmod(0o600)
    r = subprocess.run(
        [
            *STAGGER, "server", "--listen", f"127.0.0.1:{free_port()}",
            "--backend", f"sqlite:///{tmp_path}/s.db",
            "--admin-token-file", str(tmp_path / "admin"),
            "--node-tokens-file", str(tmp_path / "nodes"),
        ],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert "both an admin and a node token" in r.stderr
    assert "shared-secret" not in r.stderr


@pytest.mark.parametrize(("mode", "warned"), [(0o644, True), (0o600, False)])
def test_a_token_file_others_can_read_is_warned_about_at_start(
    tmp_path: Path, mode: int, warned: bool
) -> None:
    tokens = tmp_path / "admin.tokens"
    tokens.write_text("admin-secret\n")
    tokens.chmod(mode)
    args = ("--backend", f"sqlite:///{tmp_path}/s.db", "--admin-token-file", str(tokens))
    with stagger_server(*args) as (url, proc):
        assert httpx.get(url + "/healthz").status_code == 200
    _, err = proc.communicate(timeout=15)
    assert (f"token file {tokens} can be read by other users" in err) is warned
    assert "admin-secret" not in err


def test_limits_and_dashboard_auth_come_from_the_table_and_flags_win(tmp_path: Path) -> None:
    (tmp_path / "admin").write_text("admin-secret\n")
    config = ServerConfig.model_validate(
        {
            "read_timeout": "30s",
            "max_connections": 50,
            "dashboard_auth": True,
            "admin_token_files": [str(tmp_path / "admin")],
        }
    )
    from_table = build_settings(config, None)
    assert (from_table.read_timeout, from_table.max_connections) == (30.0, 50)
    assert from_table.dashboard_auth
    flags = build_settings(config, None, read_timeout="5s", max_connections=7, dashboard_auth=False)
    assert (flags.read_timeout, flags.max_connections, flags.dashboard_auth) == (5.0, 7, False)
    defaults = build_settings(ServerConfig.model_validate({}), None)
    assert (defaults.read_timeout, defaults.max_connections) == (10.0, 1000)
    assert not defaults.dashboard_auth


@pytest.mark.parametrize(
    "args",
    [
        ["--server", "https://127.0.0.1:9/"],
        ["--backend", "http://127.0.0.1:9/"],
        ["--backend", "fleetlock+https://127.0.0.1:9/"],
    ],
)
def test_another_servers_url_as_the_store_is_refused_with_the_reason(args: list[str]) -> None:
    r = subprocess.run(
        [*STAGGER, "server", "--listen", f"127.0.0.1:{free_port()}", *args],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert (r.returncode, "Traceback" in r.stderr) == (2, False), r.stderr
    assert "needs a store of its own" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_the_servers_help_offers_stores_only() -> None:
    r = subprocess.run(
        [*STAGGER, "server", "--help"], capture_output=True, text=True, timeout=30, check=True
    )
    text = " ".join(r.stdout.split())
    assert "sqlite:///PATH or etcd://" in text
    assert "http(s)://" not in text
    assert "--server" not in text
