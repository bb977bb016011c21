"""Emergency reboots asked for this node (`need-reboot --now`), kept in step between the
need-reboot marker on the node and the store.

An ask made on the node is the marker, written with `--now` for this boot; `look` reads it as
the gate's `Urgent`. An ask made through the store (`need-reboot --now --node ID`) is adopted:
written as this boot's marker, so the manual detector and the gate take it exactly like one
asked on the node. An ask older than the node's last reboot was done by it, and is cleared
from the store instead.
"""

from __future__ import annotations

import logging
from datetime import datetime

from stagger.agent import log as agentlog
from stagger.agent.log import why
from stagger.agent.report_sender import BackendCall
from stagger.agent.runtime import Runtime
from stagger.agent.state_file import ManualMark, read_boot_id, read_manual_mark, write_manual_mark
from stagger.backends.protocol import Backend
from stagger.core.errors import StaggerError
from stagger.core.semaphore import Urgent


class RebootAsks:
    def __init__(
        self, rt: Runtime, backend: Backend, call: BackendCall, logger: logging.Logger
    ) -> None:
        self.rt = rt
        self.backend = backend
        self.call = call
        self.log = logger

    def look(self) -> Urgent | None:
        """The urgent reboot the need-reboot marker asks for in this boot (`--now`), if any.
        A marker that cannot be read asks for none (the manual detector says it is unknown)."""
        path = self.rt.manual_path
        if path is None:
            return None
        try:
            mark = read_manual_mark(path)
            return mark.as_urgent(read_boot_id(self.rt.boot_id_path)) if mark else None
        except StaggerError:
            return None

    async def adopt(self, asked: Urgent | None, last_reboot: datetime | None) -> None:
        """Take the ask the store holds for this node (None: there is none)."""
        rt = self.rt
        path = rt.manual_path
        if asked is None or path is None:
            return
        if last_reboot is not None and asked.since <= last_reboot:
            try:
                await self.call(
                    "clear_reboot",
                    self.backend.clear_reboot(rt.node_id, done_by=last_reboot, group=rt.group),
                )
            except (StaggerError, OSError, TimeoutError) as exc:
                agentlog.event(self.log, "urgent ask not cleared", logging.WARNING, error=why(exc))
            return
        try:
            boot_id = read_boot_id(rt.boot_id_path)
            mark = read_manual_mark(path)
            if mark is not None and mark.as_urgent(boot_id) == asked:
                return  # already adopted
            write_manual_mark(
                path,
                ManualMark(
                    asked.reason,
                    asked.since,
                    asked.by,
                    boot_id,
                    urgent=True,
                    ignore_blackouts=asked.ignore_blackouts,
                ),
            )
        except StaggerError as exc:
            agentlog.event(self.log, "urgent ask not taken", logging.WARNING, error=why(exc))
            return
        agentlog.event(
            self.log, "urgent reboot asked", logging.WARNING, by=asked.by, reason=asked.reason
        )
