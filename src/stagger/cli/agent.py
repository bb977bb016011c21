"""`stagger agent`: run the node agent.

This process reads and checks the configuration (pydantic, typer: ~40 MB), builds the
runtime, then replaces itself (exec, same PID, so systemd's Type=notify still sees its main
process) with the lean daemon `python -m stagger.agent`, handing the runtime over in a
memory file. The running agent so never carries the CLI's or the config model's memory."""

from __future__ import annotations

import os
import pickle
import sys
from pathlib import Path

import typer

from stagger.cli.output import reported_errors


def run_agent(
    config: Path | None = typer.Option(
        None,
        "--config",
        metavar="FILE",
        help="Read only FILE instead of the config.d directories (every path in it is used "
        "as written).",
        show_default=False,
        readable=False,
    ),
    root: Path | None = typer.Option(
        None,
        "--root",
        metavar="DIR",
        help="Put every default path (config.d, state, boot id, /run, /etc/stagger) under DIR "
        "(tests, images, containers).",
        show_default=False,
    ),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Decide and log, but never take a slot or reboot."
    ),
    once: bool = typer.Option(
        False, "--once", help="Look once, carry out what follows, and exit (no watching)."
    ),
    in_process: bool = typer.Option(
        False, "--in-process", hidden=True, help="Run in this process (no exec); for debugging."
    ),
) -> None:
    """Run the node agent: detect, wait for the window and a slot, drain, reboot, prove health,
    release. Stops cleanly on SIGTERM."""
    from stagger.agent.runtime import build_runtime

    with reported_errors():
        rt = build_runtime(config, root, dry_run)
    if in_process:
        from stagger.agent.daemon import main

        with reported_errors():
            raise typer.Exit(main(rt, once))
    fd = os.memfd_create("stagger-agent-runtime", 0)  # not CLOEXEC: the daemon reads it
    os.write(fd, pickle.dumps(rt))
    os.lseek(fd, 0, os.SEEK_SET)
    argv = [sys.executable, "-m", "stagger.agent", "--runtime-fd", str(fd)]
    if once:
        argv.append("--once")
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, argv)


def register(app: typer.Typer) -> None:
    app.command("agent")(run_agent)
