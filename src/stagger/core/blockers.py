"""Fleet-wide blockers: monitoring that says "no reboot now" (docs/rollout.md, "Blockers").

A blocker is an Alertmanager whose matching alerts fire, or a URL that must answer 2xx. The
server checks each one in the background and keeps its last verdict; a grant in a group a
blocking blocker names is refused with denial kind `blocked`. This file decides, the server's
poller (server/blockers.py) only fetches:

- matchers, Alertmanager's own syntax and meaning (`=`, `!=`, `=~`, `!~`; a regular expression
  matches the whole value; a missing label is the empty string): `parse_matcher`;
- what one answer means (`judge_alerts`, `judge_http`, `unreachable`): only alerts in state
  `active` with no silence and no inhibition block; anything that is not a clear "go" blocks
  (fail closed): no answer, an answer that is not the v2 alert list, a status that is not 2xx,
  and no answer yet;
- which groups are blocked and why (`BlockIndex`), built once per verdict change so that the
  FleetLock hot path asks a dict.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from stagger.core.errors import InvalidInput
from stagger.core.secrets import mask_url

DEFAULT_INTERVAL = timedelta(seconds=30)
MIN_INTERVAL = timedelta(seconds=1)
DEFAULT_TIMEOUT = timedelta(seconds=10)
# Alerts named in a reason; the rest are counted ("and 4 more").
ALERTS_NAMED = 3
NAME_RE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_LABEL = r"[A-Za-z_][A-Za-z0-9_]*"
_MATCHER = re.compile(rf"^\s*({_LABEL})\s*(=~|!~|!=|=)\s*(.*?)\s*$", re.DOTALL)
MATCHER_EXAMPLE = 'write it like "severity=critical" or "team=~web|api"'


class BlockerKind(StrEnum):
    ALERTMANAGER = "alertmanager"  # Alertmanager's v2 API: matching active alerts block
    HTTP = "http"  # a URL that must answer 2xx


class MatchOp(StrEnum):
    EQUAL = "="
    NOT_EQUAL = "!="
    REGEX = "=~"
    NOT_REGEX = "!~"


@dataclass(frozen=True)
class Matcher:
    """One label matcher, as Alertmanager reads it."""

    name: str
    op: MatchOp
    value: str
    regex: re.Pattern[str] | None = field(default=None, compare=False, repr=False)

    def matches(self, labels: Mapping[str, str]) -> bool:
        got = labels.get(self.name, "")
        if self.op is MatchOp.EQUAL:
            return got == self.value
        if self.op is MatchOp.NOT_EQUAL:
            return got != self.value
        assert self.regex is not None
        found = self.regex.fullmatch(got) is not None
        return found if self.op is MatchOp.REGEX else not found

    def filter_text(self) -> str:
        """The matcher for Alertmanager's `filter` query parameter (value quoted)."""
        quoted = self.value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        return f'{self.name}{self.op.value}"{quoted}"'

    def __str__(self) -> str:
        return f"{self.name}{self.op.value}{self.value}"


def _unquote(text: str, written: str) -> str:
    if len(text) < 2 or not (text.startswith('"') and text.endswith('"')):
        if '"' in text:
            raise InvalidInput(
                f"matcher {written!r} has a stray quote: quote the whole value or none of it "
                f"({MATCHER_EXAMPLE})"
            )
        return text
    out: list[str] = []
    chars = iter(text[1:-1])
    for c in chars:
        if c == "\\":
            nxt = next(chars, "")
            out.append({"n": "\n", "\\": "\\", '"': '"'}.get(nxt, "\\" + nxt))
        elif c == '"':
            raise InvalidInput(f'matcher {written!r} has a quote inside its value: write it as \\"')
        else:
            out.append(c)
    return "".join(out)


def parse_matcher(text: str) -> Matcher:
    """`severity=critical`, `team=~"web|api"`, ... as a Matcher; InvalidInput saying what is
    wrong otherwise."""
    m = _MATCHER.fullmatch(text)
    if m is None:
        raise InvalidInput(
            f"matcher {text!r} is not LABEL OP VALUE with OP one of =, !=, =~, !~ "
            f"({MATCHER_EXAMPLE})"
        )
    name, op, raw = m.group(1), MatchOp(m.group(2)), m.group(3)
    value = _unquote(raw, text)
    regex = None
    if op in (MatchOp.REGEX, MatchOp.NOT_REGEX):
        try:
            regex = re.compile(f"(?:{value})")
        except re.error as exc:
            raise InvalidInput(
                f"matcher {text!r} has an invalid regular expression ({exc.msg}): {MATCHER_EXAMPLE}"
            ) from None
    return Matcher(name, op, value, regex)


@dataclass(frozen=True)
class Blocker:
    """One `[[blocker]]` of the server's configuration. `groups=None`: every group."""

    name: str
    kind: BlockerKind
    url: str = field(repr=False)
    matchers: tuple[Matcher, ...] = ()
    groups: frozenset[str] | None = None
    interval: timedelta = DEFAULT_INTERVAL
    timeout: timedelta = DEFAULT_TIMEOUT
    # A PEM CA bundle an https URL is verified with (None: the default CAs).
    ca_cert: str | None = None

    def applies_to(self, group: str) -> bool:
        return self.groups is None or group in self.groups

    @property
    def shown_url(self) -> str:
        """The URL as logs, reasons and status show it (secrets masked)."""
        return mask_url(self.url)

    def request(self) -> tuple[str, tuple[tuple[str, str], ...]]:
        """The URL and query parameters of one check: for Alertmanager, `GET /api/v2/alerts`
        for active alerts that are neither silenced nor inhibited, filtered by the matchers
        (checked again here: a proxy or an old Alertmanager may ignore the filter)."""
        if self.kind is BlockerKind.HTTP:
            return self.url, ()
        return alerts_url(self.url), (
            ("active", "true"),
            ("silenced", "false"),
            ("inhibited", "false"),
            ("unprocessed", "false"),
            *(("filter", m.filter_text()) for m in self.matchers),
        )


def alerts_url(base: str) -> str:
    """The alerts endpoint of an Alertmanager given by its base URL (`http://am:9093`, or with
    a path prefix), or by its v2 API or alerts URL itself."""
    base, q, query = base.partition("?")
    base = base.rstrip("/")
    if base.endswith("/api/v2/alerts"):
        path = base
    elif base.endswith("/api/v2"):
        path = base + "/alerts"
    else:
        path = base + "/api/v2/alerts"
    return path + q + query


@dataclass(frozen=True)
class Alert:
    """One alert of Alertmanager's `GET /api/v2/alerts` answer (the fields that decide)."""

    labels: Mapping[str, str]
    state: str
    silenced_by: tuple[str, ...] = ()
    inhibited_by: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return self.labels.get("alertname", "") or "(no alertname)"

    @property
    def firing(self) -> bool:
        """Active, and neither silenced nor inhibited."""
        return self.state == "active" and not self.silenced_by and not self.inhibited_by


def _strings(value: Any) -> tuple[str, ...] | None:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        return None
    return tuple(value)


def parse_alerts(doc: Any) -> tuple[Alert, ...]:
    """The alerts of a decoded v2 answer (a JSON array of gettableAlert); InvalidInput when it
    is not one."""
    if not isinstance(doc, list):
        raise InvalidInput("the answer is not a JSON array of alerts (Alertmanager API v2)")
    alerts = []
    for item in doc:
        labels = item.get("labels") if isinstance(item, dict) else None
        status = item.get("status") if isinstance(item, dict) else None
        if (
            not isinstance(labels, dict)
            or not all(isinstance(k, str) and isinstance(v, str) for k, v in labels.items())
            or not isinstance(status, dict)
            or not isinstance(status.get("state"), str)
        ):
            raise InvalidInput(
                "an alert in the answer has no labels or status.state (Alertmanager API v2)"
            )
        silenced = _strings(status.get("silencedBy", []))
        inhibited = _strings(status.get("inhibitedBy", []))
        if silenced is None or inhibited is None:
            raise InvalidInput(
                "an alert's silencedBy or inhibitedBy is not a list of ids (Alertmanager API v2)"
            )
        alerts.append(Alert(dict(labels), status["state"], silenced, inhibited))
    return tuple(alerts)


@dataclass(frozen=True)
class Verdict:
    """What the last check of one blocker found. `checked_at` is None before the first
    answer (which blocks: fail closed)."""

    blocking: bool
    reason: str
    checked_at: datetime | None = None
    reachable: bool = True
    alerts: tuple[str, ...] = ()


def not_checked(blocker: Blocker) -> Verdict:
    return Verdict(
        True,
        f"blocker {blocker.name} has not answered yet; reboots wait for its first check",
        None,
        reachable=False,
    )


def unreachable(blocker: Blocker, why: str, now: datetime) -> Verdict:
    what = "Alertmanager" if blocker.kind is BlockerKind.ALERTMANAGER else "the URL"
    return Verdict(
        True,
        f"blocker {blocker.name}: {what} at {blocker.shown_url} could not be checked ({why}); "
        "reboots wait until it answers (fail closed)",
        now,
        reachable=False,
    )


def _alert_text(alert: Alert, blocker: Blocker) -> str:
    named = sorted({m.name for m in blocker.matchers} - {"alertname"})
    shown = ", ".join(f"{k}={alert.labels[k]}" for k in named if k in alert.labels)
    return f"{alert.name} ({shown})" if shown else alert.name


def judge_alerts(blocker: Blocker, alerts: Sequence[Alert], now: datetime) -> Verdict:
    """Blocking when any alert fires (active, not silenced, not inhibited) and matches every
    matcher."""
    firing = [a for a in alerts if a.firing and all(m.matches(a.labels) for m in blocker.matchers)]
    if not firing:
        return Verdict(False, f"blocker {blocker.name}: no matching alert fires", now)
    texts = sorted({_alert_text(a, blocker) for a in firing})
    listed = ", ".join(texts[:ALERTS_NAMED])
    more = f" and {len(texts) - ALERTS_NAMED} more" if len(texts) > ALERTS_NAMED else ""
    n = len(firing)
    return Verdict(
        True,
        f"blocker {blocker.name}: {n} alert{'s' if n != 1 else ''} firing: {listed}{more}",
        now,
        alerts=tuple(sorted({a.name for a in firing})),
    )


def judge_http(blocker: Blocker, status: int, now: datetime) -> Verdict:
    if 200 <= status < 300:
        return Verdict(False, f"blocker {blocker.name}: {blocker.shown_url} answered {status}", now)
    return Verdict(
        True,
        f"blocker {blocker.name}: {blocker.shown_url} answered HTTP {status} (2xx lets reboots go)",
        now,
    )


@dataclass(frozen=True)
class Blocked:
    """Why grants in a group are refused: the blocking blockers' names and their reasons."""

    names: tuple[str, ...]
    reason: str


def _blocked(items: Iterable[tuple[Blocker, Verdict]]) -> Blocked | None:
    hits = [(b, v) for b, v in items if v.blocking]
    if not hits:
        return None
    return Blocked(tuple(b.name for b, _ in hits), "; ".join(v.reason for _, v in hits))


@dataclass(frozen=True)
class BlockIndex:
    """Which groups are blocked, looked up per grant: `of(group)` is a dict lookup."""

    every: Blocked | None = None
    named: Mapping[str, Blocked | None] = field(default_factory=dict)

    def of(self, group: str) -> Blocked | None:
        return self.named.get(group, self.every)

    @classmethod
    def build(cls, blockers: Sequence[Blocker], verdicts: Mapping[str, Verdict]) -> BlockIndex:
        pairs = [(b, verdicts.get(b.name) or not_checked(b)) for b in blockers]
        every = _blocked((b, v) for b, v in pairs if b.groups is None)
        named = {g for b, _ in pairs for g in (b.groups or ())}
        return cls(
            every,
            {g: _blocked((b, v) for b, v in pairs if b.applies_to(g)) for g in sorted(named)},
        )
