"""One assistant reply: recognise the user's turn, stream the LLM, synthesize sentences.

A ``ReplyJob`` may start *speculatively* at the first pause in the user's speech, while
the endpointing wait is still running: recognition, generation and the first sentence's
synthesis overlap with the wait. Its output stays in its ``SpeechHandle`` until the engine
commits the turn; if the user speaks again first, the job is cancelled. Tools are another
matter: a tool call has effects outside the conversation (a webhook books the appointment,
the client runs its tool, the call is transferred or ended), so no tool of any kind runs,
and nothing about it is sent, before the turn is committed (``ReplyTools.gate``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import numpy.typing as npt

from openline.audio.codecs import AudioFormat
from openline.domain.tool_call import ToolCallRecord, ToolRef
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
from openline.providers.stt.base import STT, Transcript
from openline.providers.tts.base import TTS, AudioChunk
from openline.voice.playout import to_output_rate
from openline.voice.sentences import SentenceSplitter
from openline.voice.speech import ReplyResult, SpeechHandle

log = logging.getLogger(__name__)

__all__ = ["ReplyResult"]  # re-exported: it lived here before speech handles

END_TOOL = "natural_conversation_ending"
SILENT_TOOL = "choose_not_to_respond"
MAX_TOOL_ROUNDS = 4
FILLER = "One moment."


@dataclass
class ToolOutcome:
    """What running one tool call produced (content goes back to the model)."""

    content: str
    record: ToolCallRecord
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
                           ToolCallRecord(ToolRef(call.name), "error",
                                          error_message="unavailable"))

    def describe(self, name: str) -> ToolFlags | None:
        return None


@dataclass
class ReplyTools:
    """The tools a reply may call, who runs them, and when they may run."""

    specs: Sequence[ToolSpec] = ()
    executor: ToolExecutor = field(default_factory=NoTools)
    #: told about every finished call (the engine emits ``tool_call_output_processed``)
    on_tool: Callable[[ToolCallRecord], Awaitable[None]] | None = None
    #: no tool runs before this is set: a speculative reply waits for its turn's commit
    gate: asyncio.Event | None = None


@dataclass
class Speech:
    """The providers and voice settings a reply speaks with (``tts`` None: text only)."""

    llm: LLM
    tts: TTS | None
    fmt: AudioFormat
    voice_id: str
    speed: float
    max_tokens: int = 160
    #: the conversation's key for the LLM (``GenerationOptions.session``)
    session: str | None = None


async def speak(speech: Speech, text: str, handle: SpeechHandle,
                timings: dict[str, float] | None = None) -> None:
    """Synthesize ``text`` sentence by sentence into ``handle`` (does not close it)."""
    if speech.tts is None:  # text-only sessions (``openline chat``)
        handle.put(np.zeros(0, dtype=np.int16), text)
        return
    start = time.perf_counter()
    stream = speech.tts.synthesize(text, speech.voice_id, speed=speech.speed)
    label = text  # chunks that name no words: the text goes with the first one only
    async with contextlib.aclosing(stream):  # stops synthesis promptly when cancelled
        async for chunk in stream:
            _put(speech, chunk, label, handle, timings, start)
            if not chunk.text:
                label = ""


def _put(speech: Speech, chunk: AudioChunk, text: str, handle: SpeechHandle,
         timings: dict[str, float] | None, start: float) -> None:
    if timings is not None and "tts_first_audio_ms" not in timings:
        timings["tts_first_audio_ms"] = round((time.perf_counter() - start) * 1000, 1)
    handle.put(to_output_rate(chunk.samples, chunk.sample_rate, speech.fmt),
               chunk.text or text)


async def speak_fixed(speech: Speech, handle: SpeechHandle) -> ReplyResult:
    """The producer of a fixed text (``say``, a fixed welcome or poke); closes ``handle``."""
    try:
        await speak(speech, handle.fixed_text or "", handle)
    finally:
        handle.close()
    return handle.result


async def generate(speech: Speech, messages: Sequence[ChatMessage], tools: ReplyTools,
                   handle: SpeechHandle, timings: dict[str, float]) -> ReplyResult:
    """Stream the LLM into ``handle``, running tool rounds; closes ``handle`` at the end.

    ``handle.result`` is filled in place, so a cancelled reply still shows what it said and
    which tool calls it made.
    """
    result = handle.result
    context = list(messages)
    offered = list(tools.specs)
    try:
        for _ in range(MAX_TOOL_ROUNDS):
            done = await _one_round(speech, context, offered, handle, timings, result)
            calls = list(done.tool_calls) if done is not None else []
            if not calls:
                break
            context.append(ChatMessage.assistant(done.text if done else "", calls))
            result.messages.append(context[-1])
            if tools.gate is not None:
                await tools.gate.wait()  # the turn is committed: tools may act
            rounds = _ToolRound(speech, tools, context, handle)
            if not await rounds.run(calls):
                break
            if not rounds.allow_chaining:
                offered = []  # the follow-up turn may speak but not call more tools
    finally:
        handle.close()
    return result


async def _one_round(
    speech: Speech, context: list[ChatMessage], tools: Sequence[ToolSpec],
    handle: SpeechHandle, timings: dict[str, float], result: ReplyResult,
) -> LLMDone | None:
    """One LLM call; sentences are synthesized while the model keeps generating."""
    sentences: asyncio.Queue[str | None] = asyncio.Queue()
    splitter = SentenceSplitter()
    start = time.perf_counter()
    done: LLMDone | None = None

    async def produce() -> None:
        nonlocal done
        stream = speech.llm.stream(context, tools=tools,
                                   options=GenerationOptions(max_tokens=speech.max_tokens,
                                                             session=speech.session))
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
            await speak(speech, sentence, handle, timings)

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
            # the first speakable text: what the TTS waited for (first token + its words)
            timings.setdefault("llm_first_sentence_ms",
                               round((time.perf_counter() - start) * 1000, 1))
            sentences.put_nowait(sentence)


class _ToolRound:
    """Runs one round of tool calls with the per-tool flags; True if the model speaks next."""

    def __init__(self, speech: Speech, tools: ReplyTools, context: list[ChatMessage],
                 handle: SpeechHandle) -> None:
        self.speech, self.tools, self.context, self.handle = speech, tools, context, handle
        self.result = handle.result
        self.allow_chaining = True

    async def run(self, calls: list[ToolCall]) -> bool:
        again = False
        for call in calls:
            outcome = await self._one(call)
            again = again or outcome.speak_after
            if outcome.transfer_to:
                self.result.transfer_to = outcome.transfer_to
            self.result.tool_calls.append(outcome.record)
            if self.tools.on_tool is not None:
                await self.tools.on_tool(outcome.record)
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
        flags = self.tools.executor.describe(call.name)
        if flags is not None:
            await self._before(flags)
        interruptible = self.handle.interruptible
        if flags is not None and flags.uninterruptible:
            self.handle.interruptible = False  # the caller cannot cut in while it runs
        try:
            outcome = await self.tools.executor.execute(call)
        except asyncio.CancelledError:
            self.result.tool_calls.append(ToolCallRecord(
                ToolRef(call.name), "cancelled", tool_call_id=call.id,
                arguments=call.arguments, error_message="interrupted by the caller"))
            raise
        finally:
            self.handle.interruptible = interruptible
        if flags is not None:
            outcome.speak_after = outcome.speak_after and not flags.forbid_speech_after
            self.allow_chaining = self.allow_chaining and flags.allow_chaining
        return outcome

    async def _before(self, flags: ToolFlags) -> None:
        if flags.require_speech_before and not self.result.text:
            self.result.text = FILLER
            await speak(self.speech, FILLER, self.handle)
        if flags.wait_for_speech_before:
            await self.handle.drained()


def _builtin(call: ToolCall, name: str) -> ToolOutcome:
    return ToolOutcome('{"ok": true}', ToolCallRecord(
        ToolRef(name, f"tool_{name}"), "success", tool_call_id=call.id,
        arguments=call.arguments), False)


class ReplyJob:
    """Recognition + reply for one user turn (or a text turn), possibly speculative.

    The reply runs as soon as the transcript exists, but its tools wait for ``commit()``:
    the engine commits once the turn has ended and its transcript was accepted."""

    def __init__(
        self,
        stt: STT | None,
        audio: npt.NDArray[np.int16] | None,
        text: str | None,
        language: str | None,
        hotwords: Sequence[str],
        run_reply: Callable[[str, ReplyJob], Awaitable[ReplyResult]],
        *,
        started_at: float | None = None,
    ) -> None:
        self.handle = SpeechHandle("reply")
        self.timings: dict[str, float] = {}
        self.handle.timings = self.timings
        self.transcript: asyncio.Future[tuple[str, str | None]] = (
            asyncio.get_running_loop().create_future()
        )
        self.gate = asyncio.Event()
        #: the conversation clock's time when the job began (the listener's turns)
        self.started_at = started_at
        self._stt, self._audio, self._text = stt, audio, text
        self._stt_start = 0.0  # perf_counter when recognition began
        self._language, self._hotwords, self._run_reply = language, tuple(hotwords), run_reply
        self.task = asyncio.ensure_future(self._run())
        self.handle.producer = self.task

    @property
    def committed(self) -> bool:
        return self.gate.is_set()

    def commit(self) -> None:
        """The turn is the user's for good: the reply's tools may run now."""
        self.gate.set()

    async def _run(self) -> ReplyResult | None:
        try:
            text, language, final = await self._recognise()
        except asyncio.CancelledError:
            self.transcript.cancel()
            raise
        except Exception as exc:
            self.transcript.set_exception(exc)
            raise
        if final is not None and text:
            return await self._run_ahead(text, language, final)
        if final is not None:  # nothing heard unaided: only the keyword pass can tell
            text, language = await self._keyword_pass(final, text, language)
        self.transcript.set_result((text, language))
        if not text:
            self.handle.close()
            return None
        return await self._run_reply(text, self)

    async def _recognise(self) -> tuple[str, str | None, asyncio.Task[Transcript] | None]:
        """The transcript and, while the recogniser's keyword pass may still change it,
        that pass (``STT.transcribe_staged``)."""
        if self._text is not None or self._stt is None or self._audio is None:
            return (self._text or "").strip(), self._language, None
        self._stt_start = time.perf_counter()
        # int16 as captured: the recogniser scales it to float itself
        result, final = await self._stt.transcribe_staged(
            self._audio, language=self._language, hotwords=self._hotwords)
        if final is None:
            self._stt_done()
        return result.text.strip(), result.language, final

    def _stt_done(self, key: str = "stt_ms") -> None:
        """Time the recognition so far (from ``_recognise``) as ``key``."""
        self.timings[key] = round((time.perf_counter() - self._stt_start) * 1000, 1)

    async def _keyword_pass(self, final: asyncio.Task[Transcript], text: str,
                            language: str | None) -> tuple[str, str | None]:
        """The keyword pass's transcript; the unaided one if the pass failed."""
        try:
            result = await final
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # keep what was heard without the keywords
            log.warning("the recogniser's keyword pass failed: %s", exc)
            return text, language
        finally:
            self._stt_done()
        return result.text.strip(), result.language

    async def _run_ahead(self, text: str, language: str | None,
                         final: asyncio.Task[Transcript]) -> ReplyResult | None:
        """The reply starts on the unaided words while the keyword pass runs (it changes
        them only when it brings a keyword, ``FasterWhisperSTT._gated``). Kept when the
        pass keeps the words; otherwise dropped, unheard (the engine takes ``handle`` only
        once ``transcript`` is set), and the reply starts over on the pass's words."""
        recognition = set(self.timings)  # what the reply writes is the reply's own
        self._stt_done("stt_unaided_ms")
        ahead = asyncio.ensure_future(self._run_reply(text, self))
        try:
            final_text, language = await self._keyword_pass(final, text, language)
        except BaseException:
            final.cancel()
            ahead.cancel()
            raise
        if final_text == text:
            self.transcript.set_result((text, language))
            return await ahead
        ahead.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await ahead
        self._fresh_handle()
        for key in set(self.timings) - recognition - {"stt_ms"}:
            # the dropped reply's stages (and stt_unaided_ms: the reply heard began after
            # the pass); the reply that starts over records its own
            del self.timings[key]
        self.transcript.set_result((final_text, language))
        if not final_text:
            self.handle.close()
            return None
        return await self._run_reply(final_text, self)

    def _fresh_handle(self) -> None:
        """A new handle for a reply that starts over (the old one was never delivered)."""
        old = self.handle
        old.interrupted = True
        old.playout_done()
        self.handle = SpeechHandle("reply")
        self.handle.timings, self.handle.producer = self.timings, self.task
        self.handle.created_perf = old.created_perf  # the stage timings count from the job

    def cancel(self) -> None:
        """Drop the job (speculation discarded, or the turn was cancelled)."""
        self.task.cancel()
        if not self.transcript.done():
            self.transcript.cancel()
        self.handle.interrupted = True
        self.handle.playout_done()
