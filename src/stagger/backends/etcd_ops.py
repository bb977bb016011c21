"""Building etcd v3 requests: the puts, deletes, ranges and guards every etcd store here
writes (etcd.py's semaphores and reports, etcd_roles.py's server roles)."""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any

from aetcd import rpc


def put(key: bytes, value: bytes, lease: int = 0) -> Any:
    return rpc.RequestOp(request_put=rpc.PutRequest(key=key, value=value, lease=lease))


def delete(key: bytes, range_end: bytes = b"") -> Any:
    return rpc.RequestOp(request_delete_range=rpc.DeleteRangeRequest(key=key, range_end=range_end))


def range_op(key: bytes, *, prefix: bool = False) -> Any:
    end = prefix_end(key) if prefix else b""
    return rpc.RequestOp(request_range=rpc.RangeRequest(key=key, range_end=end))


def unchanged(key: bytes, revision: int) -> Any:
    """The guard "`key` is as read at `revision`" (0: absent, and nobody created it since)."""
    if revision == 0:
        return rpc.Compare(
            key=key, target=rpc.Compare.CREATE, result=rpc.Compare.EQUAL, create_revision=0
        )
    return rpc.Compare(
        key=key, target=rpc.Compare.MOD, result=rpc.Compare.EQUAL, mod_revision=revision
    )


def prefix_end(prefix: bytes) -> bytes:
    """The first key after every key that starts with `prefix` (etcd's range_end)."""
    end = bytearray(prefix)
    while end:
        if end[-1] < 0xFF:
            end[-1] += 1
            return bytes(end)
        end.pop()
    return b"\0"


def ttl_seconds(ttl: timedelta | None) -> int | None:
    """An etcd lease's whole seconds for `ttl`, at least 1 (None: no lease)."""
    return None if ttl is None else max(1, math.ceil(ttl.total_seconds()))
