"""`stagger doctor`: what on this host can reboot it besides stagger, and how to hand
control to stagger while updates keep flowing."""

from __future__ import annotations

import typer

from stagger.cli.output import EXIT_USAGE, JsonOption, emit, fail, fail_from, print_lines
from stagger.core.errors import StaggerError
from stagger.doctor.report import build_report, render_text


def doctor(
    root: str = typer.Option(
        "/", "--root", metavar="DIR", help="Read the host's files under this directory."
    ),
    unit: str | None = typer.Option(
        None,
        "--unit",
        metavar="UNIT",
        help="Show only this systemd unit (reboot sources are always shown).",
    ),
    fleetlock_url: list[str] = typer.Option(
        [],
        "--fleetlock-url",
        metavar="URL",
        help="A FleetLock base URL served by stagger (Zincati pointed at it is not a source); "
        "[agent].backend and [server] from stagger's own config count without it.",
    ),
    as_json: bool = JsonOption,
) -> None:
    """Find every agent that would reboot this host on its own; exit 0 when there is none.
    Also says what stagger itself would do here (information only: never in the exit code)."""
    if unit is not None and ("/" in unit or not unit.strip()):
        fail(
            f"--unit {unit!r} is not a unit name; give e.g. update-engine.service.",
            EXIT_USAGE,
            as_json,
        )
    try:
        report = build_report(root, unit, tuple(fleetlock_url))
    except StaggerError as exc:
        fail_from(exc, as_json)
    emit(report, as_json, lambda: print_lines(render_text(report)))
    raise typer.Exit(report.exit_code)


def register(app: typer.Typer) -> None:
    app.command("doctor")(doctor)
