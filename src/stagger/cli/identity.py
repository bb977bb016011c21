"""`stagger id`: this node's id, as the agent and `lock`/`unlock` use it by default."""

from __future__ import annotations

from pathlib import Path

import typer

from stagger.agent.identity import APP_ID, machine_id_path, node_id
from stagger.cli.output import JsonOption, console, emit, reported_errors


def show_id(
    root: Path = typer.Option(
        Path("/"), "--root", metavar="DIR", help="Read DIR/etc/machine-id (an image, a chroot)."
    ),
    json: bool = JsonOption,
) -> None:
    """Print this node's id: derived from /etc/machine-id, which it never reveals."""
    with reported_errors(json):
        value = node_id(root)
    doc = {
        "id": value,
        "source": str(machine_id_path(root)),
        "derivation": "hmac-sha256 app-specific (sd_id128_get_machine_app_specific)",
        "app_id": APP_ID.hex(),
    }
    emit(doc, json, lambda: console().print(value))


def register(app: typer.Typer) -> None:
    app.command("id")(show_id)
