"""Backend URLs → Backend objects. Implementations are imported only when used, so a daemon
pays neither grpc's nor httpx's import cost for a backend it does not use."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from stagger.core.errors import ConfigError
from stagger.core.secrets import mask_url

if TYPE_CHECKING:  # the Protocol's module imports core's whole model: a CLI's --help need not
    from stagger.backends.protocol import Backend

DEFAULT_BACKEND_URL = "sqlite:///var/lib/stagger/stagger.db"

SCHEMES = (
    "sqlite:///PATH, etcd://HOST:PORT[,HOST:PORT...], fleetlock+http(s)://HOST[:PORT]/[PREFIX]"
)


def open_backend(url: str, *, create: bool = True, **options: Any) -> Backend:
    """Open the backend a URL names. Options are backend-specific (etcd TLS, auth...).

    `create`: a SQLite store may be created where no file is (never over an existing one).
    A command that only reads, or whose change means nothing in an empty store, passes False,
    so a mistyped path is reported instead of becoming a new, empty fleet. etcd and a server
    have nothing to create."""
    scheme, sep, _ = url.partition("://")
    if not sep:
        raise ConfigError(f"backend URL {mask_url(url)!r} has no scheme: use one of {SCHEMES}")
    if scheme == "sqlite":
        from stagger.backends.sqlite import SqliteBackend

        return SqliteBackend.from_url(url, create=create, **options)
    if scheme in ("etcd", "etcd+http", "etcd+https"):
        from stagger.backends.etcd import EtcdBackend

        return EtcdBackend.from_url(url, **options)
    if scheme in ("fleetlock+http", "fleetlock+https"):
        from stagger.backends.fleetlock import FleetLockBackend

        return FleetLockBackend.from_url(url, **options)
    raise ConfigError(f"backend URL scheme {scheme!r} is not known: use one of {SCHEMES}")
