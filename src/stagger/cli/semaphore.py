"""Operator commands on the reboot semaphores: status, lock, unlock, set-max, pause, resume,
history. Written against the Backend Protocol only, so any backend (SQLite, etcd, later a
FleetLock/HTTP server) slots in through `--backend URL`.

Inputs are validated before the backend is opened (semaphore_inputs.py), so a typo is exit 2
even when the backend is down; the backend re-validates (core does) and judges time by its own
clock. The commands share their option definitions and error handling; what they print for
people is in status_view.py. Commands of their own concern have their own module (rollout.py,
nodes.py, need_reboot.py...).
"""

from __future__ import annotations

import sys
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

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
from stagger.cli.semaphore_inputs import (
    budget_option,
    parse_limit,
    parse_pace,
    pause_end,
    pause_scope,
    resolve_actor,
    set_group_budget,
)
from stagger.cli.status_view import (
    Reports,
    ago,
    denied_sentence,
    describe_pause,
    limit_sentence,
    render_history,
    render_status,
    server_blockers,
)
from stagger.core.durations import format_duration, parse_duration
from stagger.core.errors import InvalidInput
from stagger.core.eta import GroupEta
from stagger.core.semaphore import (
    DEFAULT_GROUP,
    HISTORY_LIMIT,
    MAX_SLOTS,
    Granted,
    NotHeld,
    Released,
    Semaphore,
    validate_group,
)

if TYPE_CHECKING:
    from pydantic import BaseModel

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


# --- JSON documents: the API's models (stagger.api), documented in docs/cli.md ------------


def document(model: BaseModel) -> dict[str, Any]:
    """A model as --json prints it: the same JSON the HTTP API sends. The models (pydantic)
    are imported by the --json paths only, so a command printing a table starts faster."""
    return model.model_dump(mode="json")


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
