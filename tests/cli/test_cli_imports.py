"""The CLI starts fast because it imports only what the command it runs needs: the server's
web stack, the dashboard's templates, the metrics library, the etcd and HTTP clients, the
configuration model and the doctor, simulator and demo load inside the commands that use
them. Checked by structure, never by time: each case runs the real `stagger` entry point in
a fresh interpreter and lists the modules it left loaded."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import typer

from stagger.cli.main import COMMAND_MODULES, _root, modules_for

# Never needed to print help or to read and change a SQLite store's semaphores.
HEAVY = {
    "matplotlib",
    "uvicorn",
    "jinja2",
    "prometheus_client",
    "starlette",
    "fastapi",
    "httpx",
    "aetcd",
    "grpc",
    "stagger.server.app",
    "stagger.config.loader",
    "stagger.config.model",
    "stagger.api",
    "stagger.doctor.report",
    "stagger.sim.engine",
    "stagger.demo.fleet",
}
# Only what prints or checks things: help text needs neither.
HELP_ONLY_SKIPS = {"rich", "pydantic", "stagger.backends.sqlite"}

PROBE = """
import json, sys
from stagger.cli.main import main
sys.argv = ["stagger", *sys.argv[2:]]
code = 0
try:
    main()
except SystemExit as exc:
    code = exc.code
with open(OUT, "w") as f:
    json.dump({"code": code, "modules": sorted(sys.modules)}, f)
"""


def loaded_by(tmp_path: Path, *args: str) -> tuple[int, set[str]]:
    """The exit code of `stagger ARGS...` and every module it had loaded when it ended."""
    out = tmp_path / "modules.json"
    code = PROBE.replace("OUT", repr(str(out)))
    subprocess.run(
        [sys.executable, "-c", code, "-", *args],
        capture_output=True,
        check=False,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
    )
    doc = json.loads(out.read_text())
    return doc["code"], set(doc["modules"])


def loaded(modules: set[str], names: set[str]) -> list[str]:
    """Which of `names` (packages or modules) are among `modules`."""
    return sorted(n for n in names if any(m == n or m.startswith(n + ".") for m in modules))


def test_the_probe_sees_what_a_command_imports(tmp_path: Path) -> None:
    """Guards the guard: a command that does load the configuration model is seen doing it."""
    code, modules = loaded_by(tmp_path, "config", "check", "--root", str(tmp_path))
    assert code == 0
    assert loaded(modules, {"stagger.config.loader", "pydantic"}) == [
        "pydantic",
        "stagger.config.loader",
    ]


def test_help_imports_no_heavy_module(tmp_path: Path) -> None:
    code, modules = loaded_by(tmp_path, "--help")
    assert code == 0
    assert "stagger.cli.semaphore" in modules  # the whole command tree was built
    assert loaded(modules, HEAVY | HELP_ONLY_SKIPS) == []


@pytest.mark.parametrize(
    "args",
    [
        ("lock", "--id", "n1"),
        ("status",),
        ("status", "--json"),
        ("unlock", "--id", "n1"),
    ],
    ids=" ".join,
)
def test_semaphore_commands_on_sqlite_import_no_heavy_module(
    tmp_path: Path, args: tuple[str, ...]
) -> None:
    url = f"sqlite:///{tmp_path / 'stagger.db'}"
    code, _ = loaded_by(tmp_path, "lock", "--id", "n1", "--backend", url)
    assert code == 0
    code, modules = loaded_by(tmp_path, *args, "--backend", url)
    assert code == 0
    assert "stagger.backends.sqlite" in modules  # it did read the store
    # --json prints the API's documents, so it loads their models (stagger.api) and pydantic;
    # a table needs neither (Typer's own pydantic coercion of str/bool/Path values is
    # replaced by a plain one in cli/main.py)
    heavy = HEAVY - {"stagger.api"} if "--json" in args else HEAVY | {"pydantic"}
    assert loaded(modules, heavy) == []
    others = {m for m in COMMAND_MODULES if m != "stagger.cli.semaphore"}
    assert loaded(modules, others) == []  # only the module of the command run


def test_each_module_registers_the_commands_listed_for_it() -> None:
    """A run loads only the module listed for its command: the list must be the truth."""
    for name, commands in COMMAND_MODULES.items():
        one = typer.Typer()
        one.callback()(_root)
        __import__(name, fromlist=["register"]).register(one)
        group = typer.main.get_command(one)
        assert tuple(getattr(group, "commands", {})) == commands, name


def test_a_run_picks_the_module_of_its_command_and_else_all() -> None:
    assert modules_for(["lock", "--id", "n1"]) == ["stagger.cli.semaphore"]
    assert modules_for(["--version", "config", "show"]) == ["stagger.cli.config"]
    assert modules_for(["need-reboot"]) == ["stagger.cli.need_reboot"]
    assert modules_for([]) == list(COMMAND_MODULES)
    assert modules_for(["--help"]) == list(COMMAND_MODULES)
    assert modules_for(["statu"]) == list(COMMAND_MODULES)  # click suggests `status`
