"""`stagger explain` and `stagger need-reboot` on a real SQLite backend, real files and a real
agent run: every source is said, a missing one is named, never a crash."""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from cli_support import STAGGER, stagger
from explain_support import Node, make_node, on_backend, reboots
from stagger.agent.reboot import SIMULATED_REBOOT_EXIT


def test_before_the_agent_ran_explain_says_there_is_no_state_file(tmp_path: Path) -> None:
    doc = make_node(tmp_path).explain()
    assert doc["agent"]["present"] is False
    assert f"has not written {tmp_path}/agent.json yet" in doc["agent"]["problem"]


def test_nothing_needed_means_nothing_to_do(tmp_path: Path) -> None:
    doc = make_node(tmp_path).explain()
    assert (doc["needed"]["needed"], doc["decision"]["verdict"]) == (False, "idle")
    assert doc["next"]["step"].startswith("nothing to do")


def test_need_reboot_makes_explain_say_needed_with_the_reason(tmp_path: Path) -> None:
    node = make_node(tmp_path)
    run = stagger("need-reboot", "--config", str(node.config), "--reason", "kernel CVE-2026-1")
    assert run.code == 0, run
    doc = node.explain()
    assert (doc["needed"]["needed"], doc["needed"]["detector"]) == (True, "manual")
    assert "kernel CVE-2026-1" in doc["needed"]["detail"]
    assert doc["decision"]["verdict"] == "acquire"
    assert doc["next"]["step"] == "ask for a slot now, then drain and reboot"


def test_need_reboot_cancel_takes_it_back(tmp_path: Path) -> None:
    node = make_node(tmp_path)
    stagger("need-reboot", "--config", str(node.config), "--reason", "x")
    run = stagger("need-reboot", "--config", str(node.config), "--cancel")
    assert (run.code, node.explain()["needed"]["needed"]) == (0, False), run


def test_need_reboot_without_a_reason_is_a_usage_error(tmp_path: Path) -> None:
    run = stagger("need-reboot", "--config", str(make_node(tmp_path).config))
    assert (run.code, "--reason" in run.err, "--cancel" in run.err) == (2, True, True)
    assert len(run.err.strip().splitlines()) == 1, run.err


def test_need_reboot_under_a_root_writes_the_default_marker_there(tmp_path: Path) -> None:
    boot = tmp_path / "proc/sys/kernel/random/boot_id"
    boot.parent.mkdir(parents=True)
    boot.write_text("boot-9\n")
    assert stagger("need-reboot", "--root", str(tmp_path), "--reason", "by hand").code == 0
    marker = json.loads((tmp_path / "run/stagger/need-reboot").read_text())
    assert (marker["reason"], marker["boot_id"]) == ("by hand", "boot-9")


def test_a_blackout_now_makes_it_wait_for_the_next_opening(tmp_path: Path) -> None:
    now = datetime.now(UTC)
    end = (now + timedelta(hours=2)).replace(microsecond=0)
    node = make_node(
        tmp_path,
        f'[[blackout]]\nstart = "{(now - timedelta(hours=1)).isoformat()}"\n'
        f'end = "{end.isoformat()}"\nreason = "freeze"\n',
    )
    (tmp_path / "reboot-required").touch()
    doc = node.explain()
    assert (doc["window"]["open"], doc["decision"]["reason"]) == (False, "window_closed")
    assert datetime.fromisoformat(doc["next"]["at"]) == end


def test_a_full_group_makes_it_wait_for_a_slot_held_by_another(tmp_path: Path) -> None:
    node = make_node(tmp_path)
    on_backend(node.backend, lambda b: b.acquire("default", "node-b"))
    (tmp_path / "reboot-required").touch()
    doc = node.explain()
    assert (doc["slot"]["max"], doc["slot"]["held_by"]) == (1, ["node-b"])
    assert doc["next"]["step"] == "wait for a slot: all 1 are held (node-b)"


def test_a_pause_is_shown_and_decides(tmp_path: Path) -> None:
    node = make_node(tmp_path)
    on_backend(node.backend, lambda b: b.pause(None, by="operator:ann", reason="incident 42"))
    (tmp_path / "reboot-required").touch()
    doc = node.explain()
    assert (doc["pause"]["reason"], doc["decision"]["reason"]) == ("incident 42", "paused")


def test_an_unreachable_backend_is_said_not_fatal(tmp_path: Path) -> None:
    (tmp_path / "not-a-dir").write_text("")
    node = make_node(tmp_path, backend=f"sqlite:///{tmp_path}/not-a-dir/stagger.db")
    doc = node.explain()
    assert doc["slot"]["problem"].startswith("backend sqlite:///")


def test_explain_says_the_pause_is_unknown_when_the_backend_cannot_be_reached(
    tmp_path: Path,
) -> None:
    node = make_node(tmp_path, backend="etcd://127.0.0.1:9?timeout=0.3")
    run = stagger("explain", "--config", str(node.config))
    pause = next(ln for ln in run.out.splitlines() if ln.startswith("pause"))
    assert pause.split(None, 1)[1].startswith("unknown (backend unreachable: "), pause
    assert "none" not in pause.split()[1]


def test_explain_reads_a_store_that_is_not_there_without_creating_it(tmp_path: Path) -> None:
    node = make_node(tmp_path, backend=f"sqlite:///{tmp_path}/typo/stagger.db")
    doc = node.explain()
    assert "there is no stagger store at" in doc["slot"]["problem"]
    assert not (tmp_path / "typo").exists()


def test_a_corrupt_state_file_is_said_not_fatal(tmp_path: Path) -> None:
    node = make_node(tmp_path)
    (tmp_path / "agent.json").write_text("{half")
    assert "is not valid JSON" in node.explain()["agent"]["problem"]


def test_after_a_real_agent_reboot_explain_shows_the_state_and_the_hooks(tmp_path: Path) -> None:
    node = make_node(tmp_path)
    (tmp_path / "reboot-required").touch()
    agent = subprocess.run(
        [STAGGER, "agent", "--config", str(node.config)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert agent.returncode == SIMULATED_REBOOT_EXIT, agent.stderr
    doc = node.explain()
    assert doc["agent"]["state"]["cycle"] == "rebooting"
    assert doc["agent"]["state"]["last_hooks"]["ok"] is True
    assert doc["slot"]["held_by_this_node"] is True


def test_the_screen_for_people_names_every_part(tmp_path: Path) -> None:
    node = make_node(tmp_path)
    run = stagger("explain", "--config", str(node.config))
    labels = [line.split()[0] for line in run.out.splitlines() if line[:1].strip()]
    assert labels == [
        "node", "reboot", "window", "slot", "pause", "agent", "updates", "decision", "next"
    ]  # fmt: skip


@pytest.mark.parametrize("flag", ["--json", None])
def test_a_bad_config_is_one_sentence_and_exit_2(tmp_path: Path, flag: str | None) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[agent]\nrebooter = 'kexec'\n")
    run = stagger("explain", "--config", str(bad), *([flag] if flag else []))
    assert (run.code, "rebooter" in run.err, "Traceback" in run.err) == (2, True, False)


def rebooted_with_the_need_still_there(node: Node) -> subprocess.CompletedProcess[str]:
    """A real agent reboots for /run/reboot-required; the machine comes back with the file
    still there (the reboot did not clear the need), and the agent looks once."""
    (node.dir / "reboot-required").touch()
    argv = [STAGGER, "agent", "--config", str(node.config)]
    first = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert first.returncode == SIMULATED_REBOOT_EXIT, first.stderr
    node.boot("boot-2")
    return subprocess.run([*argv, "--once"], capture_output=True, text=True, timeout=60)


def test_a_need_the_reboot_did_not_clear_is_explained_and_not_rebooted_for_again(
    tmp_path: Path,
) -> None:
    node = make_node(tmp_path)
    again = rebooted_with_the_need_still_there(node)
    assert again.returncode == 0, again.stderr
    assert "msg=reboot_did_not_clear" in again.stderr
    assert reboots(node) == 1
    doc = node.explain()
    assert doc["agent"]["state"]["cycle"] == "waiting"
    assert doc["slot"]["held_by"] == []
    sentence = doc["needed"]["not_cleared_by_reboot"]
    assert "did not clear the need (file: " in sentence
    assert doc["next"]["step"] == sentence == doc["agent"]["state"]["reason"]


def test_an_operators_need_reboot_lifts_the_reboot_loop_guard(tmp_path: Path) -> None:
    node = make_node(tmp_path)
    assert rebooted_with_the_need_still_there(node).returncode == 0
    asked = stagger("need-reboot", "--config", str(node.config), "--reason", "try once more")
    assert asked.code == 0, asked
    run = subprocess.run(
        [STAGGER, "agent", "--config", str(node.config)], capture_output=True, text=True, timeout=60
    )
    assert run.returncode == SIMULATED_REBOOT_EXIT, run.stderr
    assert reboots(node) == 2


def test_explain_diagram_text_shows_each_move_that_can_happen_with_when() -> None:
    from stagger.core.cycle.diagram import moves

    run = stagger("explain", "--diagram", "text")
    assert run.code == 0, run
    lines = run.out.splitlines()
    for m in moves():
        line = next(
            x
            for x in lines
            if x.split()[:3] == [m.source.value, "->", m.target.value]
            and m.event in x.partition(": ")[0]
            and x.endswith(m.when)
        )
        assert line
    assert "draining  -> rebooting on hooks passed: the gates still allow the reboot" in lines
    # an idle node has no need: nothing but a need takes it to a drain
    assert [x for x in lines if x.startswith("idle      -> draining ")] == [
        "idle      -> draining  on needed: a reboot may start without a slot (the strategy says so)"
    ]
    doc = stagger("explain", "--diagram", "text", "--json").json()
    assert doc["diagram"] == run.out
    assert {"from": "acquiring", "event": "slot denied", "to": "waiting", "when": None} in doc[
        "moves"
    ]


def test_explain_diagram_mermaid_is_a_state_diagram_of_the_same_moves() -> None:
    run = stagger("explain", "--diagram", "mermaid")
    assert run.code == 0, run
    assert run.out.startswith("stateDiagram-v2\n    [*] --> idle\n")
    as_json = stagger("explain", "--diagram", "mermaid", "--json").json()
    assert as_json["diagram"] == run.out
    for move in as_json["moves"]:
        assert f"    {move['from']} --> {move['to']}: " in run.out


def test_explain_diagram_of_an_unknown_kind_is_one_sentence_and_exit_2() -> None:
    run = stagger("explain", "--diagram", "dot")
    assert (run.code, "Traceback" in run.err) == (2, False)
    assert "use 'mermaid' or 'text'" in run.err
