"""How every command speaks: a Rich rendering for people, or one JSON document with --json.
Errors are one sentence on stderr and an exit code; never a traceback."""

from __future__ import annotations

import dataclasses
import functools
import getpass
import json
import os
import sys
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from enum import Enum
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import typer

from stagger.backends.factory import DEFAULT_BACKEND_URL, open_backend
from stagger.core.errors import ConfigError, StaggerError
from stagger.core.secrets import mask_url
from stagger.core.text import printable
from stagger.core.times import rfc3339

if TYPE_CHECKING:
    from rich.console import Console
    from rich.text import Text

    from stagger.backends.protocol import Backend

# Exit codes shared by every command (docs/cli.md): 0 done, 1 denied, 2 usage/config, 3 backend.
EXIT_OK = 0
EXIT_DENIED = 1
EXIT_USAGE = 2
EXIT_BACKEND = 3

JsonOption = typer.Option(False, "--json", help="Print one JSON document instead of a table.")


def to_jsonable(value: Any) -> Any:
    """Dataclasses, enums, datetimes (RFC 3339 in UTC with Z, as every document) and
    timedeltas (seconds) as plain JSON."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, datetime):
        return rfc3339(value)
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


def print_lines(text: str) -> None:
    """Plain text for people on stdout, one line at a time with each line's control characters
    escaped (core.text.printable), as SafeConsole does for tables."""
    sys.stdout.write("".join(printable(line) + "\n" for line in text.split("\n")))


def fail(message: str, code: int = EXIT_USAGE, as_json: bool = False) -> NoReturn:
    """Report an error in one sentence and exit with `code`."""
    if as_json:
        print_json({"error": message, "exit_code": code})
    # Escaped line by line: a configuration with several problems lists one per line.
    lines = "\n".join(printable(line) for line in message.split("\n"))
    sys.stderr.write(f"stagger: {lines}\n")
    raise typer.Exit(code)


def fail_from(exc: StaggerError, as_json: bool = False) -> NoReturn:
    fail(exc.message, exc.exit_code, as_json)


# --- shared by every command that talks to a backend -------------------------------------

BACKEND_ENV = "STAGGER_BACKEND"

BackendOption = typer.Option(
    None,
    "--backend",
    "--server",
    metavar="URL",
    help=f"Where the semaphores live: a backend URL, or a stagger server's http(s):// URL "
    f"(default: ${BACKEND_ENV}, else [agent].backend from the config, else "
    f"{DEFAULT_BACKEND_URL}).",
    show_default=False,
)

T = TypeVar("T")


def check_backend_flag(flag: str | None) -> str | None:
    """`flag` itself; an empty --backend is refused: it is a script's unset variable, not a
    wish for the default store."""
    if flag is not None and not flag.strip():
        raise ConfigError(
            "--backend/--server is empty: give a URL (like sqlite:///var/lib/stagger/stagger.db "
            "or http://127.0.0.1:8080/), or leave the option out to use the default"
        )
    return flag


def resolve_backend_url(flag: str | None) -> str:
    """The one place a command's backend URL is chosen: --backend/--server, else
    $STAGGER_BACKEND, else [agent].backend from this host's config fragments, else the default.
    A plain http(s):// URL names a stagger server, reached through the FleetLock backend."""
    url = check_backend_flag(flag) or os.environ.get(BACKEND_ENV)
    if not url:
        from stagger.config.loader import load_config

        url = load_config(None, None).config.agent.backend or DEFAULT_BACKEND_URL
    if url.startswith(("http://", "https://")):
        from stagger.backends.fleetlock import server_backend_url

        return server_backend_url(url)
    return url


def os_error_sentence(exc: OSError) -> str:
    """An OSError as one sentence an operator can act on (no errno tuple, no traceback)."""
    what = exc.strerror or exc.__class__.__name__
    where = f" {exc.filename}" if exc.filename else ""
    hint = ""
    if isinstance(exc, PermissionError):
        hint = (
            "; run as a user that may use it, or choose another store with --backend URL "
            f"(or ${BACKEND_ENV})"
        )
    return f"cannot use{where}: {what}{hint}"


@contextmanager
def reported_errors(as_json: bool = False) -> Iterator[None]:
    """Turn StaggerError and OSError raised inside into one sentence and their exit code."""
    try:
        yield
    except StaggerError as exc:
        fail_from(exc, as_json)
    except OSError as exc:
        fail(os_error_sentence(exc), EXIT_USAGE, as_json)


def run_async(
    action: Callable[[Backend], Awaitable[T]],
    *,
    backend: str | None,
    create: bool,
    as_json: bool = False,
) -> T:
    """Open the backend (`--backend` value, resolved), run `action` on it, close it, and return
    its result. Errors become one sentence and their exit code (2 usage, 3 unreachable).
    `create`: whether this command may create a SQLite store where none is (docs/cli.md,
    "Which commands create a store"): only commands whose change means something in a new
    store do; reads never do."""
    import asyncio

    with reported_errors(as_json):
        url = resolve_backend_url(backend)

    async def _run() -> T:
        try:
            opened = open_backend(url, create=create)
        except ModuleNotFoundError as exc:  # a backend (or its client library) not installed
            raise ConfigError(
                f"backend URL {mask_url(url)!r} needs {exc.name or 'a module'}, which this "
                "stagger does not have: install it, or use another backend"
            ) from exc
        try:
            return await action(opened)
        finally:
            await opened.close()

    with reported_errors(as_json):
        return asyncio.run(_run())
    raise AssertionError("unreachable")  # for mypy: reported_errors exits on error


def operator_by() -> str:
    """Who acts, for history: `operator:<login name>` (the sudo caller when run under sudo)."""
    name = os.environ.get("SUDO_USER")
    if not name:
        try:
            name = getpass.getuser()
        except (KeyError, OSError):  # no passwd entry for this uid (containers)
            name = f"uid{os.getuid()}"
    return f"operator:{name}"


# The width of a console that is not a terminal: wide enough that no table cell is ever cut.
UNCUT_WIDTH = 10_000


@functools.cache
def safe_console_class() -> type[Console]:
    """Rich is imported when something is printed through it, not when a command module is
    (`stagger --help` and --json output never need it)."""
    from rich.console import Console

    class SafeConsole(Console):
        """A Console that escapes every control character of every string it renders (printed
        lines and table cells alike: Rich turns each through `render_str`), so a node's reason
        or an operator's note can never move the cursor, clear the screen, retitle the
        terminal or forge a line. A line break is escaped too: print one line per call."""

        def render_str(self, text: str, **kwargs: Any) -> Text:
            return super().render_str(printable(text), **kwargs)

    return SafeConsole


def console() -> Console:
    """Where tables go: stdout. On a terminal, Rich fits tables to its width; into a pipe or a
    file (`stagger history | grep`, a log) nothing is cut to a guessed width, whatever $COLUMNS
    says: a cut node id or URL is a wrong one. Markup is off: notes and reasons are operators'
    text, printed as given (control characters escaped)."""
    safe_console = safe_console_class()
    out = safe_console(highlight=False, markup=False, soft_wrap=False)
    if out.is_terminal:
        return out
    return safe_console(highlight=False, markup=False, soft_wrap=False, width=UNCUT_WIDTH)
