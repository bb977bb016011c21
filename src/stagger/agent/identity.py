"""This node's id: stable across reboots, derived from /etc/machine-id without revealing it.

The machine id is confidential (machine-id(5)): it is used only as the HMAC key, the way
systemd's `sd_id128_get_machine_app_specific()` does it, so what we print and store cannot be
turned back into it. Zincati does the same with its own app id; stagger uses its own, so a
node's stagger id differs from its Zincati id and from any other app's.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from pathlib import Path

from stagger.core.errors import ConfigError

# stagger's fixed application id (a random v4 UUID chosen once; never change it: every node's
# id in every fleet is derived from it).
APP_ID = bytes.fromhex("c761050c69454a75b2491d48b5a4aff4")

MACHINE_ID_FILE = Path("etc/machine-id")
_HEX128 = re.compile(r"[0-9a-fA-F]{32}")
_FIX = "pass --id ID, or run `systemd-machine-id-setup` (as root) to create it"


class NoMachineId(ConfigError):
    """/etc/machine-id is missing, empty, uninitialized or malformed."""


def machine_id_path(root: Path | str = "/") -> Path:
    return Path(root) / MACHINE_ID_FILE


def read_machine_id(root: Path | str = "/") -> bytes:
    """The 16 bytes of the machine id under `root`. Errors never quote the file's content."""
    path = machine_id_path(root)
    try:
        text = path.read_text(encoding="ascii", errors="replace").strip()
    except FileNotFoundError:
        raise NoMachineId(f"cannot derive this node's id: {path} does not exist; {_FIX}") from None
    except OSError as exc:
        raise NoMachineId(
            f"cannot derive this node's id: {path} cannot be read ({exc.strerror}); {_FIX}"
        ) from None
    if not text or text == "uninitialized":
        raise NoMachineId(f"cannot derive this node's id: {path} is empty; {_FIX}")
    if not _HEX128.fullmatch(text):
        raise NoMachineId(
            f"cannot derive this node's id: {path} does not hold 32 hexadecimal digits; {_FIX}"
        )
    raw = bytes.fromhex(text)
    if raw == bytes(16):
        raise NoMachineId(f"cannot derive this node's id: {path} is all zeros; {_FIX}")
    return raw


def app_specific_id(machine_id: bytes, app_id: bytes = APP_ID) -> str:
    """HMAC-SHA256 keyed with the machine id over the app id; its first 16 bytes, marked as a
    v4 UUID (version and variant bits), as 32 lowercase hex digits."""
    if len(machine_id) != 16 or len(app_id) != 16:
        raise ValueError("machine id and app id are 16 bytes each")
    digest = bytearray(hmac.new(machine_id, app_id, hashlib.sha256).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x40
    digest[8] = (digest[8] & 0x3F) | 0x80
    return digest.hex()


def node_id(root: Path | str = "/") -> str:
    """This node's stagger id (raises NoMachineId with what to do when there is none)."""
    return app_specific_id(read_machine_id(root))
