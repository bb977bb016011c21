"""The `[[notify]]` array of tables: where `stagger server` sends notifications.

```toml
[[notify]]
name = "ops-slack"                       # shown in logs and /metrics (never the URL)
url = "https://hooks.slack.com/services/T000/B000/XXXX"
format = "slack"                         # or "json" (the default)
events = ["halted", "stale", "paused", "resumed", "denied_paused"]

[[notify]]
url = "https://alerts.example.com/stagger"
events = ["granted", "released", "halted"]
headers = { Authorization = "Bearer s3cret" }
retries = 5                              # tries after the first (default 5)
backoff = "2s"                           # first wait, doubling, capped at 5m
timeout = "5s"
```

Webhook URLs and headers often carry secrets: the server never logs them (logs and metrics
name an entry by `name` and the URL's host). `stagger config show` masks secret-looking
query parameters and headers (docs/configuration.md, "Secrets in URLs") but prints the URL's
path as written, so keep the file readable by root only.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Literal

from pydantic import Field, field_validator

from stagger.config.agent_sections import Duration
from stagger.config.section import Section, check_http_url
from stagger.core.durations import parse_duration

NOTIFY_EVENTS = (
    "granted",
    "released",
    "denied_paused",
    "halted",
    "stale",
    "paused",
    "resumed",
    "max_changed",
    "stage_done",
    "rollout_halted",
)
DEFAULT_EVENTS = (
    "halted",
    "stale",
    "paused",
    "resumed",
    "denied_paused",
    "max_changed",
    "stage_done",
    "rollout_halted",
)


class NotifyConfig(Section):
    url: str = Field(description="an http:// or https:// URL that takes a POST")
    name: str = Field("", description="a label for logs and metrics; default notify-N")
    events: list[str] = Field(
        list(DEFAULT_EVENTS),
        description=f"which events to send, from {', '.join(NOTIFY_EVENTS)}",
    )
    format: Literal["json", "slack"] = Field(
        "json", description="'json' (stagger's own document) or 'slack' (an incoming webhook)"
    )
    headers: dict[str, str] = Field(
        default_factory=dict, description="extra HTTP headers, like Authorization"
    )
    retries: int = Field(5, ge=0, le=100, description="tries after the first one fails")
    backoff: Duration = Field(
        "2s", description="the first wait before a retry, doubling, like '2s'"
    )
    timeout: Duration = Field("5s", description="how long one try may take, like '5s'")

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return check_http_url(value)

    @field_validator("events", mode="before")
    @classmethod
    def _events(cls, value: Any) -> list[str]:
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list) or not items:
            raise ValueError(f"events must be a list of names from {', '.join(NOTIFY_EVENTS)}")
        unknown = [e for e in items if e not in NOTIFY_EVENTS]
        if unknown:
            raise ValueError(
                f"events {unknown!r} are not known: use names from {', '.join(NOTIFY_EVENTS)}"
            )
        return list(items)

    @field_validator("backoff", "timeout")
    @classmethod
    def _duration(cls, value: str) -> str:
        if parse_duration(value) <= timedelta(0):
            raise ValueError(f"{value!r} must be longer than 0 s")
        return value

    def backoff_delta(self) -> timedelta:
        return parse_duration(self.backoff)

    def timeout_delta(self) -> timedelta:
        return parse_duration(self.timeout)
