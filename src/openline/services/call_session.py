"""One live call, whatever carries it: the engine, its attached transport, its stored end.

The session is the only owner of a call's lifecycle. A transport (``transports/base.py``)
feeds it input and carries out what the engine asks for; when the transport drops in a
way that lets the peer come back, the session waits for it through the live registry and
goes on with the new peer. Whatever way the call ends, ``run`` stores the outcome.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from openline.domain.errors import ValidationFailed
from openline.domain.limits import external_id_error
from openline.providers.tts.cache import cache_scope
from openline.services.call_setup import PreparedCall
from openline.services.item_writer import ItemWriter
from openline.store import tables as t
from openline.store.db import Database
from openline.store.tables import utcnow
from openline.store.tables_dashboard import ConversationStageTimings
from openline.transports import base as tb
from openline.voice import events as ev
from openline.voice.session import Conversation, ConversationResult
from openline.voice.tools import PhoneTransfer, RuntimeTool

log = logging.getLogger(__name__)

#: how long a call waits for a peer whose connection dropped (the SDK reconnects)
RECONNECT_GRACE_S = 30.0
#: caller audio may run this far ahead of real time (network jitter, client buffering)
INPUT_BURST_MS = 5000.0
#: at most one "audio too fast" warning per this many seconds
WARN_EVERY_S = 5.0


class InputPacer:
    """Admits caller audio at real-time pace plus a burst allowance.

    A peer cannot have spoken more audio than time has passed: a client pushing audio
    faster than real time would be recorded and recognised in full (CPU, storage) for
    nothing. What exceeds the allowance is dropped.
    """

    def __init__(self, burst_ms: float = INPUT_BURST_MS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.burst_ms, self.clock = burst_ms, clock
        self._start: float | None = None
        self.admitted_ms = 0.0
        self.dropped_ms = 0.0

    def admit(self, ms: float) -> bool:
        now = self.clock()
        if self._start is None:
            self._start = now
        if self.admitted_ms + ms > (now - self._start) * 1000 + self.burst_ms:
            self.dropped_ms += ms
            return False
        self.admitted_ms += ms
        return True


@dataclass
class CallHooks:
    """What some controls need beyond the engine (storage, tool lookup) and the way the
    session reaches a returning peer."""

    set_external_id: Callable[[str, str], Awaitable[None]]
    load_tools: Callable[[str, list[object]], Awaitable[list[RuntimeTool]]]
    wait_for_peer: Callable[[str, str, float], Awaitable[tb.CallTransport | None]]
    #: after the end is stored, before anyone waiting for the call is released
    stored: Callable[[str], Awaitable[None]]
    #: the saved recording -> the one to keep (data protection: external storage, zero
    #: retention); ``None`` keeps it as it is
    artifacts: Callable[[str, Path | None, ItemWriter], Awaitable[Path | None]] | None = None


class CallSession:
    """A running conversation: implements ``CallInput`` for its transport."""

    def __init__(self, prepared: PreparedCall, engine: Conversation, writer: ItemWriter,
                 transport: tb.CallTransport, hooks: CallHooks, db: Database,
                 recordings_dir: Path) -> None:
        self.prepared, self.engine, self.writer = prepared, engine, writer
        self.transport, self.hooks = transport, hooks
        self.db, self.recordings_dir = db, recordings_dir
        self.result: ConversationResult | None = None
        self._finished = asyncio.Event()
        self._fmt = prepared.resolved.session.input_format
        self._carry = b""  # a partial sample split across chunks
        self.pacer = InputPacer()
        self._warned_at: float | None = None
        self._notices: set[asyncio.Task[None]] = set()

    # ----- identity (LiveCall) --------------------------------------------------------
    @property
    def id(self) -> str:
        return self.prepared.id

    @property
    def workspace_id(self) -> str:
        return self.prepared.workspace_id

    def end(self, ended_by: str) -> None:
        self.engine.end(ended_by)

    async def wait_finished(self) -> None:
        await self._finished.wait()

    # ----- engine -> transport ----------------------------------------------------------
    async def dispatch(self, event: ev.EngineEvent) -> None:
        """The engine's ``send``: call control goes to its own transport verb."""
        transport = self.transport
        if isinstance(event, ev.ClearAudio):
            await transport.clear()
        elif isinstance(event, ev.Dtmf):
            await transport.send_dtmf(event.digits)
            await transport.send_event(event)
        else:
            await transport.send_event(event)

    async def transfer_to_phone(self, request: PhoneTransfer) -> bool:
        """The engine's phone transfer, carried out by whichever transport is attached."""
        return await self.transport.transfer(request)

    # ----- transport -> engine (CallInput) ------------------------------------------------
    def push_audio(self, pcm: bytes, media_ms: float | None = None) -> None:
        """Caller audio, in whole samples, at most at real-time pace (plus a burst)."""
        data = self._carry + pcm
        whole = len(data) - len(data) % self._fmt.bytes_per_sample
        self._carry = data[whole:]
        if not whole:
            return
        ms = whole / self._fmt.bytes_per_sample * 1000 / self._fmt.sample_rate
        if self.pacer.admit(ms):
            self.engine.push_audio(data[:whole])
            return
        now = time.monotonic()
        if self._warned_at is None or now - self._warned_at >= WARN_EVERY_S:
            self._warned_at = now
            self._notify(ev.EngineWarning(
                "Audio is arriving faster than real time; the excess is dropped",
                "audio_faster_than_real_time"))

    def _notify(self, event: ev.EngineEvent) -> None:
        """Send an event from synchronous input code; the task is owned by the session."""
        task = asyncio.get_running_loop().create_task(self.dispatch(event))
        self._notices.add(task)
        task.add_done_callback(self._notices.discard)

    def push_dtmf(self, digits: str) -> None:
        self.engine.push_dtmf(digits)

    def hangup(self, at: datetime | None = None) -> None:
        self.engine.end("user", at=at)

    async def control(self, command: tb.Control) -> None:
        """Apply one control message (raises ``ControlRejected``)."""
        conv = self.engine
        match command:
            case tb.UpdateSystemPrompt(system_prompt=prompt):
                conv.update_system_prompt(prompt)
            case tb.AddSystemMessage(system_message=message):
                conv.add_system_message(message)
            case tb.SetExternalId(external_id=value):
                problem = external_id_error(value)
                if problem:
                    raise tb.ControlRejected(f"Invalid external_id: {problem}",
                                             "invalid_message", {"external_id": problem})
                await self.hooks.set_external_id(self.id, value)
            case tb.GenerateReply(system_message=system, user_message=user):
                conv.generate_reply(system, user)
            case tb.Say(text=text, interruptible=interruptible):
                conv.say(text, interruptible)
            case tb.Mute():
                conv.mute()
            case tb.Unmute():
                conv.unmute()
            case tb.Reset(system_prompt=prompt):
                conv.reset(prompt)
            case tb.ToolCallOutput(tool_call_id=call_id, output=output):
                if not conv.tool_call_output(call_id, output):
                    raise tb.ControlRejected(
                        f"No tool call {call_id!r} is waiting for output (unknown, timed out "
                        "or interrupted)", "unknown_tool_call", {"tool_call_id": "not waiting"})
            case tb.UpdateTools(tools=tools):
                try:
                    conv.update_tools(await self.hooks.load_tools(self.id, list(tools)))
                except ValidationFailed as exc:
                    raise tb.ControlRejected(exc.message, "invalid_tools",
                                             exc.param_errors) from exc

    # ----- lifecycle --------------------------------------------------------------------
    async def run(self) -> ConversationResult:
        """Serve the transport and run the engine to its end; store the outcome."""
        receiver = asyncio.create_task(self._serve_peers(), name=f"input-{self.id}")
        try:
            # the engine's tasks start in this context: they share the project's voices'
            # cached audio, and no other project's (providers/tts/cache.py)
            with cache_scope(f"project:{self.prepared.project_id}"):
                self.result = await self.engine.run()
        finally:
            receiver.cancel()
            for task in list(self._notices):
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await receiver
            await asyncio.shield(self._store_end())
            await asyncio.shield(self.hooks.stored(self.id))
            self._finished.set()
        with contextlib.suppress(Exception):  # the peer may be gone already
            await self.transport.hangup(self.result.ended_by)
        return self.result

    async def _serve_peers(self) -> None:
        """Feed the engine from the transport; a dropped peer may come back in time."""
        while True:
            try:
                await self.transport.serve_input(self)
            except tb.Dropped as drop:
                peer = await self.hooks.wait_for_peer(self.id, self.workspace_id,
                                                      RECONNECT_GRACE_S)
                if peer is None:
                    self.engine.end("user", at=drop.at)  # it ended when the peer went away
                    return
                # The engine kept running; what it said meanwhile was not heard.
                self.transport = peer
                await peer.resumed()
                continue
            self.engine.end("user")
            return

    async def _store_end(self) -> None:
        engine, result = self.engine, self.result
        path: Path | None = None
        try:
            path = await asyncio.to_thread(
                engine.recorder.save, self.recordings_dir / f"{self.id}.wav")
        except Exception:  # a failed recording must not lose the conversation record
            log.exception("could not save the recording of %s", self.id)
        if self.hooks.artifacts is not None:
            try:
                path = await self.hooks.artifacts(self.id, path, self.writer)
            except Exception:  # the conversation record is stored all the same
                log.exception("data protection at the end of %s failed", self.id)
        async with self.db.writer() as s:
            row = await s.get(t.Conversation, self.id)
            if row is None:
                return
            row.close(engine.lifecycle.ended_at or utcnow(),
                      result.ended_by if result else (engine.lifecycle.ended_by or "error"))
            row.latencies_ms = list(engine.latencies_ms)
            row.interruptions_count = engine.interruptions
            if result is not None and result.stage_timings:  # the dashboard's latency chart
                await s.merge(ConversationStageTimings(conversation_id=self.id,
                                                       turns=list(result.stage_timings)))
            row.recording_path = str(path) if path else None
            row.live_transcript = self.writer.transcript
