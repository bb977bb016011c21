"""Compare-and-swap retries: every backend change is a read-apply-CAS, and a CAS lost to another
writer is tried again here, bounded and with jitter, so it never reaches a caller as a failure."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

from stagger.core.errors import BackendConflict

T = TypeVar("T")

# Enough for hundreds of writers on one group; each attempt is a fresh read-apply-CAS.
CAS_ATTEMPTS = 200


async def retry_cas(
    attempt: Callable[[], Awaitable[tuple[bool, T]]],
    *,
    what: str,
    attempts: int = CAS_ATTEMPTS,
    rng: random.Random | None = None,
) -> T:
    """Run `attempt` until it reports success (True, value). A False means the compare-and-swap
    lost to another writer: wait a short random time (full jitter, capped) and try again."""
    rng = rng or random.Random()
    delay = 0.001
    for _ in range(attempts):
        ok, value = await attempt()
        if ok:
            return value
        await asyncio.sleep(rng.uniform(0, delay))
        delay = min(delay * 2, 0.05)
    raise BackendConflict(
        f"{what}: the group kept changing under us for {attempts} attempts; "
        "this means extreme write contention on one group, try again"
    )
