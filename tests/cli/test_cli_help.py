"""Every command's --help names its placeholders (DIR, GROUP, PATH...), never a raw type
(`<str>`, `<list[str]>`, `<int>`) or Typer's `{N}`: scanned over the whole command tree, so a
new command or option without a metavar fails here."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
import typer

from cli_support import run
from stagger.cli.main import app

RAW = re.compile(r"<[a-zA-Z][\w\[\], |]*>|\{[A-Z][A-Z_.]*\}|list\[")


def command_paths() -> Iterator[tuple[str, ...]]:
    def walk(command: object, path: tuple[str, ...]) -> Iterator[tuple[str, ...]]:
        yield path
        for name, sub in sorted(getattr(command, "commands", {}).items()):
            yield from walk(sub, (*path, name))

    yield from walk(typer.main.get_command(app), ())


PATHS = list(command_paths())


def test_the_scan_sees_every_command() -> None:
    names = {p[-1] for p in PATHS if p}
    assert {"status", "set-max", "forget", "doctor", "server", "import", "need-reboot"} <= names


@pytest.mark.parametrize("path", PATHS, ids=lambda p: " ".join(p) or "stagger")
def test_help_names_every_placeholder(path: tuple[str, ...]) -> None:
    r = run(*path, "--help", backend=None)
    assert r.code == 0, r.err
    raw = [line.strip() for line in r.out.splitlines() if RAW.search(line)]
    assert raw == [], raw
