"""Assistant plans that change how a Vapi call runs, through the official SDK on a
``vapi.websocket`` call with the scripted providers: ``maxDurationSeconds``,
``endCallPhrases`` / ``endCallMessage``, and ``analysisPlan`` (structured data and success
evaluation by the post-call analysis)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import httpx
import pytest

from openline.providers.testing import FakeTTS, ScriptedLLM, ScriptedReply
from tests.conftest import LiveServer, fake_providers, start_server
from tests.vapi.live.conftest import ServerUrl, sdk

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


# ----- analysisPlan -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def analyst() -> ScriptedLLM:
    """The analysis server's LLM: post-call it answers the summary, then the structured
    data, then the success evaluation (the order of the post-call job's steps)."""
    return ScriptedLLM()


@pytest.fixture(scope="module")
def analysis_server(tmp_path_factory: pytest.TempPathFactory,
                    analyst: ScriptedLLM) -> Iterator[LiveServer]:
    data = tmp_path_factory.mktemp("vapi-analysis")
    live = start_server(f"sqlite+aiosqlite:///{data / 'vapi.db'}", data,
                        fake_providers(analyst), job_poll_s=0.1)
    yield live
    live.stop()


SCHEMA = {"type": "object", "properties": {"city": {"type": "string"},
                                           "guests": {"type": "integer"}},
          "required": ["city", "guests"]}


async def test_the_analysis_plan_fills_the_call_analysis_and_the_report(
        analysis_server: LiveServer, analyst: ScriptedLLM, server_url: ServerUrl,
        dial: Any) -> None:
    server = analysis_server
    analyst.replies = [ScriptedReply("A booking for two in Lisbon."),
                       ScriptedReply('{"city": "Lisbon", "guests": 2}'),
                       ScriptedReply('{"result": true}')]
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {server.api_key}"}) as h:
        r = await h.post(f"{server.url}/assistant", json={
            "name": "booker", "firstMessage": "Booking a table for two in Lisbon.",
            "model": {"provider": "openai", "model": "gpt-4o",
                      "messages": [{"role": "system", "content": "You book tables."}]},
            "server": {"url": f"{server_url.url}/hook"},
            "analysisPlan": {
                "structuredDataPlan": {"enabled": True, "schema": SCHEMA, "messages": [
                    {"role": "system", "content": "Extract per {{schema}}."},
                    {"role": "user", "content": "Call:\n{{transcript}}"}]},
                "successEvaluationPlan": {"rubric": "PassFail"}}})
        assert r.status_code == 201, r.text
        assistant = r.json()
    call = await sdk(server).calls.create(assistant_id=assistant["id"], transport=WS)
    socket = await dial(call.transport.websocketCallUrl)  # type: ignore[union-attr]
    await socket.wait_message("transcript", where=lambda m: m["role"] == "assistant")
    await socket.send_json({"type": "say", "content": "Done, see you there."})
    await socket.wait_message("transcript", where=lambda m: m["transcript"].startswith("Done"))
    await socket.send_json({"type": "end-call"})
    await socket.closed.wait()
    report = (await server_url.wait_for("end-of-call-report", within=30)).message
    assert report["analysis"]["structuredData"] == {"city": "Lisbon", "guests": 2}
    assert report["analysis"]["successEvaluation"] == "true"
    assert report["analysis"]["summary"] == "A booking for two in Lisbon."
    got = await sdk(server).calls.get(call.id)
    assert got.analysis is not None
    assert got.analysis.structured_data == {"city": "Lisbon", "guests": 2}
    assert got.analysis.success_evaluation == "true"
    extract, evaluate = analyst.requests[-2], analyst.requests[-1]
    assert extract.messages[0].content == "Extract per " + json.dumps(SCHEMA) + "."
    assert "Booking a table for two in Lisbon." in extract.messages[1].content
    assert extract.options.json_schema == SCHEMA
    assert "'true' if call passed" in evaluate.messages[0].content
    assert "You book tables." in evaluate.messages[1].content
    assert evaluate.options.json_schema is not None
    assert evaluate.options.json_schema["properties"]["result"] == {"type": "boolean"}
    # Post-call work yields the embedded model to live replies (summary, data, verdict).
    assert [r.options.background for r in analyst.requests[-3:]] == [True, True, True]


@pytest.mark.parametrize(("plan", "field"), [
    ({"successEvaluationPlan": {"rubric": "Stars"}}, "rubric"),
    ({"structuredDataPlan": {"enabled": "yes"}}, "enabled"),
    ({"structuredDataPlan": {"schema": "city"}}, "schema"),
])
async def test_a_refused_analysis_plan_stores_nothing(analysis_server: LiveServer,
                                                     plan: dict[str, Any], field: str) -> None:
    async with httpx.AsyncClient(base_url=analysis_server.url, headers={
            "Authorization": f"Bearer {analysis_server.api_key}"}) as http:
        before = len((await http.get("/assistant")).json())
        r = await http.post("/assistant", json={"analysisPlan": plan})
        assert r.status_code == 400 and field in r.json()["message"], r.text
        call = await http.post("/call", json={"transport": WS,
                                              "assistant": {"analysisPlan": plan}})
        assert call.status_code == 400 and field in call.json()["message"], call.text
        assert len((await http.get("/assistant")).json()) == before
