"""How long the `stagger` command takes to start, beside a bare Python.

Each command is run --runs times as a fresh process (the installed `stagger` console script,
next to this interpreter), in rounds: every round runs every command once, so a load spike
on the machine falls on all of them alike. Reported: the median wall time of each and the
median CPU time (user + system) it used, which a loaded machine inflates less, each with its
ratio to `python -c pass` measured in the same run (the interpreter's own start, which no
change to stagger can remove). Target for status, lock, unlock and --help: ≤ 0.25 s.

The commands work on a fresh SQLite store in a temporary directory, named with --backend
(so no configuration file is read). Rows marked "import" are not commands: they time
`python -c "import X"` for the libraries a command may pay for, to say what each costs.

`--also-src DIR` adds each stagger command run from another source tree (an older commit's
`git archive`, put first on PYTHONPATH), in the same rounds, for before/after.

Run: .venv/bin/python benchmarks/cli.py [--runs 10] [--also-src DIR]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

STAGGER = str(Path(sys.executable).with_name("stagger"))
PY = sys.executable

# What each library costs on its own (each includes the interpreter's start).
IMPORTS = ["typer", "rich.console", "pydantic", "stagger.config.loader"]


Case = tuple[str, list[str], dict[str, str] | None]  # name, argv, environment (None: ours)


def cases(db: Path, also: list[Path]) -> list[Case]:
    store = ["--backend", f"sqlite:///{db}"]
    commands = [
        ("stagger --help", [STAGGER, "--help"]),
        ("stagger --version", [STAGGER, "--version"]),
        ("stagger status", [STAGGER, "status", *store]),
        ("stagger lock", [STAGGER, "lock", "--id", "bench-node", *store]),
        ("stagger unlock", [STAGGER, "unlock", "--id", "bench-node", *store]),
        ("stagger status --json", [STAGGER, "status", "--json", *store]),
        ("stagger nodes", [STAGGER, "nodes", *store]),
        ("stagger history", [STAGGER, "history", *store]),
    ]
    rows: list[Case] = [("python -c pass", [PY, "-c", "pass"], None)]
    for name, argv in commands:  # lock before unlock in each tree: each does its real change
        rows.append((name, argv, None))
        for src in also:
            env = {**os.environ, "PYTHONPATH": str(src)}
            rows.append((f"{name} [{src.resolve().parent.name}]", argv, env))
    rows += [(f"import {name}", [PY, "-c", f"import {name}"], None) for name in IMPORTS]
    return rows


def run(argv: list[str], env: dict[str, str] | None = None) -> tuple[float, float]:
    """One run: its wall time and the CPU time (user + system) the process used."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(
        argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False, env=env
    )
    took = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr.decode()}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return took, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10, help="runs of each command (default 10)")
    parser.add_argument(
        "--also-src", type=Path, action="append", default=[], metavar="DIR",
        help="also run each command from this source tree (e.g. an older commit's src/)",
    )  # fmt: skip
    args = parser.parse_args()
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "stagger.db"
        subprocess.run(
            [STAGGER, "lock", "--id", "first", "--backend", f"sqlite:///{db}"],
            stdout=subprocess.DEVNULL,
            check=True,
        )
        subprocess.run(
            [STAGGER, "unlock", "--id", "first", "--backend", f"sqlite:///{db}"],
            stdout=subprocess.DEVNULL,
            check=True,
        )
        rows = cases(db, args.also_src)
        walls: dict[str, list[float]] = {name: [] for name, _, _ in rows}
        cpus: dict[str, list[float]] = {name: [] for name, _, _ in rows}
        for _ in range(args.runs):
            for name, argv, env in rows:
                took, cpu = run(argv, env)
                walls[name].append(took)
                cpus[name].append(cpu)
    base = statistics.median(walls["python -c pass"])
    base_cpu = statistics.median(cpus["python -c pass"])
    print(f"{args.runs} runs each. wall: median wall time (min); cpu: median user+system time;")
    print("ratio: the median over the median of `python -c pass` in the same run.")
    print()
    print(f"load average {os.getloadavg()[0]:.1f} at the end")
    print()
    print(f"| {'command':<34} | wall s (min)  | ratio | cpu s | ratio |")
    print(f"|{'-' * 36}|--------------:|------:|------:|------:|")
    for name, _, _ in rows:
        wall, cpu = statistics.median(walls[name]), statistics.median(cpus[name])
        print(
            f"| {name:<34} | {wall:5.3f} ({min(walls[name]):5.3f}) | {wall / base:5.1f} "
            f"| {cpu:5.3f} | {cpu / base_cpu:5.1f} |"
        )


if __name__ == "__main__":
    main()
