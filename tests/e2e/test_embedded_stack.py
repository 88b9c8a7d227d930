"""End to end with the real embedded models: speech in over the SDK, speech out, stored."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from phonic import AsyncPhonic, PhonicEnvironment
from phonic.types import AudioChunkPayload, ConfigPayload

from openline.boot.providers import build_providers
from openline.providers.tts.base import TTS
from openline.providers.tts.espeak import EspeakTTS
from openline.providers.tts.piper import PiperTTS
from openline.settings import Settings
from tests.conftest import LiveServer, start_server
from tests.providers.speech_helpers import speak_16k, wer

SENTENCES = {
    "piper": "I would like to book a table for two people tomorrow evening.",
    "espeak": "Can you tell me when the library opens on Saturday?",
}


@pytest.fixture(scope="module")
def embedded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    data = tmp_path_factory.mktemp("embedded")
    providers = build_providers(Settings(data_dir=data))
    server = start_server(f"sqlite+aiosqlite:///{data / 'e2e.db'}", data, providers)
    yield server
    server.stop()


@pytest.fixture(scope="module")
async def voices() -> AsyncIterator[dict[str, tuple[TTS, str]]]:
    async with PiperTTS() as piper, EspeakTTS() as espeak:
        yield {"piper": (piper, "joe"), "espeak": (espeak, "espeak-en-us")}


def _client(server: LiveServer) -> AsyncPhonic:
    return AsyncPhonic(api_key=server.api_key, environment=PhonicEnvironment(
        base=f"{server.url}/v1", production=server.ws_url))


async def _talk(client: AsyncPhonic, agent: str, speech: np.ndarray) -> list[Any]:
    seen: list[Any] = []
    audio = np.concatenate([np.zeros(8000, np.int16), speech, np.zeros(16000, np.int16)])
    async with client.conversations.connect() as socket:
        await socket.send_config(ConfigPayload(type="config", agent=agent,
                                               input_format="pcm_16000",
                                               output_format="pcm_16000",
                                               stream_ahead_of_real_time=True))
        for i in range(0, audio.size, 320):
            chunk = base64.b64encode(audio[i:i + 320].tobytes()).decode()
            await socket.send_audio_chunk(AudioChunkPayload(type="audio_chunk", audio=chunk))
            await asyncio.sleep(0.005)  # 4x real time; endpointing counts frames, not seconds
        async with asyncio.timeout(60):
            async for message in socket:
                seen.append(message)
                if getattr(message, "type", "") == "assistant_finished_speaking":
                    break
    return seen


@pytest.mark.parametrize("family", ["piper", "espeak"])
async def test_real_speech_round_trip(embedded: LiveServer, voices: dict[str, tuple[TTS, str]],
                                      family: str, tmp_path: Path) -> None:
    client = _client(embedded)
    name = f"e2e-{family}"
    await client.agents.create(name=name, voice_id="joe", system_prompt="You are a helpful "
                               "receptionist. Answer in one short sentence.",
                               vad_min_silence_duration_ms=400)
    tts, voice = voices[family]
    speech = np.asarray(await speak_16k(tts, SENTENCES[family], voice), dtype=np.int16)
    seen = await _talk(client, name, speech)
    heard = [m.text for m in seen if getattr(m, "type", "") == "input_text"]
    assert len(heard) == 1 and wer(SENTENCES[family], heard[0]) <= 0.25, heard
    reply_audio = [base64.b64decode(m.audio) for m in seen
                   if getattr(m, "type", "") == "audio_chunk"]
    assert sum(len(a) for a in reply_audio) > 16000  # at least half a second of speech
    conv_id = seen[0].conversation_id
    for _ in range(100):
        conv = (await client.conversations.get(conv_id)).conversation
        if conv.ended_at is not None:
            break
        await asyncio.sleep(0.1)
    assert conv.ended_by == "user"
    assert [i.role for i in conv.items] == ["user", "assistant"]
    assert conv.items[0].live_transcript == heard[0] and conv.items[1].live_transcript
    assert conv.items[1].voice_id == "joe" and conv.items[1].duration_ms > 300
    assert len(conv.analysis.latencies_ms) == 1 and conv.analysis.latencies_ms[0] > 0
    assert conv.live_transcript.startswith(f"User: {heard[0]}")
    async with httpx.AsyncClient() as http:
        wav = await http.get(conv.audio_url.replace("container=wav.gz", "container=wav"))
    assert wav.status_code == 403  # the signature covers the container
    async with httpx.AsyncClient() as http:
        gz = await http.get(conv.audio_url)
    assert gz.status_code == 200 and gz.content[:2] == b"\x1f\x8b"
