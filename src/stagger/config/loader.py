"""TOML fragments → one validated StaggerConfig, with the file each value came from.

Where fragments live (systemd's drop-in rules, as Zincati uses them):
- `/usr/lib/stagger/config.d/` (distribution), `/run/stagger/config.d/` (runtime),
  `/etc/stagger/config.d/` (administrator); only `*.toml`, dotfiles skipped.
- For the same filename, /etc beats /run beats /usr/lib; a symlink to /dev/null masks it.
- The winners are read in filename order. Tables merge key by key (a later file wins for each
  key); arrays of tables ([[window]], [[blackout]]) add up across files.
- `--config FILE` reads that one file instead; `--root DIR` prefixes every path stagger
  derives itself (the config.d directories, /etc/localtime), not a path given on the command
  line.

Each fragment is validated on its own first, so an error names the file it is in.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import UnionType
from typing import Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError

from stagger.config.agent_sections import BareNumber
from stagger.config.files import FileProblem, parse_toml, read_text
from stagger.config.model import StaggerConfig
from stagger.core.errors import ConfigError
from stagger.core.schedule import Schedule
from stagger.core.windows import parse_zone

CONFIG_DIRS = (
    Path("/usr/lib/stagger/config.d"),
    Path("/run/stagger/config.d"),
    Path("/etc/stagger/config.d"),
)
DEFAULT_SOURCE = "default"
Loc = tuple[str | int, ...]


def rooted(path: Path, root: Path | None) -> Path:
    """`path` under `root` (for tests, images and containers); `path` itself without a root."""
    if root is None:
        return path
    return root / path.relative_to(path.anchor)


# --- problems ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ConfigProblem:
    """One thing wrong: where (file, line when known, key) and what is allowed."""

    file: str
    message: str
    key: str = ""
    line: int | None = None

    def __str__(self) -> str:
        where = self.file + (f", line {self.line}" if self.line else "")
        key = f" {self.key}:" if self.key else ""
        return f"{where}:{key} {self.message}"


class InvalidConfig(ConfigError):
    """The configuration has one or more problems; each names its file and key."""

    def __init__(self, problems: list[ConfigProblem]) -> None:
        self.problems = problems
        if len(problems) == 1:
            text = str(problems[0])
        else:
            text = f"the configuration has {len(problems)} problems:\n" + "\n".join(
                f"  {p}" for p in problems
            )
        super().__init__(text)


# --- where each problem is ---------------------------------------------------------------------

_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?\s*(?:#.*)?$")
_KEY = re.compile(r"""^\s*((?:"[^"]*"|'[^']*'|[A-Za-z0-9_.\- ]+?))\s*=""")


def _split_key(text: str) -> tuple[str, ...]:
    parts = re.findall(r""""([^"]*)"|'([^']*)'|([^.\s]+)""", text)
    return tuple(a or b or c for a, b, c in parts)


def line_index(text: str) -> dict[Loc, int]:
    """The first line (1-based) that defines each key path: a cheap scan of headers and keys,
    good enough to point at a line; tomllib itself keeps no positions."""
    found: dict[Loc, int] = {}
    counts: dict[tuple[str, ...], int] = {}
    table: Loc = ()
    for number, line in enumerate(text.splitlines(), start=1):
        header = _HEADER.match(line)
        if header:
            path = _split_key(header.group(2))
            if header.group(1) == "[[":
                index = counts.get(path, 0)
                counts[path] = index + 1
                table = (*path, index)
            else:
                table = path
            found.setdefault(table, number)
            continue
        key = _KEY.match(line)
        if key:
            found.setdefault((*table, *_split_key(key.group(1))), number)
    return found


def _line_for(index: Mapping[Loc, int], loc: Loc) -> int | None:
    for end in range(len(loc), 0, -1):
        if loc[:end] in index:
            return index[loc[:end]]
    return None


def key_text(loc: Loc) -> str:
    """A key path as an operator reads it: `[agent] strategy`, `[[window]] #2 start`."""
    if not loc:
        return ""
    head, rest = loc[0], list(loc[1:])
    fields = StaggerConfig.model_fields
    if isinstance(head, str) and head in fields and _is_list(fields[head].annotation):
        label = f"[[{head}]]"
        first = rest[0] if rest else None
        if isinstance(first, int):
            label += f" #{first + 1}"
            rest.pop(0)
    elif isinstance(head, str) and head in fields and _model_of(fields[head].annotation):
        label = f"[{head}]"
    else:
        return ".".join(str(p) for p in loc)
    tail = ".".join(str(p) if isinstance(p, str) else f"#{p + 1}" for p in rest)
    return f"{label} {tail}".strip()


def _is_list(annotation: Any) -> bool:
    return get_origin(annotation) is list


def _model_of(annotation: Any) -> type[BaseModel] | None:
    """The model a field holds, through list[...], dict[str, ...] and X | None."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    origin = get_origin(annotation)
    if origin in (list, dict, Union, UnionType):
        for arg in get_args(annotation):
            model = _model_of(arg)
            if model is not None:
                return model
    return None


def _field(model: type[BaseModel], key: str) -> Any:
    """The field a TOML key names: its name, or its alias ([detectors.needs-restarting])."""
    info = model.model_fields.get(key)
    if info is None:
        info = next((f for f in model.model_fields.values() if f.alias == key), None)
    return info


def _keys(model: type[BaseModel]) -> list[str]:
    """The keys an operator writes: each field's alias when it has one."""
    return [f.alias or name for name, f in model.model_fields.items()]


def _model_at(loc: Loc) -> type[BaseModel] | None:
    model: type[BaseModel] | None = StaggerConfig
    for part in loc:
        if isinstance(part, int) or model is None:
            continue
        info = _field(model, part)
        if info is None:
            # a dict section ([detectors.NAME]): the name is a key, not a field
            continue
        model = _model_of(info.annotation)
    return model


def _describe(loc: Loc) -> str:
    parent = _model_at(loc[:-1]) if loc else None
    name = loc[-1] if loc else ""
    info = _field(parent, name) if parent is not None and isinstance(name, str) else None
    return (info.description or "") if info is not None else ""


def problems_from(exc: ValidationError, file: str, text: str | None) -> list[ConfigProblem]:
    index = line_index(text) if text is not None else {}
    out: list[ConfigProblem] = []
    for err in exc.errors():
        loc: Loc = tuple(p for p in err["loc"] if isinstance(p, str | int))
        kind = err["type"]
        if kind == "extra_forbidden":
            parent = _model_at(loc[:-1])
            allowed = ", ".join(_keys(parent)) if parent is not None else ""
            where = key_text(loc[:-1]) or "the top level"
            message = f"unknown key {loc[-1]!r} in {where}: allowed keys are {allowed}"
        elif kind == "missing":
            message = f"{loc[-1]!r} is required: {_describe(loc)}"
        elif kind == "value_error":
            ctx = err.get("ctx") or {}
            error = ctx.get("error")
            if isinstance(error, BareNumber) and loc and isinstance(loc[-1], str):
                message = error.example(loc[-1])
            else:
                message = str(error or err["msg"])
        else:
            given = err.get("input")
            allowed = _describe(loc)
            message = f"{type(given).__name__} {given!r} is not allowed here" + (
                f": use {allowed}" if allowed else f" ({err['msg']})"
            )
        out.append(ConfigProblem(file, message, key_text(loc), _line_for(index, loc)))
    return out


# --- reading -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Fragment:
    path: Path
    data: dict[str, Any]
    text: str


def _is_mask(path: Path) -> bool:
    return path.is_symlink() and os.readlink(path) in ("/dev/null", "/dev/null/")


def fragment_paths(root: Path | None = None) -> list[Path]:
    """The fragments to read, in merge order (masked and overridden names dropped)."""
    chosen: dict[str, Path | None] = {}
    for directory in CONFIG_DIRS:
        where = rooted(directory, root)
        if not where.is_dir():
            continue
        for entry in where.iterdir():
            if entry.name.startswith(".") or not entry.name.endswith(".toml"):
                continue
            if _is_mask(entry):
                chosen[entry.name] = None
            elif entry.is_file() or entry.is_symlink():
                chosen[entry.name] = entry
    return [p for name in sorted(chosen) if (p := chosen[name]) is not None]


def read_fragment(path: Path) -> Fragment:
    """Parse one TOML file; problems are InvalidConfig naming the file (and line)."""
    try:
        text = read_text(path)
        data = parse_toml(text)
    except FileProblem as exc:
        raise InvalidConfig([ConfigProblem(str(path), exc.phrase, "", exc.line)]) from None
    except FileNotFoundError:
        raise InvalidConfig(
            [
                ConfigProblem(
                    str(path),
                    "does not exist (or is a broken symlink): create it or "
                    "remove the reference to it",
                )
            ]
        ) from None
    except OSError as exc:
        raise InvalidConfig(
            [ConfigProblem(str(path), f"cannot be read: {exc.strerror or exc}")]
        ) from None
    return Fragment(path, data, text)


def validate_fragment(fragment: Fragment) -> StaggerConfig:
    try:
        return StaggerConfig.model_validate(fragment.data)
    except ValidationError as exc:
        raise InvalidConfig(problems_from(exc, str(fragment.path), fragment.text)) from None


def merge(
    base: dict[str, Any],
    extra: Mapping[str, Any],
    source: str,
    sources: dict[Loc, str],
    prefix: Loc = (),
) -> None:
    """Merge `extra` into `base`: tables key by key, arrays of tables appended, any other
    value replaced. Records in `sources` which file set each key."""
    for key, value in extra.items():
        loc = (*prefix, key)
        old = base.get(key)
        if isinstance(value, dict) and isinstance(old, dict):
            merge(old, value, source, sources, loc)
        elif (
            isinstance(value, list)
            and isinstance(old, list)
            and all(isinstance(v, dict) for v in (*value, *old))
        ):
            for item in value:
                sources[(*loc, len(old))] = source
                old.append(item)
        else:
            base[key] = _copy(value)
            if isinstance(value, list):
                for i, item in enumerate(value):
                    if isinstance(item, dict):
                        sources[(*loc, i)] = source
            if isinstance(value, dict):
                for sub in _leaves(value, loc):
                    sources[sub] = source
            else:
                sources[loc] = source


def _copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


def _leaves(table: Mapping[str, Any], prefix: Loc) -> Iterator[Loc]:
    for key, value in table.items():
        loc = (*prefix, key)
        yield loc
        if isinstance(value, dict):
            yield from _leaves(value, loc)


# --- the host's time zone ----------------------------------------------------------------------


def host_time_zone(root: Path | None = None) -> tuple[str, str]:
    """The host's IANA zone and where it was read: /etc/localtime's target, else /etc/timezone,
    else UTC. Windows that name no zone use it."""
    localtime = rooted(Path("/etc/localtime"), root)
    if localtime.is_symlink():
        target = os.readlink(localtime)
        if "zoneinfo/" in target:
            name = target.split("zoneinfo/", 1)[1]
            if _known(name):
                return name, f"{localtime} -> {target}"
    timezone = rooted(Path("/etc/timezone"), root)
    try:
        name = timezone.read_text().strip()
    except (OSError, UnicodeDecodeError):
        name = ""
    if name and _known(name):
        return name, str(timezone)
    return "UTC", f"UTC: neither {localtime} nor {timezone} names a zone"


def _known(name: str) -> bool:
    try:
        parse_zone(name)
    except ConfigError:
        return False
    except ValueError:
        return False
    return True


# --- the result --------------------------------------------------------------------------------


@dataclass(frozen=True)
class LoadedConfig:
    """The effective configuration, the files read (in order), and for each key path the file
    that set it (`default` when nothing did)."""

    config: StaggerConfig
    files: tuple[Path, ...]
    sources: Mapping[Loc, str] = field(default_factory=dict)
    host_zone: str = "UTC"
    host_zone_source: str = DEFAULT_SOURCE

    def source_of(self, loc: Loc) -> str:
        for end in range(len(loc), 0, -1):
            if loc[:end] in self.sources:
                return self.sources[loc[:end]]
        return DEFAULT_SOURCE

    def schedule(self) -> Schedule:
        return self.config.schedule(self.host_zone)

    def values(self) -> list[tuple[str, Any, str]]:
        """Every effective value as (key, value, source), for `config show`. A window without
        a zone shows the host's, with where that came from."""
        doc = self.config.model_dump(mode="json", by_alias=True)  # the keys as written
        rows: list[tuple[str, Any, str]] = []
        for name, value in doc.items():
            if isinstance(value, dict):
                for key, sub in value.items():
                    rows.append((f"{name}.{key}", sub, self.source_of((name, key))))
            elif isinstance(value, list):
                for i, item in enumerate(value):
                    source = self.source_of((name, i))
                    if isinstance(item, dict):
                        for key, sub in item.items():
                            src = source
                            if name == "window" and key == "time_zone" and sub is None:
                                sub, src = self.host_zone, f"host ({self.host_zone_source})"
                            rows.append((f"{name}[{i}].{key}", sub, src))
                    else:
                        rows.append((f"{name}[{i}]", item, source))
            else:
                rows.append((name, value, self.source_of((name,))))
        return rows


def load_config(config_file: Path | None = None, root: Path | None = None) -> LoadedConfig:
    """Read, merge and validate the configuration. `config_file` replaces the config.d search.
    Raises InvalidConfig listing every problem found (each naming its file)."""
    if config_file is not None:
        if not config_file.exists():
            raise InvalidConfig(
                [
                    ConfigProblem(
                        str(config_file),
                        "does not exist: give an existing file, or "
                        "leave out --config to read the config.d directories",
                    )
                ]
            )
        paths = [config_file]
    else:
        paths = fragment_paths(root)
    problems: list[ConfigProblem] = []
    merged: dict[str, Any] = {}
    sources: dict[Loc, str] = {}
    for path in paths:
        try:
            fragment = read_fragment(path)
            validate_fragment(fragment)
        except InvalidConfig as exc:
            problems.extend(exc.problems)
            continue
        merge(merged, fragment.data, str(path), sources)
    if problems:
        raise InvalidConfig(problems)
    try:
        config = StaggerConfig.model_validate(merged)
    except ValidationError as exc:
        raise InvalidConfig(problems_from(exc, "the merged configuration", None)) from None
    zone, zone_source = host_time_zone(root)
    return LoadedConfig(config, tuple(paths), dict(sources), zone, zone_source)
