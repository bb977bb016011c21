"""The agent's local control socket: how `stagger update-now` reaches the running agent.

A unix stream socket at `[agent] control_socket` (default /run/stagger/control.sock, under
--root when one is given), mode 0600: only root (the agent's user) may talk to it. The
protocol is line-JSON: each request is one JSON object on one line (UTF-8, at most
MAX_LINE bytes, ending in "\\n"); each is answered by one JSON object on one line, in order.
A connection may carry several requests. Every request has "op"; every answer has "ok".

    {"op": "status"}
      → {"ok": true, "protocol": 1, "node": ID, "group": G, "cycle": STATE,
         "updates": {"updater", "enabled", "running", "record", "decision"}}
    {"op": "update-now", "wait": false}
      → {"ok": true, "started": true, "reason": SENTENCE, "attempt": null}
    {"op": "update-now", "wait": true}       (answered when the attempt has ended)
      → {"ok": true, "started": true, "reason": ..., "next_attempt": TIME,
         "attempt": {"at", "outcome": "ok"|"failed"|"skipped", "detail", "seconds",
                     "trigger", "output": [LINES]}}
    refused (updates off, or a reboot pending)
      → {"ok": false, "verdict": "off"|"blocked", "error": SENTENCE}
    anything else
      → {"ok": false, "error": SENTENCE}

"started" is false when an attempt was already running: that one is joined, never doubled.
A socket file left behind by an agent that died (or by the simulated rebooter) is replaced at
start; one that answers means another agent runs, and this one then serves no socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import stat
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stagger.agent import log as agentlog
from stagger.core.errors import StaggerError

PROTOCOL = 1
MAX_LINE = 64 * 1024
MAX_PATH = 107  # sun_path holds 108 bytes, one of them the terminating NUL

Handler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


class ControlUnavailable(StaggerError):
    """No agent answers on the control socket (none runs, or not with this configuration)."""

    exit_code = 3


class ControlError(StaggerError):
    """The agent answered, but not with the protocol this stagger speaks."""

    exit_code = 3


def _check_path(path: Path) -> None:
    if len(os.fsencode(path)) > MAX_PATH:
        raise ControlUnavailable(
            f"the control socket path {path} is longer than {MAX_PATH} bytes, which a unix "
            "socket cannot use: set a shorter [agent] control_socket"
        )


@dataclass(frozen=True)
class Ops:
    """What the running agent answers with: `update_now(wait)` and `status()` (node, group,
    cycle, updates)."""

    update_now: Callable[[bool], Awaitable[dict[str, Any]]]
    status: Callable[[], dict[str, Any]]

    async def answer(self, request: dict[str, Any]) -> dict[str, Any]:
        """One request of the protocol above."""
        op = request.get("op")
        if op == "update-now":
            return await self.update_now(bool(request.get("wait", False)))
        if op == "status":
            return {"ok": True, "protocol": PROTOCOL, **self.status()}
        return {"ok": False, "error": f"op {op!r} is not known: use 'status' or 'update-now'"}


class ControlServer:
    def __init__(self, path: Path, handler: Handler, logger: logging.Logger) -> None:
        self.path = path
        self.handler = handler
        self.log = logger
        self.server: asyncio.AbstractServer | None = None
        self._clients: set[asyncio.Task[None]] = set()

    async def start(self) -> bool:
        """Listen; False (logged, not fatal: reboots do not depend on it) when it cannot."""
        try:
            _check_path(self.path)
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if await _answers(self.path):
                agentlog.event(
                    self.log,
                    "control socket in use",
                    logging.WARNING,
                    path=str(self.path),
                    hint="another agent answers there; this one serves no control socket",
                )
                return False
            _remove_stale(self.path)
            old = os.umask(0o177)
            try:
                self.server = await asyncio.start_unix_server(
                    self._serve, path=str(self.path), limit=MAX_LINE
                )
            finally:
                os.umask(old)
            os.chmod(self.path, 0o600)
        except (OSError, StaggerError) as exc:
            agentlog.event(
                self.log, "control socket unavailable", logging.WARNING, path=str(self.path),
                error=str(exc),
            )  # fmt: skip
            return False
        agentlog.event(self.log, "control socket", path=str(self.path))
        return True

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._clients.add(task)
        try:
            while True:
                try:
                    line = await reader.readline()
                except (ValueError, asyncio.LimitOverrunError):
                    await _write(
                        writer, {"ok": False, "error": f"a request line is over {MAX_LINE} bytes"}
                    )
                    return
                if not line:
                    return
                await _write(writer, await self._answer(line))
        except (ConnectionError, OSError):
            return
        finally:
            if task is not None:
                self._clients.discard(task)
            writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()

    async def _answer(self, line: bytes) -> dict[str, Any]:
        try:
            request = json.loads(line)
        except ValueError:
            return {"ok": False, "error": "a request must be one JSON object on one line"}
        if not isinstance(request, dict) or not isinstance(request.get("op"), str):
            return {"ok": False, "error": 'a request must be a JSON object with "op"'}
        try:
            return await self.handler(request)
        except StaggerError as exc:
            return {"ok": False, "error": exc.message}

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            for task in list(self._clients):
                task.cancel()
            with contextlib.suppress(Exception):
                await self.server.wait_closed()
            self.server = None
            with contextlib.suppress(OSError):
                self.path.unlink()


async def _write(writer: asyncio.StreamWriter, doc: dict[str, Any]) -> None:
    writer.write(json.dumps(doc).encode() + b"\n")
    await writer.drain()


async def _answers(path: Path) -> bool:
    """Someone listens at `path`."""
    try:
        async with asyncio.timeout(2.0):
            _, writer = await asyncio.open_unix_connection(str(path))
    except (OSError, TimeoutError):
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


def _remove_stale(path: Path) -> None:
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise OSError(f"{path} exists and is not a socket; move it away")
    path.unlink()


# --- the client ---------------------------------------------------------------------------------


async def ask(path: Path, request: dict[str, Any], time_limit: float) -> dict[str, Any]:
    """Send one request, read its answer. ControlUnavailable when nobody listens (the caller
    may then act without the agent); ControlError when the answer is not the protocol's."""
    _check_path(path)
    try:
        async with asyncio.timeout(min(time_limit, 5.0)):
            reader, writer = await asyncio.open_unix_connection(str(path), limit=MAX_LINE)
    except (FileNotFoundError, ConnectionRefusedError, TimeoutError) as exc:
        raise ControlUnavailable(f"no agent answers on {path} ({_why(exc)})") from None
    except PermissionError:
        raise ControlUnavailable(
            f"no permission to use the agent's control socket {path}: run as root"
        ) from None
    except OSError as exc:
        raise ControlUnavailable(f"cannot reach the agent at {path}: {_why(exc)}") from None
    try:
        writer.write(json.dumps(request).encode() + b"\n")
        await writer.drain()
        async with asyncio.timeout(time_limit):
            line = await reader.readline()
    except TimeoutError:
        raise ControlError(f"the agent at {path} did not answer within {time_limit:g}s") from None
    except (OSError, ValueError) as exc:
        raise ControlError(f"the agent at {path} broke off the answer: {_why(exc)}") from None
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    try:
        answer = json.loads(line)
    except ValueError:
        answer = None
    if not isinstance(answer, dict) or "ok" not in answer:
        raise ControlError(f"the agent at {path} answered {line[:200]!r}, not a control answer")
    return answer


def _why(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "no answer in time"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__
