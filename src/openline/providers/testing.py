"""Deterministic fake providers for engine and API tests.

They implement the real contracts (same bases, same events, same errors) with no models:

* ``ScriptedLLM``: replays ``ScriptedReply``s in order (text and/or tool calls), with an
  optional first-token and per-token delay; records every request in ``requests``.
* ``FakeSTT``: returns scripted texts in order (or a fixed text), optional delay.
* ``FakeTTS``: a tone whose length is proportional to the text, one chunk per sentence;
  counts the chunks it produced (``chunks``) and the syntheses stopped early
  (``cancelled``).
* ``EnergyVAD``: speech probability from frame RMS against a threshold.

Every fake can be made to fail: ``fake.fail_next(error, times=1)`` makes the next
``times`` operations raise ``error`` (default: a retryable ``ProviderError``);
``fail_next(times=None)`` fails until ``recover()``.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from openline.domain.errors import ProviderError
from openline.providers.llm.base import (
    LLM,
    ChatMessage,
    Finish,
    GenerationOptions,
    HookEvent,
    TextDelta,
    ToolCall,
    ToolCallEvent,
    ToolSpec,
)
from openline.providers.stt.base import STT, RawTranscript
from openline.providers.tts.base import TTS, AudioChunk, Voice
from openline.providers.vad.base import VAD, VADStream, frame_to_float32


class FailureSwitch:
    """Mixin: scripted failures for fakes."""

    _fail_error: ProviderError | None = None
    _fail_left: int | None = 0

    def fail_next(self, error: ProviderError | None = None, *, times: int | None = 1) -> None:
        """Make the next ``times`` operations raise ``error`` (None = until ``recover``)."""
        self._fail_error = error or ProviderError("injected failure", retryable=True)
        self._fail_left = times

    def recover(self) -> None:
        """Stop failing."""
        self._fail_error, self._fail_left = None, 0

    def _maybe_fail(self) -> None:
        if self._fail_error is None or self._fail_left == 0:
            return
        error = self._fail_error
        if self._fail_left is not None:
            self._fail_left -= 1
            if self._fail_left == 0:
                self._fail_error = None
        raise error


@dataclass(frozen=True)
class ScriptedReply:
    """One scripted LLM turn: optional text (streamed word by word) and tool calls."""

    text: str = ""
    tool_calls: tuple[ToolCall, ...] = ()

    @classmethod
    def call(cls, name: str, arguments: str = "{}", call_id: str | None = None) -> ScriptedReply:
        """A reply that only calls one tool."""
        return cls(tool_calls=(ToolCall(call_id or f"call_{name}", name, arguments),))


@dataclass
class LLMRequest:
    """What a ``ScriptedLLM`` was asked (for assertions)."""

    messages: list[ChatMessage]
    tools: list[ToolSpec]
    options: GenerationOptions = field(default_factory=GenerationOptions)


class ScriptedLLM(FailureSwitch, LLM):
    """Replays scripted replies; when the script runs out, repeats ``fallback``."""

    name = "scripted-llm"

    def __init__(
        self,
        replies: Sequence[ScriptedReply | str] = (),
        *,
        fallback: str = "Okay.",
        first_token_delay_s: float = 0.0,
        token_delay_s: float = 0.0,
    ) -> None:
        super().__init__()
        self.replies = [ScriptedReply(r) if isinstance(r, str) else r for r in replies]
        self.fallback = ScriptedReply(fallback)
        self.first_token_delay_s = first_token_delay_s
        self.token_delay_s = token_delay_s
        self.requests: list[LLMRequest] = []
        self.ended_sessions: list[str] = []
        self.warmed: list[LLMRequest] = []  # ``warm`` calls (they generate nothing)
        self.cancelled = 0

    def end_session(self, session: str) -> None:
        self.ended_sessions.append(session)

    async def warm(self, messages: Sequence[ChatMessage], *, tools: Sequence[ToolSpec] = (),
                   options: GenerationOptions | None = None) -> None:
        self.warmed.append(LLMRequest(list(messages), list(tools),
                                      options or GenerationOptions()))

    async def _stream(
        self, messages: list[ChatMessage], tools: list[ToolSpec], options: GenerationOptions
    ) -> AsyncIterator[HookEvent]:
        self.requests.append(LLMRequest(list(messages), list(tools), options))
        self._maybe_fail()
        reply = self.replies.pop(0) if self.replies else self.fallback
        try:
            if self.first_token_delay_s:
                await asyncio.sleep(self.first_token_delay_s)
            for token in re.findall(r"\S+\s*", reply.text):
                yield TextDelta(token)
                if self.token_delay_s:
                    await asyncio.sleep(self.token_delay_s)
            for call in reply.tool_calls:
                yield ToolCallEvent(call)
        except (asyncio.CancelledError, GeneratorExit):
            self.cancelled += 1
            raise
        yield Finish("tool_calls" if reply.tool_calls else "stop")


class FakeSTT(FailureSwitch, STT):
    """Returns ``texts`` in order, then ``default``; sleeps ``delay_s`` per call."""

    name = "fake-stt"
    cache_size = 0  # every call consumes the script, even for identical audio

    def __init__(
        self, texts: Sequence[str] = (), *, default: str = "", delay_s: float = 0.0
    ) -> None:
        super().__init__()
        self.texts = list(texts)
        self.default = default
        self.delay_s = delay_s
        self.calls: list[tuple[int, str | None, list[str]]] = []

    def _transcribe_sync(
        self, audio: npt.NDArray[np.float32], language: str | None, hotwords: list[str]
    ) -> RawTranscript:
        self.calls.append((audio.size, language, hotwords))
        self._maybe_fail()
        if self.delay_s:
            import time

            time.sleep(self.delay_s)  # runs on the runner thread, like a real model
        text = self.texts.pop(0) if self.texts else self.default
        return RawTranscript(text=text, language=language or "en", confidence=1.0)


FAKE_VOICES: tuple[Voice, ...] = (
    Voice("joe", "Joe", "Fake voice (tone)", "fake", ("en-US",), 16000),
    Voice("ava", "Ava", "Fake voice (tone)", "fake", ("en-US",), 16000),
)


class FakeTTS(FailureSwitch, TTS):
    """Deterministic tones: ``ms_per_char`` of audio per character, one chunk per sentence."""

    name = "fake-tts"

    def __init__(
        self,
        voices: Sequence[Voice] = FAKE_VOICES,
        *,
        ms_per_char: float = 50.0,
        delay_s: float = 0.0,
    ) -> None:
        super().__init__()
        self._fake_voices = list(voices)
        self.ms_per_char = ms_per_char
        self.delay_s = delay_s
        self.requests: list[tuple[str, str, float]] = []
        self.chunks = 0
        self.cancelled = 0

    async def _load(self) -> None:
        self._set_voices(self._fake_voices)

    async def _stream(self, text: str, voice: Voice, speed: float) -> AsyncIterator[AudioChunk]:
        self.requests.append((text, voice.id, speed))
        self._maybe_fail()
        try:
            for sentence in re.findall(r"[^.!?]+[.!?]*", text):
                if not sentence.strip():
                    continue
                if self.delay_s:
                    await asyncio.sleep(self.delay_s)
                self.chunks += 1
                yield AudioChunk(self.render(sentence, voice.sample_rate, speed),
                                 voice.sample_rate, sentence.strip())
        except (asyncio.CancelledError, GeneratorExit):
            self.cancelled += 1
            raise

    def render(self, text: str, sample_rate: int, speed: float = 1.0) -> npt.NDArray[np.int16]:
        """The samples this fake produces for ``text`` (tone pitch depends on its length)."""
        n = int(len(text) * self.ms_per_char / 1000.0 * sample_rate / speed)
        t = np.arange(n) / sample_rate
        freq = 200.0 + 10.0 * (len(text) % 30)
        return (np.sin(2 * np.pi * freq * t) * 8000).astype(np.int16)


class EnergyVADStream(VADStream):
    """Probability 1.0 when a frame's RMS exceeds the threshold, else 0.0."""

    def __init__(self, owner: EnergyVAD) -> None:
        self._owner = owner

    def process(self, frame: npt.ArrayLike) -> float:
        """1.0 for loud frames, 0.0 for quiet ones."""
        self._owner._maybe_fail()
        samples = frame_to_float32(frame, self.frame_samples)
        level = float(np.sqrt(np.mean(samples.astype(np.float64) ** 2)))
        return 1.0 if level >= self._owner.threshold else 0.0

    def reset(self) -> None:
        """Stateless: nothing to reset."""


class EnergyVAD(FailureSwitch, VAD):
    """Energy-threshold VAD; ``threshold`` is the RMS (full scale = 1.0) counted as speech."""

    name = "energy-vad"

    def __init__(self, threshold: float = 0.02) -> None:
        super().__init__()
        self.threshold = threshold

    def _make_stream(self) -> EnergyVADStream:
        return EnergyVADStream(self)
