"""Server roles (base.Roles) on etcd: a job one of several servers does at a time (sending
notifications), decided by core/roles.py.

Rules of this file:
- It owns the roles' keys and the transactions that claim and release them; who may take a
  role is core/roles.py's decision, and the requests are built with client.py's builders.

Keys, under the store's prefix:
- `roles/{name}`: {"owner", "mark"}, with no lease, so the mark outlives its holder;
- `role-holders/{name}`: the holder's id, on an etcd lease of the role's ttl. The role is live
  while that key exists, so etcd's clock ends a dead holder's role.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from aetcd import rpc

from stagger.backends.etcd.client import (
    EtcdClient,
    OutcomeUnknown,
    put,
    range_op,
    ttl_seconds,
    unchanged,
)
from stagger.backends.retry import retry_cas
from stagger.core import roles
from stagger.core.errors import BackendUnavailable
from stagger.core.semaphore import validate_id


class EtcdRoles:
    """The roles of one etcd store: its client, key builder and clock are the backend's."""

    def __init__(
        self, client: EtcdClient, key: Callable[..., bytes], clock: Callable[[], datetime]
    ) -> None:
        self._client = client
        self._key = key
        self.clock = clock

    def role_key(self, name: str) -> bytes:
        return self._key("roles", name)

    def role_holder_key(self, name: str) -> bytes:
        return self._key("role-holders", name)

    async def _read_role(self, name: str) -> tuple[Any | None, Any | None]:
        """The role's value and holder keys (None when absent), as one read saw them."""
        resp = await self._client.read_txn(
            rpc.TxnRequest(
                success=[range_op(self.role_key(name)), range_op(self.role_holder_key(name))]
            )
        )
        value, holder = (r.response_range.kvs for r in resp.responses)
        return (value[0] if value else None, holder[0] if holder else None)

    def _role_of(
        self, name: str, value: Any | None, holder: Any | None, now: datetime, ttl: timedelta
    ) -> roles.Role | None:
        """The stored role for core.roles.claim: live (until now + ttl, a stand-in: etcd's
        lease decides) while its holder key exists, else expired at now."""
        owner, mark = "", ""
        if value is not None:
            try:
                doc = json.loads(value.value)
                owner, mark = str(doc["owner"]), str(doc.get("mark", ""))
            except (ValueError, KeyError, TypeError) as exc:
                raise BackendUnavailable(
                    f"the role at etcd key {self.role_key(name).decode()!r} cannot be read "
                    f"({exc}); remove it (`etcdctl del {self.role_key(name).decode()}`) and the "
                    "servers take it again"
                ) from exc
        if holder is not None:
            return roles.Role(name, holder.value.decode(), now + ttl, mark)
        if value is None:
            return None
        return roles.Role(name, owner, now, mark)

    async def claim_role(
        self, name: str, owner: str, ttl: timedelta, mark: str | None = None
    ) -> tuple[roles.Role, bool]:
        """Keep a held role by refreshing its lease (writing the value only when the mark
        changed); take a free one with a new lease, in one transaction guarded by both keys
        as read. A lost guard or an unknown outcome reads again: our own write, if it took
        effect, then shows as ours."""
        roles.validate_role(name)
        validate_id(owner)
        roles.validate_ttl(ttl)
        seconds = ttl_seconds(ttl) or 1
        unknown = 0

        async def attempt() -> tuple[bool, tuple[roles.Role, bool] | None]:
            nonlocal unknown
            now = self.clock()
            value, holder = await self._read_role(name)
            current = self._role_of(name, value, holder, now, ttl)
            role, mine = roles.claim(current, name, owner, now, ttl, mark)
            if not mine:
                return True, (role, False)
            stored = json.dumps({"owner": owner, "mark": role.mark}, separators=(",", ":"))
            ops = [put(self.role_key(name), stored.encode())]
            value_revision = value.mod_revision if value is not None else 0
            granted = 0
            if holder is not None:  # ours and live: refresh its lease
                if await self._client.lease_keepalive(int(holder.lease)) <= 0:
                    return False, None  # etcd ended it just now: take it afresh
                if current is not None and role.mark == current.mark:
                    return True, (role, True)
                compare = [unchanged(self.role_holder_key(name), holder.mod_revision)]
            else:
                granted = await self._client.lease_grant(seconds)
                ops.append(put(self.role_holder_key(name), owner.encode(), granted))
                compare = [unchanged(self.role_holder_key(name), 0)]
            compare.append(unchanged(self.role_key(name), value_revision))
            try:
                resp = await self._client.txn(rpc.TxnRequest(compare=compare, success=ops))
            except OutcomeUnknown as exc:
                unknown += 1
                if unknown >= 3:
                    raise BackendUnavailable(
                        f"etcd did not confirm the claim of role {name!r} after 3 tries ({exc})"
                        "; it is claimed again at the next look"
                    ) from exc
                return False, None
            if not resp.succeeded:
                if granted:
                    await self._client.lease_revoke(granted)
                return False, None
            return True, (role, True)

        found = await retry_cas(attempt, what=f"claim role {name}")
        assert found is not None  # retry_cas returns only a successful attempt's value
        return found

    async def release_role(self, name: str, owner: str) -> None:
        """Revoke the holder's lease (etcd deletes the holder key; the mark stays). Best
        effort: a role not released ends at its ttl anyway."""
        roles.validate_role(name)
        validate_id(owner)
        _, holder = await self._read_role(name)
        if holder is not None and holder.value.decode() == owner:
            await self._client.lease_revoke(int(holder.lease))
