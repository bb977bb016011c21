"""A store that is damaged, emptied, another program's, or not there at all is reported, never
read as an empty fleet and never replaced; only commands that write may create a store
(docs/backends.md "A store is never replaced", docs/cli.md "Which commands create a store").
Through the real `stagger` script, a real server and real SQLite files."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from etcd_support import free_port
from server_support import PROTO, body, running
from stagger.server.settings import ServerSettings

STAGGER = str(Path(sys.executable).parent / "stagger")


def stagger(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "STAGGER_BACKEND"}
    return subprocess.run(
        [STAGGER, *args], capture_output=True, text=True, timeout=60, env=env, check=False
    )


def one_sentence(r: subprocess.CompletedProcess[str], code: int, *words: str) -> None:
    assert r.returncode == code, (r.returncode, r.stdout, r.stderr)
    assert "Traceback" not in r.stdout + r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, r.stderr
    for w in words:
        assert w in lines[0], (w, lines[0])


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def store(tmp_path: Path) -> Path:
    """A real store with a hold in it."""
    db = tmp_path / "stagger.db"
    r = stagger("lock", "--group", "web", "--id", "web-1", "--backend", f"sqlite:///{db}")
    assert r.returncode == 0, r.stderr
    return db


# --- a damaged store is an error ------------------------------------------------------


@pytest.mark.parametrize("size", [0, 1000])
def test_a_truncated_store_is_an_error_for_every_command_and_is_kept(
    store: Path, size: int
) -> None:
    os.truncate(store, size)
    url = f"sqlite:///{store}"
    for args in (("status",), ("history",), ("nodes",), ("lock", "--id", "web-2")):
        one_sentence(stagger(*args, "--backend", url), 3, str(store), "does not replace it")
    assert store.stat().st_size == size  # never re-created over the damaged file


def test_an_emptied_store_says_it_is_empty_in_json_too(store: Path) -> None:
    os.truncate(store, 0)
    r = stagger("status", "--json", "--backend", f"sqlite:///{store}")
    assert r.returncode == 3
    assert "is empty (0 bytes)" in r.stdout  # {"error": ..., "exit_code": 3}
    assert '"exit_code": 3' in r.stdout


def test_another_programs_sqlite_database_is_refused_and_left_untouched(tmp_path: Path) -> None:
    other = tmp_path / "app.db"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE customers (id INTEGER, name TEXT)")
        conn.execute("INSERT INTO customers VALUES (1, 'ann')")
    conn.close()
    before = digest(other)
    for args in (("status",), ("set-max", "2")):
        one_sentence(stagger(*args, "--backend", f"sqlite:///{other}"), 3, "not a stagger store")
    assert digest(other) == before


def test_a_file_that_is_not_sqlite_is_refused_and_left_untouched(tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("x" * 5000)
    one_sentence(stagger("pause", "--reason", "r", "--backend", f"sqlite:///{notes}"), 3,
                 "not a SQLite database")  # fmt: skip
    assert notes.read_text() == "x" * 5000


def test_a_store_written_before_the_marker_is_still_a_store(store: Path) -> None:
    with sqlite3.connect(store) as conn:
        conn.execute("PRAGMA application_id = 0")
    conn.close()
    r = stagger("status", "--json", "--backend", f"sqlite:///{store}")
    assert r.returncode == 0, r.stderr
    holders = r.stdout
    assert '"web-1"' in holders


def test_a_store_damaged_under_a_running_server_is_not_ready_and_fleetlock_fails(
    store: Path,
) -> None:
    settings = ServerSettings(backend_url=f"sqlite:///{store}")
    with running(settings) as srv:
        assert httpx.get(srv.url + "/readyz").status_code == 200
        ok = httpx.post(srv.url + "/v1/pre-reboot", json=body("web-1", "web"), headers=PROTO)
        assert ok.status_code == 200
        os.truncate(store, 1000)
        ready = httpx.get(srv.url + "/readyz")
        assert ready.status_code == 503
        assert "is damaged" in ready.json()["value"]
        for path, node in (("/v1/pre-reboot", "web-1"), ("/v1/pre-reboot", "web-9"),
                           ("/v1/steady-state", "web-1")):  # fmt: skip
            r = httpx.post(srv.url + path, json=body(node, "web"), headers=PROTO)
            assert (r.status_code, r.json()["kind"]) == (503, "backend_unavailable"), path
        assert httpx.get(srv.url + "/v1/status").status_code == 503
        assert httpx.get(srv.url + "/v1/nodes").status_code == 503
    # When the server closes the file, SQLite may write back what its journal (-wal) still
    # holds: the latest committed changes. Either way the holds are never lost silently.
    after = stagger("status", "--json", "--backend", f"sqlite:///{store}")
    assert after.returncode == 3 or '"web-1"' in after.stdout, (after.stdout, after.stderr)


def test_a_store_removed_under_a_running_server_is_not_made_again(store: Path) -> None:
    with running(ServerSettings(backend_url=f"sqlite:///{store}")) as srv:
        assert httpx.get(srv.url + "/readyz").status_code == 200
        store.unlink()
        ready = httpx.get(srv.url + "/readyz")
        assert (ready.status_code, "was removed" in ready.json()["value"]) == (503, True)
        r = httpx.post(srv.url + "/v1/pre-reboot", json=body("web-2", "web"), headers=PROTO)
        assert r.status_code == 503
    assert not store.exists()


def test_the_server_does_not_start_on_a_damaged_store(store: Path) -> None:
    os.truncate(store, 0)
    r = stagger("server", "--listen", f"127.0.0.1:{free_port()}", "--backend", f"sqlite:///{store}")
    one_sentence(r, 3, "the server did not start", "is empty (0 bytes)")
    assert store.stat().st_size == 0


# --- only commands that write create a store --------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ("status",),
        ("status", "--group", "api"),
        ("history",),
        ("nodes",),
        ("unlock", "--id", "web-1"),
        ("resume",),
        ("forget", "web-1"),
    ],
)
def test_a_command_that_only_reads_never_creates_a_store(
    tmp_path: Path, args: tuple[str, ...]
) -> None:
    missing = tmp_path / "nonexistent-dir" / "x.db"
    r = stagger(*args, "--backend", f"sqlite:///{missing}")
    one_sentence(r, 2, f"there is no stagger store at {missing}", "--backend")
    assert not missing.parent.exists()


@pytest.mark.parametrize(
    "args",
    [("lock", "--id", "web-1"), ("set-max", "2"), ("pause", "--reason", "freeze")],
)
def test_a_command_that_writes_creates_the_store(tmp_path: Path, args: tuple[str, ...]) -> None:
    new = tmp_path / "new-dir" / "x.db"
    assert stagger(*args, "--backend", f"sqlite:///{new}").returncode == 0
    assert stagger("status", "--backend", f"sqlite:///{new}").returncode == 0


def test_the_server_creates_its_store_at_start(tmp_path: Path) -> None:
    new = tmp_path / "srv" / "stagger.db"
    port = free_port()
    proc = subprocess.Popen(
        [STAGGER, "server", "--listen", f"127.0.0.1:{port}", "--backend", f"sqlite:///{new}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        for _ in range(400):
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=0.5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            subprocess.run(["sleep", "0.05"], check=True)
        assert new.stat().st_size > 0
    finally:
        proc.terminate()
        proc.wait(timeout=15)
