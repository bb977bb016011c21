"""The agent's state file: versioned, atomic under SIGKILL, and clear about files it cannot
trust; the boot id; the need-reboot marker."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from stagger.agent.state_file import (
    STATE_VERSION,
    ManualMark,
    StateFileError,
    StateStore,
    TypedStateStore,
    clear_manual_mark,
    read_boot_id,
    read_manual_mark,
    write_manual_mark,
)

T0 = datetime(2026, 3, 1, 4, 0, tzinfo=UTC)


def test_no_file_yet_loads_as_none(tmp_path: Path) -> None:
    assert StateStore(tmp_path / "agent.json").load() is None


def test_a_saved_state_loads_back_with_when_it_was_saved(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "var/lib/stagger/agent.json", clock=lambda: T0)
    store.save({"state": "WAITING", "boot_id": "b1"})
    saved = StateStore(store.path).load_saved()
    assert saved is not None
    assert (saved.state, saved.saved_at, saved.version) == (
        {"state": "WAITING", "boot_id": "b1"},
        T0,
        STATE_VERSION,
    )


def test_the_file_is_readable_by_root_only(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "agent.json")
    store.save({})
    assert store.path.stat().st_mode & 0o777 == 0o600


def test_a_save_leaves_no_temp_file_behind(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "agent.json")
    for n in range(3):
        store.save({"n": n})
    assert [p.name for p in tmp_path.iterdir()] == ["agent.json"]


def test_a_value_that_is_not_json_is_refused_and_the_old_file_kept(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "agent.json")
    store.save({"n": 1})
    with pytest.raises(StateFileError, match="cannot be written as JSON"):
        store.save({"n": object()})
    assert store.load() == {"n": 1}


def test_a_directory_that_cannot_be_written_is_a_state_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(StateFileError, match="cannot write the agent's state"):
        StateStore(tmp_path / "file" / "agent.json").save({})


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (b"{half", "is not valid JSON"),
        (b'{"hello": 1}', "is not a stagger agent state file"),
        (b'{"format": "stagger-agent-state", "version": "1", "state": {}}', "no valid version"),
        (b'{"format": "stagger-agent-state", "version": 1, "state": []}', "holds no state"),
    ],
)
def test_a_file_it_cannot_trust_says_what_to_do(tmp_path: Path, content: bytes, says: str) -> None:
    path = tmp_path / "agent.json"
    path.write_bytes(content)
    with pytest.raises(StateFileError, match=says) as err:
        StateStore(path).load()
    assert f"mv {path} {path}.bad" in err.value.message


def test_a_file_from_a_newer_stagger_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "agent.json"
    doc = {"format": "stagger-agent-state", "version": STATE_VERSION + 1, "state": {}}
    path.write_text(json.dumps(doc))
    with pytest.raises(StateFileError, match="written by a newer stagger"):
        StateStore(path).load()


@dataclass(frozen=True)
class Node:
    phase: str
    holds_slot: bool


def test_a_typed_store_round_trips_through_the_callers_hooks(tmp_path: Path) -> None:
    typed = TypedStateStore(
        StateStore(tmp_path / "agent.json"),
        encode=lambda n: {"phase": n.phase, "holds_slot": n.holds_slot},
        decode=lambda d: Node(str(d["phase"]), bool(d["holds_slot"])),
    )
    typed.save(Node("VERIFYING", True))
    assert typed.load() == Node("VERIFYING", True)


def test_a_typed_store_turns_a_decode_error_into_a_state_error(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "agent.json")
    store.save({"unexpected": 1})
    typed: TypedStateStore[Node] = TypedStateStore(
        store, encode=lambda n: {}, decode=lambda d: Node(d["phase"], d["holds_slot"])
    )
    with pytest.raises(StateFileError, match="cannot be understood"):
        typed.load()


# --- SIGKILL at any instant --------------------------------------------------------------------

WRITER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from stagger.agent.state_file import StateStore
    store = StateStore(Path(sys.argv[1]))
    n = int(sys.argv[2])
    while True:
        n += 1
        store.save({"n": n, "payload": str(n) * (n % 4096)})
        if n == int(sys.argv[2]) + 1:
            print("saved", flush=True)
    """
)
ROUNDS = 12


def complete(doc: dict[str, Any] | None) -> bool:
    return doc is not None and doc["payload"] == str(doc["n"]) * (doc["n"] % 4096)


def test_a_writer_killed_at_any_instant_leaves_a_complete_document(tmp_path: Path) -> None:
    path = tmp_path / "agent.json"
    rng = random.Random(1234)
    last = 0
    for _ in range(ROUNDS):
        proc = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(path), str(last)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "saved"
        time.sleep(rng.uniform(0, 0.05))  # a random instant in the middle of the loop
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        doc = StateStore(path).load()
        assert complete(doc)
        assert doc is not None
        assert doc["n"] > last
        last = doc["n"]


# --- boot id -----------------------------------------------------------------------------------


def test_the_boot_id_is_read_without_its_newline(tmp_path: Path) -> None:
    (tmp_path / "boot_id").write_text("6f1c2f0e-7b64-4b0a-9d59-2f7c2a0a9b11\n")
    assert read_boot_id(tmp_path / "boot_id") == "6f1c2f0e-7b64-4b0a-9d59-2f7c2a0a9b11"


def test_the_real_boot_id_is_readable() -> None:
    assert len(read_boot_id(Path("/proc/sys/kernel/random/boot_id"))) == 36


def test_a_missing_boot_id_names_the_setting(tmp_path: Path) -> None:
    with pytest.raises(StateFileError, match="boot_id_path"):
        read_boot_id(tmp_path / "nope")


def test_an_empty_boot_id_is_refused(tmp_path: Path) -> None:
    (tmp_path / "boot_id").write_text("\n")
    with pytest.raises(StateFileError, match="is empty"):
        read_boot_id(tmp_path / "boot_id")


# --- the need-reboot marker ---------------------------------------------------------------------


def test_a_manual_mark_round_trips(tmp_path: Path) -> None:
    mark = ManualMark("kernel CVE-2026-1", T0, "operator:ann", "boot-1")
    write_manual_mark(tmp_path / "run/stagger/need-reboot", mark)
    assert read_manual_mark(tmp_path / "run/stagger/need-reboot") == mark


def test_a_manual_mark_needs_a_reason(tmp_path: Path) -> None:
    with pytest.raises(StateFileError, match="--reason"):
        write_manual_mark(tmp_path / "m", ManualMark("  ", T0, "operator:ann", "b"))


def test_clearing_the_manual_mark_says_whether_there_was_one(tmp_path: Path) -> None:
    write_manual_mark(tmp_path / "m", ManualMark("r", T0, "operator:ann", "b"))
    assert (clear_manual_mark(tmp_path / "m"), clear_manual_mark(tmp_path / "m")) == (True, False)
