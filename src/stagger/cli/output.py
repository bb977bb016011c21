"""How every command speaks: a Rich rendering for people, or one JSON document with --json.
Errors are one sentence on stderr and an exit code; never a traceback."""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Callable
from datetime import datetime, timedelta
from enum import Enum
from typing import Any, NoReturn

import typer

from stagger.core.errors import StaggerError

# Exit codes shared by every command (issue 2): 0 done, 1 denied, 2 usage/config, 3 backend.
EXIT_OK = 0
EXIT_DENIED = 1
EXIT_USAGE = 2
EXIT_BACKEND = 3

JsonOption = typer.Option(False, "--json", help="Print one JSON document instead of a table.")


def to_jsonable(value: Any) -> Any:
    """Dataclasses, enums, datetimes (RFC 3339) and timedeltas (seconds) as plain JSON."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [to_jsonable(v) for v in value]
    return value


def print_json(doc: Any) -> None:
    sys.stdout.write(json.dumps(to_jsonable(doc), indent=2, sort_keys=False) + "\n")


def emit(doc: Any, as_json: bool, render: Callable[[], None]) -> None:
    """Print `doc` as JSON, or call `render` to show it to a person."""
    if as_json:
        print_json(doc)
    else:
        render()


def fail(message: str, code: int = EXIT_USAGE, as_json: bool = False) -> NoReturn:
    """Report an error in one sentence and exit with `code`."""
    if as_json:
        print_json({"error": message, "exit_code": code})
    sys.stderr.write(f"stagger: {message}\n")
    raise typer.Exit(code)


def fail_from(exc: StaggerError, as_json: bool = False) -> NoReturn:
    fail(exc.message, exc.exit_code, as_json)
