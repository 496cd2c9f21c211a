"""A schema-driven fuzzer (schemathesis) over the served OpenAPI document: zero 5xx.

Every operation gets valid and invalid requests generated from its schema (bodies,
parameters, headers), sent to the real ``blindmatch serve`` over loopback, on SQLite and
PostgreSQL; any 5xx answer, or a body with a traceback, fails.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.generation import GenerationMode

from service_support import Server, database_url, postgres, start_server  # noqa: F401 - fixtures

EXAMPLES = 25


@pytest.fixture
def server(tmp_path: Path, database_url: str) -> Iterator[Server]:  # noqa: F811
    running = start_server(tmp_path / "data", database_url, limits={"intake_per_hour": "100000"})
    yield running
    running.stop()


def test_no_operation_answers_5xx(server: Server) -> None:
    schema = schemathesis.openapi.from_url(server.url + "/v1/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]  # type: ignore[union-attr]
    assert len(operations) >= 8
    failures: list[str] = []
    statuses: list[int] = []
    for operation in operations:
        strategy = st.one_of(
            operation.as_strategy(generation_mode=GenerationMode.POSITIVE),
            operation.as_strategy(generation_mode=GenerationMode.NEGATIVE),
        )

        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=strategy)
        def probe(case: schemathesis.Case) -> None:  # type: ignore[type-arg]
            response = case.call(base_url=server.url, timeout=30)
            statuses.append(response.status_code)
            if response.status_code >= 500 or "Traceback" in response.text:
                failures.append(f"{case.operation.label}: {response.status_code}")

        probe()
    assert failures == []
    assert len(statuses) >= 5 * len(operations)
    assert {200, 422} <= set(statuses)  # valid requests got through, invalid were refused
    with server.client() as client:
        assert client.get("/v1/health").status_code == 200
