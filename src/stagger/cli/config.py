"""`stagger config show | check | import`: the effective configuration, where each value came
from, whether it is valid, and the equivalent of a locksmith or Zincati configuration."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from stagger.cli.output import (
    EXIT_USAGE,
    JsonOption,
    console,
    emit,
    fail,
    os_error_sentence,
    print_json,
    reported_errors,
)
from stagger.config.loader import CONFIG_DIRS, InvalidConfig, LoadedConfig, load_config
from stagger.config.migrate import import_files, render
from stagger.core.secrets import masked

ConfigFileOption = typer.Option(
    None,
    "--config",
    metavar="FILE",
    help="Read only FILE instead of the config.d directories.",
    show_default=False,
    readable=False,  # stagger says in one sentence why it cannot read it, click in four lines
)
ConfigRootOption = typer.Option(
    None,
    "--root",
    metavar="DIR",
    help="Look for config.d and /etc/localtime under DIR (an image, a container, tests).",
    show_default=False,
)

config_app = typer.Typer(
    help="Show, check and import the configuration (config.d/*.toml).",
    no_args_is_help=True,
    rich_markup_mode=None,
)


def load(config: Path | None, root: Path | None, as_json: bool) -> LoadedConfig:
    """Load the configuration for a command; a problem is one message and exit 2."""
    with reported_errors(as_json):
        return load_config(config, root)
    raise AssertionError("unreachable")  # for mypy: reported_errors exits on error


def _shown(value: Any) -> str:
    if value is None:
        return "(unset)"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return str(value)


def show(
    config: Path | None = ConfigFileOption,
    root: Path | None = ConfigRootOption,
    json: bool = JsonOption,
) -> None:
    """Print the effective configuration, each value with the file it came from."""
    loaded = load(config, root, json)
    rows = loaded.values()
    doc = {
        "files": [str(p) for p in loaded.files],
        "host_time_zone": {"name": loaded.host_zone, "source": loaded.host_zone_source},
        "values": [{"key": k, "value": masked(v), "source": s} for k, v, s in rows],
        "config": masked(loaded.config.model_dump(mode="json")),
    }

    def human() -> None:
        out = console()
        if loaded.files:
            out.print("files read, in order: " + ", ".join(str(p) for p in loaded.files))
        else:
            dirs = ", ".join(str(d) for d in CONFIG_DIRS)
            out.print(f"no configuration files found in {dirs}: the defaults apply")
        out.print(f"host time zone: {loaded.host_zone} ({loaded.host_zone_source})")
        if not loaded.config.window:
            out.print("no windows are configured: a reboot may start at any time (blackouts apart)")
        table = Table("key", "value", "from", box=None, pad_edge=False)
        for key, value, source in rows:
            table.add_row(key, _shown(masked(value)), source)
        out.print(table)

    emit(doc, json, human)


def check(
    config: Path | None = ConfigFileOption,
    root: Path | None = ConfigRootOption,
    json: bool = JsonOption,
) -> None:
    """Validate the configuration: exit 0, or list every problem and exit 2."""
    try:
        loaded = load_config(config, root)
    except InvalidConfig as exc:
        if json:
            print_json({"ok": False, "problems": [dataclasses.asdict(p) for p in exc.problems]})
        for problem in exc.problems:
            sys.stderr.write(f"stagger: {problem}\n")
        raise typer.Exit(EXIT_USAGE) from None
    except OSError as exc:  # not a config problem as such, but still one sentence
        fail(os_error_sentence(exc), EXIT_USAGE, json)
    files = [str(p) for p in loaded.files]
    doc = {"ok": True, "problems": [], "files": files}
    text = (
        f"configuration is valid ({len(files)} file(s): {', '.join(files)})"
        if files
        else "configuration is valid (no files found: the defaults apply)"
    )
    emit(doc, json, lambda: console().print(text))


def import_(
    paths: list[Path] = typer.Argument(
        ...,
        metavar="PATH...",
        readable=False,
        help="update.conf files (locksmith) and/or Zincati *.toml fragments, lowest priority "
        "first.",
        show_default=False,
    ),
    json: bool = JsonOption,
) -> None:
    """Print the stagger TOML equivalent of locksmith's update.conf or Zincati's fragments,
    with a comment on each thing that cannot be mapped."""
    with reported_errors(json):
        imported = import_files(paths)
    text = render(imported)
    doc = {
        "sources": imported.sources,
        "agent": {k: v for k, (v, _) in imported.agent.items()},
        "window": [w for w, _ in imported.windows],
        "not_mapped": imported.notes,
        "toml": text,
    }

    def human() -> None:
        sys.stdout.write(text)

    emit(doc, json, human)


def register(app: typer.Typer) -> None:
    config_app.command("show")(show)
    config_app.command("check")(check)
    config_app.command("import")(import_)
    app.add_typer(config_app, name="config")
