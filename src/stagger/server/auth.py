"""Who is calling: admin tokens (everything) and node tokens (FleetLock calls and heartbeats,
in their groups only). Accepted as `Authorization: Bearer SECRET` or HTTP Basic with the
secret as the password (the user part is free), so Zincati's `https://node:SECRET@host/`
works. Secrets are compared by digest and never logged or echoed."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable
from dataclasses import dataclass

from stagger.api import ErrorKind
from stagger.server.settings import Token, digest

# The scope key under which the app finds a client certificate's names (server/guard.py).
CLIENT_CERT_NAMES = "stagger.client_cert_names"
NO_NAMES: frozenset[str] = frozenset()

CHALLENGE = b'Bearer realm="stagger", Basic realm="stagger", charset="UTF-8"'


@dataclass(frozen=True)
class Denial:
    kind: ErrorKind
    value: str


UNAUTHORIZED = Denial(
    ErrorKind.UNAUTHORIZED,
    "this server needs a token: send `Authorization: Bearer TOKEN`, or put it in the URL as "
    "https://NAME:TOKEN@host/",
)
BAD_TOKEN = Denial(
    ErrorKind.UNAUTHORIZED, "the token given is not known to this server; check it and retry"
)
ADMIN_ONLY = Denial(ErrorKind.FORBIDDEN, "this endpoint needs an admin token")


def acts_for(token: Token | None, cert_names: frozenset[str], node_id: str) -> Denial | None:
    """Whether a caller may act for `node_id` on a node-facing endpoint (FleetLock, heartbeat,
    report): an admin token for any id; a node token only for its own NAME; a client
    certificate only for a name it carries (CN or DNS SAN); a node token together with a
    certificate only when the certificate carries the token's NAME."""
    if token is not None and token.admin:
        return None
    if token is not None and cert_names and token.name not in cert_names:
        return Denial(
            ErrorKind.FORBIDDEN,
            f"the token is for {token.name!r} but the client certificate names "
            f"{_names(cert_names)}: both must name the same node",
        )
    if token is not None and token.name != node_id:
        return Denial(
            ErrorKind.FORBIDDEN,
            f"the token is for {token.name!r} but the request names {node_id!r}: a node "
            "token acts only for its own id",
        )
    if cert_names and node_id not in cert_names:
        return Denial(
            ErrorKind.FORBIDDEN,
            f"the client certificate names {_names(cert_names)} but the request names "
            f"{node_id!r}: a certificate acts only for the node it names",
        )
    return None


def node_denial(
    who: Token | None, cert_names: frozenset[str], group: str, node_id: str
) -> Denial | None:
    """Why `who` may not act for `node_id` in `group`, or None when it may."""
    if who is not None and not who.may_lock(group):
        return Denial(
            ErrorKind.FORBIDDEN, f"the token for {who.name!r} may not act in group {group!r}"
        )
    return acts_for(who, cert_names, node_id)


def _names(names: frozenset[str]) -> str:
    return " and ".join(repr(n) for n in sorted(names))


class Authenticator:
    """Resolves an Authorization header to a Token; `enabled` is False when no token is
    configured, and then every caller may do everything."""

    def __init__(self, tokens: Iterable[Token]) -> None:
        self._by_digest = {t.digest: t for t in tokens}
        self.enabled = bool(self._by_digest)

    def identify(self, header: bytes | None) -> Token | Denial:
        if not header:
            return UNAUTHORIZED
        scheme, _, cred = header.partition(b" ")
        scheme = scheme.lower()
        cred = cred.strip()
        if scheme == b"bearer":
            secret = cred
        elif scheme == b"basic":
            try:
                _, sep, secret = base64.b64decode(cred, validate=True).partition(b":")
            except (binascii.Error, ValueError):
                return BAD_TOKEN
            if not sep:
                return BAD_TOKEN
        else:
            return UNAUTHORIZED
        try:
            token = self._by_digest.get(digest(secret.decode()))
        except UnicodeDecodeError:
            return BAD_TOKEN
        return token if token is not None else BAD_TOKEN

    def caller(self, header: bytes | None) -> Token | Denial | None:
        """Who calls: None when auth is off."""
        return self.identify(header) if self.enabled else None

    def for_node(
        self, header: bytes | None, cert_names: frozenset[str], group: str, node_id: str
    ) -> Token | Denial | None:
        """For the node-facing endpoints (FleetLock calls, heartbeats, reports): who acts, or
        why not. None when auth is off (and no certificate stands in the way)."""
        who = self.caller(header)
        if isinstance(who, Denial):
            return who
        denied = node_denial(who, cert_names, group, node_id)
        return denied if denied is not None else who

    def admin(self, header: bytes | None) -> Token | Denial | None:
        """For the status and admin API: None when auth is off."""
        if not self.enabled:
            return None
        who = self.identify(header)
        if isinstance(who, Denial) or who.admin:
            return who
        return ADMIN_ONLY
