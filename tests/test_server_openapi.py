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
from stagger.server.settings import ServerSettings, admin_tokens_from_file, node_tokens_from_file

ADMIN = "openapi-admin-secret"

# A valid FleetLock request may still be denied (423: the group is full or paused), and an
# admin act may find a node holding a slot (409): answers the document lists, not refusals.
CONFIG = """
[checks.positive_data_acceptance]
expected-statuses = ["2xx", "401", "403", "404", "409", "423"]
"""
PAUSES = {"POST /v1/pause", "POST /v1/groups/{group}/pause"}


def _unreadable(text: str) -> bool:
    """Blank, or holding a control character: operator text the API refuses."""
    return not text.strip() or any(unicodedata.category(c) == "Cc" for c in text)


@schemathesis.check
def pause_acceptance(ctx: Any, response: Any, case: schemathesis.Case) -> bool | None:
    """Two rules of a pause the document does not state: `until` must be in the future, and
    the reason must be readable text. A pause breaking one may be refused with 400; every
    other schema-valid pause must be accepted."""
    meta = case.meta
    if case.operation.label not in PAUSES:  # checks are registered for every operation
        return None
    if meta is None or not meta.generation.mode.is_positive or response.status_code != 400:
        return None
    doc = case.body if isinstance(case.body, dict) else {}
    until, reason = doc.get("until"), doc.get("reason", "")
    if until is not None and datetime.fromisoformat(until) <= datetime.now(UTC):
        return None
    if isinstance(reason, str) and _unreadable(reason):
        return None
    raise AssertionError(f"a schema-valid pause was refused: {response.text}")


REPORT = "POST /v1/nodes/{id}/report"
REPORT_TIMES = ("needed_since", "next_window", "last_reboot")
EARLIEST, LATEST = datetime(1970, 1, 1, tzinfo=UTC), datetime(3000, 1, 1, tzinfo=UTC)


def _out_of_range(value: object) -> bool:
    if not isinstance(value, str):
        return False
    try:
        return not EARLIEST <= datetime.fromisoformat(value).astimezone(UTC) < LATEST
    except (ValueError, OverflowError):
        return True


@schemathesis.check
def report_acceptance(ctx: Any, response: Any, case: schemathesis.Case) -> bool | None:
    """The rule of a report's times the document states in words only (their descriptions):
    from 1970 up to 3000 in UTC. A report with a time outside may be refused with 400; every
    other schema-valid report must be accepted."""
    meta = case.meta
    if case.operation.label != REPORT:  # checks are registered for every operation
        return None
    if meta is None or not meta.generation.mode.is_positive or response.status_code != 400:
        return None
    doc = case.body if isinstance(case.body, dict) else {}
    health = doc.get("last_health")
    at = health.get("at") if isinstance(health, dict) else None
    if any(_out_of_range(doc.get(k)) for k in REPORT_TIMES) or _out_of_range(at):
        return None
    raise AssertionError(f"a schema-valid report was refused: {response.text}")


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
    own = (
        [pause_acceptance]
        if operation.label in PAUSES
        else [report_acceptance]
        if operation.label == REPORT
        else []
    )
    excluded = [positive_data_acceptance] if own else []
    extra = own

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
