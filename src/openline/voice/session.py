"""One live conversation: audio in, turn-taking, replies, barge-in, timers, recording.

All work of a conversation runs in one ``asyncio.TaskGroup`` owned by ``run()``:
the input loop, the playout loop, the timer loop and one task per committed turn.
``end(ended_by)`` decides how the conversation ends (first caller wins) and cancels
the group; ``run()`` then finalises and returns the result.

Queue policies: inbound audio is a bounded queue that drops the oldest chunk when full
(a stalled engine must not grow memory; late audio is worthless); outbound events go
through one bounded FIFO outbox (order preserved; a full outbox blocks the producer, so a
slow client slows the playout instead of growing memory).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from openline.audio.noise import NoiseGenerator
from openline.audio.resample import StreamingResampler
from openline.domain.errors import ProviderError
from openline.providers.llm.base import LLM, ChatMessage, ToolSpec
from openline.providers.stt.base import STT
from openline.providers.tts.base import TTS
from openline.providers.vad.base import VAD, VADStream
from openline.voice import events as ev
from openline.voice.builtins import built_in_specs
from openline.voice.client_tools import ClientToolChannel
from openline.voice.config import AgentDirectory, SessionConfig
from openline.voice.playout import Playout, Utterance
from openline.voice.recorder import Recorder
from openline.voice.reply import ReplyJob, ReplyResult, Speech, ToolOutcome, speak
from openline.voice.reply import generate as generate_reply
from openline.voice.state import ConversationState, Lifecycle
from openline.voice.tools import RuntimeTool, ToolRuntime, WebhookCaller
from openline.voice.turns import FRAME_SAMPLES, SAMPLE_RATE, TurnDetector, TurnEvent

log = logging.getLogger(__name__)
INBOUND_QUEUE_CHUNKS = 200  # ~4 s of 20 ms chunks
OUTBOX_EVENTS = 500  # a slow client applies backpressure to the playout beyond this
GREETING_INSTRUCTION = "Greet the caller in one short sentence and offer help."


@dataclass
class Providers:
    vad: VAD
    stt: STT
    llm: LLM
    tts: TTS


@dataclass
class ItemRecord:
    """A finished turn, as the store keeps it."""

    role: str
    text: str
    started_at: datetime
    duration_ms: float
    voice_id: str | None = None
    audio_speed: float | None = None
    system_prompt: str | None = None
    tool_calls: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class ConversationResult:
    ended_by: str
    latencies_ms: list[float]
    interruptions_count: int
    underruns: int
    recorder: Recorder
    stage_timings: list[dict[str, float]]


class ConversationObserver(Protocol):
    """Persistence hooks: items as each turn completes, late tool results, transfers."""

    async def item(self, record: ItemRecord) -> None: ...

    async def tool_result(self, record: dict[str, Any]) -> None: ...

    async def transferred(self, agent_id: str, agent_name: str) -> None: ...


Send = Callable[[ev.EngineEvent], Awaitable[None]]


class Conversation:
    """The engine for one conversation. Create, feed audio and controls, ``await run()``."""

    def __init__(self, cfg: SessionConfig, providers: Providers, send: Send,
                 observer: ConversationObserver, *, webhooks: WebhookCaller | None = None,
                 agents: AgentDirectory | None = None,
                 recordings_dir: Path | None = None) -> None:
        self.cfg, self.p, self._send, self.observer = cfg, providers, send, observer
        self.agents = agents
        self.client_tools = ClientToolChannel(self._emit, self._emit_now)
        self.tools = ToolRuntime(cfg.runtime_tools, webhooks=webhooks, client=self.client_tools,
                                 on_dtmf=self._dtmf, background=self._spawn_background,
                                 on_async_result=self._async_tool_result)
        self.lifecycle = Lifecycle()
        self.recorder = Recorder(recordings_dir, cfg.conversation_id)
        self.history: list[ChatMessage] = []
        self.system_prompt = cfg.system_prompt
        self.muted = False
        self.latencies_ms: list[float] = []
        self.stage_timings: list[dict[str, float]] = []
        self.interruptions = 0
        self._inbound: asyncio.Queue[bytes] = asyncio.Queue(INBOUND_QUEUE_CHUNKS)
        self._outbox: asyncio.Queue[ev.EngineEvent] = asyncio.Queue(OUTBOX_EVENTS)
        self._ended = asyncio.Event()
        self._turns = TurnDetector(cfg.turn)
        self._vad: VADStream | None = None  # made in run(), once the VAD is loaded
        rate = cfg.input_format.sample_rate
        self._resampler = StreamingResampler(rate, SAMPLE_RATE) if rate != SAMPLE_RATE else None
        self._frame_buf = np.zeros(0, dtype=np.int16)
        self._job: ReplyJob | None = None
        self._group: asyncio.TaskGroup | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._replying = 0  # turns between end of speech and end of the reply
        #: the task generating each open utterance, cancelled when the caller barges in
        self._producers: dict[int, asyncio.Task[Any]] = {}
        self._spoken: list[Utterance] = []  # started utterances, to record on any end path
        self._pending_interrupted: str | None = None
        self._last_voiced_at = 0.0
        self._speech_started_at = time.time()
        self._last_activity = time.monotonic()
        self._poked = False
        noise = (NoiseGenerator(cfg.background_noise, cfg.output_format.sample_rate,
                                cfg.background_noise_level, seed=None)
                 if cfg.background_noise and cfg.background_noise_level > 0 else None)
        self.playout = Playout(cfg.output_format, self._emit,
                               realtime=not cfg.stream_ahead_of_real_time, noise=noise,
                               on_frame=self._record_out)
        self.playout.on_start = self._assistant_started
        self.playout.on_finish = self._assistant_finished

    # ----- inputs from the transport -------------------------------------------------
    def push_audio(self, data: bytes) -> None:
        """Queue caller audio (input format). Drops the oldest chunk when the queue is full."""
        if self._inbound.full():
            with contextlib.suppress(asyncio.QueueEmpty):
                self._inbound.get_nowait()
        self._inbound.put_nowait(data)

    def end(self, ended_by: str, at: datetime | None = None) -> bool:
        """Ask the conversation to end; the first reason given wins. ``at``: when it really
        ended, if earlier than now (a dropped client that never came back)."""
        decided = self.lifecycle.request_end(ended_by, at)
        self._ended.set()
        return decided

    def push_dtmf(self, digits: str) -> None:
        """Keypad digits from the caller: answered as a user turn."""
        self.generate_reply(None, f"The caller pressed {' '.join(digits)}.")

    def mute(self) -> None:
        self.muted = True

    def unmute(self) -> None:
        self.muted = False

    def update_system_prompt(self, prompt: str) -> None:
        self.system_prompt = prompt

    def add_system_message(self, message: str) -> None:
        self.history.append(ChatMessage.system(message))

    def update_tools(self, tools: list[RuntimeTool]) -> None:
        """``update_tools_subset``: replace the tools the model may call."""
        self.tools.replace(tools)

    def tool_call_output(self, call_id: str, output: Any) -> bool:
        """The client's ``tool_call_output``; False when no such call is waiting."""
        return self.client_tools.deliver(call_id, output)

    async def _dtmf(self, digits: str) -> None:
        await self._emit(ev.Dtmf(digits))

    def _spawn_background(self, coro: Coroutine[Any, Any, None]) -> None:
        self._spawn(coro, "async-tool")

    async def _async_tool_result(self, outcome: ToolOutcome) -> None:
        """An async tool finished: tell the client, store it, let the model know."""
        await asyncio.shield(self.observer.tool_result(outcome.record))  # stored first
        await self._emit(ev.ToolCallFinished(outcome.record))
        name = outcome.record.get("tool", {}).get("name")
        self.history.append(ChatMessage.system(
            f"The async tool {name} finished with: {outcome.content}"))

    def _offered_tools(self) -> list[ToolSpec]:
        return built_in_specs(self.cfg.built_in_tools) + self.tools.specs()

    def reset(self, system_prompt: str | None = None) -> None:
        """Start afresh: forget the history, optionally with a new system prompt."""
        self.playout.interrupt()
        self._drop_speculation()
        self.history.clear()
        if system_prompt:
            self.system_prompt = system_prompt

    def say(self, text: str, interruptible: bool = True) -> None:
        """Speak exactly ``text`` (queued after anything already playing)."""
        self._spawn(self._speak_fixed(text, "say", interruptible))

    def generate_reply(self, system_message: str | None = None,
                       user_message: str | None = None) -> None:
        """Take an assistant turn now, optionally after adding a system/user message."""
        if system_message:
            self.history.append(ChatMessage.system(system_message))
        self._spawn(self._reply_now(user_message))

    # ----- lifecycle -------------------------------------------------------------------
    async def run(self) -> ConversationResult:
        """Run until ``end()``; returns the result (the ended_by is set exactly once)."""
        self.lifecycle.move(ConversationState.RUNNING)
        await self.p.vad.ensure_loaded()
        self._vad = self.p.vad.stream()
        try:
            async with asyncio.TaskGroup() as group:
                self._group = group
                self._spawn(self._sender(), "sender")
                self._spawn(self._input_loop(), "input")
                self._spawn(self.playout.run(), "playout")
                self._spawn(self._timer_loop(), "timers")
                self._spawn(self._welcome(), "welcome")
                await self._ended.wait()
                for task in list(self._tasks):
                    task.cancel()
        finally:
            self._group = None
            if self._job is not None:
                self._job.cancel()
            await self._record_unfinished()
            await self._flush_outbox()
            if self.lifecycle.live:
                self.lifecycle.request_end("error")
            self.lifecycle.move(ConversationState.ENDED)
        return ConversationResult(self.lifecycle.ended_by or "error", self.latencies_ms,
                                  self.interruptions, self.playout.underruns, self.recorder,
                                  self.stage_timings)

    async def _emit(self, event: ev.EngineEvent) -> None:
        await self._outbox.put(event)

    def _emit_now(self, event: ev.EngineEvent) -> None:
        """From synchronous code (the input path): the outbox keeps the order."""
        with contextlib.suppress(asyncio.QueueFull):
            self._outbox.put_nowait(event)

    async def _sender(self) -> None:
        while True:
            event = await self._outbox.get()
            await self._send(event)

    async def _flush_outbox(self) -> None:
        """Deliver what was queued before the end (e.g. assistant_ended_conversation)."""
        with contextlib.suppress(Exception):
            async with asyncio.timeout(2):
                while not self._outbox.empty():
                    await self._send(self._outbox.get_nowait())

    async def _guard(self, coro: Coroutine[Any, Any, None]) -> None:
        """Provider failures end the conversation with ``error``; everything is kept."""
        try:
            await coro
        except asyncio.CancelledError:
            raise
        except ProviderError as exc:
            log.warning("provider failed in %s: %s", self.cfg.conversation_id, exc)
            with contextlib.suppress(Exception):
                await self._emit(ev.EngineError(exc.message, exc.code))
            self.end("error")
        except Exception as exc:
            log.exception("engine failure in %s", self.cfg.conversation_id)
            with contextlib.suppress(Exception):
                await self._emit(ev.EngineError(f"internal error: {exc}", "internal_error"))
            self.end("error")

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str = "turn") -> None:
        """Start a task owned by the conversation's group (dropped once it has ended)."""
        if self._group is None or not self.lifecycle.live:
            coro.close()
            return
        task = self._group.create_task(self._guard(coro), name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ----- input path ------------------------------------------------------------------
    async def _input_loop(self) -> None:
        fmt = self.cfg.input_format
        while True:
            data = await self._inbound.get()
            samples = fmt.decode(data)
            if self._resampler is not None:
                samples = np.asarray(self._resampler.process(samples), dtype=np.int16)
            self.recorder.caller(samples)
            buf = np.concatenate([self._frame_buf, samples])
            whole = buf.size // FRAME_SAMPLES * FRAME_SAMPLES
            self._frame_buf = buf[whole:]
            for start in range(0, whole, FRAME_SAMPLES):
                self._on_frame(buf[start:start + FRAME_SAMPLES])

    def _on_frame(self, frame: npt.NDArray[np.int16]) -> None:
        prob = 0.0 if self.muted or self._vad is None else self._vad.process(frame)
        event = self._turns.feed(frame, prob)
        if self._turns.in_speech and prob >= self.cfg.turn.threshold:
            self._last_voiced_at = time.monotonic()
        if event is TurnEvent.SPEECH_START:
            self._speech_started_at = time.time() - self._turns.voiced_ms / 1000
            self._touch()
            self._emit_now(ev.UserStartedSpeaking())
        elif event is TurnEvent.RESUME:
            self._drop_speculation()
        elif event is TurnEvent.PAUSE:
            self._start_speculation()
        elif event is TurnEvent.END:
            self._end_of_turn()
        if self._turns.in_speech:
            self._maybe_barge_in()

    def _maybe_barge_in(self) -> None:
        current = self.playout.current
        if (current is None or current.started_at is None or not current.interruptible
                or current.interrupted or self.cfg.min_words_to_interrupt > 1):
            return
        if self._turns.voiced_ms >= self.cfg.min_interruption_ms:
            self._interrupt()

    def _interrupt(self) -> None:
        utt = self.playout.interrupt()
        if utt is None:
            return
        self.interruptions += 1
        self._pending_interrupted = utt.heard_text
        producer = self._producers.pop(id(utt), None)
        if producer is not None:
            producer.cancel()  # stop generating (and any tool call) nobody will hear

    def _start_speculation(self) -> None:
        self._drop_speculation()
        audio = self._turns.turn_audio()
        self._job = ReplyJob(self.p.stt, audio, None, self.cfg.language,
                             self.cfg.boosted_keywords, self._run_reply)

    def _drop_speculation(self) -> None:
        if self._job is not None and not self._job.committed:
            self._job.cancel()
        self._job = None

    def _end_of_turn(self) -> None:
        job = self._job
        if job is None:  # the endpointing wait was too short to speculate
            job = ReplyJob(self.p.stt, self._turns.turn_audio(), None, self.cfg.language,
                           self.cfg.boosted_keywords, self._run_reply)
        job.committed = True
        job.timings["endpointing_ms"] = round((time.monotonic() - self._last_voiced_at) * 1000, 1)
        self._job = None
        started, duration = self._speech_started_at, self._turns.voiced_ms
        self._turns.reset()
        self._touch()
        self._emit_now(ev.UserFinishedSpeaking())
        self._spawn(self._commit(job, self._last_voiced_at, started, duration))

    # ----- turns -----------------------------------------------------------------------
    async def _commit(self, job: ReplyJob, last_voiced: float, started: float,
                      voiced_ms: float) -> None:
        """The user finished a turn: publish it, and play the reply prepared for it."""
        self._replying += 1
        try:
            await self._publish_turn(job, last_voiced, started, voiced_ms)
        finally:
            self._replying -= 1

    async def _publish_turn(self, job: ReplyJob, last_voiced: float, started: float,
                            voiced_ms: float) -> None:
        text, language = await job.transcript
        interrupted = self._pending_interrupted
        if not text or self._too_few_words(text):
            job.cancel()
            await self._emit(ev.InputCancelled())
            return
        if self.playout.speaking and interrupted is None:
            self._interrupt()  # min_words_to_interrupt > 1 reached by this turn
            interrupted = self._pending_interrupted
        if interrupted is not None:
            self._pending_interrupted = None
            await self._emit(ev.InterruptedResponse(interrupted))
        await self._emit(ev.InputText(text, language))
        self.history.append(ChatMessage.user(text))
        job.utterance.timings = job.timings
        self._producers[id(job.utterance)] = job.task
        self.playout.enqueue(job.utterance)  # first: the reply must not wait for storage
        await asyncio.shield(self.observer.item(ItemRecord(
            "user", text, datetime.fromtimestamp(started, UTC), voiced_ms)))
        await self._finish_reply(job, last_voiced)

    def _too_few_words(self, text: str) -> bool:
        needed = self.cfg.min_words_to_interrupt
        return needed > 1 and self.playout.speaking and len(text.split()) < needed

    async def _finish_reply(self, job: ReplyJob, last_voiced: float | None) -> None:
        utt = job.utterance
        await asyncio.wait({job.task})  # never raises; the outcome is inspected below
        if not job.task.cancelled() and job.task.exception() is not None:
            raise job.task.exception()  # type: ignore[misc]
        await utt.done.wait()
        self._producers.pop(id(utt), None)
        result = job.result
        if last_voiced is not None and utt.first_frame_at is not None:
            latency = round((utt.first_frame_at - last_voiced) * 1000, 1)
            self.latencies_ms.append(latency)
            self.stage_timings.append({**job.timings, "voice_to_voice_ms": latency})
            log.info("turn latency %.0f ms %s", latency, job.timings)
        await self._close_assistant_turn(utt, result)

    async def _close_assistant_turn(self, utt: Utterance, result: ReplyResult) -> None:
        self.history.extend(result.messages)
        spoken = utt.heard_text if utt.interrupted else (utt.text or utt.heard_text)
        if spoken:
            self.history.append(ChatMessage.assistant(spoken))
        if (utt.started_at is not None or result.tool_calls) and not utt.recorded:
            utt.recorded = True
            # Shielded: a hang-up right now must not lose a turn the caller heard.
            await asyncio.shield(self.observer.item(
                self._assistant_item(utt, spoken, result.tool_calls)))
        if result.chose_not_to_respond and not spoken:
            await self._emit(ev.AssistantChoseNotToRespond())
        if result.end_conversation and not utt.interrupted:
            await self._emit(ev.AssistantEndedConversation())
            self.end("assistant")
        elif result.transfer_to:
            await self._transfer(result.transfer_to)

    async def _transfer(self, agent_name: str) -> None:
        """Continue the conversation as another agent (its prompt, voice, tools; history kept)."""
        if self.agents is None:
            return
        switch = await self.agents.switch_to(agent_name)
        self.system_prompt = switch.system_prompt
        self.cfg.voice_id, self.cfg.audio_speed = switch.voice_id, switch.audio_speed
        self.cfg.built_in_tools = switch.built_in_tools
        self.tools.replace(switch.runtime_tools)
        await self.observer.transferred(switch.agent_id, switch.agent_name)
        self.history.append(ChatMessage.system(
            f"The caller has been transferred to you ({switch.agent_name}). Greet them and "
            "continue the conversation."))
        self._spawn(self._reply_now(None))

    def _assistant_item(self, utt: Utterance, text: str,
                        tool_calls: list[dict[str, Any]]) -> ItemRecord:
        started = datetime.fromtimestamp(utt.started_at or time.time(), UTC)
        duration = utt.sent_samples * 1000 / self.cfg.output_format.sample_rate
        return ItemRecord("assistant", text, started, duration, self.cfg.voice_id,
                          self.cfg.audio_speed, self.system_prompt, tool_calls)

    async def _run_reply(self, user_text: str, job: ReplyJob) -> ReplyResult:
        messages = [ChatMessage.system(self.system_prompt), *self.history,
                    ChatMessage.user(user_text)]
        return await generate_reply(self._speech(), messages, self._offered_tools(), self.tools,
                                    job.utterance, job.timings, self._tool_finished, job.result)

    async def _tool_finished(self, record: dict[str, Any]) -> None:
        await self._emit(ev.ToolCallFinished(record))

    def _speech(self) -> Speech:
        return Speech(self.p.llm, self.p.tts, self.cfg.output_format, self.cfg.voice_id,
                      self.cfg.audio_speed, self.cfg.max_reply_tokens)

    async def _reply_now(self, user_message: str | None) -> None:
        """``generate_reply``: an assistant turn without waiting for speech."""
        if user_message:
            self.history.append(ChatMessage.user(user_message))
        utt = Utterance("reply")
        messages = [ChatMessage.system(self.system_prompt), *self.history]
        self._replying += 1
        result = ReplyResult()
        task = asyncio.ensure_future(generate_reply(
            self._speech(), messages, self._offered_tools(), self.tools, utt, {},
            self._tool_finished, result))
        self._producers[id(utt)] = task
        try:
            self.playout.enqueue(utt)  # plays as soon as the first sentence exists
            await asyncio.wait({task})
            if not task.cancelled() and task.exception() is not None:
                raise task.exception()  # type: ignore[misc]
            await utt.done.wait()
            await self._close_assistant_turn(utt, result)
        finally:
            self._producers.pop(id(utt), None)
            task.cancel()
            self._replying -= 1

    async def _speak_fixed(self, text: str, kind: str, interruptible: bool) -> None:
        utt = Utterance(kind, interruptible)
        self.playout.enqueue(utt)
        try:
            await speak(self._speech(), text, utt)
        finally:
            utt.close()
        await utt.done.wait()
        await self._close_assistant_turn(utt, ReplyResult(text=text))

    async def _welcome(self) -> None:
        if self.cfg.generate_welcome_message:
            messages = [ChatMessage.system(self.system_prompt),
                        ChatMessage.system(GREETING_INSTRUCTION)]
            utt = Utterance("welcome", self.cfg.is_welcome_message_interruptible)
            self.playout.enqueue(utt)
            result = await generate_reply(self._speech(), messages, [], self.tools, utt, {})
            await utt.done.wait()
            await self._close_assistant_turn(utt, result)
        elif self.cfg.welcome_message.strip():
            await self._speak_fixed(self.cfg.welcome_message, "welcome",
                                    self.cfg.is_welcome_message_interruptible)

    # ----- outputs and timers ----------------------------------------------------------
    async def _assistant_started(self, utt: Utterance) -> None:
        self._spoken.append(utt)
        await self._emit(ev.AssistantStartedSpeaking())

    async def _assistant_finished(self, utt: Utterance) -> None:
        if utt.kind != "poke":  # a poke must not restart the silence timers it serves
            self._last_activity = time.monotonic()
        if not utt.interrupted:
            await self._emit(ev.AssistantFinishedSpeaking())

    def _record_out(self, frame: npt.NDArray[np.int16], at: float) -> None:
        self.recorder.assistant(frame, self.cfg.output_format.sample_rate, at)

    def _touch(self) -> None:
        self._last_activity = time.monotonic()
        self._poked = False

    async def _timer_loop(self) -> None:
        """No-input poke and silence end, measured from the last speech of either side."""
        while True:
            await asyncio.sleep(0.1)
            current = self.playout.current
            if self._turns.in_speech or self._replying or (
                    current is not None and current.kind != "poke"):
                self._last_activity = max(self._last_activity, time.monotonic() - 0.1)
                continue
            idle = time.monotonic() - self._last_activity
            if idle >= self.cfg.no_input_end_conversation_sec:
                self.end("assistant_silence_limit_reached")
                return
            poke = self.cfg.no_input_poke_sec
            if poke is not None and not self._poked and idle >= poke:
                self._poked = True
                await self._poke()

    async def _poke(self) -> None:
        if self.cfg.generate_no_input_poke_text:
            self.history.append(ChatMessage.system(
                "The caller has been silent. Check, in one short sentence, if they are there."))
            self._spawn(self._reply_now(None))
        else:
            self._spawn(self._speak_fixed(self.cfg.no_input_poke_text, "poke", True))

    async def _record_unfinished(self) -> None:
        """On end, keep whatever the caller heard of utterances not yet recorded."""
        for utt in self._spoken:
            if utt.recorded:
                continue
            utt.recorded = True
            text = utt.heard_text if utt.interrupted or not utt.done.is_set() else utt.text
            with contextlib.suppress(Exception):
                await self.observer.item(self._assistant_item(utt, text, []))

