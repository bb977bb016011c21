"""Pre-reboot hooks, blockers and health checks on real scripts, a real utmp file, a real HTTP
server and real sockets on 127.0.0.1. Everything fails closed, with the reason recorded."""

from __future__ import annotations

import http.server
import socket
import struct
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from stagger.agent.hooks import (
    HEALTH,
    CommandHook,
    HookContext,
    HookSettings,
    HttpCheck,
    LoggedInUsers,
    PreRebootStage,
    SystemState,
    TcpCheck,
    run_health,
    run_parts,
    run_pre_reboot,
)
from stagger.agent.runtime import build_pre_reboot
from stagger.config.model import StaggerConfig

CTX = HookContext("node-1", "web", "kernel update")


def script(directory: Path, name: str, body: str, mode: int = 0o755) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(mode)
    return path


def hook(tmp_path: Path, name: str, body: str) -> CommandHook:
    return CommandHook([str(script(tmp_path, name, body))], name=name)


# --- run-parts ----------------------------------------------------------------------------------


def test_run_parts_runs_valid_names_in_byte_order(tmp_path: Path) -> None:
    for name in ("20-drain", "10-cordon", "B-upper", "a_lower"):
        script(tmp_path, name, "true")
    assert [h.name for h in run_parts(tmp_path)] == [
        str(tmp_path / n) for n in ("10-cordon", "20-drain", "B-upper", "a_lower")
    ]


def test_run_parts_skips_backups_dotted_names_and_non_executables(tmp_path: Path) -> None:
    for name in ("10-drain.dpkg-old", "10-drain~", ".hidden", "10-drain.sh"):
        script(tmp_path, name, "true")
    script(tmp_path, "30-notes", "true", mode=0o644)
    (tmp_path / "40-dir").mkdir()
    assert run_parts(tmp_path) == []


def test_run_parts_of_a_missing_directory_is_nothing(tmp_path: Path) -> None:
    assert run_parts(tmp_path / "pre-reboot.d") == []


async def test_a_directory_that_cannot_be_read_fails_the_stage(tmp_path: Path) -> None:
    (tmp_path / "pre-reboot.d").write_text("a file, not a directory")
    result = await run_pre_reboot(run_parts(tmp_path / "pre-reboot.d"), CTX, 10)
    assert not result.ok
    assert "cannot be read" in result.reason


# --- commands -----------------------------------------------------------------------------------


async def test_hooks_see_the_stagger_environment(tmp_path: Path) -> None:
    out = tmp_path / "env"
    h = hook(tmp_path, "drain", f"env | grep ^STAGGER_ | sort > {out}")
    deadline = datetime(2026, 3, 5, 6, 0, tzinfo=UTC)
    context = HookContext("node-1", "web", "kernel update", deadline=deadline)
    assert (await h.run(context, 10)).ok
    assert out.read_text().splitlines() == [
        "STAGGER_DEADLINE=2026-03-05T06:00:00+00:00",
        "STAGGER_GROUP=web",
        "STAGGER_HOOK=drain",
        "STAGGER_NODE_ID=node-1",
        "STAGGER_REASON=kernel update",
        "STAGGER_STAGE=pre-reboot",
    ]


async def test_pre_reboot_runs_hooks_in_order_and_passes(tmp_path: Path) -> None:
    log = tmp_path / "log"
    hooks = [hook(tmp_path, n, f"echo {n} >> {log}") for n in ("cordon", "drain", "sync")]
    result = await run_pre_reboot(hooks, CTX, 30)
    assert (result.ok, result.reason) == (True, "")
    assert log.read_text().split() == ["cordon", "drain", "sync"]
    assert [r.name for r in result.results] == ["cordon", "drain", "sync"]


async def test_pre_reboot_stops_at_the_first_failure_and_records_why(tmp_path: Path) -> None:
    log = tmp_path / "log"
    hooks = [
        hook(tmp_path, "cordon", f"echo cordon >> {log}"),
        hook(tmp_path, "drain", "echo 'pods would not leave' >&2; exit 4"),
        hook(tmp_path, "sync", f"echo sync >> {log}"),
    ]
    result = await run_pre_reboot(hooks, CTX, 30)
    assert not result.ok
    assert result.reason == "drain: exit 4: pods would not leave"
    assert log.read_text().split() == ["cordon"]


async def test_a_missing_hook_command_fails_closed(tmp_path: Path) -> None:
    result = await run_pre_reboot([CommandHook([str(tmp_path / "nope")])], CTX, 30)
    assert not result.ok
    assert "was not found" in result.reason


async def test_a_hook_running_past_the_time_limit_is_killed_and_fails(tmp_path: Path) -> None:
    hooks = [hook(tmp_path, "slow", "exec sleep 600"), hook(tmp_path, "after", "true")]
    result = await run_pre_reboot(hooks, CTX, 0.3)
    assert not result.ok
    assert "did not finish" in result.results[0].detail
    assert [r.name for r in result.results] == ["slow"]


async def test_a_deadline_already_passed_fails_the_stage_without_running_hooks(
    tmp_path: Path,
) -> None:
    log = tmp_path / "log"
    script(tmp_path / "pre-reboot.d", "10-drain", f"echo ran >> {log}")
    settings = HookSettings(pre_reboot_dir=tmp_path / "pre-reboot.d")
    stage = PreRebootStage(settings, CTX)
    outcome = await stage.run(datetime.now(UTC) - timedelta(seconds=1))
    assert not outcome.ok
    assert "time limit" in outcome.detail
    assert not log.exists()


# --- blockers -----------------------------------------------------------------------------------

UTMP = struct.Struct("<hxxi32s4s32s256shhi2i4i20s")


def utmp_record(kind: int, user: str, line: str) -> bytes:
    return UTMP.pack(kind, 1234, line.encode(), b"ts/0", user.encode(), b"10.0.0.9",
                     0, 0, 0, 1_700_000_000, 0, 0, 0, 0, 0, b"")  # fmt: skip


async def test_a_logged_in_user_blocks_the_reboot(tmp_path: Path) -> None:
    utmp = tmp_path / "utmp"
    utmp.write_bytes(utmp_record(2, "reboot", "~") + utmp_record(7, "alice", "pts/0"))
    result = await LoggedInUsers(utmp).run(CTX, 5)
    assert (result.ok, result.detail) == (False, "logged in: alice on pts/0")


async def test_only_boot_and_dead_records_do_not_block(tmp_path: Path) -> None:
    utmp = tmp_path / "utmp"
    utmp.write_bytes(utmp_record(2, "reboot", "~") + utmp_record(8, "bob", "pts/1"))
    assert (await LoggedInUsers(utmp).run(CTX, 5)).ok


async def test_no_utmp_file_means_nobody_is_logged_in(tmp_path: Path) -> None:
    assert (await LoggedInUsers(tmp_path / "utmp").run(CTX, 5)).ok


@pytest.fixture
def http_server() -> Iterator[str]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            code = int(self.path.strip("/") or 200)
            self.send_response(code)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


async def test_a_url_answering_2xx_passes(http_server: str) -> None:
    result = await HttpCheck(f"{http_server}/204").run(CTX, 5)
    assert (result.ok, result.detail) == (True, "answered 204")


async def test_a_url_answering_503_blocks(http_server: str) -> None:
    result = await HttpCheck(f"{http_server}/503").run(CTX, 5)
    assert (result.ok, result.detail) == (False, "answered 503")


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_a_url_nobody_answers_blocks() -> None:
    result = await HttpCheck(f"http://127.0.0.1:{closed_port()}/").run(CTX, 5)
    assert not result.ok
    assert result.detail.startswith("no answer")


async def test_a_blocker_command_blocks_unless_it_exits_0(tmp_path: Path) -> None:
    settings = HookSettings(
        block_commands=((str(script(tmp_path, "busy", "exit 1")),),),
        pre_reboot_dir=tmp_path / "none",
    )
    result = await run_pre_reboot(settings.pre_reboot_hooks(), CTX, 10)
    assert (result.ok, result.results[0].detail) == (False, "exit 1")


def test_blockers_run_before_the_directory_and_the_configured_hooks(tmp_path: Path) -> None:
    script(tmp_path / "etc/stagger/pre-reboot.d", "10-drain", "true")
    config = StaggerConfig.model_validate(
        {
            "hooks": {
                "pre_reboot": [["/usr/local/bin/sync-caches"]],
                "block_logged_in_users": True,
                "block_commands": [["/usr/local/bin/is-busy"]],
                "block_urls": ["http://127.0.0.1:9/ok"],
            }
        }
    )
    stage = build_pre_reboot(config, tmp_path, "node-1")
    assert [h.name for h in stage.settings.pre_reboot_hooks()] == [
        "logged-in users",
        "/usr/local/bin/is-busy",
        "GET http://127.0.0.1:9/ok",
        str(tmp_path / "etc/stagger/pre-reboot.d/10-drain"),
        "/usr/local/bin/sync-caches",
    ]


# --- health -------------------------------------------------------------------------------------


async def test_an_open_tcp_port_passes_and_a_closed_one_fails() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        assert (await TcpCheck("127.0.0.1", port).run(CTX, 5)).ok
    assert not (await TcpCheck("127.0.0.1", closed_port()).run(CTX, 5)).ok


@pytest.mark.parametrize(("state", "ok"), [("running", True), ("degraded", False)])
async def test_system_state_must_be_an_accepted_one(tmp_path: Path, state: str, ok: bool) -> None:
    fake = script(tmp_path, "systemctl", f'test "$1" = is-system-running || exit 9\necho {state}')
    result = await SystemState(("running",), (str(fake), "is-system-running")).run(CTX, 5)
    assert (result.ok, result.detail.split()[0]) == (ok, state)


async def test_health_is_retried_until_it_passes(tmp_path: Path) -> None:
    count = tmp_path / "count"
    check = hook(tmp_path, "warm", f"echo x >> {count}\ntest $(wc -l < {count}) -ge 3")
    result = await run_health([check], CTX, time_limit=30, interval=0.01)
    assert (result.ok, result.attempts, result.stage) == (True, 3, HEALTH)


async def test_health_that_never_passes_fails_after_the_timeout(tmp_path: Path) -> None:
    check = hook(tmp_path, "broken", "echo 'service down' >&2; exit 1")
    result = await run_health([check], CTX, time_limit=0.2, interval=0.05)
    assert not result.ok
    assert result.attempts >= 2
    assert result.reason == "broken: exit 1: service down"


async def test_health_runs_every_check_each_round(tmp_path: Path) -> None:
    checks = [hook(tmp_path, "a", "exit 1"), hook(tmp_path, "b", "exit 0")]
    result = await run_health(checks, CTX, time_limit=10, interval=100)
    assert [(r.name, r.ok) for r in result.results] == [("a", False), ("b", True)]


async def test_no_health_checks_pass_at_once() -> None:
    result = await run_health([], CTX, time_limit=10)
    assert (result.ok, result.attempts) == (True, 1)
