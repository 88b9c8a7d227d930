"""The concurrency limit holds under a burst of simultaneous connects (both backends)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from typing import Any

import httpx
import websockets

from tests.conftest import LiveServer

LIMIT, CALLERS = 5, 30


async def _connect(server: LiveServer, project: str, admitted: list[Any],
                   refused: list[str], answered: asyncio.Event, release: asyncio.Event
                   ) -> None:
    url = f"{server.ws_url}/v1/sts/ws"
    async with websockets.connect(url, additional_headers={
            "Authorization": f"Bearer {server.api_key}"}) as ws:
        await ws.send(json.dumps({"type": "config", "project": project,
                                  "input_format": "pcm_16000", "output_format": "pcm_16000",
                                  "welcome_message": ""}))
        first = json.loads(await ws.recv())
        if first["type"] == "conversation_created":
            admitted.append(first["conversation_id"])
            _count(admitted, refused, answered)
            await release.wait()  # stay live until every caller has been answered
            return
        refused.append(first["error"]["code"])
        _count(admitted, refused, answered)
        with contextlib.suppress(websockets.ConnectionClosed):
            await ws.recv()
        assert ws.close_code == 4010


def _count(admitted: list[Any], refused: list[str], answered: asyncio.Event) -> None:
    if len(admitted) + len(refused) == CALLERS:
        answered.set()


async def test_a_burst_of_connects_admits_exactly_the_limit(live_server: LiveServer) -> None:
    project = "burst-" + uuid.uuid4().hex[:8]
    async with httpx.AsyncClient(base_url=f"{live_server.url}/v1", headers={
            "Authorization": f"Bearer {live_server.api_key}"}) as http:
        assert (await http.post("/projects", json={"name": project})).status_code == 201
        r = await http.patch(f"/projects/{project}", json={"max_active_conversations": LIMIT})
        assert r.status_code == 200
    admitted: list[Any] = []
    refused: list[str] = []
    answered, release = asyncio.Event(), asyncio.Event()
    callers = [asyncio.create_task(
        _connect(live_server, project, admitted, refused, answered, release))
        for _ in range(CALLERS)]
    await asyncio.wait_for(answered.wait(), 30)
    release.set()
    await asyncio.gather(*callers)
    assert len(admitted) == LIMIT
    assert refused == ["concurrency_limit_reached"] * (CALLERS - LIMIT)
