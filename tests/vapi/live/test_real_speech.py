"""Real speech over a ``vapi.websocket`` call: espeak-ng's caller sentence as PCM16 16 kHz
frames in real time, recognised by the embedded stack (Silero VAD, faster-whisper); the
model's tool call goes to a real local server as ``tool-calls``, and its result comes
back spoken (Piper), recognised again here to prove it was said."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from typing import Any

import numpy as np
import pytest

from openline.boot.providers import build_providers
from openline.providers.llm.base import (
    ChatMessage,
    Finish,
    GenerationOptions,
    HookEvent,
    TextDelta,
    ToolCall,
    ToolCallEvent,
    ToolSpec,
)
from openline.providers.testing import LLMRequest, ScriptedLLM
from openline.providers.tts.espeak import EspeakTTS
from openline.settings import Settings
from openline.voice.session import Providers
from tests.conftest import LiveServer, start_server
from tests.providers.speech_helpers import speak_16k, wer
from tests.vapi.live.conftest import ServerUrl, sdk

SENTENCE = "Can you tell me the weather in Paris tomorrow?"
FORECAST = "sunny and warm"


class ToolThenResultLLM(ScriptedLLM):
    """A model that calls ``get_weather`` for the caller's turn and, given the tool's
    result, says it: what is spoken comes from the server's reply, not from a script."""

    async def _stream(self, messages: list[ChatMessage], tools: list[ToolSpec],
                      options: GenerationOptions) -> AsyncIterator[HookEvent]:
        self.requests.append(LLMRequest(list(messages), list(tools), options))
        last = messages[-1]
        if last.role == "tool":
            for word in f"The forecast for Paris is {last.content}.".split():
                yield TextDelta(word + " ")
            yield Finish("stop")
            return
        yield ToolCallEvent(ToolCall("call_weather", "get_weather", '{"city": "Paris"}'))
        yield Finish("tool_calls")


@pytest.fixture(scope="module")
def embedded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveServer, Providers]]:
    data = tmp_path_factory.mktemp("vapi-speech")
    providers = replace(build_providers(Settings(data_dir=data)), llm=ToolThenResultLLM())
    server = start_server(f"sqlite+aiosqlite:///{data / 'speech.db'}", data, providers,
                          job_poll_s=0.1)
    yield server, providers
    server.stop()


async def test_a_tool_result_from_the_server_is_spoken(
        embedded: tuple[LiveServer, Providers], server_url: ServerUrl, dial: Any) -> None:
    server, providers = embedded
    server_url.answers["tool-calls"] = lambda m: {"results": [{
        "toolCallId": m["toolCallList"][0]["id"], "result": FORECAST}]}
    async with EspeakTTS() as espeak:
        speech = await speak_16k(espeak, SENTENCE, "espeak-en-us")
    call = await sdk(server).calls.create(
        transport={"provider": "vapi.websocket",
                   "audioFormat": {"format": "pcm_s16le", "sampleRate": 16000}},
        assistant={"firstMessageMode": "assistant-waits-for-user",
                   "voice": {"provider": "vapi", "voiceId": "joe"},
                   "startSpeakingPlan": {"waitSeconds": 0.4},
                   "model": {"provider": "openai", "model": "gpt-4o", "tools": [{
                       "type": "function", "function": {
                           "name": "get_weather", "parameters": {
                               "type": "object", "properties": {"city": {"type": "string"}}}}}]},
                   "server": {"url": f"{server_url.url}/hook"},
                   "serverMessages": ["tool-calls", "transcript", "end-of-call-report"]})
    socket = await dial(call.transport.websocketCallUrl)  # type: ignore[union-attr]
    await socket.wait_message("status-update")
    # the assistant waits for the caller: all it says from here on is the reply (taken
    # once the tool call has come, the reply's first words could already be in)
    start = len(socket.audio)
    await socket.silence(300)
    await socket.send_audio(np.asarray(speech, dtype="<i2").tobytes())
    await socket.silence(1200)
    tool_call = await server_url.wait_for("tool-calls", within=30)
    await socket.wait_message("speech-update", within=30, where=lambda m: (
        m["role"], m["status"]) == ("assistant", "stopped"))
    reply = np.frombuffer(bytes(socket.audio[start:]), dtype="<i2")
    await socket.send_json({"type": "end-call"})
    await socket.closed.wait()

    fn = tool_call.message["toolCallList"][0]["function"]
    assert fn["name"] == "get_weather"
    heard = [r.message["transcript"] for r in server_url.of("transcript")
             if r.message["role"] == "user"]
    assert heard and wer(SENTENCE, heard[0]) <= 0.3, heard
    assert np.sqrt(np.mean(reply.astype(np.float64) ** 2)) > 300  # speech, not silence
    spoken = (await providers.stt.transcribe(reply.astype(np.float32) / 32768.0)).text
    assert "sunny" in spoken.lower() and "warm" in spoken.lower(), spoken
    said = [r.message["transcript"] for r in server_url.of("transcript")
            if r.message["role"] == "assistant"]
    assert said == [f"The forecast for Paris is {FORECAST}."]
    report = await server_url.wait_for("end-of-call-report", within=60)
    assert f"AI: The forecast for Paris is {FORECAST}." in report.message["artifact"]["transcript"]
