"""The server's settings, as one frozen value built from flags or the config file."""

from __future__ import annotations

import hashlib
import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

from stagger.backends.factory import DEFAULT_BACKEND_URL
from stagger.core.blockers import Blocker
from stagger.core.errors import ConfigError, InvalidInput
from stagger.core.node_report import DEFAULT_SILENT_AFTER
from stagger.core.rollout_gate import Budget, Stage
from stagger.core.semaphore import DEFAULT_MAX, validate_group, validate_max, validate_node_id

if TYPE_CHECKING:
    from stagger.server.notify import NotifyTarget

DEFAULT_LISTEN = "127.0.0.1:8080"
# FleetLock bodies are ~100 bytes; anything near this is not a FleetLock client.
MAX_BODY = 64 * 1024
# `?by=` (who acts, for history): one or more characters, no control character (C0, DEL, C1).
BY_RE = re.compile(r"^[^\x00-\x1f\x7f-\x9f]+$")
DEFAULT_READ_TIMEOUT = 10.0
DEFAULT_MAX_CONNECTIONS = 1000


class UnknownGroups(StrEnum):
    """What a FleetLock call for a group the server has never seen does."""

    CREATE = "create"  # the group is created with `default_max` slots
    REFUSE = "refuse"  # the call fails with kind `unknown_group`


def digest(secret: str) -> str:
    """Tokens are compared by their SHA-256, so no secret is kept in a lookup table and the
    comparison time says nothing about the secret."""
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True)
class Token:
    """A credential. `groups=None` on an admin token: everything. A node token carries the
    groups it may lock and release in (FleetLock calls and heartbeats only)."""

    name: str
    digest: str = field(repr=False)
    admin: bool
    groups: frozenset[str] = frozenset()

    def may_lock(self, group: str) -> bool:
        return self.admin or group in self.groups or "*" in self.groups


def parse_listen(text: str) -> tuple[str, int]:
    """`HOST:PORT`, `:PORT` (all addresses) or `[v6]:PORT`."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(
            f"listen address {text!r} is not HOST:PORT: write it like 127.0.0.1:8080 or :8080"
        )
    host = host.strip("[]") or "0.0.0.0"
    return host, int(port)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def normalize_prefix(prefix: str) -> str:
    """ "fleet_lock", "/fleet_lock/" → "/fleet_lock"; "" or "/" → ""."""
    cleaned = "/".join(p for p in prefix.split("/") if p)
    if any(c in cleaned for c in "?#% "):
        raise ConfigError(f"path prefix {prefix!r} may not contain '?', '#', '%' or spaces")
    return "/" + cleaned if cleaned else ""


@dataclass(frozen=True)
class ServerSettings:
    backend_url: str = DEFAULT_BACKEND_URL
    host: str = "127.0.0.1"
    port: int = 8080
    prefix: str = ""
    unknown_groups: UnknownGroups = UnknownGroups.CREATE
    default_max: int = DEFAULT_MAX
    # Groups created at start with this many slots when they do not exist yet. A group that
    # exists keeps its live max (set-max wins over a restart).
    groups: Mapping[str, int] = field(default_factory=dict)
    tokens: tuple[Token, ...] = ()
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_client_ca: Path | None = None
    backend_options: Mapping[str, object] = field(default_factory=dict)
    # A node that has not reported for this long is shown as silent.
    silent_after: timedelta = DEFAULT_SILENT_AFTER
    dashboard: bool = True
    # The dashboard asks for the admin token too (HTTP Basic; docs/server.md "Auth").
    dashboard_auth: bool = False
    # Seconds to read one request, headers and body (a slow client is closed after it), and
    # the connections served at once (over it, requests get 503).
    read_timeout: float = DEFAULT_READ_TIMEOUT
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    # [[notify]] targets (server.notify.NotifyTarget) and how often the store is watched.
    notify: tuple[NotifyTarget, ...] = ()
    notify_interval: float = 2.0
    # [[blocker]] entries: checked in the background; while one blocks, its groups get no grant.
    blockers: tuple[Blocker, ...] = ()
    # The [rollout] table's stages and budget, set in the store at start when they differ
    # from the stored rollout's (None: the stored rollout, if any, is left alone); and how
    # often the server judges the rollout (stage ends, budgets: docs/rollout.md).
    rollout: tuple[tuple[Stage, ...], Budget | None] | None = None
    rollout_interval: float = 1.0

    def __post_init__(self) -> None:
        try:
            validate_max(self.default_max)
            for name, value in self.groups.items():
                validate_group(name)
                validate_max(value)
        except InvalidInput as exc:
            raise ConfigError(f"server settings: {exc.message}") from exc
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ConfigError("give both --tls-cert and --tls-key (or neither)")
        if self.tls_client_ca is not None and self.tls_cert is None:
            raise ConfigError("--tls-client-ca (mutual TLS) needs --tls-cert and --tls-key too")
        if self.silent_after <= timedelta(0):
            raise ConfigError("silent_after must be longer than 0 s, like 15m")
        if not 0 < self.read_timeout <= 3600:
            raise ConfigError("read_timeout must be from 0 to 3600 seconds, like 10s")
        if not 1 <= self.max_connections <= 1_000_000:
            raise ConfigError("max_connections must be a whole number from 1 to 1000000")
        if self.dashboard_auth and not self.auth_enabled:
            raise ConfigError(
                "dashboard_auth needs an admin token: give --admin-token-file "
                "(or [server] admin_token_files)"
            )
        check_token_overlap(self.tokens)
        object.__setattr__(self, "prefix", normalize_prefix(self.prefix))

    @property
    def auth_enabled(self) -> bool:
        return bool(self.tokens)

    @property
    def tls_enabled(self) -> bool:
        return self.tls_cert is not None

    @property
    def exposed_without_auth(self) -> bool:
        return not self.auth_enabled and not is_loopback(self.host)


def check_token_overlap(tokens: tuple[Token, ...]) -> None:
    """One secret in two roles is refused: the server cannot tell which one its holder is."""
    roles: dict[str, Token] = {}
    for t in tokens:
        seen = roles.setdefault(t.digest, t)
        if seen.admin != t.admin or (not t.admin and seen.name != t.name):
            what = "both an admin and a node token" if seen.admin != t.admin else "two nodes' token"
            raise ConfigError(
                f"one token is {what} ({seen.name} and {t.name}): give each node and each "
                "admin a secret of its own"
            )


def readable_by_others(path: Path) -> bool:
    """Whether group or others may read `path` (token files should be mode 0600)."""
    try:
        return bool(path.stat().st_mode & 0o044)
    except OSError:
        return False


def _secret_lines(path: Path) -> list[str]:
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(
            f"cannot read token file {path} ({exc.strerror}); check the path"
        ) from exc
    return [
        ln.strip() for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")
    ]


def admin_tokens_from_file(path: Path) -> list[Token]:
    """One secret per line (blank lines and `#` comments skipped)."""
    secrets = _secret_lines(path)
    if not secrets:
        raise ConfigError(f"token file {path} holds no token: put one secret per line")
    return [
        Token(name=f"admin:{path.name}:{i}", digest=digest(s), admin=True)
        for i, s in enumerate(secrets, 1)
    ]


def node_tokens_from_file(path: Path) -> list[Token]:
    """Lines `NAME:SECRET:GROUP[,GROUP...]` (`*` for every group)."""
    tokens = []
    for n, line in enumerate(_secret_lines(path), 1):
        parts = line.split(":")
        if len(parts) != 3 or not all(parts):
            raise ConfigError(
                f"{path} line {n} is not NAME:SECRET:GROUP[,GROUP...] "
                "(for example web-07:s3cret:web,web-canary)"
            )
        name, secret, groups = parts
        try:
            validate_node_id(name)
        except InvalidInput as exc:
            raise ConfigError(
                f"{path} line {n}: NAME must be the node's FleetLock id: {exc.message}"
            ) from exc
        names = frozenset(g.strip() for g in groups.split(",") if g.strip())
        for g in names - {"*"}:
            try:
                validate_group(g)
            except InvalidInput as exc:
                raise ConfigError(f"{path} line {n}: {exc.message}") from exc
        tokens.append(Token(name=name, digest=digest(secret), admin=False, groups=names))
    if not tokens:
        raise ConfigError(f"token file {path} holds no token: put NAME:SECRET:GROUPS per line")
    return tokens
