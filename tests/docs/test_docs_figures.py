"""docs/simulate.md says what the simulator prints: docs/figures.py runs the commands the page
shows (with this checkout's `stagger`) and compares their output with the page's."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

FIGURES = Path(__file__).resolve().parents[2] / "docs" / "figures.py"


def test_the_simulate_page_shows_what_its_commands_print() -> None:
    done = subprocess.run(
        [sys.executable, str(FIGURES), "--check"], capture_output=True, text=True, timeout=900
    )
    assert done.returncode == 0, done.stderr
