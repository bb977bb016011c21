"""`stagger update-now`: one update attempt now, through the running agent when one answers on
its control socket (agent/control.py), else directly in this process.

Either way the decision is core's (`core/updates.decide` with `asked`): the update interval and
the update windows are skipped, but never `[updates] enabled = false` nor a pending reboot
(one update is applied and rebooted into before the next). Done directly, the attempt is
recorded in the agent's state file, so `stagger explain` shows it too.
"""

from __future__ import annotations

import asyncio
import random
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from stagger.cli.config import ConfigFileOption, ConfigRootOption, load
from stagger.cli.output import (
    EXIT_DENIED,
    EXIT_OK,
    JsonOption,
    console,
    emit,
    reported_errors,
)
from stagger.core.times import rfc3339
from stagger.core.updates import Outcome

if TYPE_CHECKING:
    from stagger.config.loader import LoadedConfig

WAIT_MARGIN = 60.0  # beyond [updates] timeout, for the agent to answer a --wait request
ASK_LIMIT = 30.0


def _direct(loaded: LoadedConfig, root: Path | None, as_json: bool) -> dict[str, Any]:
    """The attempt without an agent: the same decision, the same updater, the same record."""
    from stagger.agent.state_file import StateFileError, StateStore
    from stagger.agent.updaters.factory import build_updater, spec_from_config
    from stagger.agent.updaters.runner import STATE_KEY, result_doc
    from stagger.backends.protocol import utcnow
    from stagger.config.section import path_of
    from stagger.core.cycle.node_state import NodeState
    from stagger.core.updates import (
        UpdateAttempt,
        UpdatesState,
        UpdateVerdict,
        decide,
        reboot_pending,
        record,
    )

    cfg = loaded.config
    policy = cfg.updates.policy(loaded.host_zone)
    spec = spec_from_config(cfg)
    store = StateStore(path_of(cfg.agent, "state_path", root))
    doc = store.load() or {}
    node = NodeState.from_dict(doc)
    try:
        updates = UpdatesState.from_dict(doc.get(STATE_KEY) or {})
    except (KeyError, ValueError, TypeError):
        updates = UpdatesState()
    rng = random.Random()
    now = utcnow()
    decision = decide(policy, updates, now, rng.random(), reboot_pending(node), asked=True)
    if decision.verdict is not UpdateVerdict.ATTEMPT:
        return {"ok": False, "verdict": decision.verdict.value, "error": decision.reason}

    def progress(line: str) -> None:
        if not as_json:
            sys.stderr.write(f"  {line}\n")

    result = asyncio.run(build_updater(spec).attempt(progress))
    attempt = UpdateAttempt(now, result.outcome, result.detail, result.seconds, "update-now")
    updates = record(updates, attempt, policy, rng.random())
    answer: dict[str, Any] = {
        "ok": True,
        "started": True,
        "reason": decision.reason,
        "attempt": result_doc(updates.last, result),
        "next_attempt": rfc3339(updates.next_attempt) if updates.next_attempt else None,
    }
    try:
        store.save({**doc, STATE_KEY: updates.to_dict()})
        answer["recorded"] = str(store.path)
    except StateFileError as exc:
        answer["recorded"] = None
        answer["not_recorded"] = exc.message
    return answer


def update_now(
    config: Path | None = ConfigFileOption,
    root: Path | None = ConfigRootOption,
    wait: bool = typer.Option(
        False,
        "--wait",
        help="Wait for the attempt to end and show its result (without a running agent, "
        "the attempt always runs in this process and is always waited for).",
    ),
    json: bool = JsonOption,
) -> None:
    """Ask the host's updater for one update now: through the running agent (its control
    socket), else directly. Never while a reboot is pending or with [updates] enabled = false."""
    from stagger.agent.control import ControlUnavailable, ask
    from stagger.config.agent_sections import seconds
    from stagger.config.section import path_of

    loaded = load(config, root, json)
    cfg = loaded.config
    socket = path_of(cfg.agent, "control_socket", root)
    limit = seconds(cfg.updates.timeout) + WAIT_MARGIN if wait else ASK_LIMIT
    unavailable: str | None = None
    with reported_errors(json):
        try:
            answer = asyncio.run(ask(socket, {"op": "update-now", "wait": wait}, limit))
            via = "agent"
        except ControlUnavailable as exc:
            unavailable = exc.message
            via = "direct"
            answer = _direct(loaded, root, json)
    doc = {
        "via": via,
        "updater": cfg.updates.updater,
        "socket": str(socket),
        "agent_unavailable": unavailable,
        **answer,
    }
    attempt = answer.get("attempt")
    failed = isinstance(attempt, dict) and attempt.get("outcome") == Outcome.FAILED.value
    code = EXIT_DENIED if not answer.get("ok") or failed else EXIT_OK

    def human() -> None:
        out = console()
        if not answer.get("ok"):
            sys.stderr.write(f"stagger: {answer.get('error')}\n")
            return
        who = "the agent" if via == "agent" else "stagger (no agent answered)"
        if not isinstance(attempt, dict):
            started = "started" if answer.get("started") else "joined the running"
            out.print(
                f"{who} {started} an update attempt ({cfg.updates.updater}); follow it in "
                "the agent's log, or with `stagger explain`",
                soft_wrap=True,
            )
            return
        out.print(
            f"update attempt {attempt['outcome']} after {attempt['seconds']:.1f}s, by {who}: "
            f"{attempt['detail']}",
            soft_wrap=True,
        )
        if via == "agent":  # done directly, each line was shown as it came
            for line in attempt.get("output", [])[-5:]:
                out.print(f"  {line}", soft_wrap=True)
        if answer.get("next_attempt"):
            out.print(f"next scheduled attempt at {answer['next_attempt']}", soft_wrap=True)
        if answer.get("not_recorded"):
            out.print(f"not recorded: {answer['not_recorded']}", soft_wrap=True)

    emit(doc, json, human)
    raise typer.Exit(code)


def register(app: typer.Typer) -> None:
    app.command("update-now")(update_now)
