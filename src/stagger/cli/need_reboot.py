"""`stagger need-reboot --reason TEXT`: a reboot needed by hand, on this node (a marker the
agent's `manual` detector reads) or, with `--now --node ID`, an emergency reboot asked of
another node's agent through the store or a server."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from stagger.backends.protocol import utcnow
from stagger.cli.config import ConfigFileOption, ConfigRootOption, load
from stagger.cli.output import (
    BackendOption,
    JsonOption,
    console,
    emit,
    operator_by,
    print_json,
    reported_errors,
    run_async,
)
from stagger.core.errors import InvalidInput
from stagger.core.semaphore import validate_node_id


def need_reboot(
    reason: str | None = typer.Option(
        None,
        "--reason",
        metavar="TEXT",
        help="Why (shown by explain, status and the logs); required unless --cancel.",
    ),
    cancel: bool = typer.Option(False, "--cancel", help="Take back an earlier need-reboot."),
    now: bool = typer.Option(
        False,
        "--now",
        help="An emergency reboot: skip the window (not a blackout, never a pause); the slot, "
        "drain and health checks still apply.",
    ),
    ignore_blackouts: bool = typer.Option(
        False, "--ignore-blackouts", help="With --now: skip blackouts too (never a pause)."
    ),
    node: str | None = typer.Option(
        None,
        "--node",
        metavar="ID",
        help="With --now: ask another node's agent, through the store or server "
        "(--backend/--server URL), instead of this node.",
    ),
    backend: str | None = BackendOption,
    config: Path | None = ConfigFileOption,
    root: Path | None = ConfigRootOption,
    json: bool = JsonOption,
) -> None:
    """Mark a reboot as needed by hand (like `locksmithctl send-need-reboot`): the agent takes
    it like any detector's, through window, slot and hooks (--now: outside the window). It
    holds for this boot only."""
    from stagger.agent.state_file import (
        ManualMark,
        clear_manual_mark,
        read_boot_id,
        write_manual_mark,
    )
    from stagger.config.section import path_of

    if node is not None:
        _ask_reboot(node, reason, now, ignore_blackouts, cancel, backend, json)
        return
    loaded = load(config, root, json)
    cfg = loaded.config
    path = cfg.detectors.manual.path_of("path", root)
    with reported_errors(json):
        if cancel:
            had = clear_manual_mark(path)
            doc: dict[str, Any] = {"path": str(path), "cancelled": had}
            text = f"removed {path}" if had else f"there was no {path}: nothing to cancel"
            emit(doc, json, lambda: console().print(text, soft_wrap=True))
            return
        if reason is None:
            raise InvalidInput(
                "need-reboot needs --reason TEXT: say why (explain and the logs show it), "
                "or give --cancel to take back an earlier one"
            )
        if ignore_blackouts and not now:
            raise InvalidInput(
                "--ignore-blackouts only goes with --now (an emergency reboot): add --now, "
                "or drop --ignore-blackouts"
            )
        boot_id = read_boot_id(path_of(cfg.agent, "boot_id_path", root))
        mark = ManualMark(
            reason, utcnow(), operator_by(), boot_id, urgent=now, ignore_blackouts=ignore_blackouts
        )
        write_manual_mark(path, mark)
    doc = {
        "path": str(path),
        "reason": mark.reason.strip(),
        "since": mark.since,
        "by": mark.by,
        "now": now,
        "ignore_blackouts": ignore_blackouts,
    }
    if now:
        skips = "the window and blackouts" if ignore_blackouts else "the window (not a blackout)"
        text = (
            f"an urgent reboot is now needed on this node ({mark.reason.strip()}); the agent "
            f"skips {skips} but never a pause, and still takes a slot and drains "
            "(`stagger explain`)"
        )
    else:
        text = (
            f"a reboot is now needed on this node ({mark.reason.strip()}); the agent takes it "
            f"within a second and reboots when the window and a slot allow (`stagger explain`)"
        )
    emit(doc, json, lambda: console().print(text, soft_wrap=True))


def _ask_reboot(
    node: str,
    reason: str | None,
    now: bool,
    ignore_blackouts: bool,
    cancel: bool,
    backend: str | None,
    as_json: bool,
) -> None:
    """`need-reboot --now --node ID`: the ask is stored for the node (beside its pause); its
    agent takes it when it next reads its group's status, and clears it once rebooted."""
    with reported_errors(as_json):
        validate_node_id(node)
        if not cancel and not now:
            raise InvalidInput(
                "--node asks another node for an emergency reboot: add --now (a plain "
                "need-reboot is left on the node itself)"
            )
        if not cancel and (reason is None or not reason.strip()):
            raise InvalidInput("need-reboot needs --reason TEXT: say why, the history keeps it")
    if cancel:
        gone = run_async(
            lambda b: b.clear_reboot(node), backend=backend, create=False, as_json=as_json
        )
        if as_json:
            from stagger.api import ClearRebootResponse, UrgentModel

            cleared = UrgentModel.of(gone) if gone is not None else None
            doc = ClearRebootResponse(node=node, cleared=cleared)
            print_json(doc.model_dump(mode="json"))
        elif gone is not None:
            console().print(f"took back the emergency reboot asked for {node}", soft_wrap=True)
        else:
            text = f"no emergency reboot was asked for {node}: nothing to cancel"
            console().print(text, soft_wrap=True)
        return
    by = operator_by()
    u = run_async(
        lambda b: b.ask_reboot(node, by=by, reason=reason or "", ignore_blackouts=ignore_blackouts),
        backend=backend,
        create=True,
        as_json=as_json,
    )
    if as_json:
        from stagger.api import AskRebootResponse, UrgentModel

        asked = AskRebootResponse(node=node, urgent=UrgentModel.of(u))
        print_json(asked.model_dump(mode="json"))
        return
    text = (
        f"asked {node} for an emergency reboot ({u.reason}); its agent takes it when it next "
        "reads its group's status (within its poll, at most 5 minutes when idle)"
    )
    console().print(text, soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.command("need-reboot")(need_reboot)
