"""The node cycle drawn from its table: every edge TABLE allows, the moves `step` really takes
(`possible_moves`, found by running it), and the mermaid and text renderers behind
`stagger explain --diagram`. Draws only; decides nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

from stagger.core.cycle.decide import TABLE, accepts, step
from stagger.core.cycle.node_state import NodeState, State
from stagger.core.cycle.vocabulary import (
    BackendError,
    BootDetected,
    Context,
    Event,
    HealthFailed,
    HealthPassed,
    HooksFailed,
    HooksPassed,
    Needed,
    NotNeeded,
    PauseChanged,
    RebootFailed,
    Released,
    ReleasedByOperator,
    Restarted,
    SlotDenied,
    SlotGranted,
    Tick,
)
from stagger.core.errors import InvalidInput
from stagger.core.schedule import Schedule
from stagger.core.strategy import Strategy
from stagger.core.windows import Blackout


def _label(event_type: type) -> str:
    name = event_type.__name__
    return "".join(f" {c.lower()}" if c.isupper() and i else c.lower() for i, c in enumerate(name))


def edges() -> list[tuple[State, str, State]]:
    """Every (from, event, to) the table allows, staying put included, in table order."""
    out: list[tuple[State, str, State]] = []
    for state, row in TABLE.items():
        for event_type, transition in row.items():
            for target in sorted(transition.targets, key=list(State).index):
                out.append((state, _label(event_type), target))
    return out


@dataclass(frozen=True)
class Move:
    """A change of state that can really happen: from, on which event, to, and when (the
    table's words; empty when the event alone decides)."""

    source: State
    event: str
    target: State
    when: str


# The explored situations: the machine sees the situation only through gate()'s verdict
# (ACQUIRE, REBOOT, WAIT: a closed window stands for every reason to wait; a pause, strategy
# off and a dry run lead where it leads) and the disabled flag, so one of each is enough.
_EXPLORE_FROM = datetime(2026, 1, 5, tzinfo=UTC)
_NEVER_OPEN = Schedule(
    blackouts=(Blackout(datetime(2000, 1, 1, tzinfo=UTC), datetime(2200, 1, 1, tzinfo=UTC)),)
)
_EXPLORE_IN = (
    Context(Strategy.LOCK),
    Context(Strategy.IMMEDIATE),
    Context(Strategy.LOCK, schedule=_NEVER_OPEN),
    Context(Strategy.LOCK, disabled=True),
)
# Each event comes soon after the last one, or after every back-off, retry and recheck is due.
_EXPLORE_AFTER = (timedelta(seconds=1), timedelta(days=30))


def _events_for(s: NodeState) -> list[Event]:
    """One of each event the table lets s.cycle take and the agent can send there (two needs:
    a new one lifts the guard; a boot only after a first start, as start_event says; an
    operator's release only found by the heartbeat of a node that holds a slot)."""
    boot = s.boot_id or "boot-1"
    other = "boot-2" if boot == "boot-1" else "boot-1"
    every: list[Event | None] = [
        Needed("file", "an update"),
        Needed("file", "another update"),
        NotNeeded(),
        NotNeeded(unknown=True),
        Tick(),
        PauseChanged(),
        Restarted(boot),
        BootDetected(other) if s.boot_id is not None else None,
        SlotGranted(),
        SlotDenied("every slot is held"),
        HooksPassed(),
        HooksFailed("a hook failed"),
        RebootFailed("the rebooter failed"),
        HealthPassed(),
        HealthFailed("a check failed"),
        Released(),
        ReleasedByOperator() if s.holds_slot else None,
        BackendError("no answer"),
    ]
    return [e for e in every if e is not None and accepts(s.cycle, type(e))]


def _explored_key(s: NodeState, clock: datetime) -> tuple[Any, ...]:
    """What of a state can change where the next event leads: the need and whether the guard
    holds each explored need; times only as "not set", "due by the next event", "due within
    the explored wait", "later" (counts, ids and sentences lead nowhere else)."""

    def when(t: datetime | None) -> int:
        if t is None:
            return 0
        return 1 + sum(t > clock + after for after in _EXPLORE_AFTER)

    need = s.needed.detail if s.needed else None
    guard = frozenset(n.detail for n in s.rebooted_for)
    times = (s.retry_at, s.backend_retry_at, s.next_check_at)
    return (s.cycle, need, guard, s.holds_slot, s.boot_id is None, *map(when, times))


@cache
def possible_moves(
    situations: tuple[Context, ...] = _EXPLORE_IN,
) -> frozenset[tuple[State, type, State]]:
    """Every (from, event type, to) that `step` really takes from some state a node can reach,
    found by running it: from a fresh node, each event the table accepts, in each situation
    the gates can be in, soon or much later, again from each new state (bounded: the states
    are finitely many once times are seen only as due or not)."""
    found: set[tuple[State, type, State]] = set()
    seen: set[tuple[Any, ...]] = set()
    todo = [(NodeState(), _EXPLORE_FROM)]
    while todo:
        s, clock = todo.pop()
        key = _explored_key(s, clock)
        if key in seen:
            continue
        seen.add(key)
        for event in _events_for(s):
            for after in _EXPLORE_AFTER:
                now = clock + after
                for ctx in situations:
                    new, _ = step(s, event, now, ctx)
                    found.add((s.cycle, type(event), new.cycle))
                    todo.append((new, now))
    return frozenset(found)


def moves() -> list[Move]:
    """The changes of state that can really happen (staying put left out), in table order,
    each with the table's words for when."""
    possible = possible_moves()
    out = []
    for state, row in TABLE.items():
        for event_type, transition in row.items():
            for target in sorted(transition.targets, key=list(State).index):
                if target is not state and (state, event_type, target) in possible:
                    when = transition.when.get(target, "")
                    out.append(Move(state, _label(event_type), target, when))
    return out


def diagram(kind: str = "mermaid") -> str:
    """The moves that can really happen (`moves`), for `stagger explain --diagram`: as a
    mermaid state diagram (one arrow per pair of states, labelled with its events) or as text
    (one line per move and condition, `from -> to on events: when`)."""
    if kind == "mermaid":
        pairs: dict[tuple[State, State], list[str]] = {}
        for m in moves():
            events = pairs.setdefault((m.source, m.target), [])
            if m.event not in events:
                events.append(m.event)
        lines = ["stateDiagram-v2", "    [*] --> idle"]
        lines += [f"    {a.value} --> {b.value}: {', '.join(es)}" for (a, b), es in pairs.items()]
        return "\n".join(lines) + "\n"
    if kind == "text":
        return _text_diagram(moves())
    raise InvalidInput(f"diagram kind {kind!r} is not known: use 'mermaid' or 'text'")


def _text_diagram(found: list[Move]) -> str:
    alike: dict[tuple[State, State, str], list[str]] = {}
    for m in sorted(
        found, key=lambda m: (list(State).index(m.source), list(State).index(m.target))
    ):
        alike.setdefault((m.source, m.target, m.when), []).append(m.event)
    width = max(len(s.value) for s in State)
    lines = []
    for (a, b, when), events in alike.items():
        line = f"{a.value:<{width}} -> {b.value:<{width}} on {', '.join(events)}"
        lines.append(f"{line}: {when}" if when else line)
    return "\n".join(lines) + "\n"
