"""Text from operators and nodes, on its way to a terminal or into the store.

- `printable` escapes every control character (C0, DEL, C1, and the Unicode line and
  paragraph separators) the way Python writes it in a string literal (`\\x1b`, `\\r`, `\\n`), so
  a report reason or a pause reason can never move the cursor, clear the screen or set the
  terminal's title. Every human output (tables, lines, the dashboard's text) goes through it.
- `check_operator_text` refuses control characters in text an operator types for others to
  read (a pause reason, a note): refused at the door, with the rule in the message.
"""

from __future__ import annotations

import re

from stagger.core.errors import InvalidInput

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def has_control(text: str) -> bool:
    return _CONTROL.search(text) is not None


def printable(text: str) -> str:
    """`text` with each control character written as its escape (\\x1b, \\n, \\r, \\t...)."""
    if not has_control(text):
        return text
    return _CONTROL.sub(lambda m: repr(m.group(0))[1:-1], text)


def check_operator_text(text: str, what: str) -> str:
    """`text` when it has no control characters; else InvalidInput naming `what`."""
    match = _CONTROL.search(text)
    if match is not None:
        shown = repr(match.group(0))[1:-1]
        raise InvalidInput(
            f"{what} contains the control character {shown}: write plain text on one line "
            "(no escape sequences, tabs or line breaks)"
        )
    return text


def whole_number(text: str, low: int, high: int) -> int | None:
    """`text` as a whole number in [low, high], or None: ASCII digits only (no "²", no sign,
    no spaces) and never more digits than `high` has, so no text is too long to judge."""
    if not (text.isascii() and text.isdigit()) or len(text) > len(str(high)):
        return None
    value = int(text)
    return value if low <= value <= high else None
