"""core/strategy: the strategy decides whether a slot is needed, the schedule when, and a pause
overrides both. Every decision carries a reason code and a sentence."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stagger.core.errors import InvalidInput
from stagger.core.semaphore import Pause
from stagger.core.strategy import (
    DEFAULT_STRATEGY,
    SLOT_TABLE,
    Reason,
    Situation,
    Strategy,
    Verdict,
    decide,
    parse_strategy,
)

NOW = datetime(2026, 5, 14, 4, 0, tzinfo=UTC)
PAUSE = Pause(reason="incident 42", by="operator:alice", since=NOW)
READY = Situation(reboot_needed=True, window_open=True)


def test_the_default_strategy_is_lock() -> None:
    assert DEFAULT_STRATEGY is Strategy.LOCK


@pytest.mark.parametrize("strategy", list(Strategy))
def test_nothing_happens_when_no_reboot_is_needed(strategy: Strategy) -> None:
    d = decide(strategy, Situation(reboot_needed=False, window_open=True))
    assert (d.verdict, d.reason) == (Verdict.IDLE, Reason.NOT_NEEDED)


def test_off_never_reboots_but_says_a_reboot_is_needed() -> None:
    d = decide(Strategy.OFF, READY)
    assert (d.verdict, d.reason) == (Verdict.WAIT, Reason.STRATEGY_OFF)
    assert "a reboot is needed" in d.sentence


def test_immediate_reboots_without_a_slot() -> None:
    d = decide(Strategy.IMMEDIATE, READY)
    assert (d.verdict, d.reason) == (Verdict.REBOOT, Reason.NO_SLOT_NEEDED)
    assert not d.needs_slot


def test_lock_takes_a_slot() -> None:
    d = decide(Strategy.LOCK, READY)
    assert (d.verdict, d.reason) == (Verdict.ACQUIRE, Reason.SLOT_REQUIRED)
    assert d.needs_slot


def test_lock_still_wants_a_slot_when_the_backend_did_not_answer() -> None:
    d = decide(Strategy.LOCK, Situation(True, True, backend_reachable=False))
    assert d.verdict is Verdict.ACQUIRE


def test_best_effort_takes_a_slot_when_the_backend_answered_at_start() -> None:
    d = decide(Strategy.BEST_EFFORT, Situation(True, True, backend_reachable=True))
    assert (d.verdict, d.reason) == (Verdict.ACQUIRE, Reason.BACKEND_ANSWERED)


def test_best_effort_reboots_like_immediate_when_the_backend_did_not_answer() -> None:
    d = decide(Strategy.BEST_EFFORT, Situation(True, True, backend_reachable=False))
    assert (d.verdict, d.reason) == (Verdict.REBOOT, Reason.BACKEND_UNREACHABLE)


@pytest.mark.parametrize("strategy", [Strategy.IMMEDIATE, Strategy.LOCK, Strategy.BEST_EFFORT])
def test_a_closed_schedule_makes_every_strategy_wait(strategy: Strategy) -> None:
    why = "closed: next window Thu 04:00 Asia/Tokyo (in 3h12m)"
    d = decide(strategy, Situation(True, False, schedule_why=why))
    assert (d.verdict, d.reason) == (Verdict.WAIT, Reason.WINDOW_CLOSED)
    assert why in d.sentence


@pytest.mark.parametrize("strategy", [Strategy.IMMEDIATE, Strategy.LOCK, Strategy.BEST_EFFORT])
def test_a_pause_overrides_strategy_and_schedule(strategy: Strategy) -> None:
    d = decide(strategy, Situation(True, True, pause=PAUSE))
    assert (d.verdict, d.reason) == (Verdict.WAIT, Reason.PAUSED)
    assert "incident 42" in d.sentence
    assert "operator:alice" in d.sentence


def test_the_slot_table_covers_every_strategy_that_can_reboot() -> None:
    wanted = {(s, r) for s in Strategy if s is not Strategy.OFF for r in (True, False)}
    assert set(SLOT_TABLE) == wanted


@given(
    st.sampled_from(list(Strategy)),
    st.booleans(),
    st.booleans(),
    st.booleans(),
    st.booleans(),
)
def test_a_reboot_only_starts_when_needed_open_unpaused_and_not_off(
    strategy: Strategy, needed: bool, open_: bool, paused: bool, reachable: bool
) -> None:
    s = Situation(needed, open_, PAUSE if paused else None, reachable)
    d = decide(strategy, s)
    starts = d.verdict in (Verdict.ACQUIRE, Verdict.REBOOT)
    assert starts == (needed and open_ and not paused and strategy is not Strategy.OFF)
    assert d.sentence


@pytest.mark.parametrize(
    ("text", "strategy"), [("off", Strategy.OFF), ("Best-Effort", Strategy.BEST_EFFORT)]
)
def test_strategy_names_are_read_in_any_case(text: str, strategy: Strategy) -> None:
    assert parse_strategy(text) is strategy


def test_unknown_strategy_lists_the_allowed_ones() -> None:
    with pytest.raises(InvalidInput, match="off, immediate, lock, best-effort"):
        parse_strategy("etcd-lock")


# An agent nobody configured (no [agent] backend written) never reboots: without a backend it
# would take its slot from a file on the host itself, coordinated with no one.
UNCONFIGURED = {
    Strategy.OFF: (Verdict.WAIT, Reason.STRATEGY_OFF),
    Strategy.IMMEDIATE: (Verdict.REBOOT, Reason.NO_SLOT_NEEDED),  # asked for explicitly
    Strategy.LOCK: (Verdict.WAIT, Reason.NOT_CONFIGURED),
    Strategy.BEST_EFFORT: (Verdict.WAIT, Reason.NOT_CONFIGURED),
}


@pytest.mark.parametrize(("strategy", "expected"), UNCONFIGURED.items())
@pytest.mark.parametrize("reachable", [True, False])
def test_without_a_configured_backend_only_immediate_reboots(
    strategy: Strategy, expected: tuple[Verdict, Reason], reachable: bool
) -> None:
    situation = Situation(
        reboot_needed=True, window_open=True, backend_reachable=reachable, backend_configured=False
    )
    d = decide(strategy, situation)
    assert (d.verdict, d.reason) == expected
    if d.reason is Reason.NOT_CONFIGURED:
        assert "[agent] backend" in d.sentence
        assert "/etc/stagger/config.d" in d.sentence
