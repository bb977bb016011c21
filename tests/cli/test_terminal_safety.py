"""Terminal output is safe: text from nodes and operators (a report's reason and detector, a
pause reason, a note) is printed with every control character escaped, so it cannot retitle
the terminal, clear the screen or forge a line; and an operator cannot store such text in a
pause reason or a note in the first place (the API answers 400, the CLI exits 2). Through a
real server on loopback, the real CLI and real SQLite."""

from __future__ import annotations

import json
import os
import pty
import sqlite3
import subprocess
from pathlib import Path

import httpx
import pytest

from cli_support import STAGGER, assert_one_sentence, run, stagger_env
from server_support import running
from stagger.server.settings import ServerSettings

TITLE = "\u001b]0;PWNED\u0007"
CLEAR = "\u001b[2J"
FORGED = "ok\r\nweb-9  web  idle"
RAW = ("\u001b", "\u0007", "\r")


def assert_nothing_raw(text: str) -> None:
    for char in RAW:
        assert char not in text, (char, text)


def test_nodes_prints_a_reports_control_characters_escaped(tmp_path: Path) -> None:
    with running(ServerSettings(backend_url=f"sqlite:///{tmp_path}/s.db")) as srv:
        doc = {"group": "web", "state": "waiting", "reason": TITLE + FORGED, "detector": CLEAR}
        r = httpx.post(f"{srv.url}/v1/nodes/web-1/report", json=doc, timeout=10)
        assert r.status_code == 200, r.text
        shown = run("nodes", backend=srv.url)
        page = httpx.get(f"{srv.url}/dashboard/live", timeout=10)
    assert page.status_code == 200
    assert_nothing_raw(page.text)
    assert "\\x1b]0;PWNED\\x07" in page.text
    assert shown.code == 0, shown.err
    assert_nothing_raw(shown.out + shown.err)
    assert "\\x1b]0;PWNED\\x07" in shown.out
    assert "\\x1b[2J" in shown.out
    row = next(line for line in shown.out.splitlines() if "web-1" in line)
    assert "\\r\\n" in row  # the forged line stays inside the row
    assert not any(line.lstrip().startswith("web-9") for line in shown.out.splitlines())


@pytest.mark.parametrize("reason", [TITLE, CLEAR, FORGED, "tab\there"])
def test_a_pause_reason_with_a_control_character_is_refused_by_the_cli(
    tmp_path: Path, reason: str
) -> None:
    url = f"sqlite:///{tmp_path}/s.db"
    r = run("pause", "--group", "web", "--reason", reason, backend=url)
    assert_one_sentence(r, 2, "control character")
    assert_nothing_raw(r.err)
    assert "paused" not in run("status", backend=url).out


def test_a_pause_reason_with_a_control_character_is_400_at_the_api(tmp_path: Path) -> None:
    with running(ServerSettings(backend_url=f"sqlite:///{tmp_path}/s.db")) as srv:
        for path in ("/v1/pause", "/v1/groups/web/pause"):
            r = httpx.post(f"{srv.url}{path}", json={"reason": "freeze" + CLEAR}, timeout=10)
            assert r.status_code == 400, r.text
            assert "control character" in r.json()["value"]
        via_cli = run("pause", "--group", "web", "--reason", TITLE, backend=srv.url)
    assert_one_sentence(via_cli, 2, "control character")


def test_a_lock_note_with_a_control_character_is_refused(tmp_path: Path) -> None:
    r = run("lock", "--id", "n1", "--note", CLEAR, backend=f"sqlite:///{tmp_path}/s.db")
    assert_one_sentence(r, 2, "control character")


def test_a_stored_pause_reason_with_control_characters_is_printed_escaped(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/s.db"
    assert run("pause", "--group", "web", "--reason", "freeze", backend=url).code == 0
    with sqlite3.connect(tmp_path / "s.db") as conn:
        (raw,) = conn.execute("SELECT data FROM groups WHERE name = 'web'").fetchone()
        doc = json.loads(raw)
        doc["pause"]["reason"] = TITLE + FORGED
        conn.execute("UPDATE groups SET data = ? WHERE name = 'web'", (json.dumps(doc),))
        for event_id, data in conn.execute("SELECT id, data FROM events").fetchall():
            event = {**json.loads(data), "detail": TITLE + FORGED}
            conn.execute("UPDATE events SET data = ? WHERE id = ?", (json.dumps(event), event_id))
    for args in (("status",), ("history",)):
        r = run(*args, backend=url)
        assert r.code == 0, r.err
        assert_nothing_raw(r.out)
        assert "\\x1b]0;PWNED\\x07" in r.out


def test_a_by_with_a_control_character_is_400_at_the_api(tmp_path: Path) -> None:
    settings = ServerSettings(backend_url=f"sqlite:///{tmp_path}/s.db")
    with running(settings) as srv, httpx.Client(base_url=srv.url, timeout=10) as c:
        assert c.put("/v1/groups/web/max", json={"max": 1}).status_code == 200
        for method, path, body in (
            ("PUT", "/v1/groups/web/max", {"max": 2, "by": "alice" + CLEAR}),
            ("POST", "/v1/groups/web/pause", {"reason": "freeze", "by": TITLE}),
            ("POST", "/v1/groups/web/resume", {"by": "bob\r\nforged"}),
        ):
            r = c.request(method, path, json=body)
            assert r.status_code == 400, (path, r.text)
            assert "control character" in r.json()["value"]
        history = c.get("/v1/history").json()["events"]
    assert all("\u001b" not in e["by"] for e in history)


def on_a_terminal(*args: str) -> str:
    """What `stagger ARGS` writes to a real terminal (a pty): click strips escape sequences
    only when the output is not a terminal, so a pipe would hide what an operator sees."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [STAGGER, *args], stdout=follower, stderr=follower, env=stagger_env(), close_fds=True
    )
    os.close(follower)
    chunks: list[bytes] = []
    while True:  # bounded: the child ends, and reading then fails with EIO
        try:
            chunk = os.read(leader, 65536)
        except OSError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    proc.wait(timeout=60)
    os.close(leader)
    return b"".join(chunks).decode("utf-8", "replace")


def test_doctor_escapes_control_characters_from_the_hosts_files(tmp_path: Path) -> None:
    fragments = tmp_path / "etc" / "stagger" / "config.d"
    fragments.mkdir(parents=True)
    (fragments / "50.toml").write_text('[agent]\nbackend = "sqlite:///tmp/a\\u001b[2J.db"\n')
    shown = on_a_terminal("doctor", "--root", str(tmp_path))
    assert "reboots:" in shown
    assert "\u001b[2J" not in shown
    assert "\\x1b[2J" in shown
