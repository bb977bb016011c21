"""How tables look when stdout is not a terminal: never cut. Run as real processes of the
installed `stagger` script with stdout a pipe (as in `stagger history | cat`)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

STAGGER = str(Path(sys.executable).parent / "stagger")
LONG_ID = "node-with-a-rather-long-identifier-that-names-its-rack-and-row-0042.example.net"


def piped(*args: str, columns: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("STAGGER_BACKEND", "COLUMNS")}
    env.update(LOGNAME="alice", USER="alice")
    if columns is not None:
        env["COLUMNS"] = columns
    # capture_output: stdout is a pipe, as in `stagger history | cat`
    return subprocess.run(
        [STAGGER, *args], capture_output=True, text=True, env=env, timeout=60, check=False
    )


@pytest.mark.parametrize("columns", [None, "80", "40"], ids=["no-COLUMNS", "80", "40"])
def test_history_and_status_into_a_pipe_show_every_id_whole(
    tmp_path: Path, columns: str | None
) -> None:
    backend = f"sqlite:///{tmp_path}/stagger.db"
    locked = piped("lock", "--id", LONG_ID, "--backend", backend, columns=columns)
    assert locked.returncode == 0, locked.stderr
    for command in ("history", "status"):
        done = piped(command, "--backend", backend, columns=columns)
        assert done.returncode == 0, done.stderr
        assert LONG_ID in done.stdout, done.stdout
        assert "…" not in done.stdout, done.stdout
    history = piped("history", "--backend", backend, columns=columns).stdout
    assert "operator:alice" in history


def test_config_show_into_a_pipe_shows_paths_and_urls_whole(tmp_path: Path) -> None:
    deep = tmp_path / "a-directory-with-a-long-name" / "and-another-one-below-it" / "root"
    etc = deep / "etc/stagger/config.d"
    etc.mkdir(parents=True)
    url = "fleetlock+https://stagger-fleetlock.site-a.production.example.net:8443/api/"
    (etc / "50-a-fragment-with-a-descriptive-name.toml").write_text(f'[agent]\nbackend = "{url}"\n')
    done = piped("config", "show", "--root", str(deep), columns="80")
    assert done.returncode == 0, done.stderr
    assert url in done.stdout
    assert str(etc / "50-a-fragment-with-a-descriptive-name.toml") in done.stdout
    assert "…" not in done.stdout
