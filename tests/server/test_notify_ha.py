"""Several servers on one store send each notification once (the notifier role).

Two real server processes share one SQLite file, or one prefix on a real etcd, with the same
`[[notify]]` webhook (a real HTTP receiver on 127.0.0.1) and a short look interval: each lock
and unlock arrives once; after the notifier is SIGKILLed, the other server takes over when
the role's lease runs out and sends every change made in the gap; after a clean stop it
takes over at once. The mark a notifier leaves for its successor is checked as pure values
first.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from server_support import PROTO, body
from stagger.core.notices import (
    MARK_MARGIN,
    MARK_MAX_AGE,
    MARK_REFRESH,
    Seen,
    encode_mark,
    mark_body,
    seen_from_mark,
)
from stagger.core.semaphore import Action, Event
from stagger.server.metrics import Metrics
from stagger.server.notify import (
    ROLE_TTL_MIN,
    Notifier,
    NotifyTarget,
    role_name,
    role_ttl,
)
from webhook_support import WAIT, Receiver

LOOK = 0.05  # seconds between two looks at the store
TTL = 2.0  # the notifier role's lease in these tests (the servers' default is 10 s or more)
EVENTS = ("granted", "released")

# One `stagger server` as the service runs it, but with a short notifier lease, which no flag
# sets: it prints its port, then serves until stopped.
SERVER = """
import socket, sys
from datetime import timedelta
import uvicorn
from stagger.server.app import build_app, uvicorn_config
from stagger.server.notify import NotifyTarget
from stagger.server.settings import ServerSettings

backend, hook, look, ttl = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
target = NotifyTarget(
    name="hook", url=hook, events=frozenset({"granted", "released"}), retries=3, backoff=0.05
)
sock = socket.socket()
sock.bind(("127.0.0.1", 0))
port = sock.getsockname()[1]
settings = ServerSettings(
    backend_url=backend, notify=(target,), notify_interval=look, host="127.0.0.1", port=port
)
app = build_app(settings)
app.state.notifier.ttl = timedelta(seconds=ttl)
print(port, flush=True)
uvicorn.Server(uvicorn_config(settings, app, log_level="warning")).run(sockets=[sock])
"""


@dataclass
class Server:
    proc: subprocess.Popen[str]
    url: str

    def leader(self) -> bool:
        text = httpx.get(self.url + "/metrics").text
        found = re.search(r"^stagger_notify_leader (\S+)$", text, re.M)
        return found is not None and float(found.group(1)) == 1.0

    def lock(self, node_id: str) -> None:
        r = httpx.post(self.url + "/v1/pre-reboot", json=body(node_id, "web"), headers=PROTO)
        assert r.status_code == 200, r.text

    def unlock(self, node_id: str) -> None:
        r = httpx.post(self.url + "/v1/steady-state", json=body(node_id, "web"), headers=PROTO)
        assert r.status_code == 200, r.text


class Servers:
    """Server processes started by one test, each stopped (by its pid) at the end."""

    def __init__(self, tmp_path: Path, backend_url: str, hook: str) -> None:
        self.tmp_path = tmp_path
        self.backend_url = backend_url
        self.hook = hook
        self.started: list[Server] = []

    def start(self, ttl: float = TTL) -> Server:
        log = open(self.tmp_path / f"server-{len(self.started)}.log", "w")  # noqa: SIM115
        proc = subprocess.Popen(
            [sys.executable, "-c", SERVER, self.backend_url, self.hook, str(LOOK), str(ttl)],
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
        )
        assert proc.stdout is not None
        port = proc.stdout.readline().strip()
        assert port, f"the server did not start: see {log.name}"
        server = Server(proc, f"http://127.0.0.1:{port}")
        self.started.append(server)
        wait_until("the server is ready", lambda: ready(server))
        return server

    def stop_all(self) -> None:
        for s in self.started:
            if s.proc.poll() is None:
                os.kill(s.proc.pid, signal.SIGKILL)
            s.proc.wait(10)


def ready(server: Server) -> bool:
    try:
        return httpx.get(server.url + "/readyz").status_code == 200
    except httpx.TransportError:
        return False


def wait_until(what: str, done: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        if done():
            return
        time.sleep(0.02)
    pytest.fail(f"{what}: not within {WAIT} s")


def sent(receiver: Receiver) -> Counter[tuple[str, str]]:
    return Counter((d["event"], d["id"]) for d in receiver.docs("/hook"))


def lock_and_unlock(servers: list[Server], ids: list[str]) -> set[tuple[str, str]]:
    """Each node takes a slot through one server and gives it back through the next."""
    for i, node_id in enumerate(ids):
        servers[i % len(servers)].lock(node_id)
        servers[(i + 1) % len(servers)].unlock(node_id)
    return {(event, node_id) for node_id in ids for event in EVENTS}


@pytest.fixture(params=["sqlite", "etcd"])
def fleet(request: pytest.FixtureRequest, tmp_path: Path, receiver: Receiver) -> Iterator[Servers]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/shared.db"
    else:
        url = f"{request.getfixturevalue('etcd_server').url}?prefix=test-{uuid.uuid4().hex[:12]}/"
    servers = Servers(tmp_path, url, receiver.url("/hook"))
    try:
        yield servers
    finally:
        servers.stop_all()


def pair(fleet: Servers) -> tuple[Server, Server]:
    """Two servers on the store, once one of them is the notifier: (notifier, the other)."""
    a, b = fleet.start(), fleet.start()
    wait_until("one server is the notifier", lambda: a.leader() or b.leader())
    return (a, b) if a.leader() else (b, a)


# --- with real servers ---------------------------------------------------------------------


def test_two_servers_on_one_store_send_each_notification_once(
    fleet: Servers, receiver: Receiver
) -> None:
    notifier, other = pair(fleet)
    assert not other.leader()
    expected = lock_and_unlock([notifier, other], [f"web-{i}" for i in range(4)])
    wait_until("every notification arrived", lambda: set(sent(receiver)) >= expected)
    time.sleep(10 * LOOK)  # room for a wrong second copy from the other server
    assert sent(receiver) == Counter(expected)


def test_when_the_notifier_dies_the_other_sends_every_change_of_the_gap(
    fleet: Servers, receiver: Receiver, capsys: pytest.CaptureFixture[str]
) -> None:
    notifier, other = pair(fleet)
    before = lock_and_unlock([notifier, other], ["web-0"])
    wait_until("the first notifications arrived", lambda: set(sent(receiver)) >= before)
    os.kill(notifier.proc.pid, signal.SIGKILL)
    notifier.proc.wait(10)
    killed = time.monotonic()
    gap = lock_and_unlock([other], [f"gap-{i}" for i in range(3)])
    wait_until("the other server took over", other.leader)
    took_over = time.monotonic() - killed
    wait_until("every change of the gap arrived", lambda: set(sent(receiver)) >= gap | before)
    with capsys.disabled():
        print(f"\ntakeover after SIGKILL of the notifier (lease {TTL:g} s): {took_over:.2f} s")
    assert set(sent(receiver)) == gap | before


def test_a_notifier_that_stops_cleanly_hands_the_role_over_at_once(
    fleet: Servers, receiver: Receiver
) -> None:
    # A lease far longer than the test waits: only the release makes the takeover happen.
    a, b = fleet.start(ttl=600), fleet.start(ttl=600)
    wait_until("one server is the notifier", lambda: a.leader() or b.leader())
    notifier, other = (a, b) if a.leader() else (b, a)
    notifier.proc.terminate()
    notifier.proc.wait(WAIT)
    wait_until("the other server took over", other.leader)
    expected = lock_and_unlock([other], ["web-1"])
    wait_until("its notifications arrived", lambda: set(sent(receiver)) >= expected)


# --- the mark (pure) -------------------------------------------------------------------------

T0 = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
WRITTEN = T0 + timedelta(seconds=110)  # when the mark was left
NOW = WRITTEN + timedelta(seconds=20)  # when a successor reads it


def event(seconds: float, node_id: str, action: Action = Action.ACQUIRED) -> Event:
    return Event(T0 + timedelta(seconds=seconds), "web", action, node_id, node_id)


def key(e: Event) -> tuple[datetime, str, str, str, str, str]:
    return (e.time, e.group, e.action.value, e.by, e.id, e.detail)


def seen_of(*events: Event) -> Seen:
    return Seen(frozenset(key(e) for e in events), frozenset({("web", "s")}), frozenset({"h"}))


def test_a_successor_counts_as_seen_exactly_what_the_marks_holder_had_seen() -> None:
    dealt = [event(0, "a"), event(100, "b"), event(103, "c")]
    later = [event(104, "d"), event(105, "e")]
    seen = seen_from_mark(encode_mark(seen_of(*dealt), WRITTEN), [*dealt, *later], NOW)
    assert seen == seen_of(*dealt)


def test_an_event_that_lands_late_with_an_older_time_is_not_taken_as_seen() -> None:
    dealt = [event(100, "b")]
    late = event(100 - MARK_MARGIN.total_seconds() / 2, "late")  # stamped before, seen after
    seen = seen_from_mark(encode_mark(seen_of(*dealt), WRITTEN), [*dealt, late], NOW)
    assert seen is not None
    assert key(late) not in seen.events


def test_a_mark_names_only_the_events_of_its_margin() -> None:
    mark = encode_mark(seen_of(event(0, "old"), event(100, "new")), WRITTEN)
    assert "new" in mark
    assert '"old"' not in mark


def test_a_mark_of_a_notifier_that_saw_no_event_leaves_every_event_unseen() -> None:
    seen = seen_from_mark(encode_mark(Seen(), WRITTEN), [event(0, "a")], NOW)
    assert seen == Seen()


def test_an_unchanged_view_gives_the_same_mark() -> None:
    assert encode_mark(seen_of(event(1, "a"), event(2, "b")), WRITTEN) == encode_mark(
        seen_of(event(2, "b"), event(1, "a")), WRITTEN
    )


def test_a_mark_left_before_every_server_was_down_long_is_not_followed() -> None:
    """Starting from now beats sending up to HISTORY_WINDOW events from long ago."""
    dealt = [event(0, "a")]
    mark = encode_mark(seen_of(*dealt), WRITTEN)
    assert seen_from_mark(mark, dealt, WRITTEN + MARK_MAX_AGE) == seen_of(*dealt)
    assert seen_from_mark(mark, dealt, WRITTEN + MARK_MAX_AGE + timedelta(seconds=1)) is None


def test_the_notifier_writes_its_mark_when_it_changed_or_has_grown_old() -> None:
    notifier = Notifier((), Metrics(), owner="s1")
    seen = seen_of(event(0, "a"))
    assert notifier._leave(seen, WRITTEN) is not None  # never written
    notifier._mark, notifier._mark_written = mark_body(seen), WRITTEN
    assert notifier._leave(seen, WRITTEN + timedelta(seconds=30)) is None
    assert notifier._leave(seen_of(event(1, "b")), WRITTEN + timedelta(seconds=30)) is not None
    assert notifier._leave(seen, WRITTEN + MARK_REFRESH) is not None


def test_no_mark_means_no_notifier_left_one() -> None:
    assert seen_from_mark("", [event(0, "a")], NOW) is None


@pytest.mark.parametrize("mark", ["{", '{"version_format": 99}', '{"version_format": 1}'])
def test_a_mark_this_stagger_cannot_read_is_an_error(mark: str) -> None:
    with pytest.raises(ValueError, match="mark cannot be read"):
        seen_from_mark(mark, [], NOW)


def test_the_role_lasts_three_looks_and_never_less_than_the_minimum() -> None:
    assert role_ttl(0.05) == ROLE_TTL_MIN
    assert role_ttl(60) == timedelta(seconds=180)


def test_servers_with_the_same_destinations_share_one_notifier_role() -> None:
    a = NotifyTarget("a", "http://h/1", frozenset({"granted", "halted"}))
    b = NotifyTarget("b", "http://h/2", frozenset({"halted"}))
    renamed = NotifyTarget("renamed", "http://h/1", frozenset({"halted", "granted"}))
    assert role_name([a, b]) == role_name([b, renamed])
    assert role_name([a]) != role_name([a, b])
