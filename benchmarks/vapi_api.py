"""The Vapi dialect's part of ``benchmarks/api.py``: ``assistants.get`` and ``calls.list``.

The same seeded server (100,000 conversations of ``bench-agent`` in project ``main``) is read
through the Vapi dialect: ``GET /assistant/{id}`` (the agent as an assistant) and a plain
``GET /call`` list page (``createdAtGe`` = the Phonic list's ``started_at_min``; ``limit`` as
the Phonic page, and Vapi's default 100; newest first), each with the official
``vapi-server-sdk`` (``AsyncVapi``, which parses into its models) and with plain ``httpx``
(the server's share).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import httpx

NO_RETRY: dict[str, Any] = {"max_retries": 0}
#: Vapi's default page size of plain lists
DEFAULT_LIMIT = 100


class VapiSdkApi:
    """Calls through ``AsyncVapi`` (imported here: the SDK takes seconds to import)."""

    def __init__(self, url: str, key: str, http: httpx.AsyncClient, agent_id: str,
                 since: str, limit: int) -> None:
        from vapi import AsyncVapi

        self.client = AsyncVapi(token=key, base_url=url, httpx_client=http)
        self.agent_id, self.since, self.limit = agent_id, since, limit

    async def assistant_get(self) -> None:
        got = await self.client.assistants.get(self.agent_id, request_options=NO_RETRY)
        assert got.id == self.agent_id

    async def calls_list(self, limit: int) -> None:
        from datetime import datetime

        calls = await self.client.calls.list(
            limit=float(limit), created_at_ge=datetime.fromisoformat(self.since),
            request_options=NO_RETRY)
        assert len(calls) == limit


class VapiHttpxApi:
    """Plain ``httpx`` plus ``json()``."""

    def __init__(self, url: str, key: str, http: httpx.AsyncClient, agent_id: str,
                 since: str, limit: int) -> None:
        self.http, self.url = http, url
        self.headers = {"Authorization": f"Bearer {key}"}
        self.agent_id, self.since, self.limit = agent_id, since, limit

    async def assistant_get(self) -> None:
        resp = await self.http.get(f"{self.url}/assistant/{self.agent_id}",
                                   headers=self.headers)
        resp.raise_for_status()
        assert resp.json()["id"] == self.agent_id

    async def calls_list(self, limit: int) -> None:
        resp = await self.http.get(f"{self.url}/call", headers=self.headers, params={
            "limit": f"{limit}.0", "createdAtGe": self.since})
        resp.raise_for_status()
        assert len(resp.json()) == limit


def operations(api: VapiSdkApi | VapiHttpxApi,
               limit: int) -> Sequence[tuple[str, Callable[[], Any]]]:
    """(name, call) of each measured Vapi operation: the list at the Phonic page's size and
    at Vapi's default ``limit`` (100)."""

    def listing(size: int) -> Callable[[], Any]:
        return lambda: api.calls_list(size)

    return [("vapi assistants.get", api.assistant_get),
            *[(f"vapi calls.list (createdAtGe, limit={size})", listing(size))
              for size in dict.fromkeys((limit, DEFAULT_LIMIT))]]


async def agent_id_of(url: str, key: str, name: str) -> str:
    """The benchmark agent's ID (its assistant ID) through the Phonic dialect."""
    async with httpx.AsyncClient(timeout=30) as http:
        resp = await http.get(f"{url}/v1/agents/{name}", params={"project": "main"},
                              headers={"Authorization": f"Bearer {key}"})
        resp.raise_for_status()
        return str(resp.json()["agent"]["id"])
