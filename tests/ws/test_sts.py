"""The STS WebSocket through the official SDK, with scripted providers."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import httpx
import numpy as np
import pytest
import websockets
from phonic.types import AudioChunkPayload, SetExternalIdPayload

from tests.ws.conftest import (
    ServerFactory,
    collect,
    config,
    sdk,
    send_pcm,
    silence,
    sync_sdk,
    tone,
    types_of,
)


async def test_whole_conversation_is_stored(make_server: ServerFactory) -> None:
    server = make_server(["Hello Sam, happy to help."], ["my name is sam"])
    client = sdk(server)
    await client.agents.create(
        name="helper", welcome_message="Hi {{name}}, it is {{system_weekday}}.",
        template_variables={"name": {"default_value": "there"}},
        system_prompt="You help {{name}}.", timezone="Europe/Paris")
    seen: list[Any] = []
    async with client.conversations.connect() as socket:
        await socket.send_config(config(agent="helper", template_variables={"name": "Sam"},
                                        stream_ahead_of_real_time=True))
        await collect(socket, "assistant_finished_speaking", seen)
        await socket.send_set_external_id(SetExternalIdPayload(type="set_external_id",
                                                               external_id="ext-42"))
        await send_pcm(socket, tone(600))
        await send_pcm(socket, silence(1000))
        await collect(socket, "assistant_finished_speaking", seen)
    kinds = await types_of(seen)
    assert kinds[:2] == ["conversation_created", "ready_to_start_conversation"]
    # The agent's default voice "grant" is not installed here: a warning, then "joe" speaks.
    assert kinds[2:] == ["warning", "assistant_started_speaking", "audio_chunk",
                         "assistant_finished_speaking", "user_started_speaking",
                         "user_finished_speaking", "input_text", "assistant_started_speaking",
                         "audio_chunk", "assistant_finished_speaking"]
    conv_id = seen[0].conversation_id
    first_turn = seen[:next(i for i, m in enumerate(seen)
                            if getattr(m, "type", "") == "assistant_finished_speaking")]
    welcome = " ".join(m.text for m in first_turn if getattr(m, "type", "") == "audio_chunk"
                       and m.text)
    assert welcome.startswith("Hi Sam, it is ") and "{{" not in welcome
    for _ in range(50):  # the record is finalised just after the socket closes
        conv = (await client.conversations.get(conv_id)).conversation
        if conv.ended_at is not None:
            break
        await asyncio.sleep(0.1)
    assert conv.ended_by == "user" and conv.external_id == "ext-42"
    assert conv.origin == "sdk-py"  # the official Python SDK opened it
    assert [(i.role, i.live_transcript) for i in conv.items] == [
        ("assistant", welcome), ("user", "my name is sam"),
        ("assistant", "Hello Sam, happy to help.")]
    assert conv.items[2].voice_id == "joe" and conv.items[2].system_prompt == "You help Sam."
    assert conv.live_transcript.endswith("Assistant: Hello Sam, happy to help.")
    assert len(conv.analysis.latencies_ms) == 1 and conv.duration_ms > 0
    assert conv.template_variables == {"name": "Sam"}
    async with httpx.AsyncClient() as http:
        audio = await http.get(conv.audio_url)
        tampered = await http.get(conv.audio_url.replace("signature=", "signature=0"))
    assert audio.status_code == 200 and len(audio.content) > 1000
    assert tampered.status_code == 403


@pytest.mark.parametrize("fmt", ["pcm_44100", "pcm_24000", "pcm_16000", "pcm_8000",
                                 "mulaw_8000"])
async def test_every_audio_format(make_server: ServerFactory, fmt: str) -> None:
    from openline.audio.codecs import WIRE_FORMATS

    server = make_server(["Okay."], ["test"])
    wire = WIRE_FORMATS[fmt]
    seen: list[Any] = []
    async with sdk(server).conversations.connect() as socket:
        await socket.send_config(config(input_format=fmt, output_format=fmt,
                                        stream_ahead_of_real_time=True))
        await collect(socket, "ready_to_start_conversation", seen)
        speech = np.concatenate([tone(600, wire.sample_rate), silence(900, wire.sample_rate)])
        step = wire.sample_rate // 50
        for i in range(0, speech.size, step):
            data = wire.encode(speech[i:i + step])
            await socket.send_audio_chunk(AudioChunkPayload(
                type="audio_chunk", audio=base64.b64encode(data).decode()))
        await collect(socket, "assistant_finished_speaking", seen)
    chunks = [m for m in seen if getattr(m, "type", "") == "audio_chunk"]
    assert [m.text for m in seen if getattr(m, "type", "") == "input_text"] == ["test"]
    pcm = b"".join(base64.b64decode(m.audio) for m in chunks)
    decoded = wire.decode(pcm)
    # "Okay." is 5 characters of 20 ms tone each = 0.1 s at the output rate.
    assert abs(decoded.size - wire.sample_rate * 0.1) <= wire.sample_rate * 0.05
    assert np.abs(decoded.astype(np.int32)).max() > 2000


async def _raw(server: Any, messages: list[dict[str, Any]], until: str,
               headers: dict[str, str] | None = None, query: str = "") -> list[dict[str, Any]]:
    url = f"{server.ws_url}/v1/sts/ws{query}"
    hdrs = headers if headers is not None else {"Authorization": f"Bearer {server.api_key}"}
    seen: list[dict[str, Any]] = []
    async with websockets.connect(url, additional_headers=hdrs) as ws:
        for m in messages:
            await ws.send(json.dumps(m))
        async with asyncio.timeout(10):
            async for raw in ws:
                msg = json.loads(raw)
                seen.append(msg)
                if msg["type"] == until:
                    break
    return seen


async def test_bad_input_gets_errors_and_the_conversation_goes_on(
        make_server: ServerFactory) -> None:
    server = make_server(["Fine."], ["hello"])
    big = base64.b64encode(b"\0" * 2000).decode()  # 62.5 ms of pcm_16000
    seen = await _raw(server, [
        {"type": "audio_chunk", "audio": base64.b64encode(b"\0" * 640).decode()},
        {"type": "config", "input_format": "pcm_16000", "output_format": "pcm_16000",
         "stream_ahead_of_real_time": True, "some_unknown_key": 1},
        {"type": "dance"},
        {"type": "audio_chunk", "audio": "%%% not base64 %%%"},
        {"type": "audio_chunk", "audio": big},
        {"type": "say", "text": "Still here."},
    ], "assistant_finished_speaking")
    errors = [m["error"]["code"] for m in seen if m["type"] == "error"]
    assert errors == ["config_required", "unknown_message_type", "invalid_audio",
                      "audio_chunk_too_large"]
    assert any(m["type"] == "audio_chunk" and m["text"] for m in seen)
    bad_audio = next(m for m in seen if m["type"] == "error"
                     and m["error"]["code"] == "invalid_audio")
    assert bad_audio["param_errors"] == {"audio": "invalid base64"}


async def test_unknown_agent_and_invalid_config_are_refused(make_server: ServerFactory) -> None:
    server = make_server()
    url = f"{server.ws_url}/v1/sts/ws"
    auth = {"Authorization": f"Bearer {server.api_key}"}
    async with websockets.connect(url, additional_headers=auth) as ws:
        await ws.send(json.dumps({"type": "config", "agent": "ghost"}))
        msg = json.loads(await ws.recv())
        assert msg["type"] == "error" and msg["error"]["code"] == "agent_not_found"
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await ws.recv()
        assert closed.value.rcvd.code == 1008
    async with websockets.connect(url, additional_headers=auth) as ws:
        await ws.send(json.dumps({"type": "config", "audio_speed": 3,
                                  "output_format": "mp3"}))
        msg = json.loads(await ws.recv())
        assert msg["error"]["code"] == "invalid_config"
        assert {"audio_speed", "output_format"} <= set(msg["param_errors"])
    listed = await sdk(server).conversations.list()
    assert listed.conversations == []  # nothing was stored


async def test_auth_on_the_socket(make_server: ServerFactory) -> None:
    server = make_server(["Yes."], ["hi"])
    url = f"{server.ws_url}/v1/sts/ws"
    with pytest.raises(websockets.InvalidStatus) as denied:
        async with websockets.connect(url, additional_headers={"Authorization": "Bearer no"}):
            pass
    assert denied.value.response.status_code == 401
    client = sdk(server)
    token = (await client.auth.create_session_token(ttl_seconds=60)).session_token
    seen = await _raw(server, [{"type": "config"}], "ready_to_start_conversation",
                      headers={}, query=f"?session_token={token}")
    assert seen[0]["type"] == "conversation_created"
    agent = await client.agents.create(name="tok")
    ctoken = (await client.auth.create_conversation_token(agent_id=agent.id)).conversation_token
    seen = await _raw(server, [{"type": "config"}], "ready_to_start_conversation",
                      headers={}, query=f"?conversation_token={ctoken}")
    conv = (await client.conversations.get(seen[0]["conversation_id"])).conversation
    assert conv.agent.name == "tok" and conv.origin == "direct"  # a raw websocket client


async def test_cancel_ends_a_live_conversation(make_server: ServerFactory) -> None:
    server = make_server()
    client = sdk(server)
    seen: list[Any] = []
    async with client.conversations.connect() as socket:
        await socket.send_config(config())
        await collect(socket, "ready_to_start_conversation", seen)
        conv_id = seen[0].conversation_id
        assert (await client.conversations.cancel(conv_id)).success
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await collect(socket, "never", seen)
        assert closed.value.rcvd.code == 4200
    conv = (await client.conversations.get(conv_id)).conversation
    assert conv.ended_by == "user_canceled"
    async with httpx.AsyncClient() as http:
        r = await http.post(f"{server.url}/v1/conversations/{conv_id}/cancel",
                            headers={"Authorization": f"Bearer {server.api_key}"})
    assert r.status_code == 409


def test_sync_sdk_drives_a_turn(make_server: ServerFactory) -> None:
    server = make_server(["Sync works."], ["testing sync"])
    client = sync_sdk(server)
    seen: list[Any] = []
    with client.conversations.connect() as socket:
        socket.send_config(config(stream_ahead_of_real_time=True))
        speech = np.concatenate([tone(600), silence(900)])
        for i in range(0, speech.size, 320):
            socket.send_audio_chunk(AudioChunkPayload(
                type="audio_chunk", audio=base64.b64encode(speech[i:i + 320].tobytes()).decode()))
        for message in socket:
            seen.append(message)
            if getattr(message, "type", "") == "assistant_finished_speaking":
                break
    texts = [m.text for m in seen if getattr(m, "type", "") == "input_text"]
    assert texts == ["testing sync"]
    spoken = [m.text for m in seen if getattr(m, "type", "") == "audio_chunk" and m.text]
    assert " ".join(spoken) == "Sync works."


async def test_dropped_socket_resumes_with_reconnect_conv_id(
        make_server: ServerFactory) -> None:
    server = make_server()
    url = f"{server.ws_url}/v1/sts/ws"
    auth = {"Authorization": f"Bearer {server.api_key}"}
    async with websockets.connect(url, additional_headers=auth) as ws:
        await ws.send(json.dumps({"type": "config", "input_format": "pcm_16000",
                                  "output_format": "pcm_16000",
                                  "stream_ahead_of_real_time": True}))
        conv_id = json.loads(await ws.recv())["conversation_id"]
        await ws.recv()  # ready_to_start_conversation
        ws.transport.abort()  # the network drops: no close frame (1006)
    async with websockets.connect(f"{url}?reconnect_conv_id={conv_id}",
                                  additional_headers=auth) as ws:
        assert json.loads(await ws.recv()) == {"type": "conversation_reconnected"}
        await ws.send(json.dumps({"type": "say", "text": "Welcome back."}))
        seen = []
        async with asyncio.timeout(10):
            while not seen or seen[-1]["type"] != "assistant_finished_speaking":
                seen.append(json.loads(await ws.recv()))
    spoken = " ".join(m["text"] for m in seen if m["type"] == "audio_chunk" and m["text"])
    assert spoken == "Welcome back."
    client = sdk(server)
    for _ in range(50):
        conv = (await client.conversations.get(conv_id)).conversation
        if conv.ended_at is not None:
            break
        await asyncio.sleep(0.1)
    assert conv.ended_by == "user" and conv.items[-1].live_transcript == "Welcome back."
    # A conversation nobody is waiting for cannot be resumed.
    async with websockets.connect(f"{url}?reconnect_conv_id={conv_id}",
                                  additional_headers=auth) as ws:
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await ws.recv()
    assert closed.value.rcvd.code == 4800
