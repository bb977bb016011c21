"""Readers for the configuration operators already have: locksmith's update.conf
(/etc/coreos/update.conf, /etc/flatcar/update.conf) and Zincati's config.d fragments.

`import_files` turns them into the equivalent stagger TOML. Whatever cannot be mapped is kept
as a comment that says why, so nothing is dropped silently. Notes on meaning:
- `GROUP=` in update.conf is update_engine's update channel, not the reboot group
  (`LOCKSMITHD_GROUP=` is the reboot group).
- locksmith's window is host-local time ("Thu 04:00" or "04:00", a Go duration): a window with
  no time_zone in stagger uses the host's zone too.
- Zincati's periodic windows default to UTC, so they are written with an explicit zone.
"""

from __future__ import annotations

import json
import re
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from stagger.config.files import FileProblem, parse_toml, read_text
from stagger.config.loader import Loc, merge
from stagger.core.errors import ConfigError, InvalidInput
from stagger.core.semaphore import validate_group, validate_id
from stagger.core.strategy import DEFAULT_STRATEGY
from stagger.core.windows import DAY_NAMES, parse_day, parse_length, parse_start

LOCKSMITH_STRATEGIES = {
    "etcd-lock": ("lock", "locksmith's etcd-lock: a slot before each reboot"),
    "reboot": ("immediate", "locksmith's reboot: no slot"),
    "off": ("off", "locksmith's off: never reboot on its own"),
    "best-effort": (
        "best-effort",
        "locksmith's best-effort (removed in locksmith 0.6): stagger takes a slot when the "
        "configured backend answers at start, not when a local etcd.service runs",
    ),
}
ZINCATI_STRATEGIES = {
    "immediate": ("immediate", "Zincati's immediate: no slot, no window"),
    "fleet_lock": ("lock", "Zincati's fleet_lock: a slot before each reboot"),
    "periodic": (
        "immediate",
        "Zincati's periodic: reboot inside the windows without a slot (stagger can also take "
        "a slot inside windows: set 'lock')",
    ),
}
UPDATE_ENGINE_KEYS = {
    "SERVER",
    "PCR_POLICY_SERVER",
    "MACHINE_ALIAS",
    "DOWNLOAD_USER",
    "DOWNLOAD_PASSWORD",
}
LOCKSMITH_DEFAULT_ENDPOINTS = "http://127.0.0.1:2379,http://127.0.0.1:4001"
_SECRET = re.compile(r"PASSWORD", re.IGNORECASE)


@dataclass
class Imported:
    """What the imported files say, in stagger's terms: [agent] keys and windows, each with a
    comment on where it came from; and notes on everything that could not be mapped."""

    sources: list[str] = field(default_factory=list)
    agent: dict[str, tuple[str | list[str], str]] = field(default_factory=dict)
    updates: dict[str, tuple[str, str]] = field(default_factory=dict)
    windows: list[tuple[dict[str, Any], str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def set(self, key: str, value: str | list[str], comment: str) -> None:
        self.agent[key] = (value, comment)


# --- update.conf -------------------------------------------------------------------------------


def parse_env_file(text: str) -> tuple[dict[str, str], list[str]]:
    """systemd EnvironmentFile rules (how locksmithd gets update.conf): KEY=VALUE lines,
    # and ; comments, surrounding quotes removed. Returns the values and notes on bad lines."""
    values: dict[str, str] = {}
    notes: list[str] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        key, sep, value = line.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
            notes.append(f"line {number} ({line!r}) is not KEY=VALUE; systemd ignores it too")
            continue
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        values[key] = value
    return values, notes


def _window_from_locksmith(start: str, length: str, src: str, out: Imported) -> None:
    fields = start.split()
    try:
        if len(fields) == 1:
            days, at = ["daily"], fields[0]
        elif len(fields) == 2:
            parse_day(fields[0])
            days, at = [fields[0].lower()], fields[1]
        else:
            raise InvalidInput(f"window start {start!r} is not 'HH:MM' or 'Day HH:MM'")
        begin = parse_start(at)
        parse_length(length)
    except InvalidInput as exc:
        out.notes.append(f"reboot window {start!r} + {length!r} ({src}): not mapped: {exc}")
        return
    window = {"days": days, "start": f"{begin:%H:%M}", "length": length}
    out.windows.append(
        (
            window,
            f"from {src}: locksmith used the host's local time; with no time_zone, "
            "stagger uses the host's zone too (set time_zone to pin it)",
        )
    )


def _etcd_backend(endpoints: str, env: Mapping[str, str], src: str, out: Imported) -> None:
    hosts: list[str] = []
    schemes: set[str] = set()
    for item in (e.strip() for e in endpoints.split(",")):
        if not item:
            continue
        parts = urlsplit(item if "://" in item else f"http://{item}")
        if parts.scheme not in ("http", "https") or not parts.netloc:
            out.notes.append(f"LOCKSMITHD_ENDPOINT {item!r} ({src}) is not an http(s) URL")
            return
        schemes.add(parts.scheme)
        hosts.append(parts.netloc)
    if not hosts:
        return
    if len(schemes) > 1:
        out.notes.append(
            f"LOCKSMITHD_ENDPOINT={endpoints} ({src}) mixes http and https: stagger talks to "
            "all endpoints one way; not mapped"
        )
        return
    tls = {"ca": "LOCKSMITHD_ETCD_CAFILE", "cert": "LOCKSMITHD_ETCD_CERTFILE",
           "key": "LOCKSMITHD_ETCD_KEYFILE"}  # fmt: skip
    query = [f"{name}={quote(env[key], safe='/')}" for name, key in tls.items() if env.get(key)]
    if env.get("LOCKSMITHD_ETCD_USERNAME"):
        query.append(f"user={quote(env['LOCKSMITHD_ETCD_USERNAME'], safe='')}")
    scheme = "etcd+https" if schemes == {"https"} else "etcd"
    url = f"{scheme}://{','.join(hosts)}" + (f"?{'&'.join(query)}" if query else "")
    out.set(
        "backend",
        url,
        f"from LOCKSMITHD_ENDPOINT ({src}); locksmith spoke etcd's v2 API, stagger uses v3 and "
        "its own keys, so locks held through locksmith are not carried over",
    )
    if env.get("LOCKSMITHD_ETCD_PASSWORD"):
        out.notes.append(
            f"LOCKSMITHD_ETCD_PASSWORD=<redacted> ({src}): not copied into this file; add "
            "'&password=...' to the backend URL yourself if the etcd user needs one"
        )


def import_update_conf(env: Mapping[str, str], src: str, out: Imported) -> None:
    """Map locksmith's (and update_engine's) keys onto stagger's."""
    used: set[str] = set()

    def take(key: str) -> str:
        used.add(key)
        return env.get(key, "").strip()

    strategy = take("REBOOT_STRATEGY")
    if strategy in LOCKSMITH_STRATEGIES:
        value, why = LOCKSMITH_STRATEGIES[strategy]
        out.set("strategy", value, f"REBOOT_STRATEGY={strategy} ({src}): {why}")
    elif not strategy:
        out.set(
            "strategy",
            "immediate",
            f"REBOOT_STRATEGY unset ({src}): locksmith 0.6+ then reboots without a lock; "
            f"stagger's own default is '{DEFAULT_STRATEGY.value}'",
        )
    else:
        out.notes.append(
            f"REBOOT_STRATEGY={strategy} ({src}) is not a locksmith strategy (etcd-lock, reboot, "
            "off): not mapped"
        )
    start = take("LOCKSMITHD_REBOOT_WINDOW_START") or take("REBOOT_WINDOW_START")
    length = take("LOCKSMITHD_REBOOT_WINDOW_LENGTH") or take("REBOOT_WINDOW_LENGTH")
    used |= {"REBOOT_WINDOW_START", "REBOOT_WINDOW_LENGTH"}
    if start and length:
        _window_from_locksmith(start, length, src, out)
    elif start or length:
        out.notes.append(
            f"reboot window start {start!r} / length {length!r} ({src}): locksmith needs both "
            "(it refused to start with one); not mapped"
        )
    group = take("LOCKSMITHD_GROUP")
    if group:
        try:
            out.set("group", validate_group(group), f"from LOCKSMITHD_GROUP ({src})")
        except InvalidInput as exc:
            out.notes.append(f"LOCKSMITHD_GROUP={group} ({src}): not mapped: {exc}")
    endpoints = take("LOCKSMITHD_ENDPOINT")
    for key in ("CAFILE", "CERTFILE", "KEYFILE", "USERNAME", "PASSWORD"):
        take(f"LOCKSMITHD_ETCD_{key}")
    if endpoints:
        _etcd_backend(endpoints, env, src, out)
    elif strategy == "etcd-lock":
        _etcd_backend(LOCKSMITH_DEFAULT_ENDPOINTS.split(",")[0], env, f"{src}, default", out)
    _update_engine_detects(env, src, out)
    if "GROUP" in env:
        used.add("GROUP")
        out.notes.append(
            f"GROUP={env['GROUP']} ({src}) is update_engine's update channel, not the reboot "
            "group (that is LOCKSMITHD_GROUP); stagger does not choose channels: keep it"
        )
    for key in sorted(set(env) - used):
        value = "<redacted>" if _SECRET.search(key) else env[key]
        if key in UPDATE_ENGINE_KEYS or re.match(r"(COREOS|FLATCAR)_RELEASE_", key):
            why = "belongs to update_engine (downloads), not to reboots: keep it where it is"
        elif key == "LOCKSMITHD_DEBUG":
            why = "locksmith never read it"
        else:
            why = "not a key locksmith or update_engine reads"
        out.notes.append(f"{key}={value} ({src}): {why}; not mapped")


def _update_engine_detects(env: Mapping[str, str], src: str, out: Imported) -> None:
    """An update.conf means update_engine applies the updates: it says a reboot is needed over
    D-Bus, and nothing writes /run/reboot-required (stagger's default detector) there."""
    out.set(
        "detectors",
        ["update_engine"],
        f"{src} is update_engine's: on this host it applies updates and reports "
        "UPDATE_STATUS_UPDATED_NEED_REBOOT over D-Bus; nothing writes /run/reboot-required "
        "(the default 'file' detector), which would never see an update",
    )
    if env.get("SERVER", "").strip().lower() == "disabled":
        out.notes.append(
            f"SERVER=disabled ({src}): update_engine applies no updates here, and would refuse "
            "stagger's AttemptUpdate too; [updates] not written (updater 'none')"
        )
        return
    out.updates["updater"] = (
        "update_engine",
        f"{src}: update_engine applied the updates here; stagger asks it (AttemptUpdate) on "
        "its own schedule too, which never runs at the same time as update_engine's own",
    )


# --- Zincati -----------------------------------------------------------------------------------


def _leaf_keys(table: Mapping[str, Any], prefix: str = "") -> list[str]:
    keys: list[str] = []
    for key, value in table.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            keys.extend(_leaf_keys(value, f"{name}."))
        else:
            keys.append(name)
    return keys


def import_zincati(
    data: Mapping[str, Any], sources: Mapping[Loc, str], fallback: str, out: Imported
) -> None:
    """Map merged Zincati fragments onto stagger's keys; `sources` names the file of each key."""

    def at(*loc: str | int) -> str:
        for end in range(len(loc), 0, -1):
            if loc[:end] in sources:
                return sources[loc[:end]]
        return fallback

    rest: dict[str, Any] = json.loads(json.dumps(data, default=str))  # a deep copy to consume
    updates = rest.get("updates", {}) if isinstance(rest.get("updates"), dict) else {}
    given = str(updates.pop("strategy", "") or "")
    strategy = given or "immediate"
    enabled = updates.pop("enabled", True)
    if strategy in ZINCATI_STRATEGIES:
        value, why = ZINCATI_STRATEGIES[strategy]
        said = f"[updates] strategy = {given!r}" if given else "[updates] strategy unset"
        out.set("strategy", value, f"{said} ({at('updates', 'strategy')}): {why}")
    else:
        out.notes.append(
            f"[updates] strategy = {strategy!r} ({at('updates', 'strategy')}) is not Zincati's; "
            "not mapped"
        )
    if enabled is False:
        out.set(
            "strategy",
            "off",
            f"[updates] enabled = false ({at('updates', 'enabled')}): Zincati neither updated "
            "nor rebooted; stagger does not download updates, and 'off' stops its reboots",
        )
    periodic = updates.pop("periodic", {}) if isinstance(updates.get("periodic"), dict) else {}
    zone = str(periodic.pop("time_zone", "UTC"))
    windows = periodic.pop("window", [])
    for i, win in enumerate(windows if isinstance(windows, list) else []):
        src = at("updates", "periodic", "window", i)
        _window_from_zincati(win, i, zone, strategy, src, out)
    fleet_lock = updates.pop("fleet_lock", {})
    base_url = fleet_lock.pop("base_url", "") if isinstance(fleet_lock, dict) else ""
    if base_url:
        src = at("updates", "fleet_lock", "base_url")
        if strategy != "fleet_lock":
            out.notes.append(
                f"[updates.fleet_lock] base_url = {base_url!r} ({src}): Zincati ignored it "
                f"(strategy is {strategy!r}); not mapped"
            )
        elif "${" in base_url:
            out.notes.append(
                f"[updates.fleet_lock] base_url = {base_url!r} ({src}) uses Zincati's "
                "${...} templating; write the expanded URL as backend = 'fleetlock+URL'"
            )
        else:
            out.set(
                "backend",
                f"fleetlock+{base_url}",
                f"from [updates.fleet_lock] base_url ({src}): the same FleetLock server",
            )
    identity = rest.get("identity", {}) if isinstance(rest.get("identity"), dict) else {}
    src = at("identity", "group")
    group = identity.pop("group", None)
    if isinstance(group, str):
        try:
            out.set("group", validate_group(group), f"from [identity] group ({src})")
        except InvalidInput as exc:
            out.notes.append(f"[identity] group = {group!r} ({src}): not mapped: {exc}")
    src = at("identity", "node_uuid")
    node_uuid = identity.pop("node_uuid", None)
    if isinstance(node_uuid, str):
        try:
            out.set(
                "id",
                validate_id(node_uuid),
                f"from [identity] node_uuid ({src}): the same id on the FleetLock server",
            )
        except InvalidInput as exc:
            out.notes.append(f"[identity] node_uuid ({src}): not mapped: {exc}")
    out.set(
        "detectors",
        ["rpm-ostree"],
        f"Zincati's host ({fallback}): Zincati stages each update as an rpm-ostree deployment, "
        "which the 'rpm-ostree' detector sees; nothing writes /run/reboot-required (the "
        "default 'file' detector) there",
    )
    for key in _leaf_keys(rest):
        out.notes.append(
            f"{key} ({at(*key.split('.'))}): Zincati's, not about when to reboot "
            "(or not known); not mapped"
        )


def _window_from_zincati(
    win: Any, i: int, zone: str, strategy: str, src: str, out: Imported
) -> None:
    where = f"[[updates.periodic.window]] #{i + 1} ({src})"
    if not isinstance(win, dict):
        out.notes.append(f"{where} is not a table; not mapped")
        return
    days, start, minutes = win.get("days"), win.get("start_time"), win.get("length_minutes")
    try:
        if not isinstance(days, list) or not all(isinstance(d, str) for d in days):
            raise InvalidInput(f"days {days!r} is not a list of day names")
        names = [DAY_NAMES[min(parse_day(d))] for d in days]
        begin = parse_start(str(start))
        if not isinstance(minutes, int) or isinstance(minutes, bool):
            raise InvalidInput(f"length_minutes {minutes!r} is not a whole number")
        length = f"{minutes}m"
        parse_length(length)
    except InvalidInput as exc:
        out.notes.append(f"{where}: not mapped: {exc}")
        return
    if strategy != "periodic":
        out.notes.append(
            f"{where}: Zincati ignored it (strategy is {strategy!r}); not mapped: add it as "
            f"[[window]] if you want it"
        )
        return
    window: dict[str, Any] = {"days": names, "start": f"{begin:%H:%M}", "length": length}
    comment = f"from {where}"
    if zone == "localtime":
        comment += "; time_zone 'localtime': with no time_zone stagger uses the host's zone"
    else:
        window["time_zone"] = zone
        comment += "; Zincati's windows default to UTC, so the zone is written out"
    out.windows.append((window, comment))


# --- files → TOML ------------------------------------------------------------------------------


def import_files(paths: Sequence[Path]) -> Imported:
    """Read each file (update.conf, or a Zincati *.toml fragment) in the order given; later files
    win for the same key, as systemd and Zincati apply them."""
    out = Imported()
    env: dict[str, str] = {}
    zincati: dict[str, Any] = {}
    env_sources: list[str] = []
    zincati_sources: list[str] = []
    zincati_keys: dict[Loc, str] = {}
    for path in paths:
        try:
            text = read_text(path)
        except FileProblem as exc:
            raise ConfigError(f"{path} {exc.phrase}") from None
        except OSError as exc:
            raise ConfigError(
                f"cannot read {path}: {exc.strerror or exc}; give a readable file"
            ) from None
        out.sources.append(str(path))
        if path.suffix == ".toml":
            try:
                data = parse_toml(text)
            except FileProblem as exc:
                raise ConfigError(f"{path} {exc.phrase}; or leave it out") from None
            merge(zincati, data, str(path), zincati_keys)
            zincati_sources.append(str(path))
        else:
            values, notes = parse_env_file(text)
            out.notes.extend(f"{path}: {n}" for n in notes)
            env.update(values)
            env_sources.append(str(path))
    if env_sources:
        import_update_conf(env, ", ".join(env_sources), out)
    if zincati_sources:
        import_zincati(zincati, zincati_keys, ", ".join(zincati_sources), out)
    return out


def _toml_value(value: Any) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    text = json.dumps(str(value), ensure_ascii=False)
    return text.replace("\x7f", "\\u007f")


def _comment(text: str, first: str = "# ", more: str = "#   ") -> list[str]:
    return textwrap.wrap(
        " ".join(text.split()),
        width=100,
        initial_indent=first,
        subsequent_indent=more,
        break_on_hyphens=False,
        break_long_words=False,
    )


def render(imported: Imported) -> str:
    """The stagger TOML equivalent, with a comment on each value and on each thing not mapped."""
    lines = [
        "# stagger configuration imported from: " + ", ".join(imported.sources),
        "# Review it, then save it as /etc/stagger/config.d/50-imported.toml",
        "# and run `stagger config check`.",
    ]
    if imported.agent:
        lines += ["", "[agent]"]
        for key in ("id", "group", "strategy", "backend", "detectors"):
            if key in imported.agent:
                value, comment = imported.agent[key]
                lines += [*_comment(comment), f"{key} = {_toml_value(value)}"]
    if imported.updates:
        lines += ["", "[updates]"]
        for key, (value, comment) in imported.updates.items():
            lines += [*_comment(comment), f"{key} = {_toml_value(value)}"]
    for window, comment in imported.windows:
        lines += ["", *_comment(comment), "[[window]]"]
        lines += [f"{k} = {_toml_value(v)}" for k, v in window.items()]
    if imported.notes:
        lines += ["", "# Not mapped:"]
        for note in imported.notes:
            lines += _comment(note, "# - ", "#   ")
    return "\n".join(lines) + "\n"
