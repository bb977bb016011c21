"""Many processes on one SQLite file never over-grant a group.

Eight separate Python processes hammer one group (max 3) with acquire/release through the
real SqliteBackend. An SQLite trigger installed by this test (not by stagger) copies every
version of the group row into an audit table inside the writing transaction, so the audit
holds exactly the committed states, every one of them: the independent observer.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from stagger.backends.codec import decode_semaphore
from stagger.backends.sqlite import SqliteBackend
from stagger.core.semaphore import Semaphore

CLIENTS = 8
ATTEMPTS_PER_CLIENT = 260  # acquire attempts; each grant is followed by a release
MAX = 3
PERCENT = 40  # of the 8 clients, once all have asked: 3 slots

CLIENT = textwrap.dedent(
    """
    import asyncio, json, sys, time
    from pathlib import Path
    from stagger.backends.sqlite import SqliteBackend
    from stagger.core.semaphore import Granted

    url, node, attempts, go = sys.argv[1], sys.argv[2], int(sys.argv[3]), Path(sys.argv[4])
    (go.parent / f"ready-{node}").touch()

    async def main() -> dict:
        stats = {"granted": 0, "denied": 0, "released": 0, "errors": []}
        backend = SqliteBackend.from_url(url)
        for _ in range(attempts):
            try:
                outcome = await backend.acquire("web", node)
                if isinstance(outcome, Granted):
                    stats["granted"] += 1
                    await asyncio.sleep(0)
                    await backend.release("web", node)
                    stats["released"] += 1
                else:
                    stats["denied"] += 1
            except Exception as exc:  # every error is a failure of the test: report it
                stats["errors"].append(f"{type(exc).__name__}: {exc}")
        await backend.close()
        return stats

    deadline = time.monotonic() + 60
    while not go.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    print(json.dumps(asyncio.run(main())))
    """
)


def install_audit(db: Path) -> None:
    with sqlite3.connect(db) as conn:
        conn.executescript(
            """
            CREATE TABLE audit (name TEXT, version INTEGER, data TEXT);
            CREATE TRIGGER audit_insert AFTER INSERT ON groups BEGIN
                INSERT INTO audit VALUES (NEW.name, NEW.version, NEW.data);
            END;
            CREATE TRIGGER audit_update AFTER UPDATE ON groups BEGIN
                INSERT INTO audit VALUES (NEW.name, NEW.version, NEW.data);
            END;
            """
        )


async def prepare(url: str, db: Path, percent: bool) -> None:
    setup = SqliteBackend.from_url(url)
    await setup.ping()  # creates the schema the trigger hangs on
    install_audit(db)
    await setup.set_max("web", PERCENT if percent else MAX, by="operator:test", percent=percent)
    await setup.close()


def written_at(sem: Semaphore) -> datetime:
    """The latest time a version records: no earlier than when it was written, and within the
    run (far less than stale_after), so its known nodes are what the write counted. A version
    that records none (a count max, which remembers only its waiters, with no holder and no
    waiter) counts no node: any instant will do."""
    times = [*sem.seen.values(), *(h.since for h in sem.holds.values())]
    return max(times, default=datetime.now(UTC))


def wait_for(paths: list[Path], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not all(p.exists() for p in paths) and time.monotonic() < deadline:
        time.sleep(0.01)


@pytest.mark.timeout(180)
@pytest.mark.parametrize("percent", [False, True], ids=["max-3", "max-40%"])
def test_eight_processes_never_hold_more_slots_than_max(tmp_path: Path, percent: bool) -> None:
    db = tmp_path / "stagger.db"
    url = f"sqlite:///{db}"
    asyncio.run(prepare(url, db, percent))

    go = tmp_path / "go"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CLIENT, url, f"node-{i}", str(ATTEMPTS_PER_CLIENT), str(go)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(CLIENTS)
    ]
    # Start together, so the clients overlap from the first operation.
    wait_for([tmp_path / f"ready-node-{i}" for i in range(CLIENTS)], timeout=60)
    go.touch()
    results = []
    for p in procs:
        out, err = p.communicate(timeout=150)
        assert p.returncode == 0, err
        results.append(json.loads(out))

    errors = [e for r in results for e in r["errors"]]
    assert errors == [], "no client may ever see an error from contention"
    granted = sum(r["granted"] for r in results)
    denied = sum(r["denied"] for r in results)
    released = sum(r["released"] for r in results)
    assert granted + denied + released >= 2000
    print(f"granted={granted} denied={denied} released={released} clients={CLIENTS}")
    assert denied > 0, "the run did not contend: no acquire was ever denied"
    assert released == granted

    with sqlite3.connect(db) as conn:
        audited = conn.execute(
            "SELECT version, data FROM audit WHERE name = 'web' ORDER BY version"
        ).fetchall()
    # Every committed state was seen: one version per write (set-max, each grant, each
    # release, and a denied node joining the queue), numbered without a gap.
    assert [v for v, _ in audited] == list(range(1, len(audited) + 1))
    assert len(audited) >= 1 + granted + released
    for version, data in audited[1:]:
        sem = decode_semaphore(data, f"audited version {version}")
        slots = sem.slots(written_at(sem))
        assert slots == (
            max(1, len(sem.known(written_at(sem))) * PERCENT // 100) if percent else MAX
        )
        assert len(sem.holds) <= slots, f"version {version} over-granted: {data}"
    final = decode_semaphore(audited[-1][1], "final version")
    assert final.holds == {}
