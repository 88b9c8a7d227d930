"""The configuration endpoint, and mid-conversation control messages."""

from __future__ import annotations

import pytest
from phonic.types import (
    AddSystemMessagePayload,
    SayPayload,
    UpdateSystemPromptPayload,
    UpdateToolsSubsetPayload,
)

from tests.conftest import LiveServer
from tests.support.llm_server import ScriptedLLMServer
from tests.tools.conftest import Target, client_for
from tests.tools.session import stored, talk_to


async def test_overrides_apply(openline: LiveServer, llm: ScriptedLLMServer,
                               target: Target) -> None:
    client = client_for(openline)
    target.config_reply = {"system_prompt": "You are configured.", "welcome_message":
                           "Configured hello.", "metadata": {"crm": 42}}
    await client.agents.create(name="cfg", voice_id="joe", configuration_endpoint={
        "url": target.base_url + "/config", "headers": {"X-Token": "t0k"}, "timeout_ms": 2000})
    llm.script("Sure.")
    async with talk_to(client, agent="cfg") as talk:
        await talk.until("assistant_finished_speaking")
        await talk.say_as_user("hi")
    [request] = target.requests
    assert request["headers"]["x-token"] == "t0k"
    body = __import__("json").loads(request["body"])
    assert body["agent"]["name"] == "cfg" and body["conversation_id"] == talk.conversation_id
    assert llm.requests[0]["messages"][0]["content"] == "You are configured."
    conv = await stored(openline, talk.conversation_id)
    assert conv["items"][0]["live_transcript"] == "Configured hello."
    assert conv["metadata"] == {"crm": 42}


async def test_empty_reply_changes_nothing(openline: LiveServer, llm: ScriptedLLMServer,
                                           target: Target) -> None:
    client = client_for(openline)
    await client.agents.create(name="same", voice_id="joe", system_prompt="Original.",
                               configuration_endpoint={"url": target.base_url + "/config"})
    llm.script("Ok.")
    async with talk_to(client, agent="same") as talk:
        await talk.say_as_user("hi")
    assert llm.requests[0]["messages"][0]["content"] == "Original."


@pytest.mark.parametrize(("status", "reply", "delay", "ended_by"), [
    (200, {}, 1.5, "configuration_endpoint_timed_out"),
    (500, {"error": "x"}, 0.0, "configuration_endpoint_error"),
    (200, "not json", 0.0, "configuration_endpoint_invalid_response"),
    (200, {"audio_speed": 7}, 0.0, "configuration_endpoint_invalid_response"),
])
async def test_failures_end_the_conversation(openline: LiveServer, target: Target, status: int,
                                             reply: object, delay: float, ended_by: str) -> None:
    import json

    import websockets

    client = client_for(openline)
    target.config_reply, target.config_status, target.config_delay_s = reply, status, delay
    await client.agents.create(name="broken", configuration_endpoint={
        "url": target.base_url + "/config", "timeout_ms": 500})
    async with websockets.connect(f"{openline.ws_url}/v1/sts/ws", additional_headers={
            "Authorization": f"Bearer {openline.api_key}"}) as ws:
        await ws.send(json.dumps({"type": "config", "agent": "broken"}))
        error = json.loads(await ws.recv())
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await ws.recv()
    assert error["error"]["code"] == ended_by and closed.value.rcvd.code == 1011
    page = await client.conversations.list()
    assert page.conversations[0].ended_by == ended_by


async def test_mid_conversation_controls(openline: LiveServer, llm: ScriptedLLMServer) -> None:
    client = client_for(openline)
    await client.tools.create(name="facts", description="Facts", type="custom_context",
                              execution_mode="sync", context="Facts.")
    await client.agents.create(name="ctl", voice_id="joe", system_prompt="Start prompt.")
    llm.script("One.", "Two.")
    async with talk_to(client, agent="ctl") as talk:
        await talk.socket.send_update_system_prompt(UpdateSystemPromptPayload(
            type="update_system_prompt", system_prompt="New prompt."))
        await talk.socket.send_add_system_message(AddSystemMessagePayload(
            type="add_system_message", system_message="The caller is a VIP."))
        await talk.socket.send_update_tools_subset(UpdateToolsSubsetPayload(
            type="update_tools_subset", tools=["facts"]))
        await talk.say_as_user("hello")
        await talk.socket.send_say(SayPayload(type="say", text="Exactly these words."))
        await talk.until("assistant_finished_speaking")
        await talk.socket.send_update_tools_subset(UpdateToolsSubsetPayload(
            type="update_tools_subset", tools=["ghost"]))
        bad = await talk.until("error")
    first = llm.requests[0]
    assert first["messages"][0]["content"] == "New prompt."
    assert {"role": "system", "content": "The caller is a VIP."} in first["messages"]
    assert [t["function"]["name"] for t in first["tools"]] == ["facts"]
    assert "Exactly these words." in talk.spoken()
    assert bad.error.code == "invalid_tools"
