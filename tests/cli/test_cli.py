"""The operator CLI, specified through its real entry point against real backends: a temp
SQLite file, and the session's real etcd.

Most tests call `stagger.cli.main.main()` in this process with the argv the console script
would get (cli_support.py's `run`: the same code path, minus ~0.3 s of interpreter start per
call); the tests about the process itself (exit codes, no traceback, $STAGGER_BACKEND) run the
installed `stagger` script as a subprocess (`run_script`).

Exit codes: 0 done, 1 denied, 2 usage/config error, 3 backend unreachable. Errors are one
sentence on stderr, never a traceback. Every test passes an explicit temp backend URL, so the
default store (/var/lib/stagger/stagger.db) is never touched.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from cli_support import OPERATOR, assert_one_sentence, run, run_script, stagger_env
from conftest import created
from etcd_support import free_port
from stagger.agent.identity import node_id
from stagger.cli.status_view import QUEUE_SHOWN


@pytest.fixture
def url(any_backend_url: str) -> str:
    return created(any_backend_url)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/stagger.db"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A host root whose etc/machine-id holds a fresh machine id."""
    base = tmp_path / "host"
    (base / "etc").mkdir(parents=True)
    (base / "etc" / "machine-id").write_text(uuid.uuid4().hex + "\n")
    return base


def events(url: str, *extra: str) -> list[dict[str, Any]]:
    """The recorded events, oldest first (`--reverse`), so [-1] is the latest."""
    r = run("history", "--json", "--reverse", *extra, backend=url)
    assert r.code == 0, r.err
    result: list[dict[str, Any]] = r.json()["events"]
    return result


# --- set-max ---------------------------------------------------------------------------


def test_set_max_sets_the_slots_of_a_group(url: str) -> None:
    r = run("set-max", "3", "--group", "web", backend=url)
    assert r.code == 0, r.err
    assert "group web: max 3" in r.out
    doc = run("status", "--group", "web", "--json", backend=url).json()
    assert doc["groups"][0]["max"] == 3


def test_set_max_a_percentage_and_a_pace_shows_both_in_status(url: str) -> None:
    r = run("set-max", "50%", "--pace", "10m", "--group", "web", backend=url)
    assert r.code == 0, r.err
    assert "group web: max 50% = 1 of 0 nodes" in r.out
    assert "pace 10m" in r.out
    for node in ("a", "b", "c", "d"):
        run("lock", "--group", "web", "--id", node, backend=url)
    text = run("status", "--group", "web", backend=url).out
    assert "1 of max 2 slot(s) held (50% = 2 of 4 nodes)" in text
    assert "1. b" in text
    assert "pace 10m" in text
    denied = run("lock", "--group", "web", "--id", "d", "--json", backend=url)
    assert denied.code == 1
    assert (denied.json()["reason"], denied.json()["position"]) == ("queued", 3)
    doc = run("status", "--group", "web", "--json", backend=url).json()["groups"][0]
    assert (doc["max"], doc["max_percent"], doc["pace"]) == (2, 50, 600.0)
    assert [w["id"] for w in doc["queue"]] == ["b", "c", "d"]


def test_status_shows_the_head_of_a_long_queue_and_json_every_place(url: str) -> None:
    run("set-max", "1", "--group", "web", backend=url)
    ids = [f"n{i:02}" for i in range(QUEUE_SHOWN + 4)]  # one holder, the rest queued
    for node in ids:
        assert run("lock", "--group", "web", "--id", node, backend=url).code in (0, 1)
    text = run("status", "--group", "web", backend=url).out
    assert f"queue ({len(ids) - 1}, first asked first)" in text
    assert f"{QUEUE_SHOWN}. {ids[QUEUE_SHOWN]}" in text
    assert f"{QUEUE_SHOWN + 1}. " not in text
    assert "... and 3 more (`stagger status --json` lists every place)" in text
    doc = run("status", "--group", "web", "--json", backend=url).json()["groups"][0]
    assert [w["id"] for w in doc["queue"]] == ids[1:]


@pytest.mark.parametrize(("value", "words"), [("0%", "1% to 100%"), ("ten%", "percentage")])
def test_set_max_refuses_a_bad_percentage_in_one_sentence(url: str, value: str, words: str) -> None:
    assert_one_sentence(run("set-max", value, backend=url), 2, words)


def test_set_max_refuses_a_bad_pace_in_one_sentence(url: str) -> None:
    assert_one_sentence(run("set-max", "1", "--pace", "soon", backend=url), 2, "--pace")


def test_status_estimates_when_a_busy_group_finishes(url: str) -> None:
    run("set-max", "1", "--group", "web", backend=url)
    for node in ("a", "b"):
        assert run("lock", "--group", "web", "--id", node, backend=url).code in (0, 1)
    doc = run("status", "--group", "web", "--json", backend=url).json()["groups"][0]
    assert doc["eta"] == {
        "completes_at": None,
        "pending": 1,
        "in_progress": 1,
        "cycle_seconds": None,
        "why": "no cycle measured yet",
    }
    run("unlock", "--group", "web", "--id", "a", backend=url)
    run("lock", "--group", "web", "--id", "b", backend=url)
    run("lock", "--group", "web", "--id", "c", backend=url)
    eta = run("status", "--group", "web", "--json", backend=url).json()["groups"][0]["eta"]
    assert (eta["pending"], eta["in_progress"]) == (1, 1)
    assert eta["cycle_seconds"] is not None
    assert eta["completes_at"] is not None
    assert "ETA " in run("status", "--group", "web", backend=url).out


def test_set_max_json_is_the_group_document(url: str) -> None:
    doc = run("set-max", "2", "--json", backend=url).json()
    assert doc["group"] == "default"
    assert doc["max"] == 2
    assert doc["held"] == 0
    assert doc["free"] == 2
    assert doc["holds"] == []
    assert doc["hold_ttl"] is None


def test_set_max_hold_ttl_and_stale_after_configure_the_group(url: str) -> None:
    doc = run("set-max", "2", "--hold-ttl", "1h", "--stale-after", "5m", "--json", backend=url)
    assert (doc.json()["hold_ttl"], doc.json()["stale_after"]) == (3600.0, 300.0)
    again = run("set-max", "2", "--hold-ttl", "none", "--json", backend=url).json()
    assert again["hold_ttl"] is None
    assert again["stale_after"] == 300.0  # an option not given keeps its value


def test_set_max_below_the_holders_evicts_nobody_and_blocks_new_locks(url: str) -> None:
    run("set-max", "2", backend=url)
    run("lock", "--id", "a", backend=url)
    run("lock", "--id", "b", backend=url)
    lowered = run("set-max", "1", backend=url)
    assert lowered.code == 0
    assert "nobody is evicted" in lowered.out
    holds = run("status", "--json", backend=url).json()["groups"][0]["holds"]
    assert sorted(h["id"] for h in holds) == ["a", "b"]
    assert run("lock", "--id", "c", backend=url).code == 1
    assert run("unlock", "--id", "a", backend=url).code == 0
    assert run("lock", "--id", "c", backend=url).code == 1  # 1 holder, max 1: still full


# --- lock ------------------------------------------------------------------------------


def test_lock_takes_a_free_slot(url: str) -> None:
    r = run("lock", "--id", "node-a", backend=url)
    assert r.code == 0, r.err
    assert "node-a holds a slot in group default" in r.out


def test_lock_json_reports_the_grant_and_a_repeat_as_already_held(url: str) -> None:
    first = run("lock", "--id", "node-a", "--group", "db", "--json", backend=url).json()
    second = run("lock", "--id", "node-a", "--group", "db", "--json", backend=url).json()
    assert (first["result"], first["already_held"]) == ("granted", False)
    assert (second["result"], second["already_held"]) == ("granted", True)
    assert first["hold"]["since"] == second["hold"]["since"]
    assert first["hold"]["since"].endswith("Z")


def test_lock_denied_when_full_exits_1_naming_the_holders(url: str) -> None:
    run("set-max", "2", backend=url)
    run("lock", "--id", "node-a", backend=url)
    run("lock", "--id", "node-b", backend=url)
    r = run_script("lock", "--id", "node-c", backend=url)
    assert_one_sentence(r, 1, "denied", "node-c", "node-a", "node-b")


def test_lock_denied_json_says_full_with_the_holders(url: str) -> None:
    run("set-max", "1", backend=url)
    run("lock", "--id", "node-a", backend=url)
    r = run("lock", "--id", "node-b", "--json", backend=url)
    assert r.code == 1
    doc = r.json()
    assert (doc["result"], doc["reason"], doc["max"]) == ("denied", "full", 1)
    assert doc["holders"] == ["node-a"]
    assert "node-a" in doc["message"]


def test_lock_denied_when_paused_names_the_pause_and_its_reason(url: str) -> None:
    run("pause", "--reason", "kernel 6.1.0-27 panics on boot", backend=url)
    r = run("lock", "--id", "node-a", backend=url)
    assert_one_sentence(r, 1, "paused", f"operator:{OPERATOR}", "kernel 6.1.0-27 panics on boot")
    doc = run("lock", "--id", "node-a", "--json", backend=url).json()
    assert doc["reason"] == "paused"
    assert doc["pause"]["reason"] == "kernel 6.1.0-27 panics on boot"


def test_lock_without_id_takes_the_slot_for_this_node(url: str, root: Path) -> None:
    doc = run("lock", "--root", str(root), "--json", backend=url).json()
    assert doc["id"] == node_id(root)
    assert doc["by"] == node_id(root)
    acquired = events(url)[-1]
    assert (acquired["action"], acquired["id"], acquired["by"]) == ("acquired",) + (doc["id"],) * 2


def test_lock_of_another_id_records_the_operator_as_by(url: str) -> None:
    doc = run("lock", "--id", "node-a", "--note", "drill", "--json", backend=url).json()
    assert doc["by"] == f"operator:{OPERATOR}"
    assert doc["hold"]["note"] == "drill"
    acquired = events(url)[-1]
    assert (acquired["action"], acquired["id"]) == ("acquired", "node-a")
    assert acquired["by"] == f"operator:{OPERATOR}"


def test_lock_without_a_machine_id_says_to_pass_id(url: str, tmp_path: Path) -> None:
    r = run("lock", "--root", str(tmp_path), backend=url)
    assert_one_sentence(r, 2, "machine-id", "--id", "systemd-machine-id-setup")


# --- unlock ----------------------------------------------------------------------------


def test_unlock_of_own_slot_is_recorded_as_by_the_node(url: str, root: Path) -> None:
    run("lock", "--root", str(root), backend=url)
    r = run("unlock", "--root", str(root), backend=url)
    assert r.code == 0, r.err
    assert "released" in r.out
    released = events(url)[-1]
    assert released["action"] == "released"
    assert released["id"] == released["by"] == node_id(root)


def test_unlock_of_another_id_is_recorded_as_an_operator_act(url: str) -> None:
    run("lock", "--id", "node-a", backend=url)
    doc = run("unlock", "--id", "node-a", "--json", backend=url).json()
    assert (doc["released"], doc["by"]) == (True, f"operator:{OPERATOR}")
    assert doc["hold"]["id"] == "node-a"
    assert events(url)[-1]["by"] == f"operator:{OPERATOR}"
    assert run("status", "--json", backend=url).json()["groups"][0]["holds"] == []


def test_unlock_of_a_slot_not_held_succeeds_and_records_nothing(url: str) -> None:
    run("lock", "--id", "node-a", backend=url)
    before = events(url)
    r = run("unlock", "--id", "node-z", backend=url)
    assert r.code == 0
    assert "nothing changed" in r.out
    doc = run("unlock", "--id", "node-z", "--json", backend=url).json()
    assert (doc["released"], doc["hold"]) == (False, None)
    assert events(url) == before


# --- status ----------------------------------------------------------------------------


def test_status_shows_group_max_and_holders_with_age(url: str) -> None:
    run("set-max", "2", "--group", "web", backend=url)
    run("lock", "--group", "web", "--id", "node-a", backend=url)
    r = run("status", backend=url)
    assert r.code == 0, r.err
    assert "group web: 1 of max 2 slot(s) held" in r.out
    row = next(line for line in r.out.splitlines() if "node-a" in line)
    assert "ok" in row
    assert "s ago" in row  # last seen, as an age like 0s / 3m12s


def test_status_json_lists_groups_with_holders(url: str) -> None:
    run("set-max", "3", "--group", "web", backend=url)
    run("lock", "--group", "web", "--id", "node-a", "--note", "n", backend=url)
    doc = run("status", "--json", backend=url).json()
    assert set(doc) == {
        "now",
        "fleet_pause",
        "node_pauses",
        "urgent_reboots",
        "groups",
        "blockers",
    }
    (web,) = [g for g in doc["groups"] if g["group"] == "web"]
    assert (web["max"], web["held"], web["free"], web["pause"]) == (3, 1, 2, None)
    assert web["paused"] is False
    (hold,) = web["holds"]
    assert hold["id"] == "node-a"
    assert hold["stale"] is False
    assert doc["now"].endswith("Z")
    assert hold["since"].endswith("Z")
    assert set(hold) == {
        "id", "since", "last_seen", "expires_at", "note", "stale", "condition", "node_state",
    }  # fmt: skip


def test_status_of_one_group_shows_only_it(url: str) -> None:
    run("set-max", "2", "--group", "web", backend=url)
    run("set-max", "2", "--group", "db", backend=url)
    doc = run("status", "--group", "db", "--json", backend=url).json()
    assert [g["group"] for g in doc["groups"]] == ["db"]


def test_status_marks_a_silent_holder_stale(url: str) -> None:
    # stale after 1 ms: by the time the next process reads it, the hold is older than that
    run("set-max", "2", "--stale-after", "1ms", backend=url)
    run("lock", "--id", "node-a", backend=url)
    human = run("status", backend=url).out
    assert "STALE" in next(line for line in human.splitlines() if "node-a" in line)
    doc = run("status", "--json", backend=url).json()
    assert doc["groups"][0]["holds"][0]["stale"] is True


def test_status_shows_the_hold_ttl_of_a_group(url: str) -> None:
    run("set-max", "1", "--hold-ttl", "1h", backend=url)
    run("lock", "--id", "node-a", backend=url)
    assert "holds expire 1h after their last heartbeat" in run("status", backend=url).out
    assert run("status", "--json", backend=url).json()["groups"][0]["hold_ttl"] == 3600.0


def test_status_shows_a_group_pause_with_reason_by_and_until(url: str) -> None:
    run("pause", "--group", "web", "--for", "2h", "--reason", "bad update", backend=url)
    human = run("status", "--group", "web", backend=url).out
    assert "paused by operator:alice until" in human
    assert "bad update" in human
    pause = run("status", "--group", "web", "--json", backend=url).json()["groups"][0]["pause"]
    assert (pause["by"], pause["reason"]) == ("operator:alice", "bad update")
    span = datetime.fromisoformat(pause["until"]) - datetime.fromisoformat(pause["since"])
    assert abs(span - timedelta(hours=2)) < timedelta(minutes=1)


def test_status_shows_the_fleet_wide_pause(url: str) -> None:
    run("set-max", "2", "--group", "web", backend=url)
    run("pause", "--all", "--reason", "freeze", backend=url)
    human = run("status", backend=url).out
    assert "FLEET-WIDE PAUSE" in human
    assert "freeze" in human
    doc = run("status", "--json", backend=url).json()
    assert doc["fleet_pause"]["reason"] == "freeze"
    # the group is paused by the fleet's pause, not one of its own
    assert (doc["groups"][0]["paused"], doc["groups"][0]["pause"]) == (True, None)


def test_status_with_no_groups_says_so(url: str) -> None:
    r = run("status", backend=url)
    assert r.code == 0
    assert "no groups yet" in r.out
    assert run("status", "--json", backend=url).json()["groups"] == []


def test_status_of_a_group_never_written_says_it_does_not_exist_yet(url: str) -> None:
    run("set-max", "3", "--group", "web", backend=url)
    human = run("status", "--group", "api", backend=url)
    assert human.code == 0, human.err
    assert "group api does not exist yet" in human.out
    assert "max 1, hold-ttl none, stale after 15m" in " ".join(human.out.split())
    assert "slot(s) held" not in human.out
    (api,) = run("status", "--group", "api", "--json", backend=url).json()["groups"]
    assert (api["exists"], api["max"], api["holds"]) == (False, 1, [])
    (web,) = run("status", "--group", "web", "--json", backend=url).json()["groups"]
    assert (web["exists"], web["max"]) == (True, 3)
    assert "group web: 0 of max 3 slot(s) held" in run("status", backend=url).out


# --- pause / resume --------------------------------------------------------------------


def test_pause_until_an_rfc3339_time_keeps_that_instant(url: str) -> None:
    end = (datetime.now(UTC) + timedelta(days=1)).replace(microsecond=0)
    given = end.astimezone().isoformat()  # local offset form
    doc = run("pause", "--until", given, "--reason", "r", "--json", backend=url).json()
    assert doc["group"] == "default"
    assert doc["pause"]["until"] == end.isoformat().replace("+00:00", "Z")  # shown in UTC


def test_pause_all_pauses_every_group(url: str) -> None:
    doc = run("pause", "--all", "--reason", "freeze", "--json", backend=url).json()
    assert doc["group"] is None  # the fleet-wide pause
    r = run("lock", "--group", "any.group", "--id", "n", backend=url)
    assert_one_sentence(r, 1, "freeze")


def test_pause_until_a_past_time_is_refused(url: str) -> None:
    r = run("pause", "--until", "2020-01-01T00:00:00Z", "--reason", "r", backend=url)
    assert_one_sentence(r, 2, "past")


def test_resume_lifts_the_pause_and_locks_are_granted_again(url: str) -> None:
    run("pause", "--reason", "r", backend=url)
    doc = run("resume", "--json", backend=url).json()
    assert doc["lifted"]["reason"] == "r"
    assert run("lock", "--id", "n", backend=url).code == 0


def test_resume_when_not_paused_changes_nothing(url: str) -> None:
    r = run("resume", backend=url)
    assert r.code == 0
    assert "nothing changed" in r.out
    assert run("resume", "--json", backend=url).json()["lifted"] is None
    assert events(url) == []


def test_resume_all_lifts_only_the_fleet_wide_pause(url: str) -> None:
    run("pause", "--group", "web", "--reason", "own", backend=url)
    run("pause", "--all", "--reason", "fleet", backend=url)
    assert run("resume", "--all", "--json", backend=url).json()["lifted"]["reason"] == "fleet"
    r = run("lock", "--group", "web", "--id", "n", backend=url)
    assert_one_sentence(r, 1, "own")


# --- history ---------------------------------------------------------------------------


def test_history_lists_events_newest_first_and_reverse_oldest_first(url: str) -> None:
    run("set-max", "2", backend=url)
    run("lock", "--id", "node-a", backend=url)
    run("unlock", "--id", "node-a", backend=url)
    newest = run("history", "--json", backend=url).json()["events"]
    assert [e["action"] for e in newest] == ["released", "acquired", "max_changed"]
    assert set(newest[0]) == {"time", "group", "action", "id", "by", "detail"}
    assert newest[0]["time"].endswith("Z")
    assert [e["action"] for e in events(url)] == ["max_changed", "acquired", "released"]
    human = run("history", backend=url).out
    assert human.index("released") < human.index("acquired") < human.index("max_changed")
    oldest = run("history", "--reverse", backend=url).out
    assert oldest.index("max_changed") < oldest.index("acquired") < oldest.index("released")


def test_history_limit_keeps_the_latest_events(url: str) -> None:
    for i in range(3):
        run("lock", "--id", f"n{i}", "--group", f"g{i}", backend=url)
    assert [e["id"] for e in events(url, "--limit", "2")] == ["n1", "n2"]


def test_history_of_one_group(url: str) -> None:
    run("lock", "--id", "a", "--group", "web", backend=url)
    run("lock", "--id", "b", "--group", "db", backend=url)
    assert [e["id"] for e in events(url, "--group", "db")] == ["b"]


def test_history_with_no_events_says_so(url: str) -> None:
    assert "no events recorded yet" in run("history", backend=url).out


# --- the backend URL -------------------------------------------------------------------


def test_backend_comes_from_the_environment(sqlite_url: str) -> None:
    env = stagger_env(STAGGER_BACKEND=sqlite_url)
    assert run_script("set-max", "4", backend=None, env=env).code == 0
    assert run("status", "--json", backend=sqlite_url).json()["groups"][0]["max"] == 4


def test_backend_flag_wins_over_the_environment(sqlite_url: str) -> None:
    env = stagger_env(STAGGER_BACKEND="nonsense")
    assert run("set-max", "4", backend=sqlite_url, env=env).code == 0


@pytest.mark.parametrize(
    ("bad", "words"),
    [
        ("nonsense", ["no scheme"]),
        ("nosuch://host", ["scheme", "nosuch"]),
        ("sqlite://", ["sqlite:///"]),
        ("sqlite:///proc/stagger.db", ["/proc"]),  # not writable, even by root
    ],
)
def test_malformed_backend_urls_are_usage_errors(bad: str, words: list[str]) -> None:
    assert_one_sentence(run_script("status", backend=bad), 2, *words)


def test_malformed_backend_url_from_the_environment_is_named(tmp_path: Path) -> None:
    r = run("status", backend=None, env=stagger_env(STAGGER_BACKEND="nonsense"))
    assert_one_sentence(r, 2, "'nonsense'")


def test_malformed_etcd_urls_are_usage_errors() -> None:
    assert_one_sentence(run("status", backend="etcd://"), 2)
    assert_one_sentence(run("status", backend="etcd://127.0.0.1:notaport"), 2)


def test_unreachable_etcd_exits_3() -> None:
    closed = f"etcd://127.0.0.1:{free_port()}?timeout=0.5s"
    assert_one_sentence(run_script("status", backend=closed), 3, "127.0.0.1")
    r = run("lock", "--id", "n", "--json", backend=closed)
    assert r.code == 3
    assert r.json()["exit_code"] == 3


# --- bad input: exit 2, one sentence, no traceback, before the backend is opened ---------


@pytest.mark.parametrize(
    ("command", "group"),
    [
        ("lock", "bad name"),
        ("lock", "x" * 129),
        ("unlock", "a/b"),
        ("status", ""),
        ("history", "émile"),
        ("set-max", "web\n"),
        ("pause", ""),
    ],
)
def test_bad_group_names_are_refused(command: str, group: str, sqlite_url: str) -> None:
    args = ["set-max", "1"] if command == "set-max" else [command]
    extra = {"lock": ["--id", "n"], "unlock": ["--id", "n"], "pause": ["--reason", "r"]}
    r = run(*args, "--group", group, *extra.get(command, []), backend=sqlite_url)
    assert_one_sentence(r, 2, "group", "not valid")


@pytest.mark.parametrize("node", ["", "x" * 257, "tab\there"])
def test_bad_ids_are_refused(node: str, sqlite_url: str) -> None:
    assert_one_sentence(run("lock", "--id", node, backend=sqlite_url), 2, "node id", "not valid")


@pytest.mark.parametrize("value", ["-1", "10001", "x", "1.5", ""])
def test_bad_max_is_refused(value: str, sqlite_url: str) -> None:
    assert_one_sentence(run("set-max", value, backend=sqlite_url), 2, "max", "0 to 10000")


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--reason", "r", "--until", "2030-01-01T10:00:00"], ["no UTC offset", "Z"]),
        (["--reason", "r", "--until", "tomorrow"], ["not a time", "RFC 3339"]),
        (["--reason", "r", "--for", "soon"], ["--for", "not a duration"]),
        (["--reason", "r", "--for", "0s"], ["--for", "longer than 0"]),
        (["--reason", "r", "--for", "2h", "--until", "2030-01-01T10:00:00Z"], ["--until", "--for"]),
        ([], ["--reason"]),
        (["--reason", "  "], ["--reason"]),
        (["--reason", "r", "--group", "web", "--all"], ["--group", "--all"]),
    ],
)
def test_bad_pause_input_is_refused(args: list[str], words: list[str], sqlite_url: str) -> None:
    assert_one_sentence(run("pause", *args, backend=sqlite_url), 2, *words)


def test_resume_with_group_and_all_is_refused(sqlite_url: str) -> None:
    r = run("resume", "--group", "web", "--all", backend=sqlite_url)
    assert_one_sentence(r, 2, "--group", "--all")


@pytest.mark.parametrize("option", [["--hold-ttl", "forever"], ["--stale-after", "0s"]])
def test_bad_group_settings_are_refused(option: list[str], sqlite_url: str) -> None:
    assert_one_sentence(run("set-max", "1", *option, backend=created(sqlite_url)), 2)
    assert run("status", "--json", backend=sqlite_url).json()["groups"] == []


@pytest.mark.parametrize("limit", ["0", "1001"])
def test_bad_history_limit_is_refused(limit: str, sqlite_url: str) -> None:
    assert_one_sentence(run("history", "--limit", limit, backend=sqlite_url), 2, "--limit")


def test_errors_with_json_are_a_json_document_too(sqlite_url: str) -> None:
    r = run_script("set-max", "x", "--json", backend=sqlite_url)
    assert r.code == 2
    assert r.json() == {"error": r.err.removeprefix("stagger: ").strip(), "exit_code": 2}


def test_an_unknown_option_is_a_usage_error_without_traceback(sqlite_url: str) -> None:
    r = run_script("status", "--frobnicate", backend=sqlite_url)
    assert r.code == 2
    assert "Traceback" not in r.err
    assert "--frobnicate" in r.err
