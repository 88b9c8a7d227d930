"""A ``vapi.websocket`` call created with the official SDK: audio over the socket, client
messages on it, server-URL messages (with their credentials) at a real local server,
tool-calls answered by it, and the end-of-call report from the durable queue."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from openline.providers.testing import FakeSTT, ScriptedLLM, ScriptedReply
from tests.conftest import LiveServer, fake_providers, start_server
from tests.support.databases import fresh_postgres
from tests.vapi.live.conftest import ServerUrl, sdk, tone_pcm16

HMAC_KEY = "hmac-key-for-tools"
QUESTION = "What is the weather in Paris?"


@pytest.fixture
def llm() -> ScriptedLLM:
    return ScriptedLLM([ScriptedReply.call("get_weather", '{"city": "Paris"}'),
                        "It is sunny in Paris."])


@pytest.fixture(params=["sqlite", "postgres"])
def server(request: pytest.FixtureRequest, tmp_path: Path, llm: ScriptedLLM
           ) -> Iterator[LiveServer]:
    """A server per storage backend. PostgreSQL gets a database of its own: the test counts
    on the retry of one server message from the durable queue, which on the session's shared
    database waits behind other tests' leftover webhook retries."""
    providers = fake_providers(llm, FakeSTT([QUESTION, QUESTION]))  # live, then post-call
    with contextlib.ExitStack() as stack:
        url = f"sqlite+aiosqlite:///{tmp_path / 'vapi.db'}" if request.param == "sqlite" \
            else stack.enter_context(fresh_postgres("openline_vapi_ws_"))
        live = start_server(url, tmp_path, providers, job_poll_s=0.1, job_retry_base_s=0.2)
        yield live
        live.stop()


def _assistant(hook: ServerUrl) -> dict[str, Any]:
    return {
        "firstMessage": "Hello {{name}}, how can I help?",
        "model": {"provider": "openai", "model": "gpt-4o", "messages": [
            {"role": "system", "content": "You help {{name}} with the weather."}],
            "tools": [{"type": "function", "function": {
                "name": "get_weather", "description": "Weather in a city",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                               "required": ["city"]}},
                "server": {"url": f"{hook.url}/tools", "credentialId": "tools-hmac"}}]},
        "voice": {"provider": "vapi", "voiceId": "joe"},
        "server": {"url": f"{hook.url}/events", "secret": "s3cret"},
        "credentials": [{"provider": "webhook", "name": "tools-hmac", "authenticationPlan": {
            "type": "hmac", "secretKey": HMAC_KEY, "algorithm": "sha256",
            "signatureHeader": "x-signature", "timestampHeader": "x-timestamp"}}],
        "serverMessages": ["status-update", "speech-update", "transcript",
                           "conversation-update", "tool-calls", "end-of-call-report"],
    }


async def test_a_websocket_call_runs_tools_through_the_server_url(
        server: LiveServer, server_url: ServerUrl, llm: ScriptedLLM, dial: Any) -> None:
    server_url.answers["tool-calls"] = lambda m: {"results": [{
        "toolCallId": m["toolCallList"][0]["id"], "name": "get_weather",
        "result": "Sunny, 21 degrees"}]}
    server_url.fail_next["status-update"] = 1  # the first event is retried from the queue
    call = await sdk(server).calls.create(
        transport={"provider": "vapi.websocket",
                   "audioFormat": {"format": "pcm_s16le", "container": "raw",
                                   "sampleRate": 16000}},
        assistant=_assistant(server_url),
        assistant_overrides={"variableValues": {"name": "Ada"}})
    assert call.type == "vapi.websocketCall" and call.status == "queued"
    url = call.transport.websocketCallUrl  # type: ignore[union-attr]  # an extra key
    assert url.startswith("ws://") and call.id in url
    assert call.monitor.control_url.endswith("/control/" + url.rsplit("/", 1)[1])  # type: ignore[union-attr]

    socket = await dial(url)
    await socket.wait_audio(16000)  # the greeting (half a second), as PCM16 16 kHz
    # The caller speaks once the greeting is over: this test is about the tool path, not
    # about talking over the assistant (tests/voice covers that).
    await socket.wait_message("speech-update", where=lambda m: m["role"] == "assistant"
                              and m["status"] == "stopped")
    await socket.silence(300)
    await socket.send_audio(tone_pcm16(600))
    await socket.silence(1500)
    tool_call = await server_url.wait_for("tool-calls")
    await socket.wait_message("transcript", where=lambda m: m["role"] == "assistant"
                              and "sunny" in m["transcript"])
    await socket.send_json({"type": "end-call"})
    await socket.closed.wait()

    # The tool: HMAC-signed, OpenAI-shaped call, its result given to the model.
    assert tool_call.path == "/tools"
    fn = tool_call.message["toolCallList"][0]["function"]
    assert fn["name"] == "get_weather" and json.loads(fn["arguments"]) == {"city": "Paris"}
    signed = f"{tool_call.headers['x-timestamp']}.{tool_call.raw.decode()}".encode()
    assert tool_call.headers["x-signature"] == hmac.new(
        HMAC_KEY.encode(), signed, hashlib.sha256).hexdigest()
    tool_results = [m for m in llm.requests[1].messages if m.role == "tool"]
    assert tool_results and tool_results[0].content == "Sunny, 21 degrees"
    assert "Ada" in llm.requests[0].messages[0].content  # variableValues in the prompt

    # Events at the assistant's server, with its secret; the first one was retried.
    report = await server_url.wait_for("end-of-call-report", within=20)
    events = [r for r in server_url.received if r.path == "/events"]
    assert all(r.headers["x-vapi-secret"] == "s3cret" for r in events)
    statuses = [r.message["status"] for r in server_url.of("status-update")]
    assert statuses.count("in-progress") == 2 and statuses[-1] == "ended"  # retried once
    ended = server_url.of("status-update")[-1].message
    assert ended["endedReason"] == "customer-ended-call" and ended["call"]["id"] == call.id
    user_lines = [r.message["transcript"] for r in server_url.of("transcript")
                  if r.message["role"] == "user"]
    assert user_lines == [QUESTION]
    speech = [(r.message["role"], r.message["status"]) for r in server_url.of("speech-update")]
    assert ("user", "started") in speech and ("assistant", "stopped") in speech
    history = server_url.of("conversation-update")[-1].message["messages"]
    assert [m["role"] for m in history if m["role"] in ("user", "bot")][:3] == [
        "bot", "user", "bot"]
    assert any(m["role"] == "tool_call_result" and m["result"] == "Sunny, 21 degrees"
               for m in history)

    artifact = report.message["artifact"]
    assert report.message["endedReason"] == "customer-ended-call"
    assert "AI: Hello Ada, how can I help?" in artifact["transcript"]
    assert f"User: {QUESTION}" in artifact["transcript"]
    assert artifact["recordingUrl"].startswith(server.url)
    assert artifact["variableValues"] == {"name": "Ada"}
    assert report.message["analysis"]["summary"]

    if server.database_url.startswith("sqlite"):  # credentials never at rest in the clear
        import sqlite3

        with sqlite3.connect(str(server.data_dir / "vapi.db")) as raw:
            [(stored,)] = raw.execute("SELECT server FROM vapi_calls").fetchall()
            jobs = raw.execute("SELECT kind, payload FROM jobs").fetchall()
            docs = " ".join(d for (d,) in raw.execute("SELECT doc FROM vapi_resources"))
        assert stored.startswith("sealed:v1:") and "s3cret" not in stored
        assert "vapi.server_message" in [kind for kind, _ in jobs]  # the retry, the report
        payloads = " ".join(payload for _, payload in jobs)
        assert all(secret not in payloads + docs for secret in ("s3cret", HMAC_KEY))

    # The client heard the same conversation as messages on its socket.
    assert socket.of("status-update")[0]["status"] == "in-progress"
    assert any(m["role"] == "user" for m in socket.of("transcript"))
