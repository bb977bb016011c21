"""Pre-reboot hooks and blockers, and post-reboot health checks.

Rules of this file:
- One small Protocol (`Hook`): `run(context, time_limit)` → HookResult(name, ok, detail,
  seconds). Implementations side by side: a command, logged-in users (utmp), an HTTP URL that
  must answer 2xx, a TCP port that must accept, `systemctl is-system-running` in accepted states.
- Fail-closed: anything that is not a clear pass (a crash, a timeout, a missing command, an
  unreadable directory, a refused connection) is a failure, with the reason recorded.
- Pre-reboot: blockers first (no side effects), then the executables in
  /etc/stagger/pre-reboot.d (run-parts rules), then `[hooks] pre_reboot`; in that order, one at
  a time, stopping at the first failure. The caller gives the stage's time limit (the window's
  end, at most `pre_reboot_timeout`); each hook gets at most `command_timeout` of what is left.
- Health: /etc/stagger/health.d, `[hooks] health` and the built-ins, all run each round;
  rounds are repeated every `health_interval` until all pass or `health_timeout` is spent.
- Directories are read when a stage starts, so a new script needs no agent restart.
- Hooks run with the agent's environment plus STAGGER_NODE_ID, STAGGER_GROUP, STAGGER_REASON,
  STAGGER_DEADLINE (RFC 3339, empty when none), STAGGER_STAGE and STAGGER_HOOK.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import struct
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from stagger.agent.detectors.base import run_command
from stagger.agent.runtime import Outcome
from stagger.core.secrets import mask_url

if TYPE_CHECKING:
    from stagger.config.agent_sections import HooksConfig
    from stagger.config.model import StaggerConfig

PRE_REBOOT = "pre-reboot"
HEALTH = "health"
# run-parts(8)'s default naming rule: names made of letters, digits, '_' and '-' only, so
# editor backups and package leftovers (x.dpkg-old, x~, x.sh.bak) never run.
RUN_PARTS_NAME = re.compile(r"^[A-Za-z0-9_-]+$")


@dataclass(frozen=True)
class HookContext:
    """Who is rebooting and why: given to every hook as STAGGER_* variables."""

    node_id: str
    group: str
    reason: str
    stage: str = PRE_REBOOT
    deadline: datetime | None = None

    def environ(self, hook: str) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            STAGGER_NODE_ID=self.node_id,
            STAGGER_GROUP=self.group,
            STAGGER_REASON=self.reason,
            STAGGER_DEADLINE=self.deadline.isoformat() if self.deadline else "",
            STAGGER_STAGE=self.stage,
            STAGGER_HOOK=hook,
        )
        return env


@dataclass(frozen=True)
class HookResult:
    name: str
    ok: bool
    detail: str
    seconds: float


@dataclass(frozen=True)
class StageResult:
    """A whole stage: ok only when every hook passed. `reason` is the first failure, as
    "name: detail" (empty when ok); `attempts` counts health rounds (1 for pre-reboot)."""

    stage: str
    ok: bool
    results: tuple[HookResult, ...]
    seconds: float
    attempts: int = 1

    @property
    def reason(self) -> str:
        failed = next((r for r in self.results if not r.ok), None)
        return "" if failed is None else f"{failed.name}: {failed.detail}"


@runtime_checkable
class Hook(Protocol):
    name: str

    async def run(self, context: HookContext, time_limit: float) -> HookResult: ...


def _result(name: str, ok: bool, detail: str, started: float) -> HookResult:
    return HookResult(name, ok, detail, round(time.monotonic() - started, 3))


# --- implementations ---------------------------------------------------------------------------


@dataclass
class CommandHook:
    """A command that must exit 0."""

    argv: Sequence[str]
    name: str = ""

    def __post_init__(self) -> None:
        self.name = self.name or " ".join(self.argv)

    async def run(self, context: HookContext, time_limit: float) -> HookResult:
        started = time.monotonic()
        ran = await run_command(self.argv, time_limit, context.environ(self.name))
        if ran.code == 0:
            return _result(self.name, True, "exit 0", started)
        return _result(self.name, False, ran.describe(), started)


# utmp(5) on Linux (glibc, 64-bit and 32-bit alike): 384-byte records.
_UTMP = struct.Struct("<hxxi32s4s32s256shhi2i4i20s")
USER_PROCESS = 7


@dataclass
class LoggedInUsers:
    """Blocks while utmp lists a user session (what `who` shows). No utmp file means nobody
    can be logged in through login/sshd (they create it); an unreadable one blocks."""

    utmp_path: Path = Path("/run/utmp")
    name: str = "logged-in users"

    def users(self) -> list[str]:
        try:
            raw = self.utmp_path.read_bytes()
        except FileNotFoundError:
            return []
        found = []
        for offset in range(0, len(raw) - _UTMP.size + 1, _UTMP.size):
            record = _UTMP.unpack_from(raw, offset)
            if record[0] == USER_PROCESS:
                user = record[4].split(b"\0", 1)[0].decode(errors="replace")
                line = record[2].split(b"\0", 1)[0].decode(errors="replace")
                found.append(f"{user} on {line}" if line else user)
        return found

    async def run(self, context: HookContext, time_limit: float) -> HookResult:
        started = time.monotonic()
        try:
            users = self.users()
        except OSError as exc:
            return _result(self.name, False, f"cannot read {self.utmp_path}: {exc}", started)
        if users:
            return _result(self.name, False, "logged in: " + ", ".join(users), started)
        return _result(self.name, True, "nobody is logged in", started)


@dataclass
class HttpCheck:
    """A URL that must answer 2xx (redirects followed). urllib in a thread: the daemon does not
    load an HTTP client library for one GET."""

    url: str
    name: str = ""

    def __post_init__(self) -> None:
        self.name = self.name or f"GET {mask_url(self.url)}"

    def _get(self, time_limit: float) -> tuple[bool, str]:
        import urllib.error
        import urllib.request

        request = urllib.request.Request(self.url, headers={"User-Agent": "stagger-agent"})
        try:
            with urllib.request.urlopen(request, timeout=max(time_limit, 0.001)) as response:
                status = int(response.status)
        except urllib.error.HTTPError as exc:
            return False, f"answered {exc.code}"
        except (urllib.error.URLError, OSError, ValueError) as exc:
            why = getattr(exc, "reason", exc)
            return False, f"no answer: {why}"
        return 200 <= status < 300, f"answered {status}"

    async def run(self, context: HookContext, time_limit: float) -> HookResult:
        started = time.monotonic()
        ok, detail = await asyncio.to_thread(self._get, time_limit)
        return _result(self.name, ok, detail, started)


@dataclass
class TcpCheck:
    """A HOST:PORT that must accept a TCP connection."""

    host: str
    port: int
    name: str = ""

    def __post_init__(self) -> None:
        self.name = self.name or f"tcp {self.host}:{self.port}"

    @classmethod
    def parse(cls, address: str) -> TcpCheck:
        host, _, port = address.rpartition(":")
        return cls(host.strip("[]"), int(port))

    async def run(self, context: HookContext, time_limit: float) -> HookResult:
        started = time.monotonic()
        try:
            async with asyncio.timeout(max(time_limit, 0.001)):
                _, writer = await asyncio.open_connection(self.host, self.port)
        except TimeoutError:
            return _result(self.name, False, f"no answer within {time_limit:g}s", started)
        except OSError as exc:
            return _result(self.name, False, exc.strerror or str(exc), started)
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return _result(self.name, True, "accepted a connection", started)


@dataclass
class SystemState:
    """`systemctl is-system-running` must print one of the accepted states."""

    accepted: Sequence[str] = ("running",)
    argv: Sequence[str] = ("systemctl", "is-system-running")
    name: str = "systemctl is-system-running"

    async def run(self, context: HookContext, time_limit: float) -> HookResult:
        started = time.monotonic()
        ran = await run_command(self.argv, time_limit, context.environ(self.name))
        if ran.code is None:
            return _result(self.name, False, ran.problem, started)
        state = (ran.stdout.strip().splitlines() or [""])[0].strip()
        if state in self.accepted:
            return _result(self.name, True, state, started)
        wanted = ", ".join(self.accepted)
        return _result(self.name, False, f"{state or ran.describe()} (accepted: {wanted})", started)


@dataclass
class Unusable:
    """A hook source that cannot be read (a directory we may not list): always fails."""

    name: str
    detail: str

    async def run(self, context: HookContext, time_limit: float) -> HookResult:
        return HookResult(self.name, False, self.detail, 0.0)


# --- sources -----------------------------------------------------------------------------------


def run_parts(directory: Path) -> list[Hook]:
    """The executables in `directory` by run-parts(8)'s rules: names of [A-Za-z0-9_-] only,
    regular files (symlinks followed) that are executable, in byte order of their names.
    A missing directory means none; one that cannot be read is a failing hook."""
    try:
        entries = sorted(os.listdir(directory), key=os.fsencode)
    except FileNotFoundError:
        return []
    except OSError as exc:
        return [Unusable(str(directory), f"cannot be read: {exc.strerror or exc}")]
    hooks: list[Hook] = []
    for entry in entries:
        path = directory / entry
        if not RUN_PARTS_NAME.fullmatch(entry) or not path.is_file():
            continue
        if os.access(path, os.X_OK):
            hooks.append(CommandHook([str(path)], name=str(path)))
    return hooks


@dataclass(frozen=True)
class HookSettings:
    """[hooks] as the shell needs it (seconds, resolved paths)."""

    pre_reboot: tuple[tuple[str, ...], ...] = ()
    pre_reboot_dir: Path = Path("/etc/stagger/pre-reboot.d")
    pre_reboot_timeout: float = 900.0
    block_logged_in_users: bool = False
    utmp_path: Path = Path("/run/utmp")
    block_commands: tuple[tuple[str, ...], ...] = ()
    block_urls: tuple[str, ...] = ()
    health: tuple[tuple[str, ...], ...] = ()
    health_dir: Path = Path("/etc/stagger/health.d")
    health_timeout: float = 600.0
    health_interval: float = 5.0
    health_system_states: tuple[str, ...] = ()
    health_urls: tuple[str, ...] = ()
    health_tcp: tuple[str, ...] = ()
    command_timeout: float = 300.0

    @classmethod
    def from_config(cls, hooks: HooksConfig, root: Path | None = None) -> HookSettings:
        from stagger.config.agent_sections import seconds

        return cls(
            pre_reboot=tuple(tuple(a) for a in hooks.pre_reboot),
            pre_reboot_dir=hooks.path_of("pre_reboot_dir", root),
            pre_reboot_timeout=seconds(hooks.pre_reboot_timeout),
            block_logged_in_users=hooks.block_logged_in_users,
            utmp_path=hooks.path_of("utmp_path", root),
            block_commands=tuple(tuple(a) for a in hooks.block_commands),
            block_urls=tuple(hooks.block_urls),
            health=tuple(tuple(a) for a in hooks.health),
            health_dir=hooks.path_of("health_dir", root),
            health_timeout=seconds(hooks.health_timeout),
            health_interval=seconds(hooks.health_interval),
            health_system_states=tuple(hooks.health_system_states),
            health_urls=tuple(hooks.health_urls),
            health_tcp=tuple(hooks.health_tcp),
            command_timeout=seconds(hooks.command_timeout),
        )

    def pre_reboot_hooks(self) -> list[Hook]:
        """Blockers, then pre-reboot.d (run-parts order), then the configured commands."""
        hooks: list[Hook] = []
        if self.block_logged_in_users:
            hooks.append(LoggedInUsers(self.utmp_path))
        hooks += [CommandHook(argv) for argv in self.block_commands]
        hooks += [HttpCheck(url) for url in self.block_urls]
        hooks += run_parts(self.pre_reboot_dir)
        hooks += [CommandHook(argv) for argv in self.pre_reboot]
        return hooks

    def health_checks(self) -> list[Hook]:
        checks: list[Hook] = []
        if self.health_system_states:
            checks.append(SystemState(self.health_system_states))
        checks += [HttpCheck(url) for url in self.health_urls]
        checks += [TcpCheck.parse(address) for address in self.health_tcp]
        checks += run_parts(self.health_dir)
        checks += [CommandHook(argv) for argv in self.health]
        return checks


# --- stages ------------------------------------------------------------------------------------


async def run_pre_reboot(
    hooks: Sequence[Hook], context: HookContext, time_limit: float, per_hook: float = 300.0
) -> StageResult:
    """Run `hooks` one at a time within `time_limit` seconds, stopping at the first failure.
    A hook that would start after the limit is a failure (the window is closing)."""
    context = replace(context, stage=PRE_REBOOT)
    started = time.monotonic()
    end = started + time_limit
    results: list[HookResult] = []
    for hook in hooks:
        left = end - time.monotonic()
        if left <= 0:
            results.append(HookResult(hook.name, False, "not run: the time limit was reached", 0))
            break
        result = await hook.run(context, min(per_hook, left))
        results.append(result)
        if not result.ok:
            break
    ok = all(r.ok for r in results)
    return StageResult(PRE_REBOOT, ok, tuple(results), round(time.monotonic() - started, 3))


async def run_health(
    checks: Sequence[Hook],
    context: HookContext,
    time_limit: float,
    interval: float = 5.0,
    per_check: float = 300.0,
) -> StageResult:
    """Run every check each round until a round passes or `time_limit` seconds are spent; the
    result holds the last round. No checks configured: passes at once."""
    context = replace(context, stage=HEALTH)
    started = time.monotonic()
    end = started + time_limit
    attempts = 0
    while True:
        attempts += 1
        results = []
        for check in checks:
            left = max(end - time.monotonic(), 0.001)
            results.append(await check.run(context, min(per_check, left)))
        ok = all(r.ok for r in results)
        if ok or time.monotonic() + interval > end:
            seconds = round(time.monotonic() - started, 3)
            return StageResult(HEALTH, ok, tuple(results), seconds, attempts)
        await asyncio.sleep(interval)


# --- the daemon's view (agent/runtime.py's PreRebootHooks and HealthChecks Protocols) ---------


def summary(result: StageResult) -> str:
    """One line for the state file and `stagger explain`: each hook, ok or not, and its time."""
    if not result.results:
        return f"{result.stage}: nothing configured"
    parts = [
        f"{r.name}: {'ok' if r.ok else 'FAILED'} ({r.detail}, {r.seconds:g}s)"
        for r in result.results
    ]
    head = "passed" if result.ok else "failed"
    rounds = f" after {result.attempts} round(s)" if result.stage == HEALTH else ""
    return f"{result.stage} {head}{rounds}: " + "; ".join(parts)


@dataclass
class PreRebootStage:
    """`run(deadline)` → Outcome: the pre-reboot hooks within min(deadline, the stage's own
    timeout). `reason` may be set by the daemon before a run (it becomes STAGGER_REASON);
    `last` keeps the structured result of the latest run."""

    settings: HookSettings
    context: HookContext
    reason: str = ""
    last: StageResult | None = None

    async def run(self, deadline: datetime | None) -> Outcome:
        limit = self.settings.pre_reboot_timeout
        if deadline is not None:
            limit = min(limit, (deadline - datetime.now(deadline.tzinfo)).total_seconds())
        context = replace(
            self.context, deadline=deadline, reason=self.reason or self.context.reason
        )
        self.last = await run_pre_reboot(
            self.settings.pre_reboot_hooks(), context, limit, self.settings.command_timeout
        )
        return Outcome(self.last.ok, summary(self.last))


@dataclass
class HealthStage:
    """`run()` → Outcome: the health checks, retried until they pass or the timeout."""

    settings: HookSettings
    context: HookContext
    last: StageResult | None = None

    async def run(self) -> Outcome:
        self.last = await run_health(
            self.settings.health_checks(),
            self.context,
            self.settings.health_timeout,
            self.settings.health_interval,
            self.settings.command_timeout,
        )
        return Outcome(self.last.ok, summary(self.last))


def build_pre_reboot(config: StaggerConfig, root: Path | None, node_id: str) -> PreRebootStage:
    settings = HookSettings.from_config(config.hooks, root)
    return PreRebootStage(settings, HookContext(node_id, config.agent.group, "reboot needed"))


def build_health(config: StaggerConfig, root: Path | None, node_id: str) -> HealthStage:
    settings = HookSettings.from_config(config.hooks, root)
    context = HookContext(node_id, config.agent.group, "after the reboot", HEALTH)
    return HealthStage(settings, context)
