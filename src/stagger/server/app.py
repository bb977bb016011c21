"""Wiring: one ASGI app. The two FleetLock endpoints are dispatched first, by a dict lookup
on the normalized path (the hot path never enters the router); everything else goes to a
Starlette app with the status/admin API, probes, /metrics and /openapi.json.

Path normalization, so every client's URL joining works:
- runs of slashes collapse (`//v1/pre-reboot`: Flatcar's client adds a slash to a base URL
  that already ends in one), and a trailing slash is ignored;
- the configured prefix is stripped when present; the same endpoints also answer without it,
  because Zincati drops the last segment of a `base_url` that lacks a trailing slash
  (`http://h/fleet_lock` + `v1/pre-reboot` → `http://h/v1/pre-reboot`).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException

from stagger.backends.protocol import Backend
from stagger.server.api import Api, http_exception
from stagger.server.context import ServerState
from stagger.server.dashboard import Dashboard
from stagger.server.fleetlock import (
    PRE_REBOOT,
    STEADY_STATE,
    FleetLockEndpoint,
    Receive,
    Scope,
    Send,
)
from stagger.server.settings import ServerSettings

_SLASHES = re.compile(r"/{2,}")


class StaggerServer:
    """The ASGI callable. `state` is reachable for tests and the CLI."""

    def __init__(self, settings: ServerSettings, backend: Backend | None = None) -> None:
        self.state = ServerState(settings, backend)
        self.prefix = settings.prefix
        self.fast = {
            "/v1/pre-reboot": FleetLockEndpoint(self.state, PRE_REBOOT),
            "/v1/steady-state": FleetLockEndpoint(self.state, STEADY_STATE),
        }

        @contextlib.asynccontextmanager
        async def lifespan(_: Starlette) -> AsyncIterator[None]:
            await self.state.start()
            try:
                yield
            finally:
                await self.state.stop()

        routes = Api(self.state).routes()
        if settings.dashboard:
            routes += Dashboard(self.state).routes()
        self.api = Starlette(
            routes=routes,
            exception_handlers={HTTPException: http_exception},
            lifespan=lifespan,
        )

    def normalize(self, path: str) -> str:
        if "//" in path:
            path = _SLASHES.sub("/", path)
        prefix = self.prefix
        if prefix and path.startswith(prefix) and path[len(prefix) : len(prefix) + 1] in ("/", ""):
            path = path[len(prefix) :] or "/"
        if len(path) > 1 and path[-1] == "/":
            path = path[:-1]
        return path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path = self.normalize(scope["path"])
            endpoint = self.fast.get(path)
            if endpoint is not None:
                await endpoint(scope, receive, send)
                return
            if path != scope["path"]:
                scope = dict(scope, path=path, raw_path=path.encode())
        await self.api(scope, receive, send)


def build_app(settings: ServerSettings, backend: Backend | None = None) -> StaggerServer:
    return StaggerServer(settings, backend)


def uvicorn_config(settings: ServerSettings, app: StaggerServer, **overrides: Any) -> Any:
    """The uvicorn configuration for `settings` (TLS and mutual TLS included). uvloop and
    httptools when installed (uvicorn[standard]); no access log by default: a fleet polling
    every five minutes per node fills disks, and /metrics counts every request anyway."""
    import ssl

    import uvicorn

    from stagger.server.guard import guarded_protocol

    options: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "lifespan": "on",
        "access_log": False,
        "server_header": False,
        "proxy_headers": False,
        "timeout_keep_alive": 30,
        "log_level": "info",
        # A deadline for reading each request and a header size cap (server/guard.py), and
        # the connections served at once: a slow client cannot hold the server.
        "http": guarded_protocol(settings.read_timeout),
        "limit_concurrency": settings.max_connections,
    }
    if settings.tls_cert is not None:
        options["ssl_certfile"] = str(settings.tls_cert)
        options["ssl_keyfile"] = str(settings.tls_key)
    if settings.tls_client_ca is not None:
        options["ssl_ca_certs"] = str(settings.tls_client_ca)
        options["ssl_cert_reqs"] = ssl.CERT_REQUIRED
    options.update(overrides)
    return uvicorn.Config(app, **options)
