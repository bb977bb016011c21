"""What is never printed: the secrets a URL can carry. One masking function for every output,
log line and error message (docs/configuration.md, "Secrets in URLs").

Masked, for every scheme (the URL need not even parse):
- the password in `USER:PASSWORD@host` (the user name stays, so an operator sees who);
- a user part given alone (`TOKEN@host`): FleetLock and HTTP URLs carry a token there. etcd is
  the exception, since `etcd://NAME@host` is a user name and etcd takes no token that way;
- the value of every query parameter whose name looks secret (token, password, secret, key,
  auth, ...), judged after percent-decoding the name, so `%74oken=` is masked too.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import unquote_plus

MASK = "***"
_SECRET_NAME = re.compile(
    r"token|pass|pwd|secret|key|auth|cred|sig|session|cookie|bearer", re.IGNORECASE
)
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]*")


def is_secret_name(name: str) -> bool:
    """A query parameter or option name whose value must not be shown."""
    return _SECRET_NAME.search(unquote_plus(name)) is not None


def mask_url(url: str) -> str:
    """`url` with its secrets replaced by ***; anything else (host, port, path, the other
    parameters) kept, so the operator can still tell which URL it is."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return _mask_query_only(url)
    rest, hash_, fragment = rest.partition("#")
    rest, q, query = rest.partition("?")
    at = rest.rfind("@")
    # A user part is everything before the last "@" of what precedes the query, unless the
    # URL has no host at all (sqlite:///path@x.db): over-masking a strange URL is the safe side.
    if at > 0 and not rest.startswith("/"):
        user, hosts = rest[:at], rest[at + 1 :]
        name, colon, _ = user.partition(":")
        if colon:
            user = f"{name}:{MASK}"
        elif not scheme.lower().startswith("etcd"):
            user = MASK
        rest = f"{user}@{hosts}"
    query = "&".join(_mask_param(p) for p in query.split("&")) if query else query
    fragment = "&".join(_mask_param(p) for p in fragment.split("&")) if fragment else fragment
    return f"{scheme}{sep}{rest}{q}{query}{hash_}{fragment}"


def mask_urls_in(text: str) -> str:
    """`text` with every URL in it masked (error messages, config values, log lines)."""
    return _URL.sub(lambda m: mask_url(m.group(0)), text)


def _mask_query_only(text: str) -> str:
    base, q, query = text.partition("?")
    if not q:
        return text
    return base + q + "&".join(_mask_param(p) for p in query.split("&"))


def _mask_param(param: str) -> str:
    name, eq, _ = param.partition("=")
    return f"{name}={MASK}" if eq and is_secret_name(name) else param


def masked(value: Any) -> Any:
    """`value` (a JSON-like document: dicts, lists, strings) with every URL in every string
    masked, and the text under a secret-looking key (`headers = {Authorization = ...}`)
    replaced; for the documents `config show` and friends print. An absolute path under such
    a key (`tls_key = "/etc/..."`) stays: it says where a secret is, not what it is."""
    if isinstance(value, str):
        return mask_urls_in(value)
    if isinstance(value, dict):
        return {k: _masked_item(str(k), v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [masked(v) for v in value]
    return value


def _masked_item(key: str, value: Any) -> Any:
    if isinstance(value, str) and is_secret_name(key) and not value.startswith("/"):
        return MASK
    return masked(value)
