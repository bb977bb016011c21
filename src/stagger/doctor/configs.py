"""Parsers for other agents' configuration formats: text in, values out, no I/O.

- systemd EnvironmentFile= (how locksmithd receives update.conf);
- APT's configuration language (unattended-upgrades' switches in /etc/apt/apt.conf.d/*);
- INI (dnf-automatic, rebootmgr);
- crontab lines, and shell commands that reboot the host.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass

# ---------------------------------------------------------------------------------------------
# systemd EnvironmentFile=


def parse_env_file(text: str) -> dict[str, str]:
    """KEY=VALUE lines as systemd reads an EnvironmentFile=: `#`/`;` comments, optional
    `export`-less assignments, single or double quotes removed, a trailing backslash joins
    lines. Later assignments win."""
    out: dict[str, str] = {}
    pending = ""
    for raw in text.splitlines():
        line = pending + raw.strip()
        pending = ""
        if line.endswith("\\"):
            pending = line[:-1]
            continue
        if not line or line.startswith(("#", ";")) or "=" not in line:
            continue
        key, _, value = line.partition("=")
        key = key.strip()
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
            out[key] = value
    return out


def parse_environment_assignments(values: list[str]) -> dict[str, str]:
    """systemd `Environment=` values: space-separated, optionally quoted KEY=VALUE words."""
    out: dict[str, str] = {}
    for value in values:
        try:
            words = shlex.split(value)
        except ValueError:
            words = value.split()
        for word in words:
            key, sep, val = word.partition("=")
            if sep:
                out[key] = val
    return out


# ---------------------------------------------------------------------------------------------
# APT configuration (apt.conf(5))


@dataclass(frozen=True)
class AptValue:
    value: str
    source: str
    line: int


_APT_TOKEN = re.compile(r'"(?P<str>[^"]*)"|(?P<punct>[{};])|(?P<word>[^\s{};"]+)')


def _strip_apt_comments(text: str) -> str:
    """Remove `//` and `/* */` comments (outside quotes) and `#` lines other than the
    `#clear`/`#include` directives; keep line breaks so line numbers stay right."""
    out: list[str] = []
    i = 0
    in_str = False
    while i < len(text):
        c = text[i]
        if in_str:
            out.append(c)
            in_str = c != '"'
            i += 1
        elif c == '"':
            in_str = True
            out.append(c)
            i += 1
        elif text.startswith("//", i):
            j = text.find("\n", i)
            i = len(text) if j < 0 else j
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            chunk = text[i : len(text) if j < 0 else j + 2]
            out.append("\n" * chunk.count("\n"))
            i = len(text) if j < 0 else j + 2
        elif c == "#" and (i == 0 or text[i - 1] == "\n"):
            j = text.find("\n", i)
            line = text[i : len(text) if j < 0 else j]
            if line.startswith(("#clear", "#include")):
                out.append(line)
            i = len(text) if j < 0 else j
        else:
            out.append(c)
            i += 1
    return "".join(out)


def parse_apt_conf(text: str, source: str, into: dict[str, AptValue]) -> None:
    """Apply one apt.conf file to `into` (keys lower-cased: APT matches them without case).
    Handles `A::B "v";`, nested `A { B "v"; };`, and `#clear A::B;`. List items (a bare
    string in a scope) are not needed by the doctor and are skipped."""
    body = _strip_apt_comments(text)
    scope: list[str] = []
    key: str | None = None
    line_of = 1
    pos = 0
    for m in _APT_TOKEN.finditer(body):
        line_of += body.count("\n", pos, m.start())
        pos = m.start()
        if m.group("punct") == "{":
            if key is not None:
                scope.append(key)
            key = None
        elif m.group("punct") == "}":
            if scope:
                scope.pop()
            key = None
        elif m.group("punct") == ";":
            key = None
        elif m.group("word") is not None:
            word = m.group("word")
            if word == "#clear":
                key = "#clear"
            elif key == "#clear":
                prefix = "::".join([*scope, word]).lower()
                for k in [k for k in into if k == prefix or k.startswith(prefix + "::")]:
                    del into[k]
                key = None
            else:
                key = word
        elif m.group("str") is not None and key is not None and key != "#clear":
            full = "::".join([*scope, key]).lower()
            into[full] = AptValue(m.group("str"), source, line_of)
            key = None


_APT_TRUE = {"yes", "true", "with", "on", "enable", "1"}
_APT_FALSE = {"no", "false", "without", "off", "disable", "0"}


def apt_bool(value: str | None, default: bool) -> bool:
    """APT's StringToBool: unknown text falls back to the default; numbers are non-zero."""
    if value is None:
        return default
    v = value.strip().lower()
    if v in _APT_TRUE:
        return True
    if v in _APT_FALSE:
        return False
    if v.isdigit():
        return int(v) != 0
    return default


# ---------------------------------------------------------------------------------------------
# Commands that reboot, and crontabs

_REBOOT_WRAPPERS = frozenset({"sudo", "nohup", "exec", "env", "command", "nice", "ionice", "doas"})
_SPLIT_COMMANDS = re.compile(r"&&|\|\||[;&|()`\n]|\$\(")


def reboot_command(command: str) -> str | None:
    """The part of a shell command line that reboots the host (`reboot`, `shutdown -r`,
    `systemctl reboot`/`kexec`, `init 6`…), or None. Only simple commands in command
    position count, so `test -f /var/run/reboot-required` does not."""
    for simple in _SPLIT_COMMANDS.split(command):
        try:
            words = shlex.split(simple, comments=True)
        except ValueError:
            words = simple.split()
        while words and (
            words[0] in _REBOOT_WRAPPERS
            or "=" in words[0]
            or (words[0].startswith("-") and words[0] != "-")
        ):
            words = words[1:]
        if not words:
            continue
        prog = words[0].rsplit("/", 1)[-1]
        args = words[1:]
        text = " ".join(words)
        if prog == "reboot":
            return text
        if prog == "shutdown" and any(
            a == "--reboot" or (a.startswith("-") and not a.startswith("--") and "r" in a)
            for a in args
        ):
            return text
        if prog == "systemctl":
            plain = [a for a in args if not a.startswith("-")]
            if plain[:1] in (["reboot"], ["kexec"], ["soft-reboot"]):
                return text
            if plain[:1] in (["start"], ["isolate"]) and "reboot.target" in plain[1:]:
                return text
        if prog in ("init", "telinit") and args[:1] == ["6"]:
            return text
    return None


@dataclass(frozen=True)
class CronEntry:
    schedule: str
    user: str | None
    command: str
    source: str
    line: int


_CRON_ENV = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\s*=")


def parse_crontab(text: str, source: str, has_user_field: bool) -> list[CronEntry]:
    """Crontab lines (crontab(5)): five time fields or an @keyword, then (in /etc/crontab
    and /etc/cron.d) a user, then the command; `%` starts the command's stdin."""
    out: list[CronEntry] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#") or _CRON_ENV.match(line):
            continue
        fields = line.split()
        n_time = 1 if fields[0].startswith("@") else 5
        need = n_time + (1 if has_user_field else 0)
        if len(fields) <= need:
            continue
        schedule = " ".join(fields[:n_time])
        user = fields[n_time] if has_user_field else None
        rest = line
        for _ in range(need):  # drop the leading fields, keep the command's own spacing
            rest = rest.lstrip().split(None, 1)[1] if len(rest.split(None, 1)) > 1 else ""
        command = re.split(r"(?<!\\)%", rest, maxsplit=1)[0].strip()
        out.append(CronEntry(schedule, user, command, source, number))
    return out


def parse_anacrontab(text: str, source: str) -> list[CronEntry]:
    """anacrontab(5): `period delay job-id command`."""
    out: list[CronEntry] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#") or _CRON_ENV.match(line):
            continue
        fields = line.split(None, 3)
        if len(fields) == 4:
            out.append(
                CronEntry(f"every {fields[0]} day(s) (anacron)", None, fields[3], source, number)
            )
    return out
