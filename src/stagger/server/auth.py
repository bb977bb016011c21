"""Who is calling: admin tokens (everything) and node tokens (FleetLock calls and heartbeats,
in their groups only). Accepted as `Authorization: Bearer SECRET` or HTTP Basic with the
secret as the password (the user part is free), so Zincati's `https://node:SECRET@host/`
works. Secrets are compared by digest and never logged or echoed."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable
from dataclasses import dataclass

from stagger.backends.wire import ErrorKind
from stagger.server.settings import Token, digest

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

    def may_lock(self, header: bytes | None, group: str) -> Token | Denial | None:
        """For FleetLock calls and heartbeats: None when auth is off."""
        if not self.enabled:
            return None
        who = self.identify(header)
        if isinstance(who, Denial) or who.may_lock(group):
            return who
        return Denial(ErrorKind.FORBIDDEN, f"this token may not lock or release in group {group!r}")

    def admin(self, header: bytes | None) -> Token | Denial | None:
        """For the status and admin API: None when auth is off."""
        if not self.enabled:
            return None
        who = self.identify(header)
        if isinstance(who, Denial) or who.admin:
            return who
        return ADMIN_ONLY
