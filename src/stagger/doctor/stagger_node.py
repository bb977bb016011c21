"""stagger itself on this host: is its agent there and allowed to run, what it would do
(strategy and windows), and whether it applies updates.

This is information, not a foreign reboot source: stagger is the one agent the doctor wants to
reboot the host, so nothing here changes the exit code. `Host.stagger` does the reading (the
agent unit, the opt-out flag, and `read_stagger_config`: stagger's own loader on the root);
`stagger_node` is a pure function of what was read, so every sentence is tested without a
file tree.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from stagger.agent.runtime import DISABLED_FLAG
from stagger.config.loader import InvalidConfig, LoadedConfig, load_config
from stagger.core.errors import StaggerError
from stagger.core.secrets import mask_url
from stagger.core.strategy import UNCONFIGURED_NOTE, Strategy, unconfigured
from stagger.core.updates import off_reason
from stagger.doctor.advice import STAGGER_UNIT
from stagger.doctor.rootfs import RootFS
from stagger.doctor.units.status import UnitStatus

OPT_OUT_FLAG = str(DISABLED_FLAG)
CHECK_COMMAND = "stagger config check --root DIR"

UPDATES_OFF = (
    "updates are off on this node: security updates will not be applied by stagger — "
    "the host's own timer, if any, still runs"
)


@dataclass(frozen=True)
class StaggerConfigRead:
    """stagger's configuration as its agent would load it under the root: the result, or
    the problems that would stop the agent (a broken config is reported, never raised)."""

    loaded: LoadedConfig | None
    files: tuple[str, ...] = ()  # absolute inside the root
    problems: tuple[str, ...] = ()


def read_stagger_config(fs: RootFS) -> StaggerConfigRead:
    try:
        loaded = load_config(None, fs.root)
    except InvalidConfig as exc:
        problems = tuple(str(dataclasses.replace(p, file=fs.inside(p.file))) for p in exc.problems)
        return StaggerConfigRead(None, problems=problems)
    except StaggerError as exc:
        return StaggerConfigRead(None, problems=(exc.message,))
    except OSError as exc:  # an unreadable config.d directory: one sentence, not a traceback
        where = fs.inside(str(exc.filename)) if exc.filename else "stagger's config.d"
        return StaggerConfigRead(None, problems=(f"{where}: {exc.strerror or exc}",))
    return StaggerConfigRead(loaded, tuple(fs.inside(str(p)) for p in loaded.files))


# ---------------------------------------------------------------------------------------------
# Which FleetLock URLs are stagger's (Zincati pointed at one of them is not a reboot source)


@dataclass(frozen=True)
class FleetLockURL:
    url: str  # http(s)://host[:port]/path/, no credentials
    where: str  # what says it is stagger's: --fleetlock-url, [agent].backend, [server]

    def __str__(self) -> str:
        return f"{self.url} ({self.where})"


# A server listening on every address answers on loopback for sure; its other names are
# unknown to a file reader, so they are not guessed (an "unknown" beats a wrong "no").
_WILDCARD_HOSTS = ("", "0.0.0.0", "::", "[::]", "*")
_LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]")


def _backend_base(url: str) -> str | None:
    """`fleetlock+https://NAME:TOKEN@host:8443/p/?token=x` → `https://host:8443/p/`."""
    parts = urlsplit(url)
    if parts.scheme not in ("fleetlock+http", "fleetlock+https") or not parts.hostname:
        return None
    host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    try:
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return None
    path = parts.path.rstrip("/") + "/"
    return f"{parts.scheme.removeprefix('fleetlock+')}://{host}{port}{path}"


def config_fleetlock_urls(loaded: LoadedConfig) -> tuple[FleetLockURL, ...]:
    """The FleetLock base URLs stagger's own configuration names: the agent's backend when it
    is a FleetLock server, and this host's stagger server when `[server]` is configured (with
    and without its prefix: the server answers both)."""
    cfg = loaded.config
    out: list[FleetLockURL] = []
    base = _backend_base(cfg.agent.backend)
    if base is not None:
        out.append(FleetLockURL(base, "[agent].backend"))
    if any(loc[:1] == ("server",) for loc in loaded.sources):
        server = cfg.server
        host, _, port = server.listen.rpartition(":")
        hosts = _LOOPBACK_HOSTS if host in _WILDCARD_HOSTS else (host,)
        scheme = "https" if server.tls_cert else "http"
        prefixes = dict.fromkeys((server.prefix.strip("/"), ""))
        for h in hosts:
            for prefix in prefixes:
                path = f"/{prefix}/" if prefix else "/"
                out.append(FleetLockURL(f"{scheme}://{h}:{port}{path}", "[server] listen"))
    return tuple(out)


def same_fleetlock_url(a: str, b: str) -> bool:
    """One server, however the URL is written: scheme and host in any case, the default port
    spelt out or not, with or without the trailing slash."""

    def key(url: str) -> tuple[str, str, int | None, str] | None:
        parts = urlsplit(url.strip())
        try:
            port = parts.port or {"http": 80, "https": 443}.get(parts.scheme.lower())
        except ValueError:
            return None
        return (parts.scheme.lower(), parts.hostname or "", port, parts.path.rstrip("/"))

    ka, kb = key(a), key(b)
    return ka is not None and ka == kb


# ---------------------------------------------------------------------------------------------
# Will the configured detectors see this host's updates? (pure)

# How this kind of host says that an update waits for a reboot, and the detectors that hear it
# there ("command" runs the operator's own test, which may well hear it).
UPDATE_SIGNALS = {
    "update_engine": "update_engine reports UPDATE_STATUS_UPDATED_NEED_REBOOT over D-Bus",
    "rpm-ostree": "an update is staged as a new rpm-ostree deployment",
}
# Flag files that only Debian's and Ubuntu's packages write; nothing does on these hosts.
PACKAGE_FLAG_FILES = frozenset({"/run/reboot-required", "/var/run/reboot-required"})


def blind_detectors(
    detectors: Sequence[str], file_path: str, host_updates: str | None
) -> str | None:
    """Why the configured detectors will never see an update on a host whose updates are
    announced by `host_updates` (a key of UPDATE_SIGNALS), or None when they may."""
    if host_updates not in UPDATE_SIGNALS:
        return None
    if host_updates in detectors or "command" in detectors:
        return None
    if "file" in detectors and file_path not in PACKAGE_FLAG_FILES:
        return None  # a flag file of the operator's own: something here may write it
    return (
        f"on this host {UPDATE_SIGNALS[host_updates]} and nothing writes "
        f"/run/reboot-required, so the configured detectors ({', '.join(detectors)}) will "
        f"never see an update and stagger will never reboot this host: set [agent] "
        f'detectors = ["{host_updates}"]'
    )


# ---------------------------------------------------------------------------------------------
# What stagger would do here (pure)


@dataclass(frozen=True)
class StaggerNode:
    """The `stagger` object of the report."""

    unit: str  # the agent's unit name
    agent: str  # its is-enabled state and what starts it, in one line
    config_files: tuple[str, ...]
    config_problems: tuple[str, ...]
    strategy: str | None  # None when the configuration cannot be read
    group: str | None
    backend: str | None  # credentials redacted
    windows: tuple[str, ...]
    reboots: str  # strategy and windows, one line
    detectors: tuple[str, ...] | None  # None when the configuration cannot be read
    detectors_blind: str | None  # why the detectors will never see this host's updates
    updates_enabled: bool | None
    updater: str | None
    updates: str  # one line
    opt_out_flag: bool  # /etc/stagger/disabled exists
    will_reboot: bool  # stagger will reboot this host when a reboot is needed
    never_reboots: tuple[str, ...]  # why it will not, each said plainly
    fleetlock_urls: tuple[str, ...]  # FleetLock URLs counted as stagger's


def _agent_never(unit: UnitStatus) -> str | None:
    if not unit.found:
        return f"{unit.name} is not installed: stagger will never reboot this host"
    if unit.masked:
        return (
            f"{unit.name} is masked: stagger will never reboot this host "
            f"(`systemctl unmask {unit.name}` to hand reboots to stagger)"
        )
    if not unit.starts:
        return (
            f"{unit.name} is {unit.enabled.value} and nothing starts it: stagger will not "
            f"reboot this host (`systemctl enable --now {unit.name}`)"
        )
    return None


def _shown_backend(url: str) -> str:
    """The backend URL without its secrets (a NAME:TOKEN@ or a token= in the query)."""
    return mask_url(url)


def reboots_line(
    strategy: Strategy, group: str, backend: str, windows: Sequence[str], blackouts: int
) -> str:
    """The strategy and windows in one line."""
    # Fleet-wide blockers are checked by a stagger server only (docs/rollout.md, "Blockers").
    direct = (
        " (from the store itself: a stagger server's [[blocker]] entries do not apply)"
        if backend.startswith(("sqlite:", "etcd:"))
        else ""
    )
    match strategy:
        case Strategy.OFF:
            how = "strategy off: stagger never reboots this host; a needed reboot waits"
        case Strategy.IMMEDIATE:
            how = "strategy immediate: reboots when a reboot is needed, without a slot"
        case Strategy.LOCK:
            how = (
                f"strategy lock: takes a slot of group {group!r} at {backend} before each "
                f"reboot{direct}"
            )
        case _:
            how = (
                f"strategy best-effort: takes a slot of group {group!r} at {backend} when it "
                f"answered at start, else reboots without one{direct}"
            )
    when = f"windows {'; '.join(windows)}" if windows else "any time (no windows)"
    if blackouts:
        when += f", {blackouts} blackout(s)"
    return f"{how}; {when}"


def updates_line(loaded: LoadedConfig) -> str:
    u = loaded.config.updates
    if not u.enabled:
        return f"{UPDATES_OFF} (updater {u.updater})"
    off = off_reason(u.policy(loaded.host_zone))
    if off is not None:
        return off
    line = f"{u.updater} every {u.interval} ±{u.jitter:.0%}"
    if u.updater == "command" and u.command:
        line += f" ({' '.join(u.command)})"
    windows = [w.to_window(loaded.host_zone).describe() for w in u.window]
    line += f", in windows {'; '.join(windows)}" if windows else ", any time"
    return line + "; updates keep flowing while reboots wait or are paused"


def stagger_node(
    unit: UnitStatus,
    read: StaggerConfigRead,
    opt_out_flag: bool,
    fleetlock_urls: Sequence[FleetLockURL],
    host_updates: str | None = None,
) -> StaggerNode:
    """`host_updates`: how this host announces an update that needs a reboot (a key of
    UPDATE_SIGNALS), None when the doctor cannot tell."""
    never: list[str] = []
    if opt_out_flag:
        never.append(
            f"{OPT_OUT_FLAG} exists: stagger will never reboot this host (the packaged "
            f"{STAGGER_UNIT} does not start, and a running agent only reports the need); "
            f"remove it to hand reboots back to stagger"
        )
    agent_never = _agent_never(unit)
    if agent_never:
        never.append(agent_never)
    loaded = read.loaded
    if loaded is None:
        never.append(
            "stagger's configuration is invalid, so its agent will not start and stagger "
            f"will not reboot this host: {'; '.join(read.problems)} (check with "
            f"`{CHECK_COMMAND}`)"
        )
        return StaggerNode(
            unit=unit.name,
            agent=unit.summary(),
            config_files=read.files,
            config_problems=read.problems,
            strategy=None,
            group=None,
            backend=None,
            windows=(),
            reboots="unknown: the configuration cannot be read",
            detectors=None,
            detectors_blind=None,
            updates_enabled=None,
            updater=None,
            updates="unknown: the configuration cannot be read",
            opt_out_flag=opt_out_flag,
            will_reboot=False,
            never_reboots=tuple(never),
            fleetlock_urls=tuple(str(u) for u in fleetlock_urls),
        )
    cfg = loaded.config
    if cfg.agent.strategy is Strategy.OFF:
        never.append("[agent] strategy = off: stagger will never reboot this host")
    elif unconfigured(cfg.agent.strategy, cfg.agent.backend_configured):
        never.append(f"stagger will never reboot this host: {UNCONFIGURED_NOTE}")
    blind = blind_detectors(cfg.agent.detectors, str(cfg.detectors.file.path), host_updates)
    if blind is not None:
        never.append(blind)
    schedule = loaded.schedule()
    windows = tuple(w.describe() for w in schedule.windows)
    backend = _shown_backend(cfg.agent.backend)
    return StaggerNode(
        unit=unit.name,
        agent=unit.summary(),
        config_files=read.files,
        config_problems=(),
        strategy=cfg.agent.strategy.value,
        group=cfg.agent.group,
        backend=backend,
        windows=windows,
        reboots=reboots_line(
            cfg.agent.strategy, cfg.agent.group, backend, windows, len(schedule.blackouts)
        ),
        detectors=tuple(cfg.agent.detectors),
        detectors_blind=blind,
        updates_enabled=cfg.updates.enabled,
        updater=cfg.updates.updater,
        updates=updates_line(loaded),
        opt_out_flag=opt_out_flag,
        will_reboot=not never,
        never_reboots=tuple(never),
        fleetlock_urls=tuple(str(u) for u in fleetlock_urls),
    )
