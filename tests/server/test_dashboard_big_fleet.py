"""The dashboard over a big fleet in a real browser (Debian's Chromium, Playwright): a real
server on a real SQLite file holding 50,000 node reports in 20 groups, 80 of them halted and
two holders stale. The page shows the counts and what needs attention first, keeps every list
bounded, and filters to the halted nodes and pages through them. (The figures at 50,000 nodes,
first load, idle refresh and their sizes, are measured by benchmarks/fleet.py, not asserted
here.)"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from browser_support import needs_chromium
from server_support import RunningServer, running
from stagger.backends.sqlite import SqliteBackend
from stagger.core.board import ATTENTION_SHOWN, PAGE_SIZE
from stagger.core.cycle.node_state import State
from stagger.core.node_report import NodeReport
from stagger.server.settings import ServerSettings

# Writing 50,000 reports, each its own transaction, takes ~11 s on a quiet machine.
pytestmark = [needs_chromium, pytest.mark.slow]
NODES = 50_000
GROUPS = 20
HALTED = {f"n{i:05}" for i in range(0, 2000, 25)}  # 80, in groups g00, g05, g10, g15
STALE_GROUP = "g07"


def node_id(i: int) -> str:
    return f"n{i:05}"


async def populate(path: Path) -> None:
    """Straight into the store, as agents' reports land there, before the server starts."""
    store = SqliteBackend(str(path), inline=True)
    try:
        for i in range(NODES):
            nid, group = node_id(i), f"g{i % GROUPS:02}"
            state = State.HALTED if nid in HALTED else State.IDLE
            await store.report(NodeReport(nid, group, state, reason=f"{state.value} here"))
        await store.set_max(STALE_GROUP, 2, by="operator:test")
        await store.configure(
            STALE_GROUP, by="operator:test", hold_ttl=None, stale_after=timedelta(seconds=1)
        )
        for i in (7, 27):  # nodes of g07
            await store.acquire(STALE_GROUP, node_id(i))
    finally:
        await store.close()


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    path = tmp_path_factory.mktemp("big") / "s.db"
    asyncio.run(populate(path))
    time.sleep(1.1)  # the two holders' heartbeats are now older than stale_after
    with running(ServerSettings(backend_url=f"sqlite:///{path}")) as srv:
        yield srv


def node_rows(pg: Any) -> list[str]:
    ids: list[str] = pg.eval_on_selector_all(
        "table.nodes tr.node", "rows => rows.map(r => r.getAttribute('data-node'))"
    )
    return ids


def test_the_first_screen_shows_the_counts_and_the_halted_and_stale_nodes(
    big: RunningServer,
    page: Any,
) -> None:
    first_load = page.goto(big.url + "/")
    assert len(first_load.body()) <= 500_000  # the first load's bound at 50,000 nodes
    assert page.locator("[data-count=halted] b").inner_text() == str(len(HALTED))
    assert page.locator("[data-count=stale] b").inner_text() == "2"
    assert page.locator("[data-count=idle] b").inner_text() == str(NODES - len(HALTED))
    attention = page.locator("table.attention tr[data-attention]")
    assert attention.count() == ATTENTION_SHOWN
    marks = attention.evaluate_all("rows => rows.map(r => r.className)")
    assert all("halted" in m for m in marks)  # halted first, then stale
    assert page.locator("#attention").get_by_text("every halted node").count() == 1
    # Groups by attention: those with halted nodes, then the one with stale holders.
    order = page.eval_on_selector_all(
        "table.groups tbody.group", "gs => gs.map(g => g.getAttribute('data-group'))"
    )
    assert order[:5] == ["g00", "g05", "g10", "g15", STALE_GROUP]
    assert len(order) == GROUPS
    stale = page.locator(f"tbody.group[data-group={STALE_GROUP}] tr.hold.stale")
    assert stale.count() == 2
    # One page of the nodes table, never the whole fleet.
    assert len(node_rows(page)) == PAGE_SIZE
    assert f"page 1 of {NODES // PAGE_SIZE}" in page.locator("#nodes .pager").first.inner_text()


def test_filtering_to_the_halted_nodes_and_paging_through_them(
    big: RunningServer,
    page: Any,
) -> None:
    page.goto(big.url + "/")
    page.locator("#attention").get_by_text("every halted node").click()
    page.wait_for_function("location.search.includes('state=halted')")
    page.wait_for_function(
        "document.querySelector('#nodes .pager span').textContent === 'page 1 of 2'"
    )
    first = node_rows(page)
    assert len(first) == PAGE_SIZE
    assert page.locator("select[name=state]").input_value() == "halted"
    page.locator("#nodes .pager a[rel=next]").first.click()
    page.wait_for_function(
        "document.querySelector('#nodes .pager span').textContent === 'page 2 of 2'"
    )
    second = node_rows(page)
    assert "page=2" in page.url
    assert len(second) == len(HALTED) - PAGE_SIZE
    assert set(first) | set(second) == HALTED
    assert not set(first) & set(second)
    assert page.locator("table.nodes tr.node:not(.state-halted)").count() == 0


def test_the_halted_filter_and_page_work_without_javascript(
    big: RunningServer,
    browser: Any,
) -> None:
    context = browser.new_context(java_script_enabled=False)
    try:
        pg = context.new_page()
        pg.goto(big.url + "/?state=halted&page=2")
        assert set(node_rows(pg)) < HALTED
        assert len(node_rows(pg)) == len(HALTED) - PAGE_SIZE
        pg.locator("#nodes .pager a[rel=prev]").first.click()
        assert len(node_rows(pg)) == PAGE_SIZE
        assert "page=" not in pg.url
    finally:
        context.close()


def test_an_id_prefix_narrows_the_table_to_matching_nodes(
    big: RunningServer,
    page: Any,
) -> None:
    page.goto(big.url + "/")
    page.fill("input[name=q]", "n0012")
    page.press("input[name=q]", "Enter")
    page.wait_for_function("document.querySelectorAll('table.nodes tr.node').length === 10")
    assert node_rows(page) == sorted(
        (node_id(i) for i in range(120, 130)), key=lambda n: (f"g{int(n[1:]) % GROUPS:02}", n)
    )
    assert "q=n0012" in page.url
