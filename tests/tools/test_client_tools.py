"""custom_websocket tools through the SDK, transfers, keypad, and barge-in during a call."""

from __future__ import annotations

import asyncio
import base64

import numpy as np
from phonic.types import AudioChunkPayload, ToolCallOutputPayload

from tests.conftest import LiveServer
from tests.support.llm_server import Reply, ScriptedLLMServer
from tests.tools.conftest import client_for
from tests.tools.session import stored, talk_to

INLINE = {"type": "custom_websocket", "tool_call_output_timeout_ms": 1000,
          "tool_schema": {"type": "function", "function": {
              "name": "check_stock", "description": "Check stock",
              "parameters": {"type": "object", "required": ["sku"],
                             "properties": {"sku": {"type": "string"}}}}}}


async def test_inline_websocket_tool_round_trip(openline: LiveServer,
                                                llm: ScriptedLLMServer) -> None:
    llm.script(Reply(tool_calls=[("check_stock", {"sku": "X9"})]), "We have three.")
    client = client_for(openline)
    async with talk_to(client, tools=[INLINE]) as talk:
        await talk.socket.send_generate_reply(_reply("Do you have X9?"))
        call = await talk.until("tool_call")
        assert call.tool_name == "check_stock" and call.parameters == {"sku": "X9"}
        await talk.socket.send_tool_call_output(ToolCallOutputPayload(
            type="tool_call_output", tool_call_id=call.tool_call_id, output={"count": 3}))
        processed = await talk.until("tool_call_output_processed")
        await talk.until("assistant_finished_speaking")
    assert processed.output == {"count": 3} and processed.endpoint_url is None
    assert '"count": 3' in next(m for m in llm.requests[1]["messages"] if m["role"] == "tool")[
        "content"]
    conv = await stored(openline, talk.conversation_id)
    assert conv["items"][-1]["tool_calls"][0]["status"] == "success"


async def test_websocket_tool_timeout(openline: LiveServer, llm: ScriptedLLMServer) -> None:
    llm.script(Reply(tool_calls=[("check_stock", {"sku": "Y"})]), "It is taking too long.")
    client = client_for(openline)
    async with talk_to(client, tools=[INLINE]) as talk:
        await talk.socket.send_generate_reply(_reply("stock of Y?"))
        await talk.until("tool_call")
        processed = await talk.until("tool_call_output_processed")  # no output sent
        await talk.until("assistant_finished_speaking")
        late = await _send_output(talk, "call_0_check_stock")
    assert processed.timed_out is True
    assert late.error.code == "unknown_tool_call"
    conv = await stored(openline, talk.conversation_id)
    record = conv["items"][-1]["tool_calls"][0]
    assert record["status"] == "timeout" and record["timed_out"] is True


async def test_barge_in_cancels_a_pending_client_tool(openline: LiveServer,
                                                      llm: ScriptedLLMServer) -> None:
    slow = {**INLINE, "tool_call_output_timeout_ms": 10000}
    llm.script(Reply("Let me check that for you, one moment please.",
                     tool_calls=[("check_stock", {"sku": "Z"})]), "Sure, go ahead.")
    client = client_for(openline)
    async with talk_to(client, tools=[slow], stream_ahead_of_real_time=False) as talk:
        await talk.socket.send_generate_reply(_reply("stock of Z?"))
        await talk.until("tool_call")
        loud = (np.sin(np.arange(16000 * 0.6) / 16000 * 2 * np.pi * 300) * 9000).astype(np.int16)
        audio = np.concatenate([loud, np.zeros(16000, np.int16)])
        for i in range(0, audio.size, 320):
            await talk.socket.send_audio_chunk(AudioChunkPayload(
                type="audio_chunk", audio=base64.b64encode(audio[i:i + 320].tobytes()).decode()))
            await asyncio.sleep(0.02)
        interrupted = await talk.until("tool_call_interrupted")
    assert interrupted.tool_name == "check_stock"
    conv = await stored(openline, talk.conversation_id)
    statuses = [c["status"] for i in conv["items"] for c in i["tool_calls"]]
    assert "cancelled" in statuses


async def test_transfer_to_agent_keeps_history(openline: LiveServer,
                                               llm: ScriptedLLMServer) -> None:
    client = client_for(openline)
    await client.agents.create(name="sales", system_prompt="You are Sales. Sell things.",
                               voice_id="ava")
    await client.tools.create(name="transfer", description="Transfer the caller",
                              type="built_in_transfer_to_agent", execution_mode="sync",
                              agents_to_transfer_to=["sales"])
    await client.agents.create(name="front", tools=["transfer"], voice_id="joe",
                               system_prompt="You are the front desk.")
    llm.script(Reply("Transferring you now.", tool_calls=[("transfer", {"agent": "sales"})]),
               "Hi, this is sales!")
    async with talk_to(client, agent="front") as talk:
        await talk.say_as_user("I want to buy")
        await talk.until("assistant_finished_speaking")
    assert llm.requests[1]["messages"][0]["content"] == "You are Sales. Sell things."
    assert any(m.get("content") == "I want to buy" for m in llm.requests[1]["messages"])
    conv = await stored(openline, talk.conversation_id)
    assert conv["metadata"]["transfers"][0]["agent"]["name"] == "sales"
    assert conv["items"][-1]["voice_id"] == "ava"
    assert conv["items"][-1]["live_transcript"] == "Hi, this is sales!"


async def test_phone_transfer_is_unavailable_and_keypad_sends_dtmf(
        openline: LiveServer, llm: ScriptedLLMServer) -> None:
    client = client_for(openline)
    await client.tools.create(name="to_billing", description="Transfer to billing",
                              type="built_in_transfer_to_phone_number", execution_mode="sync",
                              phone_number="+15550007777")
    await client.agents.create(name="desk", tools=["to_billing", "keypad_input"], voice_id="joe")
    llm.script(Reply(tool_calls=[("to_billing", {})]), "I cannot transfer you, sorry.",
               Reply(tool_calls=[("keypad_input", {"digits": "12#"})]), "Pressed.")
    async with talk_to(client, agent="desk") as talk:
        await talk.say_as_user("billing please")
        await talk.say_as_user("press one two hash")
    tool_msg = next(m for m in llm.requests[1]["messages"] if m["role"] == "tool")["content"]
    assert "unavailable" in tool_msg
    assert [m.digits for m in talk.of("dtmf")] == ["12#"]


async def _send_output(talk: object, call_id: str) -> object:
    socket = talk.socket  # type: ignore[attr-defined]
    await socket.send_tool_call_output(ToolCallOutputPayload(
        type="tool_call_output", tool_call_id=call_id, output={"late": True}))
    return await talk.until("error")  # type: ignore[attr-defined]


def _reply(text: str) -> object:
    from phonic.types import GenerateReplyPayload

    return GenerateReplyPayload(type="generate_reply", user_message=text)
