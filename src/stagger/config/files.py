"""Reading the files an operator points stagger at (config fragments, update.conf, Zincati
fragments, simulator scenarios) without letting one of them take the process down: at most
MAX_FILE_BYTES are read (a config that is a symlink to /dev/zero is an error, not a
MemoryError), and TOML nested too deeply for the parser is an error, not a RecursionError."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

MAX_FILE_BYTES = 1024 * 1024
MAX_FILE_TEXT = "1 MiB"


class FileProblem(Exception):
    """What is wrong with a file, as a phrase that follows its path ("is not UTF-8 text"),
    and the line when known."""

    def __init__(self, phrase: str, line: int | None = None) -> None:
        super().__init__(phrase)
        self.phrase = phrase
        self.line = line


def read_text(path: Path) -> str:
    """The file's text (UTF-8), at most MAX_FILE_BYTES. Raises FileNotFoundError when it is
    missing, other OSErrors as they come, and FileProblem when it is too large or not UTF-8."""
    with path.open("rb") as f:
        raw = f.read(MAX_FILE_BYTES + 1)
    if len(raw) > MAX_FILE_BYTES:
        raise FileProblem(
            f"is larger than {MAX_FILE_TEXT}, far more than any configuration needs: "
            "check that the path names the right file"
        )
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FileProblem(f"is not UTF-8 text ({exc.reason} at byte {exc.start})") from None


def parse_toml(text: str) -> dict[str, Any]:
    """`text` as TOML; FileProblem (with the line when the parser says it) when it is not."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        m = re.search(r"\(at line (\d+), column \d+\)", str(exc))
        line = int(m.group(1)) if m else None
        raise FileProblem(f"is not valid TOML: {exc}; fix the syntax", line) from None
    except RecursionError:
        raise FileProblem(
            "nests arrays or tables too deeply to be read: no configuration needs more than a "
            "few levels; fix the file"
        ) from None
