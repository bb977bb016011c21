"""The `[[blocker]]` array of tables: monitoring that holds every reboot back while it says no
(docs/rollout.md, "Blockers"). Read by `stagger server` only.

```toml
[[blocker]]
name = "critical-alerts"                 # shown in denials, status and /metrics
kind = "alertmanager"                    # Alertmanager's v2 API
url = "http://alertmanager.example:9093" # its base URL (or .../api/v2)
matchers = ["severity=critical", "team=~web|api"]
groups = ["web", "api"]                  # default: every group
interval = "30s"                         # how often it is checked (1s at least)
timeout = "10s"                          # one check's time; no answer in time blocks
ca_cert = "/etc/stagger/monitoring-ca.pem"  # optional: the CA of an https URL

[[blocker]]
kind = "http"                            # any URL: 2xx lets reboots go, anything else blocks
url = "https://deploys.example/ready"
```
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from stagger.config.agent_sections import Duration
from stagger.config.section import Section, check_http_url
from stagger.core.blockers import (
    DEFAULT_INTERVAL,
    MIN_INTERVAL,
    NAME_RE,
    Blocker,
    BlockerKind,
    parse_matcher,
)
from stagger.core.durations import format_duration, parse_duration
from stagger.core.semaphore import validate_group


class BlockerConfig(Section):
    kind: Literal["alertmanager", "http"] = Field(
        description="'alertmanager' (matching active alerts block) or 'http' (a URL that "
        "must answer 2xx)"
    )
    url: str = Field(
        description="an http:// or https:// URL: an Alertmanager's base URL, or the URL to check"
    )
    name: str = Field("", description="a label for denials, status and /metrics; default blocker-N")
    matchers: list[str] = Field(
        default_factory=list,
        description="alertmanager only: Alertmanager label matchers, all of which an alert "
        'must match, like ["severity=critical", "team=~web|api"]; none: every alert',
    )
    groups: list[str] | None = Field(
        None, description="the groups it holds back; default every group"
    )
    interval: Duration = Field(
        format_duration(DEFAULT_INTERVAL), description="how often it is checked, 1s at least"
    )
    timeout: Duration = Field("10s", description="how long one check may take, like '10s'")
    ca_cert: Path | None = Field(
        None, description="a PEM CA bundle to verify an https URL with; default the usual CAs"
    )

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return check_http_url(value)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if value and not NAME_RE.fullmatch(value):
            raise ValueError(
                "name must be 1 to 64 letters, digits, '.', '_' or '-', like critical-alerts"
            )
        return value

    @field_validator("matchers", mode="before")
    @classmethod
    def _matchers(cls, value: Any) -> list[str]:
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list) or not all(isinstance(m, str) for m in items):
            raise ValueError('matchers must be a list of strings, like ["severity=critical"]')
        for m in items:
            parse_matcher(m)
        return list(items)

    @field_validator("groups")
    @classmethod
    def _groups(cls, value: list[str] | None) -> list[str] | None:
        if value is not None:
            if not value:
                raise ValueError("groups must name one group at least (leave it out for all)")
            for g in value:
                validate_group(g)
        return value

    @field_validator("interval")
    @classmethod
    def _interval(cls, value: str) -> str:
        if parse_duration(value, what="interval") < MIN_INTERVAL:
            raise ValueError("interval must be 1s or longer, like '30s'")
        return value

    @field_validator("timeout")
    @classmethod
    def _timeout(cls, value: str) -> str:
        if not timedelta(0) < parse_duration(value, what="timeout") <= timedelta(minutes=5):
            raise ValueError("timeout must be longer than 0s and at most 5m, like '10s'")
        return value

    @model_validator(mode="after")
    def _kind_fields(self) -> BlockerConfig:
        if self.kind == "http" and self.matchers:
            raise ValueError("matchers are for kind = 'alertmanager'; an http blocker has none")
        return self

    def value(self, index: int) -> Blocker:
        return Blocker(
            name=self.name or f"blocker-{index}",
            kind=BlockerKind(self.kind),
            url=self.url,
            matchers=tuple(parse_matcher(m) for m in self.matchers),
            groups=frozenset(self.groups) if self.groups is not None else None,
            interval=parse_duration(self.interval),
            timeout=parse_duration(self.timeout),
            ca_cert=str(self.ca_cert) if self.ca_cert is not None else None,
        )


def check_names(configs: list[BlockerConfig]) -> list[BlockerConfig]:
    """Two blockers with one name are refused: denials, status and metrics name them."""
    seen: set[str] = set()
    for i, c in enumerate(configs, 1):
        name = c.name or f"blocker-{i}"
        if name in seen:
            raise ValueError(
                f"two [[blocker]] entries are named {name!r}: give each a name of its own"
            )
        seen.add(name)
    return configs


def blockers_of(configs: list[BlockerConfig]) -> tuple[Blocker, ...]:
    return tuple(c.value(i) for i, c in enumerate(configs, 1))
