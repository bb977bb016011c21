"""Secrets are never printed: the password of a URL's user part, a token given as the user
part of a FleetLock URL, and every secret-looking query parameter (also percent-encoded), in
every output of the real CLI and in every error it prints (docs/configuration.md)."""

from __future__ import annotations

from pathlib import Path

import pytest

from cli_support import assert_one_sentence, run, run_script
from etcd_support import free_port
from explain_support import make_node

SECRETS = ("NODESECRET-web07", "QTOKENSECRET", "ETCDPASSSECRET", "PCTSECRET", "LONETOKEN")
FLEETLOCK = f"fleetlock+http://web-07:NODESECRET-web07@127.0.0.1:{free_port()}/?token=QTOKENSECRET"


def config(tmp_path: Path, backend: str, extra: str = "") -> Path:
    path = tmp_path / "stagger.toml"
    path.write_text(f'[agent]\nbackend = "{backend}"\n{extra}')
    return path


def assert_no_secret(*texts: str) -> None:
    for text in texts:
        for secret in SECRETS:
            assert secret not in text, (secret, text)


@pytest.mark.parametrize(
    ("backend", "still_shown"),
    [
        (FLEETLOCK, "web-07:***@127.0.0.1"),
        ("etcd://user:ETCDPASSSECRET@127.0.0.1:1/?timeout=1s", "user:***@127.0.0.1:1"),
        ("fleetlock+https://LONETOKEN@127.0.0.1:1/", "***@127.0.0.1:1"),
        ("sqlite:///tmp/x.db?%74oken=PCTSECRET", "%74oken=***"),
    ],
)
def test_config_show_masks_every_secret_in_the_table_and_the_json(
    tmp_path: Path, backend: str, still_shown: str
) -> None:
    cfg = config(tmp_path, backend)
    table = run("config", "show", "--config", str(cfg), backend=None)
    doc = run("config", "show", "--config", str(cfg), "--json", backend=None)
    assert table.code == 0, table.err
    assert doc.code == 0, doc.err
    assert_no_secret(table.out, table.err, doc.out, doc.err)
    assert still_shown in table.out
    assert still_shown in doc.out


def test_explain_masks_the_backend_url_it_cannot_reach(tmp_path: Path) -> None:
    cfg = config(tmp_path, FLEETLOCK + "&timeout=0.2&retries=0")
    for extra in ((), ("--json",)):
        r = run("explain", "--config", str(cfg), "--root", str(tmp_path), *extra, backend=None)
        assert_no_secret(r.out, r.err)
        assert "web-07:***@" in r.out


@pytest.mark.parametrize(
    "backend",
    [
        "fleetlock+http://web-07:NODESECRET-web07@[::1/",
        "etcd://user:ETCDPASSSECRET@127.0.0.1:1/path",
        "sqlite:///tmp/x.db?password=QTOKENSECRET",
        "nosuch://user:ETCDPASSSECRET@host/",
    ],
)
def test_an_error_about_a_url_never_prints_its_secret(backend: str) -> None:
    r = run("status", backend=backend)
    assert_one_sentence(r, 2)
    assert_no_secret(r.out, r.err)


def test_config_show_masks_a_secret_header_of_a_notify_target(tmp_path: Path) -> None:
    cfg = tmp_path / "stagger.toml"
    cfg.write_text(
        '[[notify]]\nurl = "https://127.0.0.1:9/hook?token=QTOKENSECRET"\n'
        'headers = { Authorization = "Bearer LONETOKEN", X-Team = "web" }\n'
    )
    for extra in ((), ("--json",)):
        r = run("config", "show", "--config", str(cfg), *extra, backend=None)
        assert r.code == 0, r.err
        assert_no_secret(r.out, r.err)
        assert "web" in r.out


def test_the_agents_log_never_prints_the_backends_secrets(tmp_path: Path) -> None:
    node = make_node(tmp_path, backend=FLEETLOCK + "&timeout=0.2&retries=0")
    (tmp_path / "reboot-required").touch()
    r = run_script("agent", "--config", str(node.config), "--once", backend=None)
    assert_no_secret(r.out, r.err)
    assert "web-07:***@" in r.out + r.err
