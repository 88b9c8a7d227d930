"""A scripted caller and an event log around the real engine with fake providers."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from openline.audio.codecs import WIRE_FORMATS
from openline.providers.testing import EnergyVAD, FakeSTT, FakeTTS, ScriptedLLM, ScriptedReply
from openline.voice import events as ev
from openline.voice.config import SessionConfig
from openline.voice.session import Conversation, ItemRecord, Providers
from openline.voice.turns import TurnSettings

RATE = 16_000


@dataclass
class Log:
    events: list[ev.EngineEvent] = field(default_factory=list)
    items: list[ItemRecord] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def send(self, event: ev.EngineEvent) -> None:
        self.events.append(event)
        self.changed.set()

    async def item(self, record: ItemRecord) -> None:
        self.items.append(record)

    def kinds(self) -> list[str]:
        """Event class names, with consecutive AudioOut collapsed to one."""
        out: list[str] = []
        for e in self.events:
            name = type(e).__name__
            if not (name == "AudioOut" and out and out[-1] == "AudioOut"):
                out.append(name)
        return out

    def of(self, cls: type[Any]) -> list[Any]:
        return [e for e in self.events if isinstance(e, cls)]

    async def wait_for(self, cls: type[Any], count: int = 1, within: float = 10.0) -> None:
        async with asyncio.timeout(within):
            while len(self.of(cls)) < count:
                self.changed.clear()
                await self.changed.wait()


def tone(ms: int, freq: float = 300.0) -> np.ndarray:
    t = np.arange(int(RATE * ms / 1000)) / RATE
    return (np.sin(2 * np.pi * freq * t) * 9000).astype(np.int16)


def silence(ms: int) -> np.ndarray:
    return np.zeros(int(RATE * ms / 1000), dtype=np.int16)


async def play(conv: Conversation, samples: np.ndarray, realtime: bool = False) -> None:
    """Push 20 ms chunks of pcm_16000 (sleeping 20 ms each when ``realtime``)."""
    step = RATE // 50
    for i in range(0, samples.size, step):
        conv.push_audio(samples[i:i + step].tobytes())
        await asyncio.sleep(0.02 if realtime else 0)


def make(
    *,
    replies: list[ScriptedReply | str] | None = None,
    texts: list[str] | None = None,
    **cfg: Any,
) -> tuple[Conversation, Log, Providers]:
    providers = Providers(EnergyVAD(), FakeSTT(texts or [], default="hello"),
                          ScriptedLLM(replies or []), FakeTTS(ms_per_char=20))
    defaults: dict[str, Any] = dict(
        conversation_id="conv_test", input_format=WIRE_FORMATS["pcm_16000"],
        output_format=WIRE_FORMATS["pcm_16000"], stream_ahead_of_real_time=True,
        turn=TurnSettings(min_silence_ms=300, prebuffer_ms=200), voice_id="joe",
    )
    log = Log()
    conv = Conversation(SessionConfig(**{**defaults, **cfg}), providers, log.send, log)
    return conv, log, providers
