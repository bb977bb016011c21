"""`stagger id`: this node's id, as the agent and `lock`/`unlock` use it by default (the
NAME to give it in the server's node tokens file); `--zincati`: the id Zincati sends from
this host."""

from __future__ import annotations

from pathlib import Path

import typer

from stagger.agent.identity import APP_ID, app_specific_id, machine_id_path, read_machine_id
from stagger.cli.output import JsonOption, console, emit, reported_errors

# Zincati's application id: its FleetLock id is this host's machine id made app-specific
# with it (`systemd-id128 machine-id --app-specific=...`).
ZINCATI_APP_ID = bytes.fromhex("de35106b6ec24688b63afddaa156679b")
DERIVATION = "hmac-sha256 app-specific (sd_id128_get_machine_app_specific)"


def show_id(
    root: Path = typer.Option(
        Path("/"), "--root", metavar="DIR", help="Read DIR/etc/machine-id (an image, a chroot)."
    ),
    config: Path | None = typer.Option(
        None, "--config", metavar="FILE", help="Read [agent] id from FILE, not config.d."
    ),
    zincati: bool = typer.Option(
        False, "--zincati", help="Print the id Zincati sends from this host instead."
    ),
    json: bool = JsonOption,
) -> None:
    """Print this node's id: `[agent] id` when set, else derived from /etc/machine-id, which
    it never reveals."""
    with reported_errors(json):
        doc: dict[str, str]
        if zincati:
            value = app_specific_id(read_machine_id(root), ZINCATI_APP_ID)
            doc = _derived(value, root, ZINCATI_APP_ID)
        else:
            from stagger.config.loader import load_config

            configured = load_config(config, root if root != Path("/") else None).config.agent.id
            if configured:
                value, doc = configured, {"id": configured, "source": "[agent] id"}
            else:
                value = app_specific_id(read_machine_id(root), APP_ID)
                doc = _derived(value, root, APP_ID)
    emit(doc, json, lambda: console().print(value))


def _derived(value: str, root: Path, app_id: bytes) -> dict[str, str]:
    return {
        "id": value,
        "source": str(machine_id_path(root)),
        "derivation": DERIVATION,
        "app_id": app_id.hex(),
    }


def register(app: typer.Typer) -> None:
    app.command("id")(show_id)
