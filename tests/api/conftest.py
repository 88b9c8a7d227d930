"""SDK clients and a fresh project per test, against the live server of each backend."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from phonic import AsyncPhonic, Phonic, PhonicEnvironment

from tests.conftest import LiveServer


def environment(server: LiveServer) -> PhonicEnvironment:
    return PhonicEnvironment(base=f"{server.url}/v1", production=server.ws_url)


@pytest.fixture
def client(live_server: LiveServer) -> Phonic:
    return Phonic(api_key=live_server.api_key, environment=environment(live_server))


@pytest.fixture
async def aclient(live_server: LiveServer) -> AsyncIterator[AsyncPhonic]:
    yield AsyncPhonic(api_key=live_server.api_key, environment=environment(live_server))


@pytest.fixture
def http(live_server: LiveServer) -> Iterator[httpx.Client]:
    """Raw HTTP for status codes and error bodies."""
    with httpx.Client(base_url=f"{live_server.url}/v1",
                      headers={"Authorization": f"Bearer {live_server.api_key}"}) as c:
        yield c


@pytest.fixture
def project(client: Phonic) -> Iterator[str]:
    """A fresh project, so tests never see each other's resources."""
    name = "p-" + uuid.uuid4().hex[:10]
    client.projects.create(name=name)
    yield name
    client.projects.delete(name)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"
