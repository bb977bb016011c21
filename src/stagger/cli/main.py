"""The `stagger` command: wiring only. Each command group lives in its own module and adds
itself with `register(app)`; this file lists them and turns errors into exit codes.

A run builds the command tree from the module of the command it names alone (`stagger lock`
imports no other command's module); `stagger --help`, an unknown word and `app` (for the
man page and tests) have every module."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import typer
from typer import _click as click
from typer.core import TyperArgument, TyperGroup

from stagger import __version__
from stagger.cli.output import EXIT_USAGE
from stagger.core.errors import StaggerError
from stagger.core.text import printable

# One module per command group (kept in the order `stagger --help` shows them), with the
# top-level commands it registers (tests/cli/test_cli_imports.py checks the two agree).
COMMAND_MODULES = {
    "stagger.cli.semaphore": ("status", "lock", "unlock", "set-max", "pause", "resume", "history"),
    "stagger.cli.nodes": ("nodes", "forget"),
    "stagger.cli.rollout": ("rollout",),
    "stagger.cli.identity": ("id",),
    "stagger.cli.config": ("config",),
    "stagger.cli.windows": ("windows",),
    "stagger.cli.agent": ("agent",),
    "stagger.cli.explain": ("explain",),
    "stagger.cli.need_reboot": ("need-reboot",),
    "stagger.cli.updates": ("update-now",),
    "stagger.cli.doctor": ("doctor",),
    "stagger.cli.server": ("server",),
    "stagger.cli.simulate": ("simulate",),
    "stagger.cli.demo": ("demo",),
}


class NamedArgument(TyperArgument):
    """A positional argument shown by its metavar alone (`N`, `NODE`, `PATH...`), as click
    does, instead of Typer's `{N}` in the usage line and `N <str>` in the list."""

    def display_type_rich(self, ctx: click.Context) -> str | None:
        return None

    def _usage_display_name(self) -> str:
        name = self._rich_display_name()
        return name if self.required else f"[{name}]"

    def _rich_display_name(self) -> str:
        return self.display_name_raw + ("..." if self.nargs != 1 else "")


def _name_arguments(command: click.Command) -> None:
    for param in command.params:
        if type(param) is TyperArgument:
            param.__class__ = NamedArgument
        _plain_coercion(param)
    _plain_help(command)
    for sub in getattr(command, "commands", {}).values():
        _name_arguments(sub)


try:  # Typer ≥ 0.29 coerces every value through a pydantic TypeAdapter built on first use
    from typer._coercion import RuntimeParam, build_runtime_param, resolve_type_descriptor
    from typer._param_types import coerce_cli_path
except ImportError:  # older Typer coerces with click's own types: nothing to do
    RuntimeParam = None  # type: ignore[assignment,misc]

_PLAIN = (str, bool, Path)


def _plain_coercion(param: click.Parameter) -> None:
    """Give a `str`, `bool` or `Path` parameter a coercion that does what Typer's pydantic
    one does for the values a command line gives them, without importing pydantic:
    building those adapters was about a third of a semaphore command's start. Any other
    value, and every other type, goes to Typer's own."""
    if RuntimeParam is None or getattr(param, "_runtime_param", 0) is not None:
        return
    descriptor = getattr(param, "type_descriptor", None)
    if (
        descriptor is None
        or descriptor.annotation not in _PLAIN
        or descriptor.parameter_info.parser is not None
        or descriptor.parameter_info.path_type is not None
        or descriptor.is_choice
    ):
        return
    param._runtime_param = _PlainValue(descriptor.parameter_info, descriptor.annotation)  # type: ignore[attr-defined]


def _plain_help(command: click.Command) -> None:
    """The same for the --help flag, which click makes when a command is first parsed."""
    make = command.get_help_option

    def get_help_option(ctx: click.Context) -> Any:
        option = make(ctx)
        if option is not None:
            _plain_coercion(option)
        return option

    command.get_help_option = get_help_option  # type: ignore[method-assign]


if RuntimeParam is not None:

    class _PlainValue(RuntimeParam):
        def _coerce_value(self, value: Any, param: Any, ctx: Any) -> Any:
            kind = self.annotation
            if kind is str and isinstance(value, str):
                return value
            if kind is bool and isinstance(value, bool):
                return value
            if kind is Path and isinstance(value, (str, Path)):  # Typer's own path checks
                given = Path(value)
                return coerce_cli_path(
                    given, self.parameter_info, path_type=Path, param=param, ctx=ctx
                )
            typer_own = build_runtime_param(resolve_type_descriptor(kind, self.parameter_info))
            return typer_own._coerce_value(value, param, ctx)


class StaggerGroup(TyperGroup):
    """The root group: every command's positional arguments read as their names, and plain
    values are coerced without pydantic (above)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _name_arguments(self)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"stagger {__version__}")
        raise typer.Exit(0)


def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version."
    ),
) -> None:
    """stagger: updates keep flowing; each host reboots only when it is safe."""


def build_app(modules: Iterable[str] = COMMAND_MODULES) -> typer.Typer:
    """The `stagger` command with the commands of `modules`."""
    built = typer.Typer(
        name="stagger",
        cls=StaggerGroup,
        help="Coordinated OS reboots: windows, fleet-wide slots, drain and health gates.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
        rich_markup_mode=None,
    )
    built.callback()(_root)
    for name in modules:
        importlib.import_module(name).register(built)
    return built


def modules_for(args: list[str]) -> list[str]:
    """The command modules a run with these arguments needs: the one whose command is the
    first word that is not an option (the root's options take no value), else all."""
    word = next((a for a in args if not a.startswith("-")), None)
    named = [m for m, commands in COMMAND_MODULES.items() if word in commands]
    return named or list(COMMAND_MODULES)


app: typer.Typer  # the whole tree, built on first use (PEP 562 below)


def __getattr__(name: str) -> Any:
    if name != "app":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    whole = build_app()
    globals()["app"] = whole
    return whole


def _click_error(exc: BaseException) -> tuple[str, int] | None:
    """click's own errors (a bad option value, an unknown option...) as one sentence and
    their exit code; None for anything else. Recognised by shape, since typer vendors click
    in some versions and uses it in others."""
    code = getattr(exc, "exit_code", None)
    if not (hasattr(exc, "format_message") and isinstance(code, int)):
        return None
    message = " ".join(str(exc.format_message()).split())
    ctx = getattr(exc, "ctx", None)
    path = getattr(ctx, "command_path", None)
    hint = f" (see `{path} --help`)" if path else ""
    return printable(message) + hint, code


def main() -> None:
    try:
        code = build_app(modules_for(sys.argv[1:]))(standalone_mode=False)
    except StaggerError as exc:  # raised outside a command's own handling
        sys.stderr.write(f"stagger: {printable(exc.message)}\n")
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        sys.stderr.write("stagger: interrupted\n")
        sys.exit(130)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        sys.stderr.write("stagger: interrupted\n")
        sys.exit(130)
    except SystemExit:
        raise
    except OSError as exc:
        sys.stderr.write(f"stagger: {exc}\n")
        sys.exit(EXIT_USAGE)
    except Exception as exc:
        if type(exc).__name__ == "NoArgsIsHelpError":  # `stagger`, `stagger config`: the help
            exc.show()  # type: ignore[attr-defined]
            sys.exit(EXIT_USAGE)
        said = _click_error(exc)
        if said is None:
            raise
        sys.stderr.write(f"stagger: {said[0]}\n")
        sys.exit(said[1])
    sys.exit(code if isinstance(code, int) else 0)
