from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from stagger.backends.base import Backend
from stagger.backends.factory import open_backend

pytest_plugins = ["etcd_support", "dbus_support"]


def backend_url(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty store of `kind`: a temp SQLite file, or a unique prefix on the
    session's real etcd."""
    if kind == "sqlite":
        return f"sqlite:///{tmp_path}/stagger.db"
    etcd = request.getfixturevalue("etcd_server")
    return f"{etcd.url}?prefix=test-{uuid.uuid4().hex[:12]}/"


@pytest.fixture(params=["sqlite", "etcd"])
def any_backend_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return backend_url(request.param, request, tmp_path)


@pytest.fixture
async def backend(any_backend_url: str) -> AsyncIterator[Backend]:
    """The contract suite's subject: every backend, each real."""
    b = open_backend(any_backend_url)
    yield b
    await b.close()
