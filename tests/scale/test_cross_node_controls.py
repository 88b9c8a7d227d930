"""Dialect controls served by a node that does not run the call: two in-process nodes on
the session's PostgreSQL and the machine's Redis (a unique prefix), the call's socket on
node A; its ``monitor.controlUrl`` and the dashboard's cancel are posted to node B, which
reaches A over the control channel. (The Phonic REST cancel across nodes is in
``test_multinode``.)"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from openline.providers.testing import ScriptedLLM
from tests.conftest import LiveServer, fake_providers, start_server
from tests.scale.redis_support import REDIS_URL, drop_keys, unique_prefix
from tests.vapi.live.conftest import CallSocket, sdk
from tests.vapi.live.conftest import dial as dial  # the fixture

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
WS = {"provider": "vapi.websocket",
      "audioFormat": {"format": "pcm_s16le", "container": "raw", "sampleRate": 16000}}


@pytest.fixture
def nodes(pg_database: str, tmp_path: Path) -> Iterator[tuple[LiveServer, LiveServer]]:
    prefix = unique_prefix("cross-node")
    made = [start_server(pg_database, tmp_path / name, fake_providers(ScriptedLLM()),
                         redis_url=REDIS_URL, redis_prefix=prefix, node_id=name)
            for name in ("node-a", "node-b")]
    yield made[0], made[1]
    for server in made:
        server.stop()

    async def clean() -> None:
        redis = Redis.from_url(REDIS_URL)
        await drop_keys(redis, f"{prefix}:*")
        await redis.aclose()

    asyncio.run(clean())


def _on(node: LiveServer, control_url: str) -> str:
    """The same control URL, asked of ``node``."""
    return node.url + control_url[control_url.index("/call/"):]


async def _owner(node: LiveServer, call_id: str) -> str | None:
    engine = create_async_engine(node.database_url)
    try:
        async with engine.connect() as conn:
            return (await conn.execute(text("SELECT owner_node FROM conversations WHERE id=:i"),
                                       {"i": call_id})).scalar()
    finally:
        await engine.dispose()


async def _ended(node: LiveServer, call_id: str) -> Any:
    async with asyncio.timeout(15):
        while True:
            call = await sdk(node).calls.get(call_id)
            if call.status == "ended":
                return call
            await asyncio.sleep(0.1)


async def test_the_control_url_on_another_node_reaches_the_owner(
        nodes: tuple[LiveServer, LiveServer], dial: Callable[[str], Any]) -> None:
    a, b = nodes
    call = await sdk(a).calls.create(transport=WS, assistant={"firstMessage": "Hi there."})
    control = call.monitor.control_url  # type: ignore[union-attr]
    socket: CallSocket = await dial(call.transport.websocketCallUrl)  # type: ignore[union-attr]
    await socket.wait_message("transcript", where=lambda m: m["transcript"] == "Hi there.")
    assert await _owner(a, call.id) == "node-a"
    async with httpx.AsyncClient(timeout=15) as http:
        said = await http.post(_on(b, control), json={"type": "say",
                                                      "content": "A word from node B."})
        assert said.status_code == 200, said.text
        await socket.wait_message("transcript",
                                  where=lambda m: m["transcript"] == "A word from node B.")
        muted = await http.post(_on(b, control), json={"type": "control",
                                                       "control": "mute-customer"})
        assert muted.status_code == 200, muted.text
        later = await http.post(_on(b, control), json={"type": "say", "content": "Bye.",
                                                       "endCallAfterSpoken": True})
        assert later.status_code == 400 and "endCallAfterSpoken" in later.text
        assert not socket.closed.is_set()
        ended = await http.post(_on(b, control), json={"type": "end-call"})
        assert ended.status_code == 200, ended.text
        await asyncio.wait_for(socket.closed.wait(), 15)
        again = await http.post(_on(b, control), json={"type": "end-call"})
        assert again.status_code == 404
    done = await _ended(b, call.id)
    assert done.ended_reason == "manually-canceled"


async def _sign_in(http: httpx.AsyncClient, api_key: str) -> None:
    form = await http.get("/dashboard/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert token is not None, form.text
    signed = await http.post("/dashboard/login", data={"api_key": api_key,
                                                       "csrf_token": token.group(1), "next": ""})
    assert signed.status_code == 303, signed.text


async def test_the_dashboard_cancel_on_another_node_ends_the_call(
        nodes: tuple[LiveServer, LiveServer], dial: Callable[[str], Any]) -> None:
    a, b = nodes
    call = await sdk(a).calls.create(transport=WS, assistant={"firstMessage": "Hi there."})
    socket: CallSocket = await dial(call.transport.websocketCallUrl)  # type: ignore[union-attr]
    await socket.wait_message("transcript", where=lambda m: m["transcript"] == "Hi there.")
    assert await _owner(a, call.id) == "node-a"
    async with httpx.AsyncClient(base_url=b.url, timeout=15) as http:
        await _sign_in(http, b.api_key)
        page = await http.get(f"/dashboard/conversations/{call.id}")
        assert page.status_code == 200 and f"/conversations/{call.id}/cancel" in page.text
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        assert token is not None
        cancelled = await http.post(f"/dashboard/conversations/{call.id}/cancel",
                                    data={"csrf_token": token.group(1)})
        assert cancelled.status_code == 303, cancelled.text
    await asyncio.wait_for(socket.closed.wait(), 15)
    assert (await _ended(b, call.id)).ended_reason == "manually-canceled"
