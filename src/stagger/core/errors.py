"""Error types an operator can hit. Each carries a message that says what was wrong and
what to do, and the CLI exit code it maps to. A leaf module: every layer may import it."""

from __future__ import annotations


class StaggerError(Exception):
    """Base of every error stagger reports to an operator (never with a traceback)."""

    exit_code = 2

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class InvalidInput(StaggerError, ValueError):
    """A value given by the operator or a client is not allowed (bad group, id, max...)."""

    exit_code = 2


class ConfigError(StaggerError):
    """The configuration (a file, a URL, a flag) cannot be used."""

    exit_code = 2


class BackendUnavailable(StaggerError):
    """The backend did not answer, or answered with an error we cannot act on."""

    exit_code = 3


class StoreUnusable(BackendUnavailable):
    """The store is there but is not one stagger can use: damaged, emptied, another program's
    file, or written by a newer stagger. It is never replaced: an operator must act."""


class NoStore(ConfigError):
    """The backend URL names a store that does not exist, and the command does not create
    one (a read, or a change that would write nothing): most often a typo in the URL."""


class BackendConflict(StaggerError):
    """A compare-and-swap kept losing after every retry. Reported only when the retry budget
    is spent, which means the group is written far faster than any real fleet writes it."""

    exit_code = 3


class TransitionError(StaggerError):
    """An event arrived in a state that cannot take it: a bug, never silently ignored."""

    exit_code = 70
