"""stagger(1): made from the CLI itself by `python -m stagger.cli.manpage OUTDIR` (the Debian
package runs exactly that), rendered by the real groff/man, and named by the systemd units."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from stagger.cli.manpage import commands

REPO = Path(__file__).resolve().parents[2]
UNITS = sorted((REPO / "packaging/systemd").glob("*.service"))


def generate(outdir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "stagger.cli.manpage", str(outdir)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def rendered(page: Path) -> str:
    """The page as a reader sees it: `man -l` when there is man, else groff -man."""
    env = {**os.environ, "MANWIDTH": "120", "MAN_KEEP_FORMATTING": "0", "PAGER": "cat"}
    if shutil.which("man"):
        argv = ["man", "-l", str(page)]
    elif shutil.which("groff"):
        argv = ["groff", "-man", "-Tutf8", str(page)]
    else:
        pytest.skip("neither man nor groff is installed")
    done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=60, check=True)
    return re.sub(r".\x08", "", done.stdout)  # no overstrike (bold) left in the text


def test_the_module_writes_stagger_1_into_outdir(tmp_path: Path) -> None:
    done = generate(tmp_path / "man")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "man/stagger.1").read_text().startswith(".TH STAGGER 1 ")


def test_the_page_names_every_command_with_every_option(tmp_path: Path) -> None:
    generate(tmp_path)
    text = rendered(tmp_path / "stagger.1")
    entries = commands()
    names = {" ".join(e.path) for e in entries}
    assert {"status", "agent", "config show", "config import", "simulate", "demo"} <= names
    for entry in entries:
        assert f"stagger {' '.join(entry.path)} " in text, entry.path
        for option, _ in entry.options:
            assert option.split()[0].rstrip(",") in text, (entry.path, option)


@pytest.mark.skipif(shutil.which("groff") is None, reason="groff is not installed")
def test_groff_renders_the_page_without_a_warning(tmp_path: Path) -> None:
    generate(tmp_path)
    done = subprocess.run(
        ["groff", "-man", "-Tutf8", "-ww", "-z", str(tmp_path / "stagger.1")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (done.returncode, done.stderr) == (0, "")


def test_an_outdir_that_cannot_be_written_is_one_sentence_and_exit_2(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    done = generate(tmp_path / "file" / "man")
    assert done.returncode == 2
    assert done.stderr.startswith("stagger.cli.manpage: cannot write the page into ")
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("unit", UNITS, ids=[u.name for u in UNITS])
def test_the_units_documentation_names_only_pages_that_exist(unit: Path) -> None:
    """man:stagger(1) is the page above; file:/usr/share/doc/stagger/X is the repo's docs/X,
    which the package installs there; no web address (there is none to promise)."""
    (line,) = [ln for ln in unit.read_text().splitlines() if ln.startswith("Documentation=")]
    targets = line.removeprefix("Documentation=").split()
    assert "man:stagger(1)" in targets
    for target in targets:
        if target == "man:stagger(1)":
            continue
        assert target.startswith("file:/usr/share/doc/stagger/"), target
        assert (REPO / "docs" / target.removeprefix("file:/usr/share/doc/stagger/")).is_file()
