"""One domain, two dialects (both databases): an assistant made with the Vapi SDK is called
through the Phonic SDK's socket, and the conversation is then a Vapi call."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from phonic import AsyncPhonic
from vapi.core.api_error import ApiError

from tests.api.conftest import environment
from tests.conftest import LiveServer
from tests.ws.conftest import collect, config, send_pcm, silence, tone
from vapi import AsyncVapi


async def test_a_vapi_assistant_is_called_through_phonic(avapi: AsyncVapi,
                                                         live_server: LiveServer) -> None:
    assistant = await avapi.assistants.create(
        name="Cross Dialect", first_message="Welcome to Openline.",
        model={"provider": "openai", "model": "gpt-4o",
               "messages": [{"role": "system", "content": "Answer briefly."}]},
        voice={"provider": "vapi", "voiceId": "joe"},
        artifact_plan={"transcriptPlan": {"assistantName": "Bot", "userName": "Caller"}})
    phonic = AsyncPhonic(api_key=live_server.api_key, environment=environment(live_server))
    agent = (await phonic.agents.get(assistant.id)).agent
    assert agent.welcome_message == "Welcome to Openline." and agent.voice_id == "joe"
    seen: list[Any] = []
    async with phonic.conversations.connect() as socket:
        await socket.send_config(config(agent=agent.name, stream_ahead_of_real_time=True))
        await collect(socket, "assistant_finished_speaking", seen)
        await send_pcm(socket, tone(600))
        await send_pcm(socket, silence(1000))
        await collect(socket, "assistant_finished_speaking", seen)
    conv_id = seen[0].conversation_id
    for _ in range(100):  # the record is finalised just after the socket closes
        call = await avapi.calls.get(conv_id)
        if call.status == "ended":
            break
        await asyncio.sleep(0.05)
    assert call.status == "ended" and call.ended_reason == "customer-ended-call"
    assert call.assistant_id == assistant.id and call.type == "vapi.websocketCall"
    assert call.artifact.transcript == (
        "Bot: Welcome to Openline.\nCaller: hello\nBot: Okay.")
    assert [m.role for m in call.artifact.messages] == ["system", "bot", "user", "bot"]
    assert call.artifact.messages[0].message == "Answer briefly."
    assert call.artifact.recording_url and "/v1/recordings/" in call.artifact.recording_url
    assert await avapi.calls.call_artifact_controller_stereo_recording_download(conv_id) is None
    async with httpx.AsyncClient(base_url=live_server.url, headers={
            "Authorization": f"Bearer {live_server.api_key}"}) as http:
        wav = await http.get(f"/call/{conv_id}/stereo-recording", follow_redirects=True)
        assert wav.status_code == 200 and wav.content[:4] == b"RIFF"
        assert (await http.get("/call/conv_missing/stereo-recording")).status_code == 404
        pcap = await http.get(f"/call/{conv_id}/pcap")
        assert pcap.status_code == 404 and "stereo-recording" in pcap.json()["message"]
    with pytest.raises(ApiError) as mono:
        await avapi.calls.call_artifact_controller_mono_recording_download(conv_id)
    assert mono.value.status_code == 404
    listed = await avapi.calls.list(assistant_id=assistant.id)
    assert [c.id for c in listed] == [conv_id]
    assert (await avapi.calls.delete(conv_id)).id == conv_id
    await avapi.assistants.delete(assistant.id)
