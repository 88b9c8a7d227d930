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
    transfer_to: str | None = None


class ToolFlags(Protocol):
    """The per-tool behaviour flags the reply loop honours (read-only)."""

    @property
    def require_speech_before(self) -> bool: ...

    @property
    def wait_for_speech_before(self) -> bool: ...

    @property
    def forbid_speech_after(self) -> bool: ...

    @property
    def allow_chaining(self) -> bool: ...

    @property
    def uninterruptible(self) -> bool: ...


class ToolExecutor(Protocol):
    """Runs the agent's non-built-in tools (webhooks, client tools...)."""

    async def execute(self, call: ToolCall) -> ToolOutcome: ...

    def describe(self, name: str) -> ToolFlags | None: ...


class NoTools:
    """The default executor: every custom tool is reported unavailable to the model."""

    async def execute(self, call: ToolCall) -> ToolOutcome:
        return ToolOutcome(json.dumps({"error": f"tool {call.name!r} is not available"}),
                           {"tool": {"name": call.name}, "status": "error",
                            "error_message": "unavailable"})

    def describe(self, name: str) -> ToolFlags | None:
        return None


@dataclass
class ReplyResult:
    """How a reply ended, beyond its audio."""

    text: str = ""
    end_conversation: bool = False
    chose_not_to_respond: bool = False
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    #: assistant/tool messages produced during tool rounds (for the history)
    messages: list[ChatMessage] = field(default_factory=list)
    transfer_to: str | None = None


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
    result: ReplyResult | None = None,
) -> ReplyResult:
    """Stream the LLM into ``utt``, running tool rounds; closes ``utt`` at the end.

    ``result`` (when given) is filled in place, so a cancelled reply still shows what
    it said and which tool calls it made.
    """
    result = result if result is not None else ReplyResult()
    context = list(messages)
    offered = list(tools)
    try:
        for _ in range(MAX_TOOL_ROUNDS):
            done = await _one_round(speech, context, offered, utt, timings, result)
            calls = list(done.tool_calls) if done is not None else []
            if not calls:
                break
            context.append(ChatMessage.assistant(done.text if done else "", calls))
            result.messages.append(context[-1])
            rounds = _ToolRound(speech, executor, context, result, utt, on_tool)
            if not await rounds.run(calls):
                break
            if not rounds.allow_chaining:
                offered = []  # the follow-up turn may speak but not call more tools
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


FILLER = "One moment."


class _ToolRound:
    """Runs one round of tool calls with the per-tool flags; True if the model speaks next."""

    def __init__(self, speech: Speech, executor: ToolExecutor, context: list[ChatMessage],
                 result: ReplyResult, utt: Utterance,
                 on_tool: Callable[[dict[str, Any]], Awaitable[None]] | None) -> None:
        self.speech, self.executor, self.context = speech, executor, context
        self.result, self.utt, self.on_tool = result, utt, on_tool
        self.allow_chaining = True

    async def run(self, calls: list[ToolCall]) -> bool:
        again = False
        for call in calls:
            outcome = await self._one(call)
            again = again or outcome.speak_after
            if outcome.transfer_to:
                self.result.transfer_to = outcome.transfer_to
            self.result.tool_calls.append(outcome.record)
            if self.on_tool is not None:
                await self.on_tool(outcome.record)
            self.context.append(ChatMessage.tool(call.id, outcome.content, call.name))
            self.result.messages.append(self.context[-1])
        return again and not self.result.end_conversation and not self.result.transfer_to

    async def _one(self, call: ToolCall) -> ToolOutcome:
        if call.name == END_TOOL:
            self.result.end_conversation = True
            return _builtin(call, END_TOOL)
        if call.name == SILENT_TOOL:
            self.result.chose_not_to_respond = not self.result.text
            return _builtin(call, SILENT_TOOL)
        flags = self.executor.describe(call.name)
        if flags is not None:
            await self._before(flags)
        interruptible = self.utt.interruptible
        if flags is not None and flags.uninterruptible:
            self.utt.interruptible = False  # the caller cannot cut in while it runs
        try:
            outcome = await self.executor.execute(call)
        except asyncio.CancelledError:
            self.result.tool_calls.append({"tool": {"name": call.name}, "tool_call_id": call.id,
                                           "arguments": call.arguments, "status": "cancelled",
                                           "error_message": "interrupted by the caller"})
            raise
        finally:
            self.utt.interruptible = interruptible
        if flags is not None:
            outcome.speak_after = outcome.speak_after and not flags.forbid_speech_after
            self.allow_chaining = self.allow_chaining and flags.allow_chaining
        return outcome

    async def _before(self, flags: ToolFlags) -> None:
        if flags.require_speech_before and not self.result.text:
            self.result.text = FILLER
            await speak(self.speech, FILLER, self.utt)
        if flags.wait_for_speech_before:
            await self.utt.drained()


def _builtin(call: ToolCall, name: str) -> ToolOutcome:
    return ToolOutcome('{"ok": true}', {"tool": {"id": f"tool_{name}", "name": name},
                                        "tool_call_id": call.id, "arguments": call.arguments,
                                        "status": "success"}, False)


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
        self.result = ReplyResult()  # filled in place, even if the job is cancelled
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
        return await self._run_reply(text, self)

    async def _recognise(self) -> tuple[str, str | None]:
        if self._text is not None or self._stt is None or self._audio is None:
            return (self._text or "").strip(), self._language
        start = time.perf_counter()
        # int16 as captured: the recogniser scales it to float itself
        result = await self._stt.transcribe(self._audio, language=self._language,
                                            hotwords=self._hotwords)
        self.timings["stt_ms"] = round((time.perf_counter() - start) * 1000, 1)
        return result.text.strip(), result.language

    def cancel(self) -> None:
        self.task.cancel()
        if not self.transcript.done():
            self.transcript.cancel()
        self.utterance.interrupted = True
        self.utterance.done.set()
