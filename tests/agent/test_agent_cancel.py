"""A cancelled agent stops: no time limit in the agent swallows a cancel.

On Python 3.11 `asyncio.wait_for` returns the awaited call's result when a cancel arrives in
the same turn of the loop as the call's answer, and the cancelled task carries on (a cancelled
update_engine watch once waited for a disconnect forever). The agent bounds its calls with
`asyncio.timeout`, which leaves the cancel pending. These tests make the answer and the cancel
land in the same turn, on a real agent over a real SQLite backend.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from stagger.agent.daemon import Agent
from stagger.agent.runtime import build_runtime
from stagger.backends.factory import open_backend
from stagger.backends.protocol import Backend


@pytest.fixture
async def agent(tmp_path: Path) -> AsyncIterator[Agent]:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/machine-id").write_text("0123456789abcdef0123456789abcdef\n")
    config = tmp_path / "agent.toml"
    config.write_text(f'[agent]\nid = "node-1"\nbackend = "sqlite:///{tmp_path}/stagger.db"\n')
    rt = build_runtime(config, tmp_path)
    backend: Backend = open_backend(rt.backend_url)
    yield Agent(rt, backend)
    await backend.close()


async def cancelled_as_it_answers(call: Callable[[Awaitable[Any]], Awaitable[Any]]) -> bool:
    """Run `call(inner)` in a task; answer `inner` and cancel the task in the same turn.
    True when the task ended cancelled (the cancel was kept)."""
    loop = asyncio.get_running_loop()
    answer: asyncio.Future[str] = loop.create_future()

    async def inner() -> str:
        return await answer

    task = loop.create_task(call(inner()))
    for _ in range(5):  # let the task reach its await on `answer`
        await asyncio.sleep(0)
    answer.set_result("granted")
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    return task.cancelled()


async def test_a_cancel_that_lands_as_the_backend_answers_stops_the_agent(agent: Agent) -> None:
    assert await cancelled_as_it_answers(lambda inner: agent._backend_call("acquire", inner))


async def test_a_backend_call_still_returns_its_answer_within_the_limit(agent: Agent) -> None:
    assert await agent._backend_call("ping", agent.backend.ping()) is None


async def test_a_backend_call_over_its_limit_is_a_timeout(agent: Agent) -> None:
    agent.rt.backend_timeout = 0.0
    with pytest.raises(TimeoutError):
        await agent._backend_call("status", asyncio.sleep(3600))
