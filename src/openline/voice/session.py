"""One live conversation: audio in, turn-taking, replies, barge-in, timers, recording.

``Conversation`` is the facade a transport and the service layer drive. It owns the parts
and the tasks; the work is done by:

* ``listening.Listener``: caller audio -> VAD -> turns -> speculation and barge-in;
* ``assistant.Assistant``: the one reply path (every assistant utterance);
* ``playout.Playout`` into an ``io.AudioSink``: paced audio out, and what was heard;
* ``timers.SilenceTimers`` (poke, silence end) and ``dtmf.DtmfCollector`` (keypad turns).

All work of a conversation runs in one ``asyncio.TaskGroup`` owned by ``run()``: the
sender, the input loop, the sink and playout loops, the timers and one task per turn.
``end(ended_by)`` decides how the conversation ends (first caller wins) and cancels the
group; ``run()`` then finalises and returns the result. Time comes from a ``Clock``
(virtual in the engine tests).

Queue policy: outbound events go through one bounded FIFO outbox (order preserved; a full
outbox blocks the producer, so a slow client slows the playout instead of growing memory).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Coroutine
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from openline.audio.noise import NoiseGenerator
from openline.domain.errors import ProviderError
from openline.voice import events as ev
from openline.voice import languages, listen_only
from openline.voice.assistant import Assistant, UserTurn
from openline.voice.backchannel import Backchannel
from openline.voice.chat_context import ChatContext
from openline.voice.client_tools import ClientToolChannel
from openline.voice.clock import SYSTEM_CLOCK, Clock
from openline.voice.config import AgentDirectory, AgentSwitch, SessionConfig
from openline.voice.contracts import (
    ConversationObserver,
    ConversationResult,
    ItemRecord,
    Providers,
    Send,
)
from openline.voice.dtmf import DtmfCollector, dtmf_text
from openline.voice.io import AudioSink, LocalPacer
from openline.voice.listening import Listener
from openline.voice.playout import Playout
from openline.voice.pronunciation import with_pronunciations
from openline.voice.recorder import Recorder
from openline.voice.reply import ReplyJob
from openline.voice.state import ConversationState, Lifecycle
from openline.voice.timers import SilenceTimers
from openline.voice.tools import PhoneTransferer, RuntimeTool, ToolRuntime, WebhookCaller

__all__ = ["Conversation", "ConversationObserver", "ConversationResult", "ItemRecord",
           "Providers", "Send"]

log = logging.getLogger(__name__)
OUTBOX_EVENTS = 500  # a slow client applies backpressure to the playout beyond this


class Conversation:
    """The engine for one conversation. Create, feed audio and controls, ``await run()``.

    ``sink``: where assistant audio goes (default: a ``LocalPacer`` sending ``AudioOut``
    through ``send``); ``clock``: the engine's time (default: the system clock);
    ``transfer``: carries out phone transfers (the call session, when its transport has a
    phone line)."""

    def __init__(self, cfg: SessionConfig, providers: Providers, send: Send,
                 observer: ConversationObserver, *, webhooks: WebhookCaller | None = None,
                 agents: AgentDirectory | None = None, recordings_dir: Path | None = None,
                 sink: AudioSink | None = None, clock: Clock | None = None,
                 transfer: PhoneTransferer | None = None) -> None:
        self.cfg, self.p, self._send, self.observer = cfg, providers, send, observer
        self.p = with_pronunciations(providers, cfg.pronunciation_dictionary)
        self.languages = languages.attach(self)
        self.listen_only = listen_only.attach(self)
        self.backchannel = Backchannel(self)
        self.agents = agents
        self.clock: Clock = clock or SYSTEM_CLOCK
        self.chat = ChatContext(cfg.system_prompt)
        self.assistant = Assistant(self)
        self.client_tools = ClientToolChannel(self.emit, self.emit_now)
        self.tools = ToolRuntime(cfg.runtime_tools, webhooks=webhooks, client=self.client_tools,
                                 on_dtmf=self._press_keys, background=self._spawn_background,
                                 on_async_result=self.assistant.async_tool_result,
                                 on_transfer=transfer)
        self.lifecycle = Lifecycle()
        self.recorder = Recorder(recordings_dir, cfg.conversation_id, clock=self.clock)
        self.muted = False
        self.latencies_ms: list[float] = []
        self.stage_timings: list[dict[str, float]] = []
        self.interruptions = 0
        self._outbox: asyncio.Queue[ev.EngineEvent] = asyncio.Queue(OUTBOX_EVENTS)
        self._ended = asyncio.Event()
        self._group: asyncio.TaskGroup | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.sink: AudioSink = sink or LocalPacer(
            cfg.output_format, self.emit, clock=self.clock,
            realtime=not cfg.stream_ahead_of_real_time, noise=_noise(cfg))
        self.playout = Playout(cfg.output_format, self.sink, clock=self.clock,
                               on_start=self.backchannel.skip_cues(self.assistant.on_start),
                               on_finish=self.backchannel.skip_cues(self.assistant.on_finish),
                               on_frame=self._record_out,
                               backoff_s=cfg.interruption_backoff_ms / 1000)
        self.listener = Listener(self)
        self.timers = SilenceTimers(
            self.clock, poke_s=lambda: self.cfg.no_input_poke_sec,
            end_s=lambda: self.cfg.no_input_end_conversation_sec, busy=self._busy,
            poke=self.assistant.poke, end=self._silence_limit)
        self.dtmf = DtmfCollector(self.clock, self._keypad_turn, self.spawn)

    # ----- inputs from the transport -------------------------------------------------------
    def push_audio(self, data: bytes) -> None:
        """Queue caller audio (input format). Drops the oldest chunk when the queue is full."""
        self.listener.push(data)

    def push_dtmf(self, digits: str) -> None:
        """Keypad digits from the caller: one user turn at ``#`` or after a 2 s pause."""
        self.timers.mark_activity()
        self.dtmf.push(digits)

    def end(self, ended_by: str, at: datetime | None = None) -> bool:
        """Ask the conversation to end; the first reason given wins. ``at``: when it really
        ended, if earlier than now (a dropped client that never came back)."""
        decided = self.lifecycle.request_end(ended_by, at)
        self._ended.set()
        return decided

    def mute(self) -> None:
        self.muted = True

    def unmute(self) -> None:
        self.muted = False

    @property
    def system_prompt(self) -> str:
        return self.chat.system_prompt

    def update_system_prompt(self, prompt: str) -> None:
        self.chat.system_prompt = prompt

    def add_system_message(self, message: str) -> None:
        self.chat.add_system(message)

    def update_tools(self, tools: list[RuntimeTool]) -> None:
        """``update_tools_subset``: replace the tools the model may call."""
        self.tools.replace(tools)

    def tool_call_output(self, call_id: str, output: Any) -> bool:
        """The client's ``tool_call_output``; False when no such call is waiting."""
        return self.client_tools.deliver(call_id, output)

    def reset(self, system_prompt: str | None = None) -> None:
        """Start afresh: stop speaking, forget the history, optionally with a new prompt."""
        if self.playout.drop_all():
            self.emit_now(ev.ClearAudio())
        self.listener.drop_speculation()
        self.chat.clear()
        if system_prompt:
            self.chat.system_prompt = system_prompt

    def say(self, text: str, interruptible: bool = True) -> None:
        """Speak exactly ``text`` (queued after anything already playing)."""
        self.assistant.say(text, interruptible)

    def generate_reply(self, system_message: str | None = None,
                       user_message: str | None = None) -> None:
        """Take an assistant turn now, optionally after adding a system/user message."""
        if system_message:
            self.chat.add_system(system_message)
        if user_message:
            self.chat.add_user(user_message, "text")
        self.assistant.generate_reply("generated")

    def switch_agent(self, switch: AgentSwitch) -> None:
        """A transfer: the session continues with the target agent's settings. The config is
        replaced, never mutated (the caller's ``SessionConfig`` may be shared)."""
        self.cfg = dataclasses.replace(
            self.cfg, system_prompt=switch.system_prompt, voice_id=switch.voice_id,
            audio_speed=switch.audio_speed, built_in_tools=switch.built_in_tools,
            runtime_tools=list(switch.runtime_tools))
        self.chat.system_prompt = switch.system_prompt
        self.tools.replace(switch.runtime_tools)

    # ----- lifecycle -----------------------------------------------------------------------
    async def run(self) -> ConversationResult:
        """Run until ``end()``; returns the result (the ended_by is set exactly once)."""
        self.lifecycle.move(ConversationState.RUNNING)
        await self.p.vad.ensure_loaded()
        self.listener.open(self.backchannel.tap(self.p.vad.stream()))
        try:
            async with asyncio.TaskGroup() as group:
                self._group = group
                self.spawn(self._sender(), "sender")
                self.spawn(self.listener.run(), "input")
                self.spawn(self.sink.run(), "sink")
                self.spawn(self.playout.run(), "playout")
                self.spawn(self.timers.run(), "timers")
                if self.cfg.max_duration_s is not None:
                    self.spawn(self._max_duration(self.cfg.max_duration_s), "max-duration")
                self.assistant.welcome()
                self.spawn(self.assistant.warm_llm(), "llm-warm-up")
                await self._ended.wait()
                for task in list(self._tasks):
                    task.cancel()
        finally:
            self._group = None
            self.listener.drop_speculation()
            self.p.llm.end_session(self.assistant.llm_session)
            await self.assistant.record_unfinished()
            await self._flush_outbox()
            if self.lifecycle.live:
                self.lifecycle.request_end("error")
            self.lifecycle.move(ConversationState.ENDED)
        return ConversationResult(self.lifecycle.ended_by or "error", self.latencies_ms,
                                  self.interruptions, self.sink.underruns, self.recorder,
                                  self.stage_timings)

    async def emit(self, event: ev.EngineEvent) -> None:
        """Send an event to the transport, in order (waits while the outbox is full)."""
        await self._outbox.put(event)

    def emit_now(self, event: ev.EngineEvent) -> None:
        """From synchronous code (the input path): the outbox keeps the order."""
        with contextlib.suppress(asyncio.QueueFull):
            self._outbox.put_nowait(event)

    def spawn(self, coro: Coroutine[Any, Any, None], name: str = "turn") -> bool:
        """Start a task owned by the conversation's group; False (and dropped) once ended."""
        if self._group is None or not self.lifecycle.live:
            coro.close()
            return False
        task = self._group.create_task(self._guard(coro), name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return True

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
                await self.emit(ev.EngineError(exc.message, exc.code))
            self.end("error")
        except Exception as exc:
            log.exception("engine failure in %s", self.cfg.conversation_id)
            with contextlib.suppress(Exception):
                await self.emit(ev.EngineError(f"internal error: {exc}", "internal_error"))
            self.end("error")

    # ----- helpers the parts call back ------------------------------------------------------
    def _busy(self) -> bool:
        """Someone speaks or a reply is on its way: not silence (a poke playing is)."""
        current = self.playout.current
        return (self.listener.turns.in_speech or self.assistant.replying > 0
                or (current is not None and current.kind != "poke"))

    def _silence_limit(self) -> None:
        self.end("assistant_silence_limit_reached")

    async def _max_duration(self, seconds: float) -> None:
        """The call's time limit (``max_duration_s``), on the engine's clock."""
        await self.clock.sleep(seconds)
        self.end("max_duration")

    def _keypad_turn(self, digits: str) -> None:
        """A keypad entry is complete: report it, then answer it like a spoken turn."""
        self.emit_now(ev.DtmfReceived(digits))
        job = ReplyJob(None, None, dtmf_text(digits), self.cfg.language, (),
                       self.assistant.run_reply)
        turn = UserTurn(self.clock.now(), 0.0, None, "dtmf")
        if not self.spawn(self.assistant.user_turn(job, turn)):
            job.cancel()

    async def _press_keys(self, digits: str) -> None:
        """The assistant's keypad tool: a telephony bridge plays the digits."""
        await self.emit(ev.Dtmf(digits))

    def _spawn_background(self, coro: Coroutine[Any, Any, None]) -> None:
        self.spawn(coro, "async-tool")

    def _record_out(self, frame: npt.NDArray[np.int16], at: float) -> None:
        self.recorder.assistant(frame, self.cfg.output_format.sample_rate, at)


def _noise(cfg: SessionConfig) -> NoiseGenerator | None:
    if not cfg.background_noise or cfg.background_noise_level <= 0:
        return None
    return NoiseGenerator(cfg.background_noise, cfg.output_format.sample_rate,
                          cfg.background_noise_level, seed=None)
