"""A SIP call as a call transport: RTP media (aiortp) <-> the call session.

One ``SipTransport`` per SIP dialog. Signalling (INVITE, BYE, REFER, NOTIFY) is the
service layer's (``services/telephony/sip.py``, through ``SipControl``); this module only
carries media and the per-call verbs:

* **In**: aiortp decodes G.711 (PCMU or PCMA, whichever was negotiated) to PCM16 at
  8 kHz, the session's ``pcm_8000`` input; RFC 4733 events arrive once per event (the
  receiver reports the end packet of each RTP timestamp once). Frames that arrive before
  the session attaches (RTP is bound before the 200 OK) are kept, up to a second.
* **Out**: ``RtpSink`` paces 20 ms packets on an absolute schedule (slot *k* at
  ``start + k * 20 ms``), so what was sent is what the caller heard, give or take network
  jitter. Idle slots carry silence (trunks drop calls whose RTP stops). Barge-in drops
  the sink's queue; keypad tones (``send_dtmf``) take the next slots as RFC 4733 events.
  On hold (the far end's ``sendonly``) slots pass without sending.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from openline.audio.codecs import ALAW_8000, MULAW_8000, AudioFormat
from openline.transports import base as tb
from openline.voice import events as ev
from openline.voice.io import BaseAudioSink, SpeechFrame
from openline.voice.tools import PhoneTransfer

log = logging.getLogger(__name__)

PTIME_S = 0.020
FRAME_SAMPLES = 160  # 20 ms at 8 kHz
#: G.711 payload type -> the wire format of its payload
CODECS: dict[int, AudioFormat] = {0: MULAW_8000, 8: ALAW_8000}
CODEC_NAMES = {0: "PCMU", 8: "PCMA"}
#: the sink takes frames this far ahead of what has been sent (backpressure)
MAX_QUEUED_PACKETS = 10
#: a stall longer than this restarts the schedule instead of bursting to catch up
MAX_LATE_S = 0.06
#: frames kept while the session is not attached yet
EARLY_FRAMES = 50
DTMF_MS = 160
DTMF_GAP_MS = 60
#: no RTP for this long: the engine gets silence for the gap
GAP_S = 0.1
SILENCE_PCM = bytes(FRAME_SAMPLES * 2)
#: how many pacing delays are kept for the statistics
JITTER_SAMPLES = 3000


class RtpSession(Protocol):
    """What the transport uses of ``aiortp.RTPSession``."""

    on_audio: Callable[[bytes, int], None] | None
    on_dtmf: Callable[[str, int], None] | None

    def send_audio(self, payload: bytes, timestamp: int) -> None: ...

    def send_dtmf(self, digit: str, duration_ms: int = 160, timestamp: int = 0) -> None: ...

    def update_remote(self, addr: tuple[str, int]) -> None: ...

    async def close(self) -> None: ...


class SipControl(Protocol):
    """Signalling for one call (implemented by the service layer)."""

    async def transfer(self, call_id: str, request: PhoneTransfer) -> bool:
        """Blind transfer with REFER; raises ``TransferRefused`` when the trunk refused it."""

    async def hang_up(self, call_id: str) -> None:
        """BYE (or CANCEL before answer) unless the far end already ended the dialog."""


class RtpSink(BaseAudioSink):
    """Paces the engine's audio as 20 ms RTP packets (see the module docstring)."""

    def __init__(self, fmt: AudioFormat, rtp: RtpSession, *,
                 time_fn: Callable[[], float] = time.monotonic) -> None:
        super().__init__(8000)
        self.fmt, self.rtp, self.time_fn = fmt, rtp, time_fn
        self.silence = fmt.encode(np.zeros(FRAME_SAMPLES, dtype=np.int16))
        self._queue: deque[bytes] = deque()  # packets of the open segment, unsent
        self._dtmf: deque[str] = deque()
        self._tone_slots = 0
        self._played = 0  # samples of the open segment sent (heard)
        self._flushed = False
        self._space = asyncio.Event()
        self._space.set()
        self.timestamp = int.from_bytes(np.random.bytes(4), "big")
        self.held = False  # the far end put us on hold: slots pass silently
        self.packets_sent = 0
        self.speech_packets = 0  # packets that carried the assistant's audio
        #: how late each slot's packet left (seconds), for the pacing statistics
        self.lateness: deque[float] = deque(maxlen=JITTER_SAMPLES)
        self.running = asyncio.Event()
        #: set by each slot that finds nothing left to play
        self.drained = asyncio.Event()

    # ----- the sink contract ------------------------------------------------------------
    async def capture_frame(self, frame: SpeechFrame) -> None:
        if not self.segment_open:
            self.start_segment()
            self._queue.clear()
            self._played, self._flushed = 0, False
        segment = self.segment
        while len(self._queue) >= MAX_QUEUED_PACKETS:
            self._space.clear()
            await self._space.wait()
            if segment != self.segment or not self.segment_open:
                return  # cleared meanwhile: nobody hears this frame
        samples = frame.samples
        if samples.size % FRAME_SAMPLES:
            samples = np.concatenate([samples, np.zeros(FRAME_SAMPLES - samples.size
                                                        % FRAME_SAMPLES, dtype=np.int16)])
        payload = self.fmt.encode(samples)
        self.captured += frame.samples.size
        for i in range(0, len(payload), FRAME_SAMPLES):
            self._queue.append(payload[i:i + FRAME_SAMPLES])

    def flush(self) -> None:
        if self.segment_open:
            self._flushed = True
            self._maybe_finished()

    def clear_buffer(self) -> None:
        """Barge-in: what is still queued is never sent, so never heard."""
        self._queue.clear()
        if self.segment_open:
            self.on_playback_finished(self._played, True)
        self._space.set()

    async def run(self) -> None:
        """The pacing loop: one packet per 20 ms slot, for the whole call."""
        self.running.set()
        start, k = self.time_fn(), 0
        while True:
            due = start + k * PTIME_S
            now = self.time_fn()
            if due > now:
                await asyncio.sleep(due - now)
                now = self.time_fn()
            if now - due > MAX_LATE_S:  # the loop stalled: restart rather than burst
                start, k = now, 0
                due = now
            self.lateness.append(max(0.0, now - due))
            self._tick()
            k += 1

    def _tick(self) -> None:
        if self._tone_slots:  # an RFC 4733 event covers this slot
            self._tone_slots -= 1
        elif self._dtmf:
            self._send_digit(self._dtmf.popleft())
        else:
            payload = self._queue.popleft() if self._queue else None
            if payload is not None:
                self._played = min(self.captured, self._played + FRAME_SAMPLES)
                self.speech_packets += 1
                self._space.set()
            if not self.held:
                self.rtp.send_audio(payload or self.silence, self.timestamp)
                self.packets_sent += 1
            self._maybe_finished()
        self.timestamp = (self.timestamp + FRAME_SAMPLES) & 0xFFFFFFFF
        if self.idle:
            self.drained.set()

    def _send_digit(self, digit: str) -> None:
        """One RFC 4733 event at this slot's timestamp (aiortp sends its packets, three
        end packets included, at once); the digit and a short gap take the time of that
        many audio slots, so the timestamps of the audio after it stay in step."""
        if not self.held:
            self.rtp.send_dtmf(digit, DTMF_MS, timestamp=self.timestamp)
        self._tone_slots = (DTMF_MS + DTMF_GAP_MS) // 20 - 1

    def _maybe_finished(self) -> None:
        if self.segment_open and self._flushed and not self._queue:
            self.on_playback_finished(self.captured, False)

    # ----- keypad -----------------------------------------------------------------------
    def queue_digits(self, digits: str) -> None:
        for digit in digits:
            self._dtmf.append(digit)

    @property
    def idle(self) -> bool:
        """Everything captured so far has been played (audio and tones)."""
        return not self._queue and not self._dtmf and not self._tone_slots


@dataclass
class SipCallStats:
    """What the transport saw of one call (kept by the service for observers)."""

    call_id: str
    codec: str
    rx_frames: int = 0
    #: the caller's frames re-encoded in the call's codec (only when capturing)
    rx_payloads: list[bytes] = field(default_factory=list)
    dtmf_in: list[str] = field(default_factory=list)
    dtmf_out: list[str] = field(default_factory=list)
    tx_packets: int = 0
    tx_speech_packets: int = 0
    #: 20 ms frames of silence fed to the engine while no RTP came (gaps, a muted phone)
    gap_frames: int = 0
    lateness_s: list[float] = field(default_factory=list)


class SipTransport:
    """One SIP call's media (see the module docstring)."""

    def __init__(self, call_id: str, payload_type: int, rtp: RtpSession, control: SipControl,
                 *, capture: bool = False) -> None:
        self.call_id, self.payload_type, self.rtp = call_id, payload_type, rtp
        self.control, self.capture = control, capture
        self.fmt = CODECS[payload_type]
        self.sink = RtpSink(self.fmt, rtp)
        self.stats = SipCallStats(call_id, CODEC_NAMES[payload_type])
        self._input: tb.CallInput | None = None
        self._early: deque[tuple[bytes, float]] = deque(maxlen=EARLY_FRAMES)
        self._early_dtmf: list[str] = []
        self._ended = asyncio.Event()
        self._last_rx = time.monotonic()
        self.ended_by_peer = False
        rtp.on_audio = self._on_audio
        rtp.on_dtmf = self._on_dtmf

    # ----- from the wire ----------------------------------------------------------------
    def _on_audio(self, pcm: bytes, timestamp: int) -> None:
        self.stats.rx_frames += 1
        self._last_rx = time.monotonic()
        if self.capture:
            self.stats.rx_payloads.append(
                self.fmt.encode(np.frombuffer(pcm, dtype="<i2")))
        media_ms = timestamp / 8.0
        if self._input is None:
            self._early.append((pcm, media_ms))
        else:
            self._input.push_audio(pcm, media_ms)

    def _on_dtmf(self, digit: str, duration: int) -> None:
        if digit not in "0123456789*#ABCD" or not digit:
            return
        self.stats.dtmf_in.append(digit)
        if self._input is None:
            self._early_dtmf.append(digit)
        else:
            self._input.push_dtmf(digit)

    def remote_ended(self) -> None:
        """The far end ended the dialog (BYE, or the call was torn down)."""
        self.ended_by_peer = True
        self._ended.set()

    def finish(self) -> None:
        """The call left the agent (transferred): ``serve_input`` returns."""
        self._ended.set()

    # ----- CallTransport ----------------------------------------------------------------
    async def serve_input(self, call: tb.CallInput) -> None:
        self._input = call
        while self._early:
            pcm, media_ms = self._early.popleft()
            call.push_audio(pcm, media_ms)
        for digit in self._early_dtmf:
            call.push_dtmf(digit)
        self._early_dtmf.clear()
        while not self._ended.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._ended.wait(), GAP_S)
            self._fill_gap(call)

    def _fill_gap(self, call: tb.CallInput) -> None:
        """The engine hears time pass even when no RTP comes (a phone that stops sending
        while muted or silent, a late stream): silence for the gap, once it is longer
        than ``GAP_S`` (what arrives late after that is still passed on)."""
        now = time.monotonic()
        gap = now - self._last_rx
        if gap < GAP_S:
            return
        frames = int(gap / PTIME_S)
        self.stats.gap_frames += frames
        self._last_rx += frames * PTIME_S
        call.push_audio(SILENCE_PCM * frames, None)

    async def send_event(self, event: ev.EngineEvent) -> None:
        """Audio goes through the sink; no other event has a SIP message."""

    async def clear(self) -> None:
        """Barge-in already dropped the sink's queue (``clear_buffer``)."""

    async def send_dtmf(self, digits: str) -> None:
        clean = "".join(d for d in digits.upper() if d in "0123456789*#ABCD")
        self.stats.dtmf_out.extend(clean)
        self.sink.queue_digits(clean)

    async def transfer(self, destination: PhoneTransfer) -> bool:
        return await self.control.transfer(self.call_id, destination)

    async def hangup(self, ended_by: str) -> None:
        if not self.ended_by_peer:
            try:
                await self.control.hang_up(self.call_id)
            except Exception:
                log.exception("could not hang up SIP call %s", self.call_id)
        await self.close()

    async def resumed(self) -> None:
        """A SIP call never hands over to another peer."""

    def audio_sink(self, output_format: AudioFormat) -> RtpSink:
        return self.sink

    async def wait_heard(self, timeout_s: float) -> None:
        """Until what the assistant said so far has been played (or ``timeout_s``)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                while not self.sink.idle:
                    self.sink.drained.clear()
                    await self.sink.drained.wait()

    async def close(self) -> None:
        self.stats.tx_packets = self.sink.packets_sent
        self.stats.tx_speech_packets = self.sink.speech_packets
        self.stats.lateness_s = list(self.sink.lateness)
        self._ended.set()
        with contextlib.suppress(Exception):
            await self.rtp.close()
