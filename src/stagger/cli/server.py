"""`stagger server`: the FleetLock server (for Zincati, Flatcar and stagger agents) with the
status/admin API, /metrics and probes. Settings come from flags, else the `[server]` table of
the configuration, else defaults."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from stagger.backends.factory import DEFAULT_BACKEND_URL
from stagger.cli.output import (
    BACKEND_ENV,
    EXIT_BACKEND,
    check_backend_flag,
    fail,
    reported_errors,
    resolve_backend_url,
)
from stagger.core.durations import parse_duration
from stagger.core.errors import BackendUnavailable, ConfigError, StoreUnusable
from stagger.core.secrets import mask_url
from stagger.server.settings import (
    ServerSettings,
    Token,
    UnknownGroups,
    admin_tokens_from_file,
    node_tokens_from_file,
    parse_listen,
    readable_by_others,
)

if TYPE_CHECKING:  # the configuration's model (pydantic) loads when a server starts
    from stagger.config.blocker_section import BlockerConfig
    from stagger.config.notify_section import NotifyConfig
    from stagger.config.rollout_section import RolloutConfig
    from stagger.config.server_section import ServerConfig

EXPOSED_WARNING = (
    "WARNING: stagger server listens on {where} WITHOUT AUTHENTICATION: anyone who can reach "
    "it can take and release reboot slots, unlock nodes and pause the fleet. Give "
    "--admin-token-file/--node-tokens-file (or [server] admin_token_files), or listen on "
    "127.0.0.1 behind a proxy that authenticates."
)


TOKEN_FILE_WARNING = (
    "WARNING: token file {path} can be read by other users: run `chmod 600 {path}` "
    "(and chown it to the server's user)"
)


def open_token_files(
    admin_files: list[Path], node_files: list[Path], config: ServerConfig
) -> list[Path]:
    """The token files in use that group or others may read."""
    used = [*(admin_files or config.admin_token_files), *(node_files or config.node_token_files)]
    return [p for p in used if readable_by_others(p)]


# A server keeps the semaphores itself: it takes a store, never another server's URL (which
# the other commands' --backend/--server accepts).
StoreOption = typer.Option(
    None,
    "--backend",
    metavar="URL",
    help=f"The store: sqlite:///PATH or etcd://HOST:PORT[,HOST:PORT...] (default: [server] "
    f"backend, else [agent].backend, else ${BACKEND_ENV}, else {DEFAULT_BACKEND_URL}).",
    show_default=False,
)


def check_store_url(url: str) -> str:
    """A server's store URL: a store, not a server (a server in front of a server is not a
    supported topology: several servers share one etcd instead, docs/server.md)."""
    scheme = url.partition("://")[0]
    if scheme.startswith("fleetlock") or scheme in ("http", "https"):
        raise ConfigError(
            f"stagger server needs a store of its own, not a server's URL ({mask_url(url)}): "
            "give --backend sqlite:///PATH or etcd://HOST:PORT; to run several servers, point "
            "them all at the same etcd"
        )
    return url


async def check_store(url: str, options: dict[str, object]) -> None:
    """At start: create the SQLite store if there is none, and refuse to serve a store that
    is damaged or not stagger's. A store that does not answer yet (etcd down) is only
    warned about: /readyz says not ready until it answers."""
    from stagger.backends.factory import open_backend

    store = open_backend(url, create=True, **options)
    try:
        await store.ping()
    except StoreUnusable:
        raise
    except BackendUnavailable as exc:
        logging.getLogger("stagger.server").warning(
            "the store does not answer yet (%s); /readyz says not ready until it does",
            exc.message,
        )
    finally:
        await store.close()


def load_server_config(
    config_file: Path | None, root: Path | None = None
) -> tuple[ServerConfig, str | None]:
    """The [server] table and [agent].backend, through the one config loader (fragments in
    config.d, or --config FILE)."""
    from stagger.config.loader import load_config

    config = load_config(config_file, root).config
    return config.server, config.agent.backend


def parse_group_max(values: list[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for v in values:
        name, sep, n = v.partition("=")
        if not sep or not n.strip().isdigit():
            raise ConfigError(f"--group {v!r} is not NAME=MAX: write it like --group web=2")
        out[name.strip()] = int(n)
    return out


def build_settings(
    config: ServerConfig,
    agent_backend: str | None,
    *,
    listen: str | None = None,
    backend: str | None = None,
    prefix: str | None = None,
    unknown_groups: str | None = None,
    default_max: int | None = None,
    groups: list[str] | None = None,
    admin_token_files: list[Path] | None = None,
    node_token_files: list[Path] | None = None,
    tls_cert: Path | None = None,
    tls_key: Path | None = None,
    tls_client_ca: Path | None = None,
    dashboard_auth: bool | None = None,
    read_timeout: str | None = None,
    max_connections: int | None = None,
    notify: Sequence[NotifyConfig] = (),
    blockers: Sequence[BlockerConfig] = (),
    rollout: RolloutConfig | None = None,
) -> ServerSettings:
    """Flags over the [server] table over defaults; `notify` is the [[notify]] array and
    `blockers` the [[blocker]] one."""
    from stagger.config.blocker_section import blockers_of
    from stagger.server.blockers import tls_verify
    from stagger.server.notify import targets_of

    host, port = parse_listen(listen or config.listen)
    backend = check_backend_flag(backend)
    backend_url = check_store_url(
        backend or config.backend or agent_backend or resolve_backend_url(None)
    )
    tokens: list[Token] = []
    for path in admin_token_files or config.admin_token_files:
        tokens += admin_tokens_from_file(path)
    for path in node_token_files or config.node_token_files:
        tokens += node_tokens_from_file(path)
    policy = unknown_groups or config.unknown_groups
    if policy not in {p.value for p in UnknownGroups}:
        raise ConfigError(f"--unknown-groups {policy!r} is not known: use create or refuse")
    cert = tls_cert or config.tls_cert
    key = tls_key or config.tls_key
    client_ca = tls_client_ca or config.tls_client_ca
    for what, pem in (("--tls-cert", cert), ("--tls-key", key), ("--tls-client-ca", client_ca)):
        if pem is not None and not pem.is_file():
            raise ConfigError(f"{what} {pem} is not a readable file: check the path")
    checked_blockers = blockers_of(list(blockers))
    for b in checked_blockers:
        tls_verify(b)  # a CA file that cannot be used stops the start, naming it
    return ServerSettings(
        backend_url=backend_url,
        host=host,
        port=port,
        prefix=prefix if prefix is not None else config.prefix,
        unknown_groups=UnknownGroups(policy),
        default_max=default_max if default_max is not None else config.default_max,
        groups={**config.groups, **parse_group_max(groups or [])},
        tokens=tuple(tokens),
        tls_cert=cert,
        tls_key=key,
        tls_client_ca=client_ca,
        silent_after=parse_duration(config.silent_after, what="silent_after"),
        dashboard=config.dashboard,
        dashboard_auth=dashboard_auth if dashboard_auth is not None else config.dashboard_auth,
        read_timeout=parse_duration(
            read_timeout or config.read_timeout, what="read_timeout"
        ).total_seconds(),
        max_connections=max_connections if max_connections is not None else config.max_connections,
        notify=targets_of(notify),
        blockers=checked_blockers,
        rollout=rollout.plan() if rollout is not None else None,
    )


def server(
    config: Path | None = typer.Option(
        None, "--config", metavar="F", help="A TOML file with a [server] table.", readable=False
    ),
    listen: str | None = typer.Option(
        None, "--listen", metavar="HOST:PORT", help="Where to listen (default 127.0.0.1:8080)."
    ),
    backend: str | None = StoreOption,
    # Other commands take --server URL; here it is refused with the reason (check_store_url).
    server_url: str | None = typer.Option(None, "--server", hidden=True),
    prefix: str | None = typer.Option(
        None, "--prefix", metavar="P", help="Path prefix of every endpoint, like /fleet_lock."
    ),
    unknown_groups: str | None = typer.Option(
        None,
        "--unknown-groups",
        metavar="create|refuse",
        help="A FleetLock call for a new group creates it (default) or is refused.",
    ),
    default_max: int | None = typer.Option(
        None, "--default-max", metavar="N", help="Slots of a group created on first use."
    ),
    group: list[str] = typer.Option(
        [], "--group", metavar="NAME=MAX", help="Create this group at start when missing."
    ),
    admin_token_file: list[Path] = typer.Option(
        [], "--admin-token-file", metavar="F", help="Admin tokens, one per line."
    ),
    node_tokens_file: list[Path] = typer.Option(
        [], "--node-tokens-file", metavar="F", help="Node tokens: NAME:TOKEN:GROUP[,GROUP...]."
    ),
    tls_cert: Path | None = typer.Option(None, "--tls-cert", metavar="F", help="PEM cert."),
    tls_key: Path | None = typer.Option(None, "--tls-key", metavar="F", help="PEM key."),
    tls_client_ca: Path | None = typer.Option(
        None, "--tls-client-ca", metavar="F", help="Require client certs signed by this CA."
    ),
    dashboard_auth: bool | None = typer.Option(
        None,
        "--dashboard-auth/--no-dashboard-auth",
        help="The dashboard asks for an admin token (browser password prompt). Default: off.",
    ),
    read_timeout: str | None = typer.Option(
        None, "--read-timeout", metavar="D", help="Time to read one request (default 10s)."
    ),
    max_connections: int | None = typer.Option(
        None, "--max-connections", metavar="N", help="Requests served at once (default 1000)."
    ),
    log_level: str = typer.Option(
        "info", "--log-level", metavar="LEVEL", help="debug, info, warning, error."
    ),
    log_secrets: bool = typer.Option(
        False,
        "--log-secrets",
        help="Let libraries log whole URLs (webhook paths are secrets): for debugging only.",
    ),
) -> None:
    """Serve FleetLock v1 and the status/admin API over a backend (SQLite or etcd)."""
    import uvicorn

    from stagger.backends.factory import open_backend
    from stagger.server.app import build_app, uvicorn_config

    with reported_errors():
        from stagger.config.loader import load_config

        full = load_config(config).config
        cfg, agent_backend = full.server, full.agent.backend
        settings = build_settings(
            cfg,
            agent_backend,
            listen=listen,
            backend=backend or server_url,
            prefix=prefix,
            unknown_groups=unknown_groups,
            default_max=default_max,
            groups=group,
            admin_token_files=admin_token_file,
            node_token_files=node_tokens_file,
            tls_cert=tls_cert,
            tls_key=tls_key,
            tls_client_ca=tls_client_ca,
            dashboard_auth=dashboard_auth,
            read_timeout=read_timeout,
            max_connections=max_connections,
            notify=full.notify,
            blockers=full.blocker,
            rollout=full.rollout,
        )
        check_tls_files(settings)
        options = dict(settings.backend_options)
        if settings.default_max != 1:
            options["default_max"] = settings.default_max
    from stagger.server import logs

    logs.setup(log_level, log_secrets=log_secrets)
    for path in open_token_files(admin_token_file, node_tokens_file, cfg):
        message = TOKEN_FILE_WARNING.format(path=path)
        sys.stderr.write(message + "\n")
        logging.getLogger("stagger.server").warning(message)
    try:
        asyncio.run(check_store(settings.backend_url, options))
    except StoreUnusable as exc:
        fail(f"the server did not start: {exc.message}", EXIT_BACKEND)
    with reported_errors():
        # created (if it was missing) by check_store: from now on a store that disappears
        # is an error the server reports, never a new empty one
        store = open_backend(settings.backend_url, create=False, **options)
    if settings.exposed_without_auth:
        where = f"{settings.host}:{settings.port}"
        sys.stderr.write("\n" + EXPOSED_WARNING.format(where=where) + "\n\n")
        logging.getLogger("stagger.server").warning(EXPOSED_WARNING.format(where=where))
    scheme = "https" if settings.tls_enabled else "http"
    logging.getLogger("stagger.server").info(
        "serving FleetLock at %s://%s:%d%s/ over %s (auth %s, unknown groups: %s)",
        scheme, settings.host, settings.port, settings.prefix, mask_url(store.url),
        "on" if settings.auth_enabled else "off", settings.unknown_groups.value,
    )  # fmt: skip
    app = build_app(settings, store)
    runner = uvicorn.Server(uvicorn_config(settings, app, log_level=log_level.lower()))
    runner.run()
    if not runner.started:
        sys.stderr.write("stagger: the server did not start (see the log above)\n")
        raise typer.Exit(3)


def check_tls_files(settings: ServerSettings) -> None:
    """Load the TLS files once before serving, so a file that is not PEM (or not the key of
    the certificate) is a sentence naming it, not ssl's "[SSL] PEM lib" after start-up."""
    if settings.tls_cert is None:
        return
    import ssl

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    what = f"--tls-cert {settings.tls_cert} with --tls-key {settings.tls_key}"
    try:
        context.load_cert_chain(settings.tls_cert, settings.tls_key)
        if settings.tls_client_ca is not None:
            what = f"--tls-client-ca {settings.tls_client_ca}"
            context.load_verify_locations(cafile=settings.tls_client_ca)
    except (OSError, ssl.SSLError) as exc:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError(
            f"cannot use {what}: {why}; give PEM files (the key must be the certificate's)"
        ) from None


def register(app: typer.Typer) -> None:
    app.command("server")(server)
