"""`stagger explain`: one screen that answers "why hasn't it rebooted / why did it?"

explain reads what the agent saved (its state file), runs the detectors once, judges the
schedule at now, asks the backend for the group's slots and pause, and puts the sentence of
core/strategy.decide on top: the same gates, in the same order, as the agent. Each source that
cannot answer (no state file yet, backend down, a detector unknown) is said, not fatal.
"""

from __future__ import annotations

import asyncio
import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from stagger.agent.detectors.base import Detector, Finding, combine
from stagger.backends.protocol import GroupStatus, utcnow
from stagger.cli.config import ConfigFileOption, ConfigRootOption, load
from stagger.cli.output import (
    JsonOption,
    console,
    emit,
    reported_errors,
)
from stagger.core.cycle.gates import judge, urgent_skips_window
from stagger.core.durations import format_duration
from stagger.core.errors import StaggerError
from stagger.core.secrets import mask_url, mask_urls_in
from stagger.core.semaphore import Pause, Urgent
from stagger.core.strategy import UNCONFIGURED_NOTE, Decision, Verdict, unconfigured

if TYPE_CHECKING:
    from stagger.config.loader import LoadedConfig

BACKEND_TIME_LIMIT = 10.0
DETECTOR_TIME_LIMIT = 60.0


@dataclass(frozen=True)
class AgentView:
    """What the agent saved, or why there is nothing to show."""

    path: Path
    present: bool
    state: dict[str, Any] | None = None
    saved_at: datetime | None = None
    problem: str = ""


@dataclass(frozen=True)
class SlotView:
    max: int | None = None
    holders: tuple[str, ...] = ()
    stale: tuple[str, ...] = ()
    pause: Pause | None = None
    problem: str = ""


def _node_id(loaded: LoadedConfig, root: Path | None) -> str:
    from stagger.agent.identity import node_id

    if loaded.config.agent.id:
        return loaded.config.agent.id
    try:
        return node_id(root or "/")
    except StaggerError as exc:
        return f"(unknown: {exc.message})"


def _agent_view(loaded: LoadedConfig, root: Path | None) -> AgentView:
    from stagger.agent.state_file import StateStore
    from stagger.config.section import path_of
    from stagger.core.cycle.node_state import NodeState

    path = path_of(loaded.config.agent, "state_path", root)
    try:
        saved = StateStore(path).load_saved()
    except StaggerError as exc:
        return AgentView(path, True, problem=exc.message)
    if saved is None:
        return AgentView(path, False, problem=f"the agent has not written {path} yet: is "
                         "`stagger agent` running with this configuration?")  # fmt: skip
    try:
        state = NodeState.from_dict(saved.state).to_dict()
    except (KeyError, ValueError, TypeError) as exc:
        return AgentView(path, True, problem=f"{path} cannot be understood ({exc!r})")
    return AgentView(path, True, state, saved.saved_at)


async def _findings(loaded: LoadedConfig, root: Path | None) -> list[Finding]:
    from stagger.agent.detectors.factory import build_detectors

    detectors = build_detectors(loaded.config, root)

    async def one(detector: Detector) -> Finding:
        try:
            async with asyncio.timeout(DETECTOR_TIME_LIMIT):
                return await detector.check()
        except TimeoutError:
            return Finding(None, detector.name, f"no answer within {DETECTOR_TIME_LIMIT:g}s")

    return list(await asyncio.gather(*(one(d) for d in detectors)))


async def _slots(url: str, group: str) -> SlotView:
    from stagger.backends.factory import open_backend

    shown = mask_url(url)
    try:
        backend = open_backend(url, create=False)  # explain only reads
    except (StaggerError, OSError, ModuleNotFoundError) as exc:
        return SlotView(problem=f"backend {shown} cannot be opened: {mask_urls_in(str(exc))}")
    try:
        async with asyncio.timeout(BACKEND_TIME_LIMIT):
            snapshot = await backend.status(group)
    except TimeoutError:
        return SlotView(problem=f"backend {shown} did not answer within {BACKEND_TIME_LIMIT:g}s")
    except (StaggerError, OSError) as exc:
        return SlotView(problem=f"backend {shown}: {mask_urls_in(str(exc))}")
    finally:
        await backend.close()
    status: GroupStatus | None = next((g for g in snapshot.groups if g.group == group), None)
    if status is None:
        return SlotView(problem=f"the backend knows no group {group!r}")
    holders = tuple(h.id for h in status.holds)
    slots = status.semaphore.slots(status.now)  # a percentage max, in slots now
    return SlotView(slots, holders, tuple(sorted(status.stale)), status.pause)


PAUSED_UPDATES = "updates keep flowing while reboots are paused"


def _updates_view(
    loaded: LoadedConfig, agent: AgentView, pause: Pause | None, now: datetime
) -> dict[str, Any]:
    """The update schedule as the agent sees it: the last attempt, its result, the next one
    (core/updates.decide on the saved record; a pause never stops updates)."""
    from stagger.agent.state_file import StateStore
    from stagger.agent.updaters.runner import STATE_KEY
    from stagger.core.cycle.node_state import NodeState
    from stagger.core.updates import UpdatesState, UpdateVerdict, decide, reboot_pending

    cfg = loaded.config
    policy = cfg.updates.policy(loaded.host_zone)
    try:
        raw = (StateStore(agent.path).load() or {}).get(STATE_KEY) or {}
        record = UpdatesState.from_dict(raw)
    except (StaggerError, KeyError, ValueError, TypeError, AttributeError):
        record = UpdatesState()
    node = NodeState.from_dict(agent.state) if agent.state else NodeState()
    # 0.5 is the middle draw; it matters only before the agent has planned a first attempt.
    d = decide(policy, record, now, 0.5, reboot_pending(node))
    paused = pause is not None and pause.active(now) and d.verdict is not UpdateVerdict.OFF
    last = record.to_dict()["last"]
    return {
        "updater": policy.updater,
        "enabled": policy.enabled,
        "interval": policy.interval,
        "jitter": policy.jitter,
        "last": last,
        "failures": record.failures,
        "next": {"verdict": d.verdict.value, "reason": d.reason, "at": d.at, "due": d.due},
        "while_paused": PAUSED_UPDATES if paused else None,
    }


def _urgent(loaded: LoadedConfig, root: Path | None) -> Urgent | None:
    """The urgent reboot this node's need-reboot marker asks for in this boot (`--now`)."""
    from stagger.agent.state_file import read_boot_id, read_manual_mark
    from stagger.config.section import path_of

    cfg = loaded.config
    try:
        mark = read_manual_mark(cfg.detectors.manual.path_of("path", root))
        if mark is None:
            return None
        return mark.as_urgent(read_boot_id(path_of(cfg.agent, "boot_id_path", root)))
    except StaggerError:
        return None  # the manual detector's finding says why the marker cannot be read


def _uncleared(agent: AgentView) -> str | None:
    """The reboot-loop guard's sentence when the saved need is one a reboot did not clear."""
    from stagger.core.cycle.gates import uncleared_sentence, withheld
    from stagger.core.cycle.node_state import NodeState

    if not agent.state:
        return None
    node = NodeState.from_dict(agent.state)
    need = withheld(node)
    return None if need is None else uncleared_sentence(node, need)


def _next_step(
    decision: Decision,
    agent: AgentView,
    slots: SlotView,
    node: str,
    next_open: datetime | None,
    now: datetime,
) -> tuple[str, datetime | None]:
    """The agent's next step in one sentence, and when (None: now, or not known)."""
    cycle = (agent.state or {}).get("cycle")
    uncleared = _uncleared(agent)
    if cycle == "waiting" and uncleared is not None:
        return uncleared, None
    if cycle == "halted":
        return (
            "health checks failed after the reboot: the node keeps its slot so the rollout "
            f"stops here; fix the node (checks are retried), or `stagger unlock --id {node}`",
            None,
        )
    if cycle == "disabled":
        return "the opt-out flag /etc/stagger/disabled is set: this node never reboots", None
    if cycle in ("acquiring", "draining", "rebooting", "verifying", "releasing", "aborting"):
        return f"the agent is {cycle}: {(agent.state or {}).get('reason', '')}", None
    if decision.verdict is Verdict.WAIT and decision.reason.value == "window_closed":
        return "wait for the next window, then ask for a slot", next_open
    if decision.verdict is Verdict.ACQUIRE:
        if node in slots.holders:
            return "this node holds a slot: drain and reboot", None
        if slots.max is not None and len(slots.holders) >= slots.max:
            held = ", ".join(slots.holders) or "nobody"
            return f"wait for a slot: all {slots.max} are held ({held})", None
        return "ask for a slot now, then drain and reboot", now
    if decision.verdict is Verdict.REBOOT:
        return "drain and reboot now, without a slot", now
    if decision.verdict is Verdict.IDLE:
        return "nothing to do until a detector says a reboot is needed", None
    return decision.sentence, None


def explain(
    config: Path | None = ConfigFileOption,
    root: Path | None = ConfigRootOption,
    json: bool = JsonOption,
    diagram: str | None = typer.Option(
        None,
        "--diagram",
        metavar="mermaid|text",
        help="Print the node cycle's transition table as a diagram instead (mermaid, for docs "
        "and GitHub; text, one line per move that can happen, with when) and exit.",
        show_default=False,
    ),
) -> None:
    """Why this node has not rebooted (or why it did): need, strategy, window, pause, slot,
    the last hook results, and the next step."""
    if diagram is not None:
        _print_diagram(diagram, json)
        return
    loaded = load(config, root, json)
    cfg = loaded.config
    with reported_errors(json):
        now = utcnow()
        schedule = loaded.schedule()
        node = _node_id(loaded, root)
        agent = _agent_view(loaded, root)

        async def gather() -> tuple[list[Finding], SlotView]:
            findings, slots = await asyncio.gather(
                _findings(loaded, root), _slots(cfg.agent.backend_url(root), cfg.agent.group)
            )
            return findings, slots

        findings, slots = asyncio.run(gather())
    combined = combine(findings)
    is_open = schedule.is_open(now)
    next_open = None if is_open else schedule.next_open(now)
    urgent = _urgent(loaded, root)
    decision = judge(
        cfg.agent.strategy,
        schedule,
        now,
        needed=combined.needed is True,
        pause=slots.pause,
        backend_reachable=not slots.problem,
        urgent=urgent,
        backend_configured=cfg.agent.backend_configured,
    )
    never = unconfigured(cfg.agent.strategy, cfg.agent.backend_configured)
    step, when = _next_step(decision, agent, slots, node, next_open, now)
    updates = _updates_view(loaded, agent, slots.pause, now)
    saved_need = (agent.state or {}).get("needed")
    doc = {
        "node": node,
        "group": cfg.agent.group,
        "now": now,
        "needed": {
            "needed": combined.needed,
            "detector": combined.detector,
            "detail": combined.detail,
            "since": saved_need.get("since") if isinstance(saved_need, dict) else None,
            "not_cleared_by_reboot": _uncleared(agent),
        },
        "detectors": findings,
        "strategy": cfg.agent.strategy.value,
        "not_configured": UNCONFIGURED_NOTE if never else None,
        "window": {
            "open": is_open,
            "closes_at": schedule.closes_at(now) if is_open else None,
            "next_open": next_open,
            "why": schedule.why(now),
        },
        "pause": slots.pause,
        "urgent": (
            None
            if urgent is None
            else {
                "reason": urgent.reason,
                "by": urgent.by,
                "since": urgent.since,
                "ignore_blackouts": urgent.ignore_blackouts,
                "skips_window_now": urgent_skips_window(urgent, schedule, now) is not None,
            }
        ),
        "slot": {
            "max": slots.max,
            "held_by": list(slots.holders),
            "stale": list(slots.stale),
            "held_by_this_node": node in slots.holders,
            "problem": slots.problem or None,
        },
        "agent": {
            "state_file": str(agent.path),
            "present": agent.present,
            "saved_at": agent.saved_at,
            "state": agent.state,
            "problem": agent.problem or None,
        },
        "decision": {
            "verdict": decision.verdict.value,
            "reason": decision.reason.value,
            "sentence": decision.sentence,
        },
        "next": {"step": step, "at": when},
        "updates": updates,
    }

    def human() -> None:
        out = console()

        def line(label: str, text: str) -> None:
            out.print(f"{label:<10} {text}", soft_wrap=True)

        line("node", f"{node} in group {cfg.agent.group!r}, strategy {cfg.agent.strategy.value}")
        if never:
            line("backend", UNCONFIGURED_NOTE)
        need = {True: "NEEDED", False: "not needed", None: "unknown"}[combined.needed]
        since = doc["needed"]["since"]  # type: ignore[index]
        line("reboot", need + (f" since {since}" if since and combined.needed else ""))
        for f in findings:
            answer = {True: "needed", False: "no", None: "unknown"}[f.needed]
            line("", f"{f.detector}: {answer} — {f.detail}")
        line("window", schedule.why(now))
        if urgent is not None:
            line("urgent", urgent.describe())
        if slots.problem:
            line("slot", slots.problem)
        else:
            held = ", ".join(slots.holders) or "nobody"
            mine = " (this node)" if node in slots.holders else ""
            line("slot", f"{len(slots.holders)} of {slots.max} held by {held}{mine}")
        if slots.pause:
            p = slots.pause
            until = f"until {p.until.isoformat()}" if p.until else "until resumed"
            line("pause", f"by {p.by} ({until}): {p.reason}")
        elif slots.problem:  # no answer is not "no pause"
            line("pause", f"unknown (backend unreachable: {slots.problem})")
        else:
            line("pause", "none")
        if agent.state is None:
            line("agent", agent.problem)
        else:
            st = agent.state
            line("agent", f"{st.get('cycle')} since {st.get('since')}: {st.get('reason')}")
            if st.get("last_reboot"):
                line("rebooted", f"last at {st['last_reboot']}")
            for key, label in (("last_hooks", "hooks"), ("last_health", "health")):
                result = st.get(key)
                if isinstance(result, dict):
                    mark = "passed" if result.get("ok") else "FAILED"
                    line(label, f"{mark} at {result.get('at')}: {result.get('detail')}")
        u = updates
        if u["next"]["verdict"] == "off":
            line("updates", f"off: {u['next']['reason']}")
        else:
            every = f"{u['updater']} every {format_duration(u['interval'])} ±{u['jitter']:.0%}"
            last = u["last"]
            if last is None:
                line("updates", f"{every}; no attempt yet")
            else:
                line(
                    "updates",
                    f"{every}; last attempt {last['outcome']} at {last['at']} "
                    f"({last['seconds']:.1f}s, {last['trigger']}): {last['detail']}",
                )
            line("", f"next: {u['next']['reason']}")
            if u["while_paused"]:
                line("", u["while_paused"])
        line("decision", decision.sentence)
        at = ""
        if when is not None and when > now:
            at = f" at {when.isoformat()} (in {format_duration(when - now)})"
        line("next", step + at)

    emit(doc, json, human)


def _print_diagram(kind: str, json: bool) -> None:
    """The table of core/cycle/decide.py drawn as it is (the same table the agent runs)."""
    from stagger.core.cycle.diagram import diagram, moves

    with reported_errors(json):
        text = diagram(kind)
    found = [
        {"from": m.source.value, "event": m.event, "to": m.target.value, "when": m.when or None}
        for m in moves()
    ]
    doc = {"kind": kind, "diagram": text, "moves": found}

    def show() -> None:
        sys.stdout.write(text)  # plain: rich would take mermaid's [*] for markup

    emit(doc, json, show)


def register(app: typer.Typer) -> None:
    app.command("explain")(explain)
