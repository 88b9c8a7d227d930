"""Assistant plans that change how a Vapi call runs, through the official SDK on a
``vapi.websocket`` call with the scripted providers: ``maxDurationSeconds``,
``endCallPhrases`` / ``endCallMessage``, and ``analysisPlan`` (structured data and success
evaluation by the post-call analysis)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import httpx
import pytest

from openline.providers.testing import FakeTTS, ScriptedLLM, ScriptedReply
from tests.conftest import LiveServer, fake_providers, start_server
from tests.vapi.live.conftest import sdk

WS = {"provider": "vapi.websocket",
      "audioFormat": {"format": "pcm_s16le", "container": "raw", "sampleRate": 16000}}
WAITS = {"firstMessage": "", "firstMessageMode": "assistant-waits-for-user"}


@pytest.fixture(scope="module")
def tts() -> FakeTTS:
    return FakeTTS(ms_per_char=20)


@pytest.fixture(scope="module")
def llm() -> ScriptedLLM:
    return ScriptedLLM()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, tts: FakeTTS,
           llm: ScriptedLLM) -> Iterator[LiveServer]:
    providers = fake_providers(llm)
    providers.tts = tts
    data = tmp_path_factory.mktemp("vapi-plans")
    live = start_server(f"sqlite+aiosqlite:///{data / 'vapi.db'}", data, providers,
                        job_poll_s=0.1)
    yield live
    live.stop()


async def _ended(server: LiveServer, call_id: str, within: float = 30) -> Any:
    async with asyncio.timeout(within):
        while True:
            call = await sdk(server).calls.get(call_id)
            if call.status == "ended":
                return call
            await asyncio.sleep(0.1)


def _heard(socket: Any) -> list[str]:
    return [m["transcript"] for m in socket.of("transcript") if m["role"] == "assistant"]


async def test_max_duration_ends_the_call(server: LiveServer, dial: Any) -> None:
    call = await sdk(server).calls.create(transport=WS, assistant={
        **WAITS, "maxDurationSeconds": 10})
    socket = await dial(call.transport.websocketCallUrl)  # type: ignore[union-attr]
    await socket.wait_message("status-update", where=lambda m: m["status"] == "in-progress")
    connected = datetime.now().astimezone()
    await asyncio.wait_for(socket.closed.wait(), 40)  # nobody hung up: the limit did
    ended = socket.of("status-update")[-1]
    assert ended["status"] == "ended" and ended["endedReason"] == "exceeded-max-duration"
    done = await _ended(server, call.id)
    assert done.ended_reason == "exceeded-max-duration"
    assert done.ended_at is not None and (done.ended_at - connected).total_seconds() >= 9.5


async def test_a_refused_max_duration_starts_no_call(server: LiveServer) -> None:
    async with httpx.AsyncClient(base_url=server.url, headers={
            "Authorization": f"Bearer {server.api_key}"}) as http:
        before = len((await http.get("/call")).json())
        r = await http.post("/call", json={"transport": WS, "assistant": {
            "maxDurationSeconds": 5}})
        assert r.status_code == 400 and "maxDurationSeconds" in r.json()["message"]
        assert len((await http.get("/call")).json()) == before


async def test_an_end_call_phrase_ends_the_call_after_the_end_message(
        server: LiveServer, tts: FakeTTS, dial: Any) -> None:
    call = await sdk(server).calls.create(transport=WS, assistant={
        "firstMessage": "Thanks for calling, talk to you\nlater!",
        "endCallPhrases": ["Talk to you LATER"], "endCallMessage": "Goodbye from the desk."})
    socket = await dial(call.transport.websocketCallUrl)  # type: ignore[union-attr]
    await asyncio.wait_for(socket.closed.wait(), 20)
    assert _heard(socket) == ["Thanks for calling, talk to you\nlater!",
                              "Goodbye from the desk."]
    assert socket.of("status-update")[-1]["endedReason"] == "assistant-said-end-call-phrase"
    done = await _ended(server, call.id)
    assert done.ended_reason == "assistant-said-end-call-phrase"
    said = [text for text, _, _ in tts.requests]
    assert said.index("Goodbye from the desk.") > said.index(
        "Thanks for calling, talk to you\nlater!")


async def test_an_end_call_phrase_matches_whole_words_only(server: LiveServer,
                                                           dial: Any) -> None:
    call = await sdk(server).calls.create(transport=WS, assistant={
        "firstMessage": "Hello there, this is no goodbye.", "endCallPhrases": ["bye", "no good"]})
    socket = await dial(call.transport.websocketCallUrl)  # type: ignore[union-attr]
    await socket.wait_message("transcript", where=lambda m: m["role"] == "assistant")
    await socket.send_json({"type": "say", "content": "Still here."})
    await socket.wait_message("transcript", where=lambda m: m["transcript"] == "Still here.")
    assert not socket.closed.is_set()
    assert (await sdk(server).calls.get(call.id)).status == "in-progress"
    await socket.send_json({"type": "say", "content": "Bye.", "endCallAfterSpoken": False})
    await asyncio.wait_for(socket.closed.wait(), 20)  # "Bye." is the phrase "bye"
    assert (await _ended(server, call.id)).ended_reason == "assistant-said-end-call-phrase"


async def test_the_end_call_tool_says_the_end_message_first(server: LiveServer, llm: ScriptedLLM,
                                                            dial: Any) -> None:
    llm.replies = [ScriptedReply.call("natural_conversation_ending")]
    call = await sdk(server).calls.create(transport=WS, assistant={
        **WAITS, "model": {"provider": "openai", "model": "gpt-4o",
                           "tools": [{"type": "endCall"}]},
        "endCallMessage": "Thank you, goodbye."})
    socket = await dial(call.transport.websocketCallUrl)  # type: ignore[union-attr]
    await socket.wait_message("status-update", where=lambda m: m["status"] == "in-progress")
    await socket.send_json({"type": "add-message", "triggerResponseEnabled": True,
                            "message": {"role": "user", "content": "That is all, thanks."}})
    await asyncio.wait_for(socket.closed.wait(), 20)
    assert _heard(socket) == ["Thank you, goodbye."]
    assert (await _ended(server, call.id)).ended_reason == "assistant-ended-call"
