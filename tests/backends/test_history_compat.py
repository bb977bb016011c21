"""History written by a newer stagger sharing the store (an upgrade in progress): an event
whose action this version does not know is left out, the rest still reads. Run on every
backend of the contract suite (the `backend` fixture), each real."""

from __future__ import annotations

import json
import logging
import sqlite3

import pytest

from etcd_support import raw_client
from stagger.backends.codec import decode_events, encode_event
from stagger.backends.etcd import EtcdBackend
from stagger.backends.protocol import Backend
from stagger.backends.sqlite import SqliteBackend
from stagger.core.semaphore import Action

OP = "ops@test"


def from_newer_stagger(action: str) -> str:
    doc = {"time": "2026-11-26T00:00:00+00:00", "group": "web", "action": action, "by": OP}
    return json.dumps({**doc, "id": "", "detail": ""})


async def store_event(backend: Backend, request: pytest.FixtureRequest, raw: str) -> None:
    """Append one stored event by hand, after the ones the backend wrote."""
    if isinstance(backend, SqliteBackend):
        with sqlite3.connect(backend.path) as conn:
            conn.execute(
                "INSERT INTO events (grp, seq, time, data) VALUES ('web', 1000000, '', ?)", (raw,)
            )
        return
    assert isinstance(backend, EtcdBackend)
    member = request.getfixturevalue("etcd_server").members[0]
    async with raw_client(member) as etcd:
        await etcd.put(backend.layout.event_key("web", 1_000_000), raw.encode())


async def test_an_event_from_a_newer_stagger_is_left_out_and_the_rest_reads(
    backend: Backend, request: pytest.FixtureRequest, caplog: pytest.LogCaptureFixture
) -> None:
    await backend.set_max("web", 2, by=OP)
    await backend.acquire("web", "a")
    # Logged once per action and process: a name of its own for each backend's run.
    action = f"teleported-{type(backend).__name__}"
    await store_event(backend, request, from_newer_stagger(action))
    with caplog.at_level(logging.WARNING, logger="stagger.backends"):
        for _ in range(2):
            actions = [e.action for e in await backend.history("web")]
            assert actions == [Action.ACQUIRED, Action.MAX_CHANGED]
            assert actions == [e.action for e in await backend.history()]
    assert sum(f"'{action}'" in r.getMessage() for r in caplog.records) == 1


def test_a_broken_event_still_fails_loudly() -> None:
    with pytest.raises(KeyError):
        decode_events(['{"action": "acquired"}'])


def test_known_events_decode_in_order() -> None:
    raws = [from_newer_stagger("released"), from_newer_stagger("acquired")]
    assert [e.action for e in decode_events(raws)] == [Action.RELEASED, Action.ACQUIRED]
    assert decode_events([encode_event(e) for e in decode_events(raws)]) == decode_events(raws)
