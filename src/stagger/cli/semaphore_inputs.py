"""The semaphore commands' inputs (cli/semaphore.py), checked before any backend is opened
so that a typo is exit 2 even when the backend is down: who acts (this node, or an operator
naming another node's id), a max as a count or a percentage, a pace, an error budget, a pause's
scope and its end."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from stagger.agent.identity import NoMachineId, node_id
from stagger.backends.protocol import Backend
from stagger.cli.output import operator_by
from stagger.core.durations import parse_duration
from stagger.core.errors import ConfigError, InvalidInput
from stagger.core.rollout_gate import Budget, parse_budget
from stagger.core.semaphore import (
    DEFAULT_GROUP,
    MAX_SLOTS,
    validate_group,
    validate_id,
    validate_max,
    validate_node_id,
)
from stagger.core.times import check_instant
from stagger.core.turns import validate_percent


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
