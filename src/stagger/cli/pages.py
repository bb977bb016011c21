"""What the paged listings of the CLI share (`stagger nodes`, `stagger history`): the --since
option, and the history read page by page (core/listing.py), so `--all` prints every event as
it reads it and never holds more than a page."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from stagger.core.durations import parse_duration
from stagger.core.listing import MAX_PAGES, HistoryPage, HistoryQuery
from stagger.core.semaphore import HISTORY_LIMIT, Event
from stagger.core.times import check_instant

if TYPE_CHECKING:
    from stagger.backends.protocol import Backend

HISTORY_PAGE = HISTORY_LIMIT  # events asked for per page


def since_option(raw: str | None) -> datetime | None:
    """--since: an RFC 3339 time, or a duration ago (like 1h) by this host's clock."""
    if raw is None:
        return None
    try:
        return check_instant(datetime.fromisoformat(raw), "--since")
    except ValueError:
        pass
    return datetime.now(UTC) - parse_duration(raw, what="--since")


async def walk_history(
    backend: Backend, query: HistoryQuery, upto: int | None
) -> AsyncIterator[HistoryPage]:
    """The pages of the history matching `query`, newest first, until `upto` events (None:
    every one)."""
    shown = 0
    for _ in range(MAX_PAGES):
        size = HISTORY_PAGE if upto is None else min(HISTORY_PAGE, upto - shown)
        page = await backend.history_page(replace(query, limit=size))
        yield page
        shown += len(page.events)
        if page.next is None or (upto is not None and shown >= upto):
            return
        query = replace(query, before=page.next)


async def read_history(backend: Backend, query: HistoryQuery, upto: int) -> list[Event]:
    events: list[Event] = []
    async for page in walk_history(backend, query, upto):
        events += page.events
    return events


async def stream_history(
    backend: Backend,
    query: HistoryQuery,
    as_json: bool,
    render: Callable[[list[Event]], None],
) -> None:
    """`history --all`: `render` (a table) per page, or the /v1/history document written as
    it is read."""
    from stagger.api import EventModel

    count = 0
    if as_json:
        sys.stdout.write('{"events": [')
    async for page in walk_history(backend, query, None):
        if as_json:
            for e in page.events:
                row = EventModel.of(e).model_dump_json()
                sys.stdout.write((",\n  " if count else "\n  ") + row)
                count += 1
            sys.stdout.flush()
        elif page.events or count == 0:
            render(list(page.events))
            count += len(page.events)
    if as_json:
        sys.stdout.write('\n], "next_cursor": null}\n')
