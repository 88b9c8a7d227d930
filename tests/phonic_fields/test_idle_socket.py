"""``websocket_timeout_sec``: a client that sends nothing for that long is told so and
closed with 4500 ("no input received timeout"); one that keeps streaming stays."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from typing import Any

import pytest
import websockets

from tests.phonic_fields.conftest import StackFactory
from tests.ws.conftest import config, sdk, send_pcm, silence


async def _ended(client: Any, conv_id: str) -> Any:
    for _ in range(100):
        conv = (await client.conversations.get(conv_id)).conversation
        if conv.ended_at is not None:
            return conv
        await asyncio.sleep(0.05)
    raise AssertionError("the conversation did not end")


async def test_an_idle_socket_is_closed_after_the_agents_timeout(
        make_stack: StackFactory) -> None:
    stack = make_stack()
    client = sdk(stack.server)
    await client.agents.create(name="idle", voice_id="joe", welcome_message="Hi.",
                               websocket_timeout_sec=1)
    seen: list[Any] = []
    async with client.conversations.connect() as socket:
        await socket.send_config(config(agent="idle", stream_ahead_of_real_time=True))
        start = time.monotonic()
        with pytest.raises(websockets.ConnectionClosed) as closed:
            async for message in socket:  # the SDK raises on a 4xxx close
                seen.append(message)
        waited = time.monotonic() - start
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4500
    assert closed.value.rcvd.reason == "websocket_timeout"
    assert 1.0 <= waited < 10
    warnings = [m.warning for m in seen if getattr(m, "type", "") == "warning"]
    assert [w.code for w in warnings] == ["websocket_timeout"]
    assert "websocket_timeout_sec" in warnings[0].message
    conv = await _ended(client, seen[0].conversation_id)
    assert conv.ended_by == "user" and conv.websocket_timeout_sec == 1
    assert [i.live_transcript for i in conv.items] == ["Hi."]  # the welcome was kept


async def test_a_streaming_client_is_not_idle(make_stack: StackFactory) -> None:
    stack = make_stack()
    client = sdk(stack.server)
    seen: list[Any] = []

    async def read() -> None:
        async for message in socket:
            seen.append(message)

    async with client.conversations.connect() as socket:
        await socket.send_config(config(websocket_timeout_sec=1, welcome_message=""))
        reader = asyncio.create_task(read())
        await send_pcm(socket, silence(2500), realtime=True)  # silence is still input
        assert not reader.done()  # the socket is open well past the timeout
        reader.cancel()
    conv = await _ended(client, seen[0].conversation_id)
    assert conv.ended_by == "user" and conv.websocket_timeout_sec == 1
    assert not any(m.warning.code == "websocket_timeout" for m in seen
                   if getattr(m, "type", "") == "warning")


async def test_a_resumed_socket_takes_audio_and_keeps_the_timeout(
        make_stack: StackFactory) -> None:
    stack = make_stack()
    url = f"{stack.server.ws_url}/v1/sts/ws"
    auth = {"Authorization": f"Bearer {stack.server.api_key}"}
    async with websockets.connect(url, additional_headers=auth) as ws:
        await ws.send(json.dumps({"type": "config", "input_format": "pcm_16000",
                                  "output_format": "pcm_16000", "websocket_timeout_sec": 1,
                                  "welcome_message": ""}))
        conv_id = json.loads(await ws.recv())["conversation_id"]
        ws.transport.abort()  # the network drops (1006): the call waits for the client
    async with websockets.connect(f"{url}?reconnect_conv_id={conv_id}",
                                  additional_headers=auth) as ws:
        chunk = base64.b64encode(bytes(640)).decode()  # 20 ms of pcm_16000 silence
        await ws.send(json.dumps({"type": "audio_chunk", "audio": chunk}))
        received = []
        with pytest.raises(websockets.ConnectionClosed) as closed:
            while True:
                received.append(json.loads(await ws.recv()))
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4500
    kinds = [m["type"] for m in received]
    assert kinds == ["conversation_reconnected", "warning"]  # no error for the audio
    assert received[1]["warning"]["code"] == "websocket_timeout"
