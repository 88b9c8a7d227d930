"""Vapi SDK clients (sync and async) and raw HTTP against the live server of each backend."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from tests.conftest import LiveServer
from vapi import AsyncVapi, Vapi


@pytest.fixture
def vapi(live_server: LiveServer) -> Vapi:
    return Vapi(token=live_server.api_key, base_url=live_server.url)


@pytest.fixture
async def avapi(live_server: LiveServer) -> AsyncIterator[AsyncVapi]:
    yield AsyncVapi(token=live_server.api_key, base_url=live_server.url)


@pytest.fixture
def raw(live_server: LiveServer) -> Iterator[httpx.Client]:
    """Raw HTTP at the API root, for status codes and error bodies."""
    with httpx.Client(base_url=live_server.url,
                      headers={"Authorization": f"Bearer {live_server.api_key}"}) as c:
        yield c
