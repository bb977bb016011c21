"""This node's id: derived from /etc/machine-id as systemd's
sd_id128_get_machine_app_specific() does, with stagger's own app id; never the raw machine id."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stagger.agent.identity import APP_ID, NoMachineId, app_specific_id, node_id, read_machine_id

STAGGER = str(Path(sys.executable).parent / "stagger")
ids128 = st.binary(min_size=16, max_size=16).filter(lambda b: b != bytes(16))


def host(tmp_path: Path, content: str | None) -> Path:
    """A host root whose etc/machine-id holds `content` (None: no file at all)."""
    (tmp_path / "etc").mkdir(parents=True, exist_ok=True)
    if content is not None:
        (tmp_path / "etc" / "machine-id").write_text(content)
    return tmp_path


def stagger_id(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [STAGGER, "id", *args], capture_output=True, text=True, timeout=60, check=False
    )


def test_matches_systemds_own_known_answer() -> None:
    # systemd's src/test/test-id128.c: `systemd-id128 -a f03daaeb1c334b43a732172944bf772e show
    # 51df0b4bc3b04c9780e299b98ca373b8` is 1dee5954e75c4d6fb96cc6c04ca18a86
    machine = bytes.fromhex("51df0b4bc3b04c9780e299b98ca373b8")
    app = bytes.fromhex("f03daaeb1c334b43a732172944bf772e")
    assert app_specific_id(machine, app) == "1dee5954e75c4d6fb96cc6c04ca18a86"


@given(ids128)
def test_is_a_v4_uuid_as_32_hex_digits(machine: bytes) -> None:
    value = app_specific_id(machine)
    assert len(value) == 32
    parsed = uuid.UUID(hex=value)
    assert parsed.version == 4
    assert parsed.variant == uuid.RFC_4122


@given(ids128, ids128)
def test_differs_between_machines(a: bytes, b: bytes) -> None:
    if a != b:
        assert app_specific_id(a) != app_specific_id(b)


@given(ids128)
def test_is_specific_to_stagger_and_never_the_machine_id(machine: bytes) -> None:
    other_app = bytes(b ^ 0xFF for b in APP_ID)
    assert app_specific_id(machine) != app_specific_id(machine, other_app)
    assert app_specific_id(machine) != machine.hex()


def test_node_id_is_stable_for_a_host(tmp_path: Path) -> None:
    raw = uuid.uuid4().hex
    root = host(tmp_path, raw + "\n")
    assert node_id(root) == node_id(root) == app_specific_id(bytes.fromhex(raw))


def test_machine_id_in_upper_case_or_without_newline_reads_the_same(tmp_path: Path) -> None:
    raw = uuid.uuid4().hex
    lower = node_id(host(tmp_path / "a", raw + "\n"))
    assert node_id(host(tmp_path / "b", raw.upper())) == lower


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (None, "does not exist"),
        ("", "is empty"),
        ("\n", "is empty"),
        ("uninitialized\n", "is empty"),
        ("0" * 32 + "\n", "all zeros"),
        ("not-a-machine-id-at-all\n", "32 hexadecimal digits"),
        ("ab" * 17 + "\n", "32 hexadecimal digits"),
    ],
)
def test_unusable_machine_id_says_what_to_do(
    tmp_path: Path, content: str | None, words: str
) -> None:
    with pytest.raises(NoMachineId) as err:
        read_machine_id(host(tmp_path, content))
    message = str(err.value)
    assert words in message
    assert "--id" in message
    assert "systemd-machine-id-setup" in message
    if content and content.strip():
        assert content.strip() not in message  # the file's content is never echoed


def test_stagger_id_prints_the_derived_id_never_the_machine_id(tmp_path: Path) -> None:
    raw = uuid.uuid4().hex
    root = host(tmp_path, raw + "\n")
    human = stagger_id("--root", str(root))
    doc = stagger_id("--root", str(root), "--json")
    assert human.returncode == doc.returncode == 0
    assert human.stdout.strip() == node_id(root)
    assert json.loads(doc.stdout)["id"] == node_id(root)
    assert raw not in human.stdout + doc.stdout


def test_stagger_id_without_machine_id_exits_2_with_the_fix(tmp_path: Path) -> None:
    r = stagger_id("--root", str(host(tmp_path, None)))
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    assert r.stderr.count("\n") == 1
    assert "--id" in r.stderr
    assert "systemd-machine-id-setup" in r.stderr


def test_stagger_id_reads_this_hosts_machine_id_by_default() -> None:
    try:
        expected = node_id("/")
    except NoMachineId:
        pytest.skip("this host has no usable /etc/machine-id")
    assert json.loads(stagger_id("--json").stdout)["id"] == expected


def test_stagger_id_zincati_prints_the_id_zincati_sends_from_this_host(tmp_path: Path) -> None:
    raw = uuid.uuid4().hex
    root = host(tmp_path, raw + "\n")
    r = stagger_id("--root", str(root), "--zincati", "--json")
    doc = json.loads(r.stdout)
    # Zincati's app id (docs/server.md): the id it derives is the FleetLock id it sends.
    assert doc["app_id"] == "de35106b6ec24688b63afddaa156679b"
    assert doc["id"] == app_specific_id(bytes.fromhex(raw), bytes.fromhex(doc["app_id"]))
    assert doc["id"] != node_id(root)
    assert raw not in r.stdout


def test_stagger_id_prints_the_configured_agent_id_the_agent_sends(tmp_path: Path) -> None:
    root = host(tmp_path, uuid.uuid4().hex + "\n")
    config = tmp_path / "agent.toml"
    config.write_text('[agent]\nid = "web-07"\n')
    r = stagger_id("--root", str(root), "--config", str(config))
    assert (r.returncode, r.stdout.strip()) == (0, "web-07")


def test_an_agent_id_outside_the_node_id_rule_is_a_config_error(tmp_path: Path) -> None:
    config = tmp_path / "agent.toml"
    config.write_text('[agent]\nid = "evil/../x"\n')
    r = stagger_id("--config", str(config))
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    assert "not starting with '.'" in r.stderr
