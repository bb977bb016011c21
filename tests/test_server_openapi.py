"""Schemathesis against /openapi.json of a real server: generated requests for every
operation, every response checked against the document, and never a server error.

Driven through schemathesis's Python API with hypothesis directly (its pytest plugin does not
load under pytest 9)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import ignored_auth, positive_data_acceptance

from server_support import RunningServer, running
from stagger.server.settings import ServerSettings


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    d: Path = tmp_path_factory.mktemp("openapi")
    with running(ServerSettings(backend_url=f"sqlite:///{d}/s.db")) as srv:
        yield srv


def test_every_operation_conforms_and_never_errors(server: RunningServer) -> None:
    schema = schemathesis.openapi.from_url(server.url + "/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 15

    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=12,
            deadline=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
        )
        def check(case: schemathesis.Case) -> None:
            # ignored_auth: auth is off here (the auth matrix covers it);
            # positive_data_acceptance: schema-valid data can still break rules a schema
            # cannot say (a pause end in the past), which is a 400, never a server error.
            case.call_and_validate(
                base_url=server.url, excluded_checks=[ignored_auth, positive_data_acceptance]
            )

        check()
