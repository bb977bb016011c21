"""The `stagger` command for tests: one invocation in this process (`run`, the same code path
as the console script minus the interpreter start; `stagger`, the same with the arguments and
the environment exactly as given) or as a real process of the installed script (`run_script`),
and the check that a failure is one sentence without a traceback. Imported by the test modules
of every folder that drive the CLI."""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stagger.cli.main import main

STAGGER = str(Path(sys.executable).parent / "stagger")
OPERATOR = "alice"


@dataclass(frozen=True)
class Run:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


def stagger_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("STAGGER_BACKEND", "SUDO_USER")}
    env.update(LOGNAME=OPERATOR, USER=OPERATOR, COLUMNS="200", **extra)
    return env


def argv(args: tuple[str, ...], backend: str | None) -> list[str]:
    return [*args] + (["--backend", backend] if backend is not None else [])


@contextlib.contextmanager
def environment(env: dict[str, str]) -> Iterator[None]:
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def run(*args: str, backend: str | None, env: dict[str, str] | None = None) -> Run:
    """One `stagger` invocation, in this process. `backend=None`: no --backend flag."""
    out, err = io.StringIO(), io.StringIO()
    saved_argv = sys.argv
    sys.argv = [STAGGER, *argv(args, backend)]
    code: int | str | None = 0
    try:
        with (
            environment(env or stagger_env()),
            contextlib.redirect_stdout(out),
            contextlib.redirect_stderr(err),
        ):
            main()
    except SystemExit as exc:
        code = exc.code
    finally:
        sys.argv = saved_argv
    assert isinstance(code, int | None), code
    return Run(code or 0, out.getvalue(), err.getvalue())


def stagger(*args: str) -> Run:
    """One `stagger` invocation, in this process, with exactly `args` and this environment."""
    return run(*args, backend=None, env=dict(os.environ))


def run_script(*args: str, backend: str | None, env: dict[str, str] | None = None) -> Run:
    """One `stagger` invocation as a real process of the installed console script."""
    proc = subprocess.run(
        [STAGGER, *argv(args, backend)],
        capture_output=True,
        text=True,
        env=env or stagger_env(),
        timeout=60,
        check=False,
    )
    return Run(proc.returncode, proc.stdout, proc.stderr)


def assert_one_sentence(r: Run, code: int, *words: str) -> None:
    """Failed with `code`, one line on stderr naming `words`, and no traceback anywhere."""
    assert r.code == code, (r.code, r.out, r.err)
    assert "Traceback" not in r.err + r.out
    lines = [ln for ln in r.err.splitlines() if ln.strip()]
    assert len(lines) == 1, r.err
    for w in words:
        assert w in lines[0], (w, lines[0])
