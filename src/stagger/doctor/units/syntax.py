"""The unit file syntax (systemd.syntax(7)) and how repeated keys read: pure, no I/O."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Assignment:
    section: str
    key: str
    value: str
    source: str  # file it came from (absolute inside the root)
    line: int


def parse_unit(text: str, source: str = "") -> tuple[Assignment, ...]:
    """Unit file syntax (systemd.syntax(7)): `[Section]` headers, `Key=Value` lines, comments
    starting with `#` or `;`, a trailing backslash joining the next line (replaced by a space;
    comment lines inside a continuation are skipped). Keys repeat; what repetition means is
    up to the reader (`UnitFile.values`)."""
    out: list[Assignment] = []
    section = ""
    pending = ""
    pending_line = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if pending:
            if line.startswith(("#", ";")):
                continue
            if line.endswith("\\"):
                pending += " " + line[:-1]
                continue
            line = pending + " " + line
            pending = ""
        elif not line or line.startswith(("#", ";")):
            continue
        elif line.endswith("\\"):
            pending = line[:-1]
            pending_line = number
            continue
        else:
            pending_line = number
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1].strip()
            continue
        key, sep, value = line.partition("=")
        if not sep or not section:
            continue  # systemd logs and ignores such lines
        out.append(Assignment(section, key.strip(), value.strip(), source, pending_line))
    if pending:  # a file ending in a backslash: systemd takes what it has
        key, sep, value = pending.partition("=")
        if sep and section:
            out.append(Assignment(section, key.strip(), value.strip(), source, pending_line))
    return tuple(out)


@dataclass(frozen=True)
class UnitFile:
    """A unit's settings: the fragment's assignments, then each drop-in's, in order."""

    assignments: tuple[Assignment, ...] = ()

    def values(self, section: str, key: str) -> list[str]:
        """Every value of a list setting; an empty assignment resets the list (systemd.unit(5))."""
        result: list[str] = []
        for a in self.assignments:
            if a.section == section and a.key == key:
                if a.value == "":
                    result = []
                else:
                    result.append(a.value)
        return result

    def last(self, section: str, key: str) -> str | None:
        """A single-valued setting: the last assignment wins; an empty one means the default."""
        values = self.values(section, key)
        return values[-1] if values else None

    def names(self, section: str, key: str) -> list[str]:
        """A list of unit names: each value split on whitespace."""
        return [n for v in self.values(section, key) for n in v.split()]

    def has(self, section: str) -> bool:
        return any(a.section == section for a in self.assignments)

    def where(self, section: str, key: str) -> Assignment | None:
        found = [a for a in self.assignments if a.section == section and a.key == key]
        return found[-1] if found else None
