"""One assistant reply: recognise the user's turn, stream the LLM, synthesize sentences.

A ``ReplyJob`` may start *speculatively* at the first pause in the user's speech, while
the endpointing wait is still running: recognition, generation and the first sentence's
synthesis overlap with the wait. Its output stays in its ``Utterance`` until the engine
commits it at the end of the turn; if the user speaks again first, the job is cancelled.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from openline.audio.codecs import AudioFormat
from openline.providers.llm.base import (
    LLM,
    ChatMessage,
    GenerationOptions,
    LLMDone,
    TextDelta,
    ToolCall,
    ToolCallEvent,
    ToolSpec,
)
from openline.providers.stt.base import STT
from openline.providers.tts.base import TTS, AudioChunk
from openline.voice.playout import Utterance, to_output_rate
from openline.voice.sentences import SentenceSplitter

END_TOOL = "natural_conversation_ending"
SILENT_TOOL = "choose_not_to_respond"
MAX_TOOL_ROUNDS = 4


@dataclass
class ToolOutcome:
    """What running one tool call produced (content goes back to the model)."""

    content: str
    record: dict[str, Any] = field(default_factory=dict)
    speak_after: bool = True


class ToolExecutor(Protocol):
    """Runs the agent's non-built-in tools (webhooks, client tools...)."""

    async def execute(self, call: ToolCall) -> ToolOutcome: ...


class NoTools:
    """The default executor: every custom tool is reported unavailable to the model."""

    async def execute(self, call: ToolCall) -> ToolOutcome:
        return ToolOutcome(json.dumps({"error": f"tool {call.name!r} is not available"}),
                           {"tool": {"name": call.name}, "error_message": "unavailable"})


@dataclass
class ReplyResult:
    """How a reply ended, beyond its audio."""

    text: str = ""
    end_conversation: bool = False
    chose_not_to_respond: bool = False
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    #: assistant/tool messages produced during tool rounds (for the history)
    messages: list[ChatMessage] = field(default_factory=list)


@dataclass
class Speech:
    """The providers and voice settings a reply speaks with (``tts`` None: text only)."""

    llm: LLM
    tts: TTS | None
    fmt: AudioFormat
    voice_id: str
    speed: float
    max_tokens: int = 160


async def speak(speech: Speech, text: str, utt: Utterance,
                timings: dict[str, float] | None = None) -> None:
    """Synthesize ``text`` sentence by sentence into ``utt`` (does not close it)."""
    if speech.tts is None:  # text-only sessions (``openline chat``)
        utt.put(np.zeros(0, dtype=np.int16), text)
        return
    start = time.perf_counter()
    stream = speech.tts.synthesize(text, speech.voice_id, speed=speech.speed)
    async with contextlib.aclosing(stream):  # stops synthesis promptly when cancelled
        async for chunk in stream:
            _put(speech, chunk, text, utt, timings, start)


def _put(speech: Speech, chunk: AudioChunk, text: str, utt: Utterance,
         timings: dict[str, float] | None, start: float) -> None:
    if timings is not None and "tts_first_audio_ms" not in timings:
        timings["tts_first_audio_ms"] = round((time.perf_counter() - start) * 1000, 1)
    utt.put(to_output_rate(chunk.samples, chunk.sample_rate, speech.fmt), chunk.text or text)


async def generate(
    speech: Speech,
    messages: Sequence[ChatMessage],
    tools: Sequence[ToolSpec],
    executor: ToolExecutor,
    utt: Utterance,
    timings: dict[str, float],
    on_tool: Callable[[dict[str, Any]], Awaitable[None]] | None = None,
) -> ReplyResult:
    """Stream the LLM into ``utt``, running tool rounds; closes ``utt`` at the end."""
    result = ReplyResult()
    context = list(messages)
    try:
        for _ in range(MAX_TOOL_ROUNDS):
            done = await _one_round(speech, context, tools, utt, timings, result)
            calls = list(done.tool_calls) if done is not None else []
            if not calls:
                break
            context.append(ChatMessage.assistant(done.text if done else "", calls))
            result.messages.append(context[-1])
            if not await _run_tools(calls, executor, context, result, on_tool):
                break
    finally:
        utt.close()
    return result


async def _one_round(
    speech: Speech, context: list[ChatMessage], tools: Sequence[ToolSpec], utt: Utterance,
    timings: dict[str, float], result: ReplyResult,
) -> LLMDone | None:
    """One LLM call; sentences are synthesized while the model keeps generating."""
    sentences: asyncio.Queue[str | None] = asyncio.Queue()
    splitter = SentenceSplitter()
    start = time.perf_counter()
    done: LLMDone | None = None

    async def produce() -> None:
        nonlocal done
        stream = speech.llm.stream(context, tools=tools,
                                   options=GenerationOptions(max_tokens=speech.max_tokens))
        try:
            async with contextlib.aclosing(stream):  # cancellation stops generation at once
                async for event in stream:
                    _on_event(event, splitter, sentences, timings, start)
                    if isinstance(event, LLMDone):
                        done = event
            rest = splitter.flush()
            if rest:
                sentences.put_nowait(rest)
        finally:
            sentences.put_nowait(None)

    async def consume() -> None:
        while (sentence := await sentences.get()) is not None:
            result.text = f"{result.text} {sentence}".strip()
            await speak(speech, sentence, utt, timings)

    async with asyncio.TaskGroup() as group:
        group.create_task(produce(), name="llm")
        group.create_task(consume(), name="tts")
    return done


def _on_event(event: object, splitter: SentenceSplitter, sentences: asyncio.Queue[str | None],
              timings: dict[str, float], start: float) -> None:
    if isinstance(event, TextDelta | ToolCallEvent):
        timings.setdefault("llm_first_token_ms", round((time.perf_counter() - start) * 1000, 1))
    if isinstance(event, TextDelta):
        for sentence in splitter.push(event.text):
            sentences.put_nowait(sentence)


async def _run_tools(
    calls: list[ToolCall], executor: ToolExecutor, context: list[ChatMessage],
    result: ReplyResult, on_tool: Callable[[dict[str, Any]], Awaitable[None]] | None,
) -> bool:
    """Run the calls; False when no further LLM round should follow."""
    again = False
    for call in calls:
        if call.name == END_TOOL:
            result.end_conversation = True
            outcome = ToolOutcome('{"ok": true}', {"tool": {"name": END_TOOL}}, False)
        elif call.name == SILENT_TOOL:
            result.chose_not_to_respond = not result.text
            outcome = ToolOutcome('{"ok": true}', {"tool": {"name": SILENT_TOOL}}, False)
        else:
            outcome = await executor.execute(call)
            again = again or outcome.speak_after
        record = {"id": call.id, "arguments": call.arguments, **outcome.record}
        result.tool_calls.append(record)
        if on_tool is not None:
            await on_tool(record)
        context.append(ChatMessage.tool(call.id, outcome.content, call.name))
        result.messages.append(context[-1])
    return again and not result.end_conversation


class ReplyJob:
    """Recognition + reply for one user turn (or a text turn), possibly speculative."""

    def __init__(
        self,
        stt: STT | None,
        audio: npt.NDArray[np.int16] | None,
        text: str | None,
        language: str | None,
        hotwords: Sequence[str],
        run_reply: Callable[[str, ReplyJob], Awaitable[ReplyResult]],
    ) -> None:
        self.utterance = Utterance("reply")
        self.timings: dict[str, float] = {}
        self.transcript: asyncio.Future[tuple[str, str | None]] = (
            asyncio.get_running_loop().create_future()
        )
        self.result: ReplyResult | None = None
        self.committed = False
        self._stt, self._audio, self._text = stt, audio, text
        self._language, self._hotwords, self._run_reply = language, tuple(hotwords), run_reply
        self.task = asyncio.ensure_future(self._run())

    async def _run(self) -> ReplyResult | None:
        try:
            text, language = await self._recognise()
        except asyncio.CancelledError:
            self.transcript.cancel()
            raise
        except Exception as exc:
            self.transcript.set_exception(exc)
            raise
        self.transcript.set_result((text, language))
        if not text:
            self.utterance.close()
            return None
        self.result = await self._run_reply(text, self)
        return self.result

    async def _recognise(self) -> tuple[str, str | None]:
        if self._text is not None or self._stt is None or self._audio is None:
            return (self._text or "").strip(), self._language
        start = time.perf_counter()
        audio = self._audio.astype(np.float32) / 32768.0
        result = await self._stt.transcribe(audio, language=self._language,
                                            hotwords=self._hotwords)
        self.timings["stt_ms"] = round((time.perf_counter() - start) * 1000, 1)
        return result.text.strip(), result.language

    def cancel(self) -> None:
        self.task.cancel()
        if not self.transcript.done():
            self.transcript.cancel()
        self.utterance.interrupted = True
        self.utterance.done.set()
