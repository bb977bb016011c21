"""The `[[blocker]]` table: what it accepts, what `stagger server` builds from it, and each
mistake as one sentence naming the key (through the real `stagger config check`)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from cli_support import assert_one_sentence, run
from stagger.cli.server import build_settings
from stagger.config.loader import load_config
from stagger.core.blockers import BlockerKind, MatchOp

GOOD = """
[[blocker]]
name = "critical"
kind = "alertmanager"
url = "http://127.0.0.1:9093"
matchers = ["severity=critical", "team=~web|api"]
groups = ["web", "api"]
interval = "1s"
timeout = "2s"

[[blocker]]
kind = "http"
url = "https://deploys.example/ready"
"""


def test_the_server_settings_carry_the_blockers(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(GOOD)
    config = load_config(path).config
    settings = build_settings(config.server, f"sqlite:///{tmp_path}/s.db", blockers=config.blocker)
    critical, gate = settings.blockers
    assert critical.name == "critical"
    assert critical.kind is BlockerKind.ALERTMANAGER
    assert [(m.name, m.op) for m in critical.matchers] == [
        ("severity", MatchOp.EQUAL),
        ("team", MatchOp.REGEX),
    ]
    assert critical.groups == frozenset({"web", "api"})
    assert critical.interval == timedelta(seconds=1)
    assert critical.timeout == timedelta(seconds=2)
    assert gate.name == "blocker-2"
    assert gate.kind is BlockerKind.HTTP
    assert gate.groups is None
    assert gate.interval == timedelta(seconds=30)


@pytest.mark.parametrize(
    ("entry", "words"),
    [
        ('kind = "nagios"\nurl = "http://x"', ("kind", "alertmanager")),
        ('kind = "http"\nurl = "ftp://x"', ("url", "http://")),
        ('kind = "http"\nurl = "http://x"\nmatchers = ["a=b"]', ("matchers", "alertmanager")),
        ('kind = "alertmanager"\nurl = "http://x"\nmatchers = ["severity"]', ("matcher",)),
        ('kind = "alertmanager"\nurl = "http://x"\nmatchers = ["a=~("]', ("regular expression",)),
        ('kind = "http"\nurl = "http://x"\ninterval = "500ms"', ("interval", "1s")),
        ('kind = "http"\nurl = "http://x"\ntimeout = "0s"', ("timeout",)),
        ('kind = "http"\nurl = "http://x"\ngroups = []', ("groups",)),
        ('kind = "http"\nurl = "http://x"\ngroups = ["we b"]', ("group",)),
        ('kind = "http"\nurl = "http://x"\nname = "a b"', ("name",)),
        ('url = "http://x"', ("kind", "required")),
        (
            'kind = "http"\nurl = "http://x"\n[[blocker]]\nkind = "http"\nurl = "http://y"\n'
            'name = "blocker-1"',
            ("named", "blocker-1"),
        ),
    ],
)
def test_a_bad_blocker_is_one_sentence_naming_what_to_fix(
    tmp_path: Path, entry: str, words: tuple[str, ...]
) -> None:
    path = tmp_path / "c.toml"
    path.write_text(f"[[blocker]]\n{entry}\n")
    r = run("config", "check", "--config", str(path), backend=None)
    assert_one_sentence(r, 2, "blocker", *words)
