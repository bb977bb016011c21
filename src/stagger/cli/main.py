"""The `stagger` command: wiring only. Each command group lives in its own module and adds
itself with `register(app)`; this file lists them and turns errors into exit codes."""

from __future__ import annotations

import importlib
import sys

import typer

from stagger import __version__
from stagger.cli.output import EXIT_USAGE
from stagger.core.errors import StaggerError

# One module per command group (kept in the order `stagger --help` shows them).
COMMAND_MODULES = [
    "stagger.cli.semaphore",
    "stagger.cli.nodes",
    "stagger.cli.identity",
    "stagger.cli.config",
    "stagger.cli.windows",
    "stagger.cli.agent",
    "stagger.cli.explain",
    "stagger.cli.updates",
    "stagger.cli.doctor",
    "stagger.cli.server",
    "stagger.cli.simulate",
    "stagger.cli.demo",
]

app = typer.Typer(
    name="stagger",
    help="Coordinated OS reboots: windows, fleet-wide slots, drain and health gates.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"stagger {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version."
    ),
) -> None:
    """stagger: updates keep flowing; each host reboots only when it is safe."""


for _name in COMMAND_MODULES:
    importlib.import_module(_name).register(app)


def main() -> None:
    try:
        app()
    except StaggerError as exc:  # raised outside a command's own handling
        sys.stderr.write(f"stagger: {exc.message}\n")
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        sys.stderr.write("stagger: interrupted\n")
        sys.exit(130)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except SystemExit:
        raise
    except OSError as exc:
        sys.stderr.write(f"stagger: {exc}\n")
        sys.exit(EXIT_USAGE)
