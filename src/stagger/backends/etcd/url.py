"""etcd backend URLs and options: `etcd://[USER[:PASSWORD]@]HOST[:PORT][,...][?OPTION=...]`
and the keyword options that may accompany it, read into the client's settings and the
backend's own (docs/backends.md lists them for operators). No I/O: a bad URL or option is a
ConfigError before anything is dialled."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote

from stagger.backends.etcd.client import DEFAULT_PORT, DEFAULT_TIMEOUT, ClientSettings, Endpoint
from stagger.backends.protocol import Clock, option_seconds, utcnow
from stagger.core.errors import ConfigError
from stagger.core.secrets import mask_url
from stagger.core.semaphore import DEFAULT_MAX, HISTORY_LIMIT
from stagger.core.text import whole_number

DEFAULT_PREFIX = "stagger/v1/"

OPTIONS = (
    "prefix",
    "timeout",
    "ca_cert",
    "cert",
    "key",
    "username",
    "password",
    "tls",
    "default_max",
    "history_limit",
    "clock",
)
# Query-string spellings that mean the same option.
_ALIASES = {"ca": "ca_cert", "user": "username"}


@dataclass(frozen=True)
class EtcdOptions:
    """Everything an EtcdBackend is built from."""

    settings: ClientSettings
    url: str  # redacted: safe to show and log
    prefix: str
    default_max: int
    history_limit: int
    clock: Clock


def read_options(url: str, options: dict[str, Any]) -> EtcdOptions:
    """The URL's query options, overridden by keyword `options` (None values ignored)."""
    parsed = parse_etcd_url(url)
    given: dict[str, Any] = dict(parsed.options)
    given.update({_ALIASES.get(k, k): v for k, v in options.items() if v is not None})
    unknown = sorted(set(given) - set(OPTIONS))
    if unknown:
        raise ConfigError(
            f"the etcd backend does not take the option(s) {', '.join(unknown)}: "
            f"it takes {', '.join(OPTIONS[:-1])}"
        )
    ca, cert, key = (
        Path(str(given[n])).expanduser() if given.get(n) else None
        for n in ("ca_cert", "cert", "key")
    )
    tls = _flag(given.get("tls", parsed.tls), "tls") or any((ca, cert, key))
    settings = ClientSettings(
        endpoints=parsed.endpoints,
        timeout=option_seconds(given.get("timeout", DEFAULT_TIMEOUT), "etcd option timeout"),
        tls=tls,
        ca_cert=ca,
        cert=cert,
        key=key,
        username=given.get("username", parsed.username),
        password=given.get("password", parsed.password),
    )
    return EtcdOptions(
        settings,
        url=mask_url(url),
        prefix=str(given.get("prefix", DEFAULT_PREFIX)),
        default_max=_count(given.get("default_max", DEFAULT_MAX), "default_max", 0),
        history_limit=_count(given.get("history_limit", HISTORY_LIMIT), "history_limit", 1),
        clock=given.get("clock", utcnow),
    )


@dataclass(frozen=True)
class EtcdUrl:
    endpoints: tuple[Endpoint, ...]
    tls: bool
    options: dict[str, str]
    username: str | None = None
    password: str | None = None


def _endpoint(text: str, url: str) -> Endpoint:
    host, port = text, ""
    if text.startswith("["):  # [::1]:2379
        host, _, rest = text[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else rest
    elif text.count(":") == 1:
        host, port = text.split(":")
    number = whole_number(port, 1, 65535) if port else DEFAULT_PORT
    if not host or number is None:
        raise ConfigError(
            f"etcd endpoint {text!r} in {mask_url(url)!r} is not HOST or HOST:PORT "
            "(write etcd://10.0.0.1:2379,10.0.0.2:2379)"
        )
    return Endpoint(host, number)


def parse_etcd_url(url: str) -> EtcdUrl:
    """`etcd://[USER[:PASSWORD]@]HOST[:PORT][,HOST[:PORT]...][/][?OPTION=VALUE&...]`.
    `etcd+https://` turns TLS on; `etcd+http://` is the same as `etcd://`."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme not in ("etcd", "etcd+http", "etcd+https"):
        raise ConfigError(
            f"backend URL {mask_url(url)!r} is not an etcd URL: write etcd://HOST:PORT[,...]"
        )
    rest, _, query = rest.partition("?")
    netloc, _, path = rest.partition("/")
    if path.strip("/"):
        raise ConfigError(
            f"backend URL {mask_url(url)!r} has a path; etcd URLs take none: choose the key "
            "prefix with ?prefix=stagger/v1/"
        )
    username = password = None
    if "@" in netloc:
        userinfo, _, netloc = netloc.rpartition("@")
        user, has_pw, pw = userinfo.partition(":")
        username, password = unquote(user) or None, unquote(pw) if has_pw else None
    hosts = [h for h in netloc.split(",") if h.strip()]
    if not hosts:
        raise ConfigError(
            f"backend URL {mask_url(url)!r} names no etcd endpoint: write "
            "etcd://HOST:PORT[,HOST:PORT...]"
        )
    options: dict[str, str] = {}
    for name, value in parse_qsl(query, keep_blank_values=True):
        options[_ALIASES.get(name, name)] = value
    endpoints = tuple(_endpoint(h.strip(), url) for h in hosts)
    return EtcdUrl(endpoints, scheme == "etcd+https", options, username, password)


def _flag(value: Any, name: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise ConfigError(f"etcd option {name}={value!r} is not a yes/no value: write {name}=true")


def _count(value: Any, name: str, low: int) -> int:
    try:
        n = int(value)
    except (TypeError, ValueError):
        n = low - 1
    if isinstance(value, bool) or n < low:
        raise ConfigError(f"etcd option {name}={value!r} is not valid: give a whole number ≥ {low}")
    return n
