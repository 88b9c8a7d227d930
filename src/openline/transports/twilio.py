"""Twilio Media Streams as a call transport: Twilio's JSON <-> the call session.

One ``TwilioTransport`` per phone call (keyed by CallSid). A call may be carried by
several streams in turn: keypad tones and a transfer that comes back to the agent
replace the running TwiML, so Twilio ends the stream (``stop``) and opens a new one
(a new streamSid) for the same call. The service layer hands each new stream to the
call's transport with ``attach``; the engine never notices.

Inbound, Twilio sends ``connected``, ``start`` (μ-law 8 kHz is the contract; other
formats are refused), ``media`` (20 ms of caller audio, passed to the engine as the
session's ``mulaw_8000`` input), ``mark`` (an echo: the audio before it has played),
``dtmf`` and ``stop``. Outbound, ``MarkSink`` sends whole 20 ms ``media`` frames with a
``mark`` every ``MARK_EVERY_S`` of audio and at the end of each piece of speech, keeps at
most ``MAX_AHEAD_S`` queued at Twilio, and reports what was played from the echoed marks;
barge-in sends ``clear``.

Call control (keypad tones, transfer, hang-up) is Twilio REST work that the service layer
does (``TwilioControl``). It never runs in the read loop: a REST call awaited there would
deadlock against the stream's own ``stop``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import logging
from collections import deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Protocol

from openline.audio.codecs import AudioFormat
from openline.transports import base as tb
from openline.transports.sts import Disconnected, WireSocket
from openline.voice import events as ev
from openline.voice.clock import SYSTEM_CLOCK, Clock
from openline.voice.io import BaseAudioSink, SpeechFrame
from openline.voice.tools import PhoneTransfer

log = logging.getLogger(__name__)

FRAME_BYTES = 160  # 20 ms of μ-law at 8 kHz: Twilio plays whole frames reliably
SILENCE = b"\xff"  # μ-law zero
#: at most this much unplayed audio queued at Twilio (keeps ``clear`` cheap, marks fine)
MAX_AHEAD_S = 1.0
#: a mark per this much audio (and one at the end of each piece of speech). What was heard
#: between two echoes is interpolated on the clock, so sparser marks lose no precision;
#: a mark per 40 ms engine frame was 25 messages a second each way per speaking call.
MARK_EVERY_S = 0.2
#: how long a control waits for queued speech to be heard before replacing the TwiML
SETTLE_S = 10.0
#: what the assistant said just before a control reaches the sink within this time
GRACE_S = 0.1
#: the largest message accepted from the stream (a media frame is ~300 bytes)
MAX_MESSAGE_CHARS = 64 * 1024
MULAW_8K = {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}


class TwilioControl(Protocol):
    """Twilio REST call control for one account (implemented by the service layer)."""

    async def play_digits(self, call_sid: str, digits: str) -> None:
        """Play keypad tones, then stream the call to the agent again (a new stream)."""

    async def transfer(self, call_sid: str, request: PhoneTransfer) -> None:
        """Replace the call's TwiML with a ``<Dial>`` to ``request.phone_number``."""

    async def hang_up(self, call_sid: str) -> None:
        """End the call (``Status=completed``)."""


@dataclass(frozen=True)
class StreamStart:
    """Twilio's ``start`` message: which call and stream, with our ``<Parameter>``s."""

    stream_sid: str
    call_sid: str
    account_sid: str
    parameters: dict[str, str]
    media_format: dict[str, Any]

    @property
    def is_mulaw_8k(self) -> bool:
        fmt = self.media_format
        return (fmt.get("encoding") == MULAW_8K["encoding"]
                and str(fmt.get("sampleRate")) == "8000" and str(fmt.get("channels", 1)) == "1")


def parse_start(msg: dict[str, Any]) -> StreamStart | None:
    """The ``start`` message's content (None when it is not a usable ``start``)."""
    start = msg.get("start")
    if msg.get("event") != "start" or not isinstance(start, dict):
        return None
    params = start.get("customParameters") or {}
    stream_sid = start.get("streamSid") or msg.get("streamSid")
    call_sid = start.get("callSid")
    if not isinstance(stream_sid, str) or not isinstance(call_sid, str) \
            or not isinstance(params, dict):
        return None
    fmt = start.get("mediaFormat")
    return StreamStart(stream_sid, call_sid, str(start.get("accountSid") or ""),
                       {str(k): str(v) for k, v in params.items()},
                       fmt if isinstance(fmt, dict) else {})


def decode(raw: str) -> dict[str, Any] | None:
    """One stream message as a JSON object (None for anything else)."""
    if len(raw) > MAX_MESSAGE_CHARS:
        return None
    try:
        msg = json.loads(raw)
    except json.JSONDecodeError:
        return None
    return msg if isinstance(msg, dict) and isinstance(msg.get("event"), str) else None


async def read_start(socket: WireSocket, timeout_s: float = 10.0) -> StreamStart | None:
    """Read a new stream up to its ``start`` (``connected`` first); None if it never comes."""
    try:
        async with asyncio.timeout(timeout_s):
            while True:
                msg = decode(await socket.receive_text())
                if msg is not None and msg["event"] == "start":
                    return parse_start(msg)
                if msg is not None and msg["event"] == "stop":
                    return None
    except (Disconnected, TimeoutError):
        return None


@dataclass
class _Leg:
    """One stream of the call (until ``stop`` or the socket closes)."""

    socket: WireSocket
    start: StreamStart
    done: asyncio.Event = field(default_factory=asyncio.Event)
    sid_json: str = field(init=False)  # the streamSid as a JSON string, for every message

    def __post_init__(self) -> None:
        self.sid_json = json.dumps(self.start.stream_sid)


class MarkSink(BaseAudioSink):
    """The engine's audio sink on a Twilio stream: what was heard comes from marks.

    Each engine frame (40 ms) goes out as whole 20 ms ``media`` messages; a ``mark`` named
    ``<segment>.<n>`` follows every ``MARK_EVERY_S`` of audio and the segment's last frame
    (or, when a control waits for what was sent to be heard, the last frame sent); the
    mark's echo says the caller heard the segment up to there. At barge-in the position is
    the last echoed mark plus the time since it (never past the next mark): Twilio returns
    every pending mark when it clears, so marks echoed after a ``clear`` prove nothing and
    are ignored.
    """

    def __init__(self, wire: TwilioTransport, clock: Clock = SYSTEM_CLOCK,
                 sample_rate: int = 8000, max_ahead_s: float = MAX_AHEAD_S) -> None:
        super().__init__(sample_rate)
        self.wire, self.clock = wire, clock
        self.max_ahead = int(max_ahead_s * sample_rate)
        self.mark_every = int(MARK_EVERY_S * sample_rate)
        self._pending: deque[tuple[str, int]] = deque()  # (mark name, segment position)
        self._acked = 0
        self._acked_at: float | None = None
        self._opened_at = 0.0
        self._marks = 0
        self._sent = 0  # segment position of the audio fully sent
        self._marked = 0  # segment position of the last mark sent
        self._want_tail = False  # a control waits: mark each frame as it is sent
        self._flushed = False
        self._clear_due = False
        self._progress = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self.marks_sent = 0
        #: set once the engine runs the sink (its conversation's tasks are up)
        self.running = asyncio.Event()

    # ----- the sink contract ------------------------------------------------------------
    async def capture_frame(self, frame: SpeechFrame) -> None:
        if not self.segment_open:
            self.start_segment()
            self._pending.clear()
            self._acked, self._acked_at, self._marks, self._flushed = 0, None, 0, False
            self._sent = self._marked = 0
            self._opened_at = self.clock.monotonic()
            self._idle.clear()
        segment = self.segment
        while self.captured - self._acked > self.max_ahead or not self.wire.streaming:
            self._progress.clear()
            await self._progress.wait()
            if segment != self.segment or not self.segment_open:
                return  # cleared (or the stream ended) meanwhile: nobody hears this frame
        await self.send_clear_if_due()
        audio = self.wire.fmt.encode(frame.samples)
        if len(audio) % FRAME_BYTES:
            audio += SILENCE * (FRAME_BYTES - len(audio) % FRAME_BYTES)
        self.captured += frame.samples.size
        for i in range(0, len(audio), FRAME_BYTES):
            await self.wire.send_media(audio[i:i + FRAME_BYTES])
        if segment != self.segment or not self.segment_open:
            return  # cleared while it was being sent
        self._sent = self.captured
        if self._want_tail or self._sent - self._marked >= self.mark_every:
            await self.wire.send_mark(self._next_mark())

    def _next_mark(self) -> str:
        """Name a mark at the audio sent so far, and expect its echo."""
        self._marks += 1
        name = f"{self.segment}.{self._marks}"
        self._pending.append((name, self._sent))
        self._marked = self._sent
        self.marks_sent += 1
        return name

    def flush(self) -> None:
        if self.segment_open:
            self._flushed = True
            if self._marked < self._sent:  # the segment's last audio has no mark yet
                self.wire.spawn(self.wire.send_mark(self._next_mark()))
            self._maybe_finished()

    def clear_buffer(self) -> None:
        if not self.segment_open:
            return
        self._clear_due = True
        self.on_playback_finished(self._heard_estimate(), True)
        self._pending.clear()
        self._settle()

    async def run(self) -> None:
        """Nothing runs in the background (marks arrive through the transport); this
        says the engine has started."""
        self.running.set()
        await asyncio.Event().wait()

    # ----- from the transport -----------------------------------------------------------
    def on_mark(self, name: str) -> None:
        """Twilio echoed a mark: everything queued before it has played."""
        if not name.startswith(f"{self.segment}."):
            return  # an earlier segment's mark, echoed when it was cleared
        while self._pending and self.segment_open:
            pending, position = self._pending.popleft()
            if pending == name:
                self._acked, self._acked_at = position, self.clock.monotonic()
                self._progress.set()
                self._maybe_finished()
                return

    def stream_ended(self) -> None:
        """The stream stopped: Twilio dropped what it had queued, unheard."""
        if self.segment_open:
            self.on_playback_finished(self._acked, True)
        self._pending.clear()
        self._settle()

    async def send_clear_if_due(self) -> None:
        """The ``clear`` a barge-in owes Twilio, before any further audio."""
        if self._clear_due:
            self._clear_due = False
            await self.wire.send_clear()

    async def wait_sent_heard(self, timeout_s: float = SETTLE_S) -> None:
        """Until everything sent so far has been played (or ``timeout_s``)."""
        self._want_tail = True
        try:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout_s):
                    while self.segment_open and self._acked < self.captured:
                        if self._marked < self._sent:
                            await self.wire.send_mark(self._next_mark())
                        self._progress.clear()
                        await self._progress.wait()
        finally:
            self._want_tail = False

    def wake(self) -> None:
        self._progress.set()

    # ----- bookkeeping ------------------------------------------------------------------
    def _maybe_finished(self) -> None:
        if self.segment_open and self._flushed and self._acked >= self.captured:
            self.on_playback_finished(self.captured, False)
            self._settle()

    def _settle(self) -> None:
        self._progress.set()
        if not self.segment_open:
            self._idle.set()

    def _heard_estimate(self) -> int:
        """The last echoed mark, plus what has played since (capped at the next mark)."""
        since = self._acked_at if self._acked_at is not None else self._opened_at
        played = int((self.clock.monotonic() - since) * self.sample_rate)
        ceiling = self._pending[0][1] if self._pending else self._acked
        return min(self._acked + max(0, played), ceiling)


class TwilioTransport:
    """One phone call on Twilio Media Streams (see the module docstring)."""

    def __init__(self, call_sid: str, control: TwilioControl, fmt: AudioFormat, *,
                 clock: Clock = SYSTEM_CLOCK, restream_wait_s: float = 150.0) -> None:
        self.call_sid, self.control, self.fmt, self.clock = call_sid, control, fmt, clock
        self.restream_wait_s = restream_wait_s
        self.sink = MarkSink(self, clock, fmt.sample_rate)
        self._leg: _Leg | None = None
        self._next_legs: asyncio.Queue[_Leg] = asyncio.Queue()
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()
        self._restreams = 0  # TwiML updates that end this stream and open another
        self._held = False  # audio waits: the stream is about to be replaced
        self._finished = asyncio.Event()
        #: how the call left Twilio's stream: "stop", "closed", "transferred", ...
        self.gone: str | None = None
        self.streams: list[str] = []  # every streamSid, in order
        self.heard_caller = False  # the caller spoke (or pressed a key) at least once
        self.spoke = asyncio.Event()  # set at each ``assistant_finished_speaking``

    # ----- streams ------------------------------------------------------------------------
    def attach(self, socket: WireSocket, start: StreamStart) -> asyncio.Event:
        """A stream of this call (its first, or one after a TwiML update); the returned
        event is set when the stream is over."""
        leg = _Leg(socket, start)
        self.streams.append(start.stream_sid)
        if self._leg is None and not self.streams[:-1]:
            self._leg = leg
            self.sink.wake()
        else:
            self._next_legs.put_nowait(leg)
        return leg.done

    @property
    def streaming(self) -> bool:
        """Audio may be sent now (a stream is open and not about to be replaced)."""
        return self._leg is not None and not self._held

    def expect_restream(self) -> None:
        """The next ``stop`` is a TwiML update: a new stream will carry the call on."""
        self._restreams += 1

    def finish(self, how: str) -> None:
        """The call left the agent for good (transferred, ended at Twilio): the stream,
        if one is open, is closed, and ``serve_input`` returns."""
        self.gone = self.gone or how
        self._finished.set()
        self._next_legs.put_nowait(_Leg(_Closed(), StreamStart("", "", "", {}, {})))
        if self._leg is not None:
            self._spawn(self._leg.socket.close(1000, how))

    # ----- CallTransport ------------------------------------------------------------------
    async def serve_input(self, call: tb.CallInput) -> None:
        """Feed every stream of the call to the session, until the call leaves us."""
        while True:
            leg = self._leg
            if leg is None:
                leg = await self._wait_next_leg()
                if leg is None:
                    return
                self._leg, self._held = leg, False
                self.sink.wake()
            how = await self._read(leg, call)
            self._leg = None
            self.sink.stream_ended()
            leg.done.set()
            if self._restreams > 0 and how == "stop" and not self._finished.is_set():
                self._restreams -= 1
                continue
            self.gone = self.gone or how
            return

    async def _wait_next_leg(self) -> _Leg | None:
        try:
            async with asyncio.timeout(self.restream_wait_s):
                leg = await self._next_legs.get()
        except TimeoutError:
            self.gone = self.gone or "closed"
            return None
        return None if isinstance(leg.socket, _Closed) else leg

    async def _read(self, leg: _Leg, call: tb.CallInput) -> str:
        """One stream's messages; returns ``stop`` or ``closed``."""
        while True:
            try:
                raw = await leg.socket.receive_text()
            except Disconnected:
                return "closed"
            msg = decode(raw)
            if msg is None:
                continue  # not JSON, too large or without an event: Twilio never sends it
            kind = msg["event"]
            if kind == "media":
                self._media(msg, call)
            elif kind == "mark":
                mark = msg.get("mark")
                if isinstance(mark, dict) and isinstance(mark.get("name"), str):
                    self.sink.on_mark(mark["name"])
            elif kind == "dtmf":
                digit = (msg.get("dtmf") or {}).get("digit")
                if isinstance(digit, str) and digit and digit in "0123456789*#ABCD":
                    self.heard_caller = True
                    call.push_dtmf(digit)
            elif kind == "stop":
                return "stop"

    def _media(self, msg: dict[str, Any], call: tb.CallInput) -> None:
        media = msg.get("media")
        if not isinstance(media, dict) or media.get("track", "inbound") not in (
                "inbound", "inbound_track"):
            return
        payload = media.get("payload")
        if not isinstance(payload, str):
            return
        try:
            audio = base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError):
            return
        try:
            at: float | None = float(media.get("timestamp"))  # type: ignore[arg-type]
        except (TypeError, ValueError):
            at = None
        if audio:
            call.push_audio(audio, at)

    async def send_event(self, event: ev.EngineEvent) -> None:
        """Audio goes through the sink; the rest has no Twilio message. The transport
        notes what the service layer waits for (the caller spoke, speech finished)."""
        if isinstance(event, ev.UserStartedSpeaking | ev.InputText):
            self.heard_caller = True
        elif isinstance(event, ev.AssistantFinishedSpeaking):
            self.spoke.set()

    async def clear(self) -> None:
        await self.sink.send_clear_if_due()

    async def send_dtmf(self, digits: str) -> None:
        """Keypad tones: ``<Play digits>`` then a new stream (Media Streams cannot send
        DTMF), once what the assistant said before pressing them has been heard."""
        clean = "".join(d for d in digits if d in "0123456789*#w")
        if clean:
            self._spawn(self._after_speech(lambda: self.control.play_digits(self.call_sid,
                                                                              clean)))

    async def transfer(self, destination: PhoneTransfer) -> bool:
        self._spawn(self._after_speech(lambda: self.control.transfer(self.call_sid,
                                                                     destination)))
        return True

    async def _after_speech(self, work: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Run a TwiML update once what the assistant said before it has been heard;
        what it says after waits for the next stream (it must follow the tones)."""
        await self.clock.sleep(GRACE_S)
        self._held = True
        await self.sink.wait_sent_heard()
        self.expect_restream()
        try:
            await work()
        except Exception:
            self._restreams = max(0, self._restreams - 1)
            self._held = False
            self.sink.wake()
            log.exception("Twilio call control failed for %s", self.call_sid)

    async def hangup(self, ended_by: str) -> None:
        """End the call at Twilio unless it already left (the caller hung up, or it was
        transferred), then close the stream."""
        for task in list(self._tasks):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(task), 5)
        if self.gone not in ("stop", "transferred", "completed"):
            self.gone = "hung_up"
            try:
                await self.control.hang_up(self.call_sid)
            except Exception:
                log.exception("could not hang up Twilio call %s", self.call_sid)
        leg, self._leg = self._leg, None
        if leg is not None:
            await leg.socket.close(1000, ended_by)
            leg.done.set()

    async def resumed(self) -> None:
        """Phone calls never hand over to another peer: a new stream is ``attach``ed."""

    def audio_sink(self, output_format: AudioFormat) -> MarkSink:
        return self.sink

    # ----- the wire -----------------------------------------------------------------------
    async def send_media(self, audio: bytes) -> None:
        # Formatted, not json.dumps'd: base64 needs no escaping, and this runs 50 times a
        # second per speaking call.
        await self._send_text('{"event":"media","streamSid":',
                              ',"media":{"payload":"' + base64.b64encode(audio).decode() + '"}}')

    async def send_mark(self, name: str) -> None:
        await self._send({"event": "mark", "mark": {"name": name}})

    async def send_clear(self) -> None:
        await self._send({"event": "clear"})

    async def _send(self, message: dict[str, Any]) -> None:
        await self._send_text('{"streamSid":',
                              "," + json.dumps(message, separators=(",", ":"))[1:])

    async def _send_text(self, before: str, after: str) -> None:
        """Send ``before`` + the current stream's streamSid (as JSON) + ``after``."""
        leg = self._leg
        if leg is None:
            return
        async with self._lock:
            with contextlib.suppress(Disconnected):
                await leg.socket.send_text(before + leg.sid_json + after)

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run ``coro`` in the background (``hangup`` waits for it)."""
        self._spawn(coro)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro, name=f"twilio-{self.call_sid}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


class _Closed:
    """A stand-in socket that wakes a waiting ``serve_input`` when the call is over."""

    async def receive_text(self) -> str:
        raise Disconnected(1000)

    async def send_text(self, data: str) -> None:
        return None

    async def close(self, code: int = 1000, reason: str = "") -> None:
        return None

