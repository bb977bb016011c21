"""The `[server]` table: how `stagger server` listens, what it serves, and who may call it.

```toml
[server]
listen = "0.0.0.0:8443"
backend = "etcd://10.0.0.1:2379,10.0.0.2:2379"   # default: [agent].backend
prefix = "/fleet_lock"
unknown_groups = "create"        # or "refuse"
default_max = 1                  # slots of a group created on first use
admin_token_files = ["/etc/stagger/admin.tokens"]
node_token_files = ["/etc/stagger/node.tokens"]
tls_cert = "/etc/stagger/tls/server.crt"
tls_key = "/etc/stagger/tls/server.key"
tls_client_ca = "/etc/stagger/tls/clients-ca.crt"   # optional: mutual TLS
silent_after = "15m"             # a node not reporting this long is shown as silent
dashboard = true                 # the read-only dashboard at / (false: not served)
dashboard_auth = false           # true: the dashboard asks for an admin token too
read_timeout = "10s"             # a request not read whole by then closes its connection
max_connections = 1000           # requests served at once; over it, 503

[server.groups]                  # created at start when missing (a live set-max wins)
web = 2
db = 1
```

Secrets live in token files (mode 0600), never in this table.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator

from stagger.config.agent_sections import Duration
from stagger.config.section import Section
from stagger.core.durations import parse_duration
from stagger.core.semaphore import DEFAULT_MAX, MAX_SLOTS, validate_group

DEFAULT_LISTEN = "127.0.0.1:8080"


class ServerConfig(Section):
    listen: str = Field(DEFAULT_LISTEN, description="HOST:PORT to listen on, like 127.0.0.1:8080")
    backend: str | None = Field(
        None, description="the backend URL the server keeps semaphores in; default [agent].backend"
    )
    prefix: str = Field("", description="a path prefix for every endpoint, like /fleet_lock")
    unknown_groups: Literal["create", "refuse"] = Field(
        "create",
        description="'create' (a new group gets default_max slots) or 'refuse' (unknown_group)",
    )
    default_max: int = Field(
        DEFAULT_MAX, ge=0, le=MAX_SLOTS, description="slots of a group created on first use"
    )
    groups: dict[str, int] = Field(
        default_factory=dict,
        description="a table of GROUP = MAX, created at start when missing",
    )
    admin_token_files: list[Path] = Field(
        default_factory=list, description="files with one admin token per line"
    )
    node_token_files: list[Path] = Field(
        default_factory=list, description="files with NAME:TOKEN:GROUP[,GROUP...] per line"
    )
    tls_cert: Path | None = Field(None, description="PEM certificate (chain) to serve HTTPS")
    tls_key: Path | None = Field(None, description="PEM private key of tls_cert")
    tls_client_ca: Path | None = Field(
        None, description="PEM CA bundle: clients must present a certificate it signed"
    )

    silent_after: Duration = Field(
        "15m", description="how long a node may go without a report before it is shown as silent"
    )
    dashboard: bool = Field(
        True, description="serve the dashboard at / (read-only without an admin token)"
    )
    dashboard_auth: bool = Field(
        False, description="the dashboard asks for an admin token (HTTP Basic password)"
    )
    read_timeout: str = Field(
        "10s", description="time to read one request, headers and body; a slower client is cut"
    )
    max_connections: int = Field(
        1000, ge=1, le=1_000_000, description="requests served at once (over it: 503)"
    )

    @field_validator("read_timeout")
    @classmethod
    def _read_timeout(cls, value: str) -> str:
        seconds = parse_duration(value, what="read_timeout").total_seconds()
        if not 0 < seconds <= 3600:
            raise ValueError("read_timeout must be from 0 s to 1h, like '10s'")
        return value

    @field_validator("silent_after")
    @classmethod
    def _silent_after(cls, value: str) -> str:
        if parse_duration(value, what="silent_after").total_seconds() <= 0:
            raise ValueError("silent_after must be longer than 0 s, like '15m'")
        return value

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        _, sep, port = value.rpartition(":")
        if not sep or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"listen {value!r} is not HOST:PORT (like 127.0.0.1:8080 or :8080)")
        return value

    @field_validator("groups")
    @classmethod
    def _groups(cls, value: dict[str, Any]) -> dict[str, int]:
        for name, slots in value.items():
            validate_group(name)
            if isinstance(slots, bool) or not isinstance(slots, int) or not 0 <= slots <= MAX_SLOTS:
                raise ValueError(f"groups.{name} must be a whole number from 0 to {MAX_SLOTS}")
        return value
