"""`python -m stagger.cli.manpage OUTDIR`: write the stagger(1) manual page, made from the CLI
itself (every command, its usage, its help and its options, as `--help` shows them), so the
page cannot name an option that does not exist or miss one that does.

The Debian package runs exactly this at build time and installs OUTDIR/*.1 into
/usr/share/man/man1; `make man` writes build/man/. No date goes into the page, so the same
source gives the same page (reproducible builds)."""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stagger import __version__
from stagger.cli.output import BACKEND_ENV, EXIT_BACKEND, EXIT_DENIED, EXIT_OK, EXIT_USAGE

DOC_DIR = "/usr/share/doc/stagger"
GUIDES = (
    ("agent.md", "the agent: detectors, windows, slots, hooks, explain"),
    ("configuration.md", "every key, time zones, migrating from locksmith and Zincati"),
    ("backends.md", "SQLite and etcd, and what is stored where"),
    ("server.md", "the FleetLock server, its status and admin API, metrics"),
    ("cli.md", "the operator commands, exit codes, --json"),
    ("doctor.md", "what else on a host can reboot it"),
    ("updates.md", "applying updates on the agent's schedule"),
    ("notifications.md", "webhooks and Slack"),
    ("simulate.md", "planning a rollout with the simulator"),
)


@dataclass(frozen=True)
class Entry:
    """One command as the page shows it: `stagger config show`, its usage, help, options."""

    path: tuple[str, ...]
    usage: str
    help: str
    options: tuple[tuple[str, str], ...]  # (the option as --help writes it, its help)


def commands() -> list[Entry]:
    """Every command of the CLI, in `stagger --help` order, groups' subcommands in theirs."""
    import typer.main

    from stagger.cli.main import app

    root = typer.main.get_command(app)
    ctx = root.context_class(root, info_name="stagger")
    return list(_walk(root, ctx, ()))


def _walk(cmd: Any, ctx: Any, path: tuple[str, ...]) -> Iterator[Entry]:
    if hasattr(cmd, "list_commands"):  # a group: its subcommands, each in its own context
        for name in cmd.list_commands(ctx):
            sub = cmd.get_command(ctx, name)
            if sub is None or getattr(sub, "hidden", False):
                continue
            yield from _walk(sub, sub.context_class(sub, info_name=name, parent=ctx), (*path, name))
        return
    options = []
    for param in cmd.params:
        if getattr(param, "hidden", False):
            continue
        record = param.get_help_record(ctx)
        if record is not None:
            options.append((record[0], record[1]))
    usage = " ".join(["stagger", *path, *cmd.collect_usage_pieces(ctx)])
    yield Entry(path, usage, cmd.help or "", tuple(options))


def root_help() -> str:
    from stagger.cli.main import app

    return app.info.help if isinstance(app.info.help, str) else ""


# --- roff -----------------------------------------------------------------------------------


def text(value: str) -> str:
    """Plain text as roff: backslashes escaped, hyphens as minus signs (options copy-paste
    right), and no line that a control character would start."""
    out = value.replace("\\", "\\e").replace("-", "\\-")
    lines = out.split("\n")
    return "\n".join("\\&" + ln if ln.startswith((".", "'")) else ln for ln in lines)


def paragraphs(value: str) -> list[str]:
    """A docstring's paragraphs, each on one line (groff fills them)."""
    return [" ".join(p.split()) for p in re.split(r"\n\s*\n", value.strip()) if p.strip()]


def render(entries: list[Entry]) -> str:
    lines = [
        f'.TH STAGGER 1 "" "stagger {text(__version__)}" "stagger manual"',
        ".nh",  # no hyphenation: unit names, URLs and options are copied from the page
        ".SH NAME",
        "stagger \\- coordinated OS reboots for fleets: windows, fleet\\-wide slots, drain and "
        "health gates",
        ".SH SYNOPSIS",
        ".B stagger",
        ".I COMMAND",
        "[\\fIOPTIONS\\fR]",
        ".br",
        ".B stagger \\-\\-version",
        ".SH DESCRIPTION",
    ]
    for p in paragraphs(root_help()):
        lines += [text(p), ".PP"]
    lines += [
        text(
            "Updates keep flowing; each host reboots only inside its maintenance window, while "
            "it holds one of a few fleet-wide slots, after draining, and gives the slot back "
            "only once it has proved healthy. A node whose update broke it keeps its slot, so "
            "a bad update stops at max nodes. The agent runs as stagger-agent.service, the "
            "FleetLock server as stagger-server.service."
        ),
        ".PP",
        text("Every command takes --json, which prints one JSON document instead of a table."),
        ".SH COMMANDS",
    ]
    for e in entries:
        lines.append(f'.SS "{text(" ".join(e.path))}"')
        lines += [f".B {text(e.usage)}", ".PP"]
        for p in paragraphs(e.help):
            lines += [text(p), ".PP"]
        for option, help_ in e.options:
            lines += [".TP", f"\\fB{text(option)}\\fR", text(" ".join(help_.split()))]
    lines += [
        ".SH EXIT STATUS",
        ".TP",
        f"\\fB{EXIT_OK}\\fR",
        "done.",
        ".TP",
        f"\\fB{EXIT_DENIED}\\fR",
        text("denied (no free slot, a pause) or, for stagger demo, the demo went wrong."),
        ".TP",
        f"\\fB{EXIT_USAGE}\\fR",
        "a usage or configuration error.",
        ".TP",
        f"\\fB{EXIT_BACKEND}\\fR",
        "the backend could not be reached.",
        ".SH ENVIRONMENT",
        ".TP",
        f"\\fB{BACKEND_ENV}\\fR",
        text("The backend URL when --backend (--server) is not given."),
        ".SH FILES",
        ".TP",
        "\\fI/etc/stagger/config.d/*.toml\\fR",
        text("The configuration, in fragments read in name order."),
        ".TP",
        "\\fI/etc/stagger/disabled\\fR",
        text("While it exists, the agent on this host never reboots it."),
        ".TP",
        "\\fI/var/lib/stagger/\\fR",
        text("The agent's state and the default SQLite store."),
        ".SH SEE ALSO",
        text(f"The guides in {DOC_DIR}/:"),
    ]
    for guide, what in GUIDES:
        lines += [".TP", f"\\fI{text(DOC_DIR)}/{text(guide)}\\fR", text(what)]
    return "\n".join(lines) + "\n"


def write_pages(outdir: Path) -> list[Path]:
    """Write stagger.1 into `outdir` (created if missing); the paths written."""
    outdir.mkdir(parents=True, exist_ok=True)
    page = outdir / "stagger.1"
    page.write_text(render(commands()), encoding="utf-8")
    return [page]


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or args[0].startswith("-"):
        sys.stderr.write("usage: python -m stagger.cli.manpage OUTDIR (writes OUTDIR/stagger.1)\n")
        return EXIT_USAGE
    try:
        written = write_pages(Path(args[0]))
    except OSError as exc:
        where = exc.filename or args[0]
        sys.stderr.write(
            f"stagger.cli.manpage: cannot write the page into {where}: "
            f"{exc.strerror or exc}; give a directory you may write\n"
        )
        return EXIT_USAGE
    for path in written:
        sys.stdout.write(f"{path}\n")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
