"""A fresh live server with scripted providers per test, and SDK helpers for the socket."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from phonic import AsyncPhonic, Phonic, PhonicEnvironment
from phonic.types import AudioChunkPayload, ConfigPayload

from openline.providers.testing import FakeSTT, ScriptedLLM, ScriptedReply
from tests.conftest import LiveServer, fake_providers, start_server

RATE = 16_000
ServerFactory = Callable[..., LiveServer]


@pytest.fixture
def make_server(tmp_path: Path) -> Iterator[ServerFactory]:
    servers: list[LiveServer] = []

    def make(replies: list[ScriptedReply | str] | None = None, texts: list[str] | None = None,
             **llm: Any) -> LiveServer:
        providers = fake_providers(ScriptedLLM(replies or [], **llm),
                                   FakeSTT(texts or [], default="hello"))
        server = start_server(f"sqlite+aiosqlite:///{tmp_path / 'ws.db'}", tmp_path, providers)
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop()


def sdk(server: LiveServer) -> AsyncPhonic:
    return AsyncPhonic(api_key=server.api_key, environment=PhonicEnvironment(
        base=f"{server.url}/v1", production=server.ws_url))


def sync_sdk(server: LiveServer) -> Phonic:
    return Phonic(api_key=server.api_key, environment=PhonicEnvironment(
        base=f"{server.url}/v1", production=server.ws_url))


def tone(ms: int, rate: int = RATE) -> np.ndarray:
    t = np.arange(int(rate * ms / 1000)) / rate
    return (np.sin(2 * np.pi * 300 * t) * 9000).astype(np.int16)


def silence(ms: int, rate: int = RATE) -> np.ndarray:
    return np.zeros(int(rate * ms / 1000), dtype=np.int16)


async def send_pcm(socket: Any, samples: np.ndarray, rate: int = RATE,
                   realtime: bool = False) -> None:
    step = rate // 50  # 20 ms chunks
    for i in range(0, samples.size, step):
        chunk = base64.b64encode(samples[i:i + step].tobytes()).decode()
        await socket.send_audio_chunk(AudioChunkPayload(type="audio_chunk", audio=chunk))
        await asyncio.sleep(0.02 if realtime else 0.001)


async def collect(socket: Any, until: str, seen: list[Any], within: float = 10.0) -> None:
    """Read messages into ``seen`` until one of type ``until`` arrives."""
    async with asyncio.timeout(within):
        async for message in socket:
            seen.append(message)
            if getattr(message, "type", None) == until:
                return


def config(**kw: Any) -> ConfigPayload:
    return ConfigPayload(**{"type": "config", "input_format": "pcm_16000",
                            "output_format": "pcm_16000", **kw})


async def types_of(messages: list[Any]) -> list[str]:
    out: list[str] = []
    for m in messages:
        t = getattr(m, "type", None)
        if not (t == "audio_chunk" and out and out[-1] == "audio_chunk"):
            out.append(str(t))
    return out


__all__ = ["AsyncIterator", "collect", "config", "make_server", "sdk", "send_pcm", "silence",
           "sync_sdk", "tone", "types_of"]
