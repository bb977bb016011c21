"""Schemathesis against /openapi.json of a real server with auth on: generated requests for
every operation, sent with an admin token, every check schemathesis has (`--checks all`):
responses conform to the document, schema-valid requests are accepted, schema-violating ones
refused, auth is not ignored, and never a server error.

Driven through schemathesis's Python API with hypothesis directly (its pytest plugin does not
load under pytest 9)."""

from __future__ import annotations

import unicodedata
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import positive_data_acceptance
from schemathesis.config import SchemathesisConfig

from server_support import RunningServer, running
from stagger.core.errors import InvalidInput
from stagger.core.rollout import plan_from_table
from stagger.core.rollout_gate import parse_budget
from stagger.core.times import EARLIEST, LATEST
from stagger.server.settings import ServerSettings, admin_tokens_from_file, node_tokens_from_file

ADMIN = "openapi-admin-secret"

# A valid FleetLock request may still be denied (423: the group is full or paused), and an
# admin act may find a node holding a slot (409): answers the document lists, not refusals.
CONFIG = """
[checks.positive_data_acceptance]
expected-statuses = ["2xx", "401", "403", "404", "409", "423"]
"""
PAUSES = {"POST /v1/pause", "POST /v1/groups/{group}/pause", "POST /v1/nodes/{id}/pause"}
# Operations whose body carries times: stagger takes times within core.times' range only
# (1970 up to 3000, UTC), which the document cannot state for a date-time; and a rollout's
# rules (a group in one stage only, durations in range: core.rollout).
BUDGETS = {"PUT /v1/rollout", "PUT /v1/groups/{group}/max-failures"}
TIMED = {*PAUSES, "POST /v1/nodes/{id}/report", *BUDGETS}
# Paged listings take a `cursor` the server gave (opaque: the document cannot say which
# strings are one); any other is refused with 400.
PAGED = {"GET /v1/nodes", "GET /v1/history", "GET /v1/groups/{group}/history"}


def _out_of_range(value: Any) -> bool:
    """Whether a time anywhere in `value` (a JSON body) lies outside core.times' range."""
    if isinstance(value, dict):
        return any(_out_of_range(v) for v in value.values())
    if isinstance(value, list):
        return any(_out_of_range(v) for v in value)
    if isinstance(value, str) and len(value) >= 20 and value[4:5] == "-" and "T" in value:
        try:
            t = datetime.fromisoformat(value)
        except ValueError:
            return False
        return t.tzinfo is not None and not EARLIEST <= t < LATEST
    return False


def _unreadable(text: str) -> bool:
    """Blank, or holding a control character: operator text the API refuses."""
    return not text.strip() or any(unicodedata.category(c) == "Cc" for c in text)


@schemathesis.check
def rule_acceptance(ctx: Any, response: Any, case: schemathesis.Case) -> bool | None:
    """Rules the document does not state: a time must lie within stagger's range (core.times),
    a pause's `until` must be in the future, and its reason must be readable text; a page's
    cursor must be one the server gave. A request
    breaking one may be refused with 400; every other schema-valid request must be accepted."""
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive or response.status_code != 400:
        return None
    doc = case.body if isinstance(case.body, dict) else {}
    if _out_of_range(doc):
        return None
    if case.operation.label in PAGED and "cursor" in (case.query or {}):
        return None
    until, reason = doc.get("until"), doc.get("reason", "")
    if case.operation.label in PAUSES:
        if until is not None and datetime.fromisoformat(until) <= datetime.now(UTC):
            return None
        if isinstance(reason, str) and _unreadable(reason):
            return None
    if case.operation.label in BUDGETS and _breaks_rollout_rules(doc):
        return None
    raise AssertionError(f"a schema-valid request was refused: {response.text}")


def _breaks_rollout_rules(doc: dict[str, Any]) -> bool:
    """A rollout or budget core refuses (a group in two stages, a duration or budget out of
    range)."""
    try:
        if "stage" in doc:
            plan_from_table({k: v for k, v in doc.items() if k != "by"})
        elif doc.get("max_failures") is not None:
            parse_budget(doc["max_failures"])
    except InvalidInput:
        return True
    return False


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    d: Path = tmp_path_factory.mktemp("openapi")
    (d / "admin").write_text(f"{ADMIN}\n")
    (d / "nodes").write_text("web-07:openapi-node-secret:*\n")
    tokens = (*admin_tokens_from_file(d / "admin"), *node_tokens_from_file(d / "nodes"))
    with running(ServerSettings(backend_url=f"sqlite:///{d}/s.db", tokens=tokens)) as srv:
        yield srv


def run_checks(operation: Any, base_url: str) -> None:
    """Generated cases of one operation, each sent with the admin token and checked."""
    ruled = operation.label in TIMED | PAGED
    excluded = [positive_data_acceptance] if ruled else []
    extra = [rule_acceptance] if ruled else []

    @given(case=operation.as_strategy())
    @settings(
        max_examples=30,
        deadline=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    def check(case: schemathesis.Case) -> None:
        case.call_and_validate(
            base_url=base_url,
            headers={"authorization": f"Bearer {ADMIN}"},
            excluded_checks=excluded,
            additional_checks=extra,
        )

    check()


def test_every_operation_conforms_and_never_errors(server: RunningServer) -> None:
    config = SchemathesisConfig.from_str(CONFIG)
    schema = schemathesis.openapi.from_url(server.url + "/openapi.json", config=config)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 15
    for operation in operations:
        run_checks(operation, server.url)
