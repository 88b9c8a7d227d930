"""A scripted caller, an event log and test sinks around the real engine with fake providers.

Engine tests are plain functions decorated with ``@virtual``: they run on a
``VirtualTimeLoop`` (``openline.voice.clock``), so ``play(..., realtime=True)`` and every
engine timer take no real time and always happen in the same order.
"""

from __future__ import annotations

import asyncio
import functools
from collections import deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

import numpy as np

from openline.audio.codecs import WIRE_FORMATS
from openline.providers.testing import EnergyVAD, FakeSTT, FakeTTS, ScriptedLLM, ScriptedReply
from openline.voice import events as ev
from openline.voice.clock import Clock, VirtualClock, run_virtual
from openline.voice.config import AgentDirectory, AgentSwitch, SessionConfig
from openline.voice.io import AudioSink, BaseAudioSink, SpeechFrame
from openline.voice.session import Conversation, ItemRecord, Providers
from openline.voice.tools import RuntimeTool, WebhookCaller, WebhookResult
from openline.voice.turns import TurnSettings

RATE = 16_000
T = TypeVar("T")


def virtual(test: Callable[..., Coroutine[Any, Any, T]]) -> Callable[..., T]:
    """Run an async test on virtual time (a plain function to pytest)."""

    @functools.wraps(test)
    def run(*args: Any, **kwargs: Any) -> T:
        return run_virtual(test(*args, **kwargs))

    return run


@dataclass
class Log:
    """The engine's observer and send: every event with the (virtual) time it was sent."""

    clock: Clock = field(default_factory=VirtualClock)
    events: list[ev.EngineEvent] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    items: list[ItemRecord] = field(default_factory=list)
    tool_results: list[Any] = field(default_factory=list)
    transfers: list[tuple[str, str]] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def send(self, event: ev.EngineEvent) -> None:
        self.events.append(event)
        self.times.append(self.clock.monotonic())
        self.changed.set()

    async def item(self, record: ItemRecord) -> None:
        self.items.append(record)

    async def tool_result(self, record: Any) -> None:
        self.tool_results.append(record)

    async def transferred(self, agent_id: str, agent_name: str) -> None:
        self.transfers.append((agent_id, agent_name))

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

    def time_of(self, cls: type[Any], index: int = 0) -> float:
        return [t for t, e in zip(self.times, self.events, strict=True)
                if isinstance(e, cls)][index]

    def spoken(self) -> str:
        return " ".join(a.text for a in self.of(ev.AudioOut) if a.text)

    async def wait_for(self, cls: type[Any], count: int = 1, within: float = 30.0) -> None:
        async with asyncio.timeout(within):
            while len(self.of(cls)) < count:
                self.changed.clear()
                await self.changed.wait()


def tone(ms: int, freq: float = 300.0) -> np.ndarray:
    t = np.arange(int(RATE * ms / 1000)) / RATE
    return (np.sin(2 * np.pi * freq * t) * 9000).astype(np.int16)


def silence(ms: int) -> np.ndarray:
    return np.zeros(int(RATE * ms / 1000), dtype=np.int16)


async def play(conv: Conversation, samples: np.ndarray, realtime: bool = True) -> None:
    """Push 20 ms chunks of pcm_16000, 20 ms apart (virtual time) when ``realtime``."""
    step = RATE // 50
    for i in range(0, samples.size, step):
        conv.push_audio(samples[i:i + step].tobytes())
        await asyncio.sleep(0.02 if realtime else 0)


async def utter(conv: Conversation, speech_ms: int = 500, silence_ms: int = 500) -> None:
    """One user turn: a tone, then the silence that ends it."""
    await play(conv, tone(speech_ms))
    await play(conv, silence(silence_ms))


async def end_of_turn_ms(conv: Conversation, log: Log, *, speech_ms: int = 600,
                         pause_ms: int = 2500,
                         before: Callable[[], Coroutine[Any, Any, None]] | None = None
                         ) -> float:
    """Run ``conv`` for one caller turn (``before`` first: e.g. wait for the welcome): a
    tone, then ``pause_ms`` of silence; ms from its last voiced chunk to the turn's end."""
    task = asyncio.create_task(conv.run())
    if before is not None:
        await before()
    await play(conv, tone(speech_ms))
    spoken_at = conv.clock.monotonic()
    await play(conv, silence(pause_ms))
    conv.end("user")
    await task
    assert len(log.of(ev.UserFinishedSpeaking)) == 1
    return (log.time_of(ev.UserFinishedSpeaking) - spoken_at) * 1000


def make(
    *,
    replies: list[ScriptedReply | str] | None = None,
    texts: list[str] | None = None,
    providers: Providers | None = None,
    sink: AudioSink | None = None,
    webhooks: WebhookCaller | None = None,
    agents: AgentDirectory | None = None,
    cfg: SessionConfig | None = None,
    on_event: Callable[[Conversation, ev.EngineEvent], None] | None = None,
    **settings: Any,
) -> tuple[Conversation, Log, Providers]:
    """A conversation on the virtual clock (call inside a ``@virtual`` test).

    ``on_event`` sees each event as the transport receives it (a scripted peer reacting)."""
    providers = providers or Providers(EnergyVAD(), FakeSTT(texts or [], default="hello"),
                                       ScriptedLLM(replies or []), FakeTTS(ms_per_char=20))
    defaults: dict[str, Any] = dict(
        conversation_id="conv_test", input_format=WIRE_FORMATS["pcm_16000"],
        output_format=WIRE_FORMATS["pcm_16000"], stream_ahead_of_real_time=True,
        turn=TurnSettings(min_silence_ms=300, prebuffer_ms=200), voice_id="joe",
    )
    clock = VirtualClock()
    log = Log(clock)
    holder: list[Conversation] = []

    async def send(event: ev.EngineEvent) -> None:
        await log.send(event)
        if on_event is not None:
            on_event(holder[0], event)

    conv = Conversation(cfg or SessionConfig(**{**defaults, **settings}), providers, send,
                        log, webhooks=webhooks, agents=agents, sink=sink, clock=clock)
    holder.append(conv)
    return conv, log, providers


class MarkSink(BaseAudioSink):
    """A far end that buffers, like Twilio Media Streams with marks.

    Frames are taken at once (sent ahead, no pacing). The far end plays its buffer in real
    time and acknowledges each frame (a mark) ``ack_delay_s`` after it has played it. On
    ``clear_buffer`` it drops what it has not played; the reported position is what had been
    acknowledged by then, and the report itself arrives ``ack_delay_s`` later (the marks
    come back). ``sent`` and ``acked`` keep the words of each segment's frames.
    """

    TICK_S = 0.005

    def __init__(self, clock: Clock, sample_rate: int = RATE, ack_delay_s: float = 0.3) -> None:
        super().__init__(sample_rate)
        self.clock, self.ack_delay_s = clock, ack_delay_s
        self.sent: list[list[SpeechFrame]] = []  # per segment
        self.acked: list[list[str]] = []  # per segment: the words of acknowledged frames
        self.clears = 0
        self._buffer: deque[SpeechFrame] = deque()
        self._playing_until: float | None = None
        self._acks: deque[tuple[float, int, str]] = deque()  # (due, samples, words)
        self._acked_samples = 0
        self._flushed = False
        self._report_at: tuple[float, int] | None = None

    async def capture_frame(self, frame: SpeechFrame) -> None:
        if not self.segment_open:
            self.start_segment()
            self._acked_samples, self._flushed = 0, False
            self.sent.append([])
            self.acked.append([])
        self.captured += frame.samples.size
        self.sent[-1].append(frame)
        self._buffer.append(frame)

    def flush(self) -> None:
        self._flushed = True

    def clear_buffer(self) -> None:
        self.clears += 1
        if self.segment_open and self._report_at is None:
            self._report_at = (self.clock.monotonic() + self.ack_delay_s, self._acked_samples)
        self._buffer.clear()
        self._acks.clear()
        self._playing_until = None

    async def run(self) -> None:
        while True:
            await self.clock.sleep(self.TICK_S)
            now = self.clock.monotonic()
            self._play(now)
            while self._acks and self._acks[0][0] <= now:
                _, samples, words = self._acks.popleft()
                self._acked_samples += samples
                self.acked[-1].append(words)
            self._maybe_report(now)

    def _play(self, now: float) -> None:
        while self._buffer:
            if self._playing_until is None:
                self._playing_until = now + self._buffer[0].samples.size / self.sample_rate
            if now < self._playing_until:
                return
            frame = self._buffer.popleft()
            self._acks.append((self._playing_until + self.ack_delay_s, frame.samples.size,
                               frame.text))
            self._playing_until = None

    def _maybe_report(self, now: float) -> None:
        if self._report_at is not None and now >= self._report_at[0]:
            position, self._report_at = self._report_at[1], None
            self.on_playback_finished(position, True)
        elif (self.segment_open and self._flushed and not self._buffer and not self._acks
              and self._report_at is None and self._acked_samples >= self.captured):
            self.on_playback_finished(self.captured, False)


@dataclass
class FakeWebhooks:
    """A ``WebhookCaller`` that records each call (and the events sent before it)."""

    log: Log | None = None
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    #: event kinds already sent when each call was made
    seen_before: list[list[str]] = field(default_factory=list)
    delay_s: float = 0.0

    async def call(self, tool: RuntimeTool, arguments: dict[str, Any]) -> WebhookResult:
        self.calls.append((tool.name, arguments))
        self.seen_before.append(self.log.kinds() if self.log is not None else [])
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        return WebhookResult("POST", "https://example.test/hook", datetime.now(UTC), None,
                             arguments, {"Authorization": "***"}, 200, {"ok": True})


@dataclass
class FakeAgents:
    """An ``AgentDirectory`` with one transfer target."""

    switch: AgentSwitch
    asked: list[str] = field(default_factory=list)

    async def switch_to(self, agent_name: str) -> AgentSwitch:
        self.asked.append(agent_name)
        return self.switch
