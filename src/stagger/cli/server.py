"""`stagger server`: the FleetLock server (for Zincati, Flatcar and stagger agents) with the
status/admin API, /metrics and probes. Settings come from flags, else the `[server]` table of
the configuration, else defaults."""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from pathlib import Path

import typer

from stagger.cli.output import (
    BackendOption,
    check_backend_flag,
    reported_errors,
    resolve_backend_url,
)
from stagger.config.notify_section import NotifyConfig
from stagger.config.server_section import ServerConfig
from stagger.core.durations import parse_duration
from stagger.core.errors import ConfigError
from stagger.core.secrets import mask_url
from stagger.server.settings import (
    ServerSettings,
    Token,
    UnknownGroups,
    admin_tokens_from_file,
    node_tokens_from_file,
    parse_listen,
)

EXPOSED_WARNING = (
    "WARNING: stagger server listens on {where} WITHOUT AUTHENTICATION: anyone who can reach "
    "it can take and release reboot slots, unlock nodes and pause the fleet. Give "
    "--admin-token-file/--node-tokens-file (or [server] admin_token_files), or listen on "
    "127.0.0.1 behind a proxy that authenticates."
)


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
    notify: Sequence[NotifyConfig] = (),
) -> ServerSettings:
    """Flags over the [server] table over defaults; `notify` is the [[notify]] array."""
    from stagger.server.notify import targets_of

    host, port = parse_listen(listen or config.listen)
    backend = check_backend_flag(backend)
    backend_url = backend or config.backend or agent_backend or resolve_backend_url(None)
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
        notify=targets_of(notify),
    )


def server(
    config: Path | None = typer.Option(
        None, "--config", metavar="F", help="A TOML file with a [server] table.", readable=False
    ),
    listen: str | None = typer.Option(
        None, "--listen", metavar="HOST:PORT", help="Where to listen (default 127.0.0.1:8080)."
    ),
    backend: str | None = BackendOption,
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
    log_level: str = typer.Option("info", "--log-level", help="debug, info, warning, error."),
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
            backend=backend,
            prefix=prefix,
            unknown_groups=unknown_groups,
            default_max=default_max,
            groups=group,
            admin_token_files=admin_token_file,
            node_token_files=node_tokens_file,
            tls_cert=tls_cert,
            tls_key=tls_key,
            tls_client_ca=tls_client_ca,
            notify=full.notify,
        )
        check_tls_files(settings)
        options = dict(settings.backend_options)
        if settings.default_max != 1:
            options["default_max"] = settings.default_max
        store = open_backend(settings.backend_url, **options)
    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
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
