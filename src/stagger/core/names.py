"""The rules for the names stagger keeps (a group, a server role) and for node ids: what a
URL path segment and a store key can carry. core/semaphore.py re-exports them for its callers.
"""

from __future__ import annotations

import re

from stagger.core.errors import InvalidInput

# No leading dot: "." and ".." are not names a URL path can carry (clients resolve them).
GROUP_RE = re.compile(r"^[a-zA-Z0-9-][a-zA-Z0-9.-]*$")
MAX_GROUP_LEN = 128
MAX_ID_LEN = 256
# The rule for an id that takes a slot: it must fit in one URL path segment and one key, so
# whoever can lock it can also release, touch, report and forget it. It admits hostnames and
# FQDNs, Zincati's and Flatcar's 32-hex-digit ids, UUIDs and `host:port`.
NODE_ID_RE = re.compile(r"^[A-Za-z0-9_:-][A-Za-z0-9_.:-]*$")
NODE_ID_RULE = (
    f"1 to {MAX_ID_LEN} characters from A-Z, a-z, 0-9, '.', '_', ':' and '-', not starting with '.'"
)
MAX_SLOTS = 10_000


def validate_name(name: str, what: str, example: str) -> str:
    """A name that is also a key path segment (a group, a server role): 1 to MAX_GROUP_LEN
    characters from a-z, A-Z, 0-9, '.' and '-'."""
    if not name or len(name) > MAX_GROUP_LEN or not GROUP_RE.fullmatch(name):
        raise InvalidInput(
            f"{what} {name!r} is not valid: use 1 to {MAX_GROUP_LEN} characters from "
            f"a-z, A-Z, 0-9, '.' and '-', not starting with '.' (for example {example})"
        )
    return name


def validate_group(group: str) -> str:
    return validate_name(group, "group", "'web' or 'db.eu-1'")


def validate_id(node_id: str) -> str:
    """Any id a store may already hold (printable text): what release and reads accept, so a
    hold taken before the node id rule existed can still be given back."""
    if not node_id or len(node_id) > MAX_ID_LEN or not node_id.isprintable():
        raise InvalidInput(
            f"node id {node_id!r} is not valid: use 1 to {MAX_ID_LEN} printable characters "
            "(no control characters)"
        )
    return node_id


def validate_node_id(node_id: str) -> str:
    """The rule for an id that takes a slot or sends a report (NODE_ID_RE)."""
    if not node_id or len(node_id) > MAX_ID_LEN or not NODE_ID_RE.fullmatch(node_id):
        raise InvalidInput(f"node id {node_id!r} is not valid: use {NODE_ID_RULE}")
    return node_id


def validate_max(value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_SLOTS:
        raise InvalidInput(
            f"max {value!r} is not valid: give a whole number from 0 to {MAX_SLOTS} "
            "(0 stops every new reboot in the group)"
        )
    return value
