"""The Updater Protocol and the result of one attempt.

Rules of this package:
- An updater makes one attempt per call and never raises for what the host did: a command
  that fails, a bus that is gone, a timeout are all a `failed` result with one sentence. Only
  cancellation propagates (and it stops what it started).
- Output is bounded: at most OUTPUT_TAIL_LINES lines (each at most LINE_LIMIT characters) of
  the end are kept, so a chatty `apt-get` cannot grow the agent's memory or its log.
- When to attempt is not decided here (core/updates.py decides); how the agent runs them is
  in runner.py.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from stagger.core.updates import Outcome

OUTPUT_TAIL_LINES = 40
LINE_LIMIT = 500

Progress = Callable[[str], None]


@dataclass(frozen=True)
class UpdateResult:
    """One attempt: ok, failed or skipped; one sentence; how long; the end of its output."""

    outcome: Outcome
    detail: str
    seconds: float = 0.0
    output: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.outcome is Outcome.OK


@runtime_checkable
class Updater(Protocol):
    name: str

    async def attempt(self, progress: Progress | None = None) -> UpdateResult:
        """Ask for one update and wait for its end (or the updater's timeout). `progress`
        hears a line at each step (a status change, a download percentage)."""
        ...


@dataclass(frozen=True)
class UpdaterSpec:
    """Which updater, and what it needs: plain values, so the runtime can be handed to the
    lean daemon and the implementation imported only there, only when it is used."""

    name: str = "none"
    timeout: float = 3600.0
    command: tuple[str, ...] = ()
    bus_address: str | None = None  # update_engine: None is the system bus


class Tail:
    """The last lines of an output stream, bounded in count and width."""

    def __init__(self, lines: int = OUTPUT_TAIL_LINES) -> None:
        self._lines: deque[str] = deque(maxlen=lines)
        self._partial = ""

    def feed(self, chunk: str) -> None:
        text = self._partial + chunk
        *whole, self._partial = text.split("\n")
        for line in whole:
            self._lines.append(_clip(line.rstrip("\r")))
        if len(self._partial) > LINE_LIMIT:  # a line with no end in sight
            self._partial = self._partial[-LINE_LIMIT:]

    def add(self, line: str) -> None:
        self._lines.append(_clip(line))

    def lines(self) -> tuple[str, ...]:
        tail = list(self._lines)
        if self._partial.strip():
            tail = [*tail, _clip(self._partial)][-(self._lines.maxlen or 1) :]
        return tuple(tail)


def _clip(line: str) -> str:
    return line if len(line) <= LINE_LIMIT else line[: LINE_LIMIT - 1] + "…"


def last_words(lines: Sequence[str]) -> str:
    """The last non-empty line, for a one-sentence detail."""
    for line in reversed(lines):
        if line.strip():
            return line.strip()[:200]
    return ""
