"""Operator commands on the reboot semaphores: status, lock, unlock, set-max, pause, resume,
history. Written against the Backend Protocol only, so any backend (SQLite, etcd, later a
FleetLock/HTTP server) slots in through `--backend URL`.

Inputs are validated here, before the backend is opened, so a typo is exit 2 even when the
backend is down; the backend re-validates (core does) and judges time by its own clock.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from stagger.agent.identity import NoMachineId, node_id
from stagger.backends.estimates import group_etas
from stagger.backends.protocol import Backend, GroupStatus, Snapshot, utcnow
from stagger.cli.output import (
    EXIT_DENIED,
    BackendOption,
    JsonOption,
    console,
    operator_by,
    print_json,
    reported_errors,
    run_async,
)
from stagger.core.durations import format_duration, parse_duration
from stagger.core.errors import ConfigError, InvalidInput
from stagger.core.eta import GroupEta
from stagger.core.fleet_view import HoldCondition, hold_conditions
from stagger.core.node_report import NodeReport
from stagger.core.rollout_gate import Budget, parse_budget
from stagger.core.semaphore import (
    DEFAULT_GROUP,
    FLEET,
    HISTORY_LIMIT,
    MAX_SLOTS,
    Denied,
    Event,
    Granted,
    NotHeld,
    Pause,
    Released,
    Semaphore,
    validate_group,
    validate_id,
    validate_max,
    validate_node_id,
)
from stagger.core.times import check_instant, format_utc
from stagger.core.turns import validate_percent

if TYPE_CHECKING:
    from pydantic import BaseModel
    from rich.console import Console

    from stagger.api import BlockerModel

GroupOption = typer.Option(DEFAULT_GROUP, "--group", "-g", metavar="G", help="The group.")
AnyGroupOption = typer.Option(
    None, "--group", "-g", metavar="G", help="Only this group (default: every group)."
)
IdOption = typer.Option(
    None, "--id", metavar="ID", help="The node id (default: this node's, see `stagger id`)."
)
# Where /etc/machine-id is looked up; for tests and for acting from a chroot or image.
RootOption = typer.Option(Path("/"), "--root", metavar="DIR", hidden=True)
AllOption = typer.Option(False, "--all", help="Every group: the fleet-wide pause.")
NodeOption = typer.Option(
    None, "--node", metavar="ID", help="One node's own pause, in every group (its hold stays)."
)


# --- inputs ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Actor:
    """The id acted on and who acts (recorded in history as `by`)."""

    id: str
    by: str

    @property
    def is_operator(self) -> bool:
        return self.by != self.id


def resolve_actor(given: str | None, root: Path) -> Actor:
    """No --id: this node acting for itself. --id of another node: an operator act."""
    if given is None:
        mine = node_id(root)
        return Actor(mine, mine)
    validate_id(given)
    own: str | None
    try:
        own = node_id(root)
    except NoMachineId:  # no id of our own: whoever names an id is an operator
        own = None
    return Actor(given, given if given == own else operator_by())


def parse_max(text: str) -> int:
    try:
        value = int(text.strip())
    except ValueError:
        raise InvalidInput(
            f"max {text!r} is not a whole number: give one from 0 to {MAX_SLOTS} "
            "(0 stops every new reboot in the group), or a percentage such as 10%"
        ) from None
    return validate_max(value)


def budget_option(text: str | None) -> Budget | None:
    """--max-failures: a count, a percentage, or none (no budget)."""
    if text is None or text.strip().lower() in ("none", "off"):
        return None
    return parse_budget(text, "--max-failures")


async def set_group_budget(b: Backend, group: str, budget: Budget | None, *, by: str) -> None:
    from stagger.backends.fleetlock import FleetLockBackend
    from stagger.backends.semaphore_store import SemaphoreStore

    if not isinstance(b, SemaphoreStore | FleetLockBackend):
        raise ConfigError(f"the backend {b.url} keeps no error budget: use a store or a server")
    await b.set_max_failures(group, budget, by=by)


def parse_limit(text: str) -> tuple[int, bool]:
    """`set-max`'s N: (slots, False), or for `N%` (percentage, True)."""
    raw = text.strip()
    if not raw.endswith("%"):
        return parse_max(raw), False
    try:
        value = int(raw[:-1].strip())
    except ValueError:
        raise InvalidInput(
            f"max {text!r} is not a percentage: give a whole one from 1% to 100%, e.g. 10%"
        ) from None
    return validate_percent(value), True


def parse_pace(text: str) -> timedelta | None:
    """`--pace`: a duration, or none/0/off for no pace."""
    if text.strip().lower() in ("none", "off", "0", "0s"):
        return None
    pace = parse_duration(text, what="--pace")
    if pace <= timedelta(0):
        raise InvalidInput(f"--pace {text!r} is not longer than 0 s: give e.g. 10m, or none")
    return pace


def parse_rfc3339(text: str, *, what: str) -> datetime:
    """An RFC 3339 time with its offset ('Z' or '+02:00'); a naive time is refused, since
    it would mean a different instant on every host."""
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise InvalidInput(
            f"{what} {text!r} is not a time: write RFC 3339, like 2030-01-31T18:00:00Z "
            "or 2030-01-31T19:00:00+01:00"
        ) from None
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidInput(
            f"{what} {text!r} has no UTC offset: add one, like {text.strip()}Z (UTC) "
            f"or {text.strip()}+01:00"
        )
    return check_instant(value, what)


def pause_scope(group: str | None, every: bool, node: str | None = None) -> str | None:
    """The group a pause/resume acts on; None means the fleet-wide pause (or, with --node,
    that node's own pause)."""
    if node is not None:
        if every or group is not None:
            raise InvalidInput(
                "--node cannot be used with --group or --all: a node's pause holds in every "
                "group; give --node ID alone"
            )
        validate_node_id(node)
        return None
    if every and group is not None:
        raise InvalidInput(
            "--group and --all cannot be used together: name one group, or --all for every group"
        )
    return None if every else validate_group(DEFAULT_GROUP if group is None else group)


def pause_end(until: str | None, duration: str | None, now: datetime) -> datetime | None:
    if until is not None and duration is not None:
        raise InvalidInput("--until and --for cannot be used together: give one end, or neither")
    if until is not None:
        return parse_rfc3339(until, what="--until")
    if duration is not None:
        span = parse_duration(duration, what="--for")
        if span <= timedelta(0):
            raise InvalidInput(f"--for {duration!r} is not longer than 0 s: give e.g. 2h")
        return now + span
    return None


# --- JSON documents: the API's models (stagger.api), documented in docs/cli.md ------------

Reports = Mapping[str, NodeReport]


def document(model: BaseModel) -> dict[str, Any]:
    """A model as --json prints it: the same JSON the HTTP API sends. The models (pydantic)
    are imported by the --json paths only, so a command printing a table starts faster."""
    return model.model_dump(mode="json")


def active(p: Pause | None, now: datetime) -> Pause | None:
    return p if p is not None and p.active(now) else None


# --- human rendering -------------------------------------------------------------------


def ago(now: datetime, then: datetime) -> str:
    return format_duration(now - then)


def when(t: datetime) -> str:
    """A time for people: UTC, to the second (JSON keeps the full RFC 3339 value)."""
    return format_utc(t)


def group_label(group: str) -> str:
    return "(every group)" if group == FLEET else group


def describe_pause(p: Pause, now: datetime) -> str:
    until = f" until {when(p.until)} (in {ago(p.until, now)})" if p.until else ""
    return f"paused by {p.by}{until}: {p.reason}"


def not_yet_sentence(g: GroupStatus) -> str:
    """A group never written: say so, and what it would be created with (its `max`, hold-ttl
    and stale-after here are the defaults, not stored values)."""
    sem = g.semaphore
    ttl = format_duration(sem.hold_ttl) if sem.hold_ttl else "none"
    text = (
        f"group {g.group} does not exist yet: its first lock, set-max or pause creates it with "
        f"max {sem.max}, hold-ttl {ttl}, stale after {format_duration(sem.stale_after)} "
        "(check the name if you expected it)"
    )
    if g.pause is not None:  # only the fleet-wide pause can be in force on it
        text += f"; the fleet-wide pause applies to it: {describe_pause(g.pause, g.now)}"
    return text


def limit_sentence(g: GroupStatus) -> str:
    """The max as set and as it stands: `3`, or `10% = 3 of 27 nodes`."""
    sem = g.semaphore
    if sem.max_percent is None:
        return str(sem.max)
    known = len(sem.known(g.now))
    return f"{sem.max_percent}% = {sem.slots(g.now)} of {known} node{'s' if known != 1 else ''}"


def condition_text(conditions: tuple[HoldCondition, ...]) -> str:
    """`ok`, or the marks in capitals worst first (`HALTED, STALE`)."""
    marks = [c.value.upper() for c in conditions if c is not HoldCondition.OK]
    return ", ".join(marks) or HoldCondition.OK.value


async def server_blockers(b: Backend) -> list[BlockerModel] | None:
    """The blockers of the server `b` talks to; None for a store read directly (only a server
    checks blockers, docs/rollout.md). The client module is loaded when `b` is one."""
    if "stagger.backends.fleetlock" not in sys.modules:
        return None
    from stagger.backends.fleetlock import FleetLockBackend

    return await b.blockers() if isinstance(b, FleetLockBackend) else None


def render_blockers(blockers: list[BlockerModel], now: datetime) -> None:
    out = console()
    for b in blockers:
        scope = "every group" if b.groups is None else "groups " + ", ".join(b.groups)
        checked = f"checked {ago(now, b.checked_at)} ago" if b.checked_at else "not checked yet"
        if b.blocking:
            out.print(f"BLOCKER {b.name} ({b.kind.value}, {scope}) BLOCKS: {b.reason}")
        else:
            out.print(f"blocker {b.name} ({b.kind.value}, {scope}): lets reboots go ({checked})")


def render_status(
    snap: Snapshot,
    reports: Reports | None = None,
    blockers: list[BlockerModel] | None = None,
    etas: Mapping[str, GroupEta] | None = None,
) -> None:
    reports = reports or {}
    out = console()
    render_blockers(blockers or [], snap.now)
    fleet = active(snap.fleet_pause, snap.now)
    if fleet is not None:
        out.print(f"FLEET-WIDE PAUSE: every group is {describe_pause(fleet, snap.now)}")
    for node, p in snap.node_pauses.items():
        out.print(f"NODE PAUSE: node {node} is {describe_pause(p, snap.now)}")
    for node, u in sorted(snap.urgent_reboots.items()):
        out.print(f"URGENT REBOOT of node {node} asked {when(u.since)}: {u.describe()}")
    if not snap.groups:
        out.print("no groups yet: a group appears with its first lock, set-max or pause")
        return
    for g in snap.groups:
        sem = g.semaphore
        holds = g.holds
        if not sem.stored:
            out.print(not_yet_sentence(g))
            continue
        title = f"group {g.group}: {len(holds)} of max {sem.slots(g.now)} slot(s) held"
        if sem.max_percent is not None:
            title += f" ({limit_sentence(g)})"
        pause = g.pause
        if pause is not None:
            scope = "" if pause is sem.pause else " (fleet-wide)"
            title += f" — {describe_pause(pause, g.now)}{scope}"
        out.print(title)
        if sem.hold_ttl is not None:
            ttl = format_duration(sem.hold_ttl)
            out.print(f"  holds expire {ttl} after their last heartbeat (hold-ttl)")
        from rich.table import Table

        table = Table()
        for column in ("holder", "held for", "last seen", "state", "note"):
            table.add_column(column)
        for h in holds:
            state = condition_text(hold_conditions(g.group, h.id, h.id in g.stale, reports))
            if h.expires_at is not None:
                state += f", expires in {ago(h.expires_at, g.now)}"
            table.add_row(
                h.id, ago(g.now, h.since), f"{ago(g.now, h.last_seen)} ago", state, h.note
            )
        if not holds:
            table.add_row("(none)", "", "", "", "")
        out.print(table)
        slots = sem.slots(g.now)
        if len(holds) > slots:
            out.print(f"  {len(holds)} holds exceed max {slots}: new locks wait for releases")
        render_turns(out, g)
        eta = (etas or {}).get(g.group)
        if eta is not None:
            out.print(f"  {eta_sentence(eta, g.now)}")


def render_turns(out: Console, g: GroupStatus) -> None:
    """The group's pace (and the freed slots cooling down) and its queue, first asked first."""
    sem = g.semaphore
    if sem.pace is not None:
        line = f"  pace {format_duration(sem.pace)}: a freed slot is granted again that long later"
        ends = sem.cooling(g.now)
        if ends:
            line += f"; {len(ends)} cooling, the next free at {when(ends[0])}"
        out.print(line)
    waiters = sem.queue(g.now)
    if waiters:
        out.print(f"  queue ({len(waiters)}, first asked first):")
        for w in waiters:
            out.print(
                f"    {w.position}. {w.id} (asked {ago(g.now, w.first_asked)} ago, "
                f"last {ago(g.now, w.last_asked)} ago)"
            )


def eta_sentence(eta: GroupEta, now: datetime) -> str:
    """`ETA 14:20:00 UTC (in 1h10m): 21 waiting, 3 in progress, median cycle 6m`."""
    work = f"{eta.pending} waiting, {eta.in_progress} in progress"
    if eta.completes_at is None:
        return f"ETA unknown ({eta.why}): {work}"
    cycle = format_duration(eta.cycle) if eta.cycle is not None else "?"
    return (
        f"ETA {when(eta.completes_at)} (in {ago(eta.completes_at, now)}): {work}, "
        f"median cycle {cycle} (an estimate: docs/rollout.md)"
    )


def render_history(events: list[Event], now: datetime) -> None:
    out = console()
    if not events:
        out.print("no events recorded yet")
        return
    from rich.table import Table

    table = Table()
    for column in ("time (UTC)", "ago", "group", "action", "id", "by"):
        table.add_column(column, no_wrap=True)
    table.add_column("detail")
    for e in events:
        table.add_row(
            when(e.time),
            ago(now, e.time),
            group_label(e.group),
            e.action.value,
            e.id,
            e.by,
            e.detail,
        )
    out.print(table)


def denied_sentence(outcome: Denied, group: str, node: str) -> str:
    return f"denied: {node} cannot take a slot in group {group}: {outcome.sentence()}"


# --- commands --------------------------------------------------------------------------


def status(
    group: str | None = AnyGroupOption, backend: str | None = BackendOption, json: bool = JsonOption
) -> None:
    """Show each group: max, holders with age (stale ones marked), and any pause."""
    with reported_errors(json):
        if group is not None:
            validate_group(group)

    async def read(
        b: Backend,
    ) -> tuple[Snapshot, Reports, list[BlockerModel] | None, dict[str, GroupEta]]:
        from stagger.backends.node_pages import holder_reports

        snap = await b.status(group)
        # the holders' own reports: a halted holder says so, not `ok` (core.fleet_view)
        stored = await holder_reports(b, snap)
        blockers = await server_blockers(b)
        if blockers is not None and group is not None:  # the ones that hold this group back
            blockers = [x for x in blockers if x.groups is None or group in x.groups]
        etas = await group_etas(b, snap)
        return snap, {r.id: r for r in stored.reports}, blockers, etas

    snap, reports, blockers, etas = run_async(read, backend=backend, create=False, as_json=json)
    if json:
        from stagger.api import StatusModel

        print_json(document(StatusModel.of(snap, reports, blockers, etas)))
    else:
        render_status(snap, reports, blockers, etas)


def lock(
    group: str = GroupOption,
    node: str | None = IdOption,
    note: str = typer.Option("", "--note", metavar="TEXT", help="Shown with the hold."),
    root: Path = RootOption,
    backend: str | None = BackendOption,
    json: bool = JsonOption,
) -> None:
    """Take a slot in a group (exit 1 when denied: full, paused, pacing, queued, blocked or
    waiting for an earlier rollout stage)."""
    with reported_errors(json):
        validate_group(group)
        actor = resolve_actor(node, root)
    outcome = run_async(
        lambda b: b.acquire(group, actor.id, note=note, by=actor.by),
        backend=backend,
        create=True,
        as_json=json,
    )
    if isinstance(outcome, Granted):
        if json:
            from stagger.api import GrantedModel

            print_json(document(GrantedModel.of(outcome, group, actor.id, actor.by)))
            return
        again = " (already held: nothing changed)" if outcome.already_held else ""
        console().print(f"{actor.id} holds a slot in group {group}{again}")
        return
    sentence = denied_sentence(outcome, group, actor.id)
    if json:
        from stagger.api import DeniedModel

        print_json(document(DeniedModel.of(outcome, group, actor.id, sentence)))
    sys.stderr.write(f"stagger: {sentence}\n")
    raise typer.Exit(EXIT_DENIED)


def unlock(
    group: str = GroupOption,
    node: str | None = IdOption,
    root: Path = RootOption,
    backend: str | None = BackendOption,
    json: bool = JsonOption,
) -> None:
    """Give back a slot (another node's is an operator act, recorded as such)."""
    with reported_errors(json):
        validate_group(group)
        actor = resolve_actor(node, root)
    outcome = run_async(
        lambda b: b.release(group, actor.id, by=actor.by),
        backend=backend,
        create=False,
        as_json=json,
    )
    held = outcome.hold if isinstance(outcome, Released) else None
    if json:
        from stagger.api import HoldModel, UnlockResponse

        answer = UnlockResponse(
            group=group,
            id=actor.id,
            by=actor.by,
            released=held is not None,
            hold=HoldModel.of(held) if held is not None else None,
        )
        print_json(document(answer))
        return
    if held is not None:
        text = f"released {actor.id}'s slot in group {group} (held {ago(utcnow(), held.since)})"
    else:
        assert isinstance(outcome, NotHeld)
        text = f"{actor.id} held no slot in group {group}: nothing changed"
    console().print(text)


def set_max(
    value: str = typer.Argument(
        ...,
        metavar="N|P%",
        help=f"Slots: 0 to {MAX_SLOTS}, or a percentage of the group's known nodes (10%).",
        show_default=False,
    ),
    group: str = GroupOption,
    hold_ttl: str | None = typer.Option(
        None,
        "--hold-ttl",
        metavar="D|none",
        help="Holds expire this long after their last heartbeat ('none': never, the default).",
    ),
    stale_after: str | None = typer.Option(
        None, "--stale-after", metavar="D", help="Mark a hold stale after this silence (15m)."
    ),
    max_failures: str | None = typer.Option(
        None,
        "--max-failures",
        metavar="N|N%|none",
        help="Pause the group when this many of its nodes are halted (docs/rollout.md).",
    ),
    pace: str | None = typer.Option(
        None,
        "--pace",
        metavar="D|none",
        help="A freed slot is granted again only this long after its release (none: at once).",
    ),
    backend: str | None = BackendOption,
    json: bool = JsonOption,
) -> None:
    """Set how many nodes of a group may reboot at once (live; lowering it evicts nobody)."""
    with reported_errors(json):
        validate_group(group)
        slots, percent = parse_limit(value)
        paced = parse_pace(pace) if pace is not None else None
        ttl: timedelta | None = None
        if hold_ttl is not None and hold_ttl.strip().lower() not in ("none", "never", "off"):
            ttl = parse_duration(hold_ttl, what="--hold-ttl")
        stale = None if stale_after is None else parse_duration(stale_after, what="--stale-after")
        budget = budget_option(max_failures)
    by = operator_by()

    async def apply(b: Backend) -> GroupStatus:
        if hold_ttl is not None or stale is not None:
            current = (await b.status(group)).groups
            sem = current[0].semaphore if current else Semaphore(group)
            await b.configure(
                group,
                by=by,
                hold_ttl=ttl if hold_ttl is not None else sem.hold_ttl,
                stale_after=stale if stale is not None else sem.stale_after,
            )
        await b.set_max(group, slots, by=by, percent=percent)
        if pace is not None:
            await b.set_pace(group, paced, by=by)
        if max_failures is not None:
            await set_group_budget(b, group, budget, by=by)
        return (await b.status(group)).groups[0]

    g = run_async(apply, backend=backend, create=True, as_json=json)

    def render() -> None:
        sem = g.semaphore
        ttl_text = format_duration(sem.hold_ttl) if sem.hold_ttl else "none"
        pace_text = f", pace {format_duration(sem.pace)}" if sem.pace else ""
        console().print(
            f"group {group}: max {limit_sentence(g)}, hold-ttl {ttl_text}, "
            f"stale after {format_duration(sem.stale_after)}{pace_text}"
            + (f", max failures {sem.max_failures.text()}" if sem.max_failures else "")
        )
        slots_now = sem.slots(g.now)
        if len(g.holds) > slots_now:
            console().print(
                f"{len(g.holds)} nodes hold slots: nobody is evicted; new locks wait until "
                f"fewer than {slots_now} hold one"
            )

    if json:
        from stagger.api import GroupModel

        print_json(document(GroupModel.of(g)))
    else:
        render()


def pause(
    group: str | None = typer.Option(
        None, "--group", "-g", metavar="G", help=f"The group (default: {DEFAULT_GROUP})."
    ),
    every: bool = AllOption,
    until: str | None = typer.Option(
        None, "--until", metavar="T", help="End, RFC 3339 with offset (2030-01-31T18:00:00Z)."
    ),
    duration: str | None = typer.Option(None, "--for", metavar="D", help="End after D (2h)."),
    reason: str | None = typer.Option(
        None, "--reason", metavar="TEXT", help="Why (required; shown to everyone)."
    ),
    node: str | None = NodeOption,
    backend: str | None = BackendOption,
    json: bool = JsonOption,
) -> None:
    """Stop new reboots in a group, everywhere (--all), or of one node (--node); holders keep
    their slots."""
    with reported_errors(json):
        scope = pause_scope(group, every, node)
        end = pause_end(until, duration, utcnow())
        if reason is None or not reason.strip():
            raise InvalidInput("a pause needs --reason TEXT: say why, everyone sees it")
    by = operator_by()
    if node is not None:
        np = run_async(
            lambda b: b.pause_node(node, by=by, reason=reason or "", until=end),
            backend=backend,
            create=True,
            as_json=json,
        )
        if json:
            from stagger.api import PauseModel, PauseResponse

            doc = PauseResponse(group=None, node=node, pause=PauseModel.from_pause(np))
            print_json(document(doc))
        else:
            console().print(f"node {node} (in every group): {describe_pause(np, utcnow())}")
        return
    p = run_async(
        lambda b: b.pause(scope, by=by, reason=reason or "", until=end),
        backend=backend,
        create=True,
        as_json=json,
    )
    where = f"group {scope}" if scope else "every group (fleet-wide)"
    if json:
        from stagger.api import PauseModel, PauseResponse

        model = PauseModel.of(p)
        assert model is not None
        print_json(document(PauseResponse(group=scope, node=None, pause=model)))
    else:
        console().print(f"{where}: {describe_pause(p, utcnow())}")


def resume(
    group: str | None = typer.Option(
        None, "--group", "-g", metavar="G", help=f"The group (default: {DEFAULT_GROUP})."
    ),
    every: bool = typer.Option(False, "--all", help="Lift the fleet-wide pause."),
    node: str | None = NodeOption,
    backend: str | None = BackendOption,
    json: bool = JsonOption,
) -> None:
    """Lift a pause (--all: the fleet-wide one; --node: one node's). Resuming what is not
    paused changes nothing."""
    with reported_errors(json):
        scope = pause_scope(group, every, node)
    by = operator_by()
    if node is not None:
        gone = run_async(
            lambda b: b.resume_node(node, by=by), backend=backend, create=False, as_json=json
        )
        if json:
            from stagger.api import PauseModel, ResumeResponse

            doc = ResumeResponse(group=None, node=node, lifted=PauseModel.of(gone))
            print_json(document(doc))
        elif gone is not None:
            console().print(f"resumed node {node} (was paused by {gone.by}: {gone.reason})")
        else:
            console().print(f"node {node} was not paused: nothing changed")
        return
    lifted = run_async(
        lambda b: b.resume(scope, by=by), backend=backend, create=False, as_json=json
    )
    where = f"group {scope}" if scope else "the fleet-wide pause"
    if lifted is not None:
        text = f"resumed {where} (was paused by {lifted.by}: {lifted.reason})"
    else:
        text = f"{where} was not paused: nothing changed"
    if json:
        from stagger.api import PauseModel, ResumeResponse

        print_json(document(ResumeResponse(group=scope, node=None, lifted=PauseModel.of(lifted))))
    else:
        console().print(text)


def history(
    group: str | None = AnyGroupOption,
    limit: int = typer.Option(50, "--limit", "-n", metavar="N", help="At most N latest events."),
    reverse: bool = typer.Option(False, "--reverse", help="Oldest first (default: newest first)."),
    prefix: str = typer.Option("", "--prefix", metavar="P", help="Only node ids starting with P."),
    since: str | None = typer.Option(
        None, "--since", metavar="T", help="Only events since T: RFC 3339, or a duration ago."
    ),
    every: bool = typer.Option(
        False, "--all", help="Every matching event, newest first, printed as it is read."
    ),
    backend: str | None = BackendOption,
    json: bool = JsonOption,
) -> None:
    """Show recorded events (locks, releases, max changes, pauses), newest first."""
    from stagger.cli import pages
    from stagger.core.listing import HistoryQuery

    with reported_errors(json):
        if group is not None:
            validate_group(group)
        if not 1 <= limit <= HISTORY_LIMIT:
            raise InvalidInput(
                f"--limit {limit} is not valid: give a whole number from 1 to {HISTORY_LIMIT} "
                "(each group keeps its last events only), or --all"
            )
        if every and (reverse or limit != 50):
            raise InvalidInput(
                "--all prints every event newest first as it reads them: drop --reverse and --limit"
            )
        query = HistoryQuery(group=group, since=pages.since_option(since), q=prefix)
    if every:
        run_async(
            lambda b: pages.stream_history(
                b, query, json, lambda events: render_history(events, utcnow())
            ),
            backend=backend,
            create=False,
            as_json=json,
        )
        return
    if since is None and not prefix:  # what every server answers, older ones too
        events = run_async(
            lambda b: b.history(group, limit), backend=backend, create=False, as_json=json
        )
    else:
        events = run_async(
            lambda b: pages.read_history(b, query, limit),
            backend=backend,
            create=False,
            as_json=json,
        )
    # The backend's order, newest first, as GET /v1/history; --reverse turns both the table
    # and the JSON round.
    if reverse:
        events = events[::-1]
    if json:
        from stagger.api import HistoryModel

        print_json(document(HistoryModel.of(events)))
    else:
        render_history(events, utcnow())


def register(app: typer.Typer) -> None:
    app.command("status")(status)
    app.command("lock")(lock)
    app.command("unlock")(unlock)
    app.command("set-max", context_settings={"ignore_unknown_options": True})(set_max)
    app.command("pause")(pause)
    app.command("resume")(resume)
    app.command("history")(history)
