"""`stagger rollout set FILE.toml | status | clear`: the rollout's stages, bake times and error
budget (docs/rollout.md), on a store (sqlite://, etcd://) or through a stagger server's admin
API (--server URL). `status --json` prints the document `GET /v1/rollout` answers
(stagger.api RolloutModel), so a script reads the same fields from both.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from stagger.cli.output import (
    BackendOption,
    JsonOption,
    console,
    emit,
    operator_by,
    reported_errors,
    run_async,
)
from stagger.core.errors import ConfigError, InvalidInput

if TYPE_CHECKING:
    from stagger.api import RolloutModel
    from stagger.backends.protocol import Backend

rollout_app = typer.Typer(
    help="Stages of groups, each baked before the next reboots, and an error budget.",
    no_args_is_help=True,
    rich_markup_mode=None,
)


def read_table(path: Path) -> dict[str, Any]:
    """The `[rollout]` table of a TOML file, checked by core (so a typo is exit 2 before the
    backend is opened)."""
    from stagger.core.rollout import plan_from_table

    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}; check the path") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML ({exc}); fix it and run again") from exc
    table = doc.get("rollout")
    if not isinstance(table, dict):
        raise ConfigError(
            f"{path} has no [rollout] table: write one with [[rollout.stage]] groups = [...] "
            "(docs/rollout.md)"
        )
    try:
        plan_from_table(table)
    except InvalidInput as exc:
        raise ConfigError(f"{path}: [rollout]: {exc.message}") from exc
    return table


async def _document(backend: Backend) -> RolloutModel:
    from stagger.api import RolloutModel
    from stagger.backends.fleetlock import FleetLockBackend
    from stagger.backends.semaphore_store import SemaphoreStore

    if isinstance(backend, FleetLockBackend):
        return await backend.rollout_document()
    if isinstance(backend, SemaphoreStore):
        return RolloutModel.of(await backend.rollout_status())
    raise ConfigError(
        f"the backend {backend.url} keeps no rollout: use a sqlite://, etcd:// or "
        "a stagger server's URL"
    )


async def _set(backend: Backend, table: dict[str, Any], by: str) -> RolloutModel:
    from stagger.backends.fleetlock import FleetLockBackend
    from stagger.backends.semaphore_store import SemaphoreStore
    from stagger.core.rollout import plan_from_table

    if isinstance(backend, FleetLockBackend):
        return await backend.put_rollout(table, by=by)
    if isinstance(backend, SemaphoreStore):
        stages, budget = plan_from_table(table)
        await backend.set_rollout(stages, budget, by=by)
    return await _document(backend)


async def _clear(backend: Backend, by: str) -> bool:
    from stagger.backends.fleetlock import FleetLockBackend
    from stagger.backends.semaphore_store import SemaphoreStore

    if isinstance(backend, FleetLockBackend):
        return await backend.delete_rollout(by=by)
    if isinstance(backend, SemaphoreStore):
        return await backend.clear_rollout(by=by) is not None
    await _document(backend)  # says this backend keeps none
    return False


def render(doc: RolloutModel) -> None:
    out = console()
    if not doc.set:
        out.print("no rollout: every group grants by its own max and pauses")
        return
    budget = f", max_failures {doc.max_failures}" if doc.max_failures else ""
    started = doc.started_at.isoformat() if doc.started_at else "?"
    state = "complete" if doc.complete else "in progress"
    out.print(f"rollout {doc.generation} {state}, begun {started} by {doc.by}{budget}")
    for s in doc.stages:
        n = s.totals
        line = (
            f"  stage {s.number} [{s.state}] {', '.join(s.groups) or '-'}: "
            f"{n.done} done, {n.pending} pending, {n.halted} halted"
        )
        if s.bake_ends is not None:
            line += f"; bake ends {s.bake_ends.isoformat()}"
        out.print(line)
        for title, names, total in (
            ("pending", s.pending, n.pending),
            ("halted", s.halted, n.halted),
            ("left behind by close_after", s.left_behind, n.left_behind),
        ):
            if total:
                out.print(f"    {title}: {_named(names, total)}")
        if set(s.truncated) - {"done"}:
            groups = ", ".join(s.groups)
            out.print(f"    to list them all: stagger nodes --group G --state S, G in {groups}")


def _named(names: list[str], total: int) -> str:
    """The names a document gives (the first ones), and how many more its list has."""
    more = total - len(names)
    return ", ".join(names) + (f" … and {more} more" if more > 0 else "")


@rollout_app.command("set")
def set_command(
    file: Path = typer.Argument(..., metavar="FILE.toml", help="A file with a [rollout] table."),
    backend: str | None = BackendOption,
    json: bool = JsonOption,
) -> None:
    """Begin a rollout: stages in order, each done and baked before the next reboots."""
    with reported_errors(json):
        table = read_table(file)
    by = operator_by()
    doc = run_async(lambda b: _set(b, table, by), backend=backend, create=True, as_json=json)
    emit(doc.model_dump(mode="json"), json, lambda: render(doc))


@rollout_app.command("status")
def status_command(backend: str | None = BackendOption, json: bool = JsonOption) -> None:
    """Show the stages in order: state, done, pending, halted and bake end."""
    doc = run_async(_document, backend=backend, create=False, as_json=json)
    emit(doc.model_dump(mode="json"), json, lambda: render(doc))


@rollout_app.command("clear")
def clear_command(backend: str | None = BackendOption, json: bool = JsonOption) -> None:
    """End the rollout: every group grants by its own max and pauses again."""
    by = operator_by()
    cleared = run_async(lambda b: _clear(b, by), backend=backend, create=False, as_json=json)
    text = "the rollout is cleared" if cleared else "there was no rollout: nothing changed"
    emit({"cleared": cleared}, json, lambda: console().print(text))


def register(app: typer.Typer) -> None:
    app.add_typer(rollout_app, name="rollout")
