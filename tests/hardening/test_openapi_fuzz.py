"""Schemathesis against the live server's own published OpenAPI (stateless checks).

Every operation of ``GET /openapi.json`` gets generated requests, valid and invalid
(``positive`` and ``negative`` modes), with a valid API key. A response fails the test when
it is a 5xx, has a status the operation does not document, has another content type than
documented, or does not match the documented body schema. The server runs on PostgreSQL
(which refuses what SQLite stores silently, such as NUL in text), in a database of its
own. Examples per operation are bounded and derandomised, so CI runs the same cases.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.conftest import PG_ADMIN_DSN, LiveServer, _pg, start_server

#: Examples per operation: about 75 s for the whole API on 2 busy cores (150 passed too).
EXAMPLES = 50
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    name = "openline_fuzz_" + uuid.uuid4().hex[:12]
    asyncio.run(_pg(f'CREATE DATABASE "{name}"'))
    base = PG_ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
    data_dir: Path = tmp_path_factory.mktemp("openline-fuzz")
    server = start_server(f"{base}/{name}", data_dir)
    yield server
    server.stop()
    asyncio.run(_pg(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="module")
def api_schema(fuzz_server: LiveServer) -> Any:
    return schemathesis.openapi.from_url(f"{fuzz_server.url}/openapi.json")


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
          phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
def test_every_operation_answers_as_documented(case: Any, fuzz_server: LiveServer) -> None:
    # ``call_and_validate`` raises when any of CHECKS fails; the answer itself is kept to
    # state the first of them here too.
    response = case.call_and_validate(
        headers={"Authorization": f"Bearer {fuzz_server.api_key}"}, checks=CHECKS, timeout=30)
    assert response.status_code < 500, response.text[:500]
