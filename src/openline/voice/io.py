"""Where assistant audio goes, and how the engine learns what the caller actually heard.

The engine writes each assistant utterance into an ``AudioSink`` as a *segment* of
``SpeechFrame``s (40 ms of samples at the output rate, plus the words they speak), then
``flush()``es it. The sink, not the engine, knows when the far end has played the audio:
it reports the end of a segment with ``on_playback_finished(position, interrupted)``,
which ``wait_for_playout()`` returns. On barge-in the engine calls ``clear_buffer()``: the
sink drops what the far end has not played and reports how much it had. Truncation
(``interrupted_response``, the stored assistant item) uses that reported position, so it
stays exact when the far end buffers seconds of audio (Twilio marks, browser acks).
Model: LiveKit Agents ``voice/io.py`` ``AudioOutput``.

``LocalPacer`` is the default sink (the STS socket, SIP): it sends frames as
``AudioOut`` events at real-time pace with a small lead, and counts a frame as played once
its real-time slot has passed. With ``stream_ahead_of_real_time`` it sends as fast as the
audio comes and counts it played when sent (the client's playback is unknown to us).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

from openline.audio.codecs import AudioFormat
from openline.audio.noise import NoiseGenerator
from openline.voice.clock import SYSTEM_CLOCK, Clock
from openline.voice.events import AudioOut

FRAME_MS = 40
#: how far ahead of real time paced audio may run (absorbs scheduling jitter)
LEAD_S = 0.12

Int16 = npt.NDArray[np.int16]


@dataclass(frozen=True)
class SpeechFrame:
    """A slice of one utterance: samples at the output rate and the words they speak."""

    samples: Int16
    text: str = ""
    #: the turn's latency breakdown, on the first frame of a reply only
    timings: dict[str, float] | None = None


@dataclass(frozen=True)
class PlaybackFinished:
    """How a segment ended at the far end: ``position`` samples of it were played."""

    position: int
    interrupted: bool
    sample_rate: int

    @property
    def position_ms(self) -> float:
        return self.position * 1000 / self.sample_rate


class AudioSink(Protocol):
    """The engine's audio output (see the module docstring)."""

    @property
    def underruns(self) -> int:
        """Gaps the far end heard mid-utterance (0 where the sink cannot tell)."""
        ...

    async def run(self) -> None:
        """Background work for the whole conversation (never returns until cancelled)."""
        ...

    async def capture_frame(self, frame: SpeechFrame) -> None:
        """Take the next frame of the current segment (a new one starts after a report)."""
        ...

    def flush(self) -> None:
        """The current segment is complete; report it once it has been played."""
        ...

    def clear_buffer(self) -> None:
        """Barge-in: drop what was not played yet and report the position reached."""
        ...

    async def wait_for_playout(self) -> PlaybackFinished:
        """The report of the last segment (waits for it)."""
        ...


class BaseAudioSink:
    """Segment bookkeeping shared by sinks: implementations call ``on_playback_finished``."""

    def __init__(self, sample_rate: int) -> None:
        self.sample_rate = sample_rate
        self.underruns = 0
        self.segment = 0  # counts segments; the current one while ``segment_open``
        self.segment_open = False
        self.captured = 0  # samples captured in the current segment
        self._finished: PlaybackFinished | None = None
        self._finished_event = asyncio.Event()

    def start_segment(self) -> None:
        """Called by the implementation on the first frame after a report."""
        self.segment += 1
        self.segment_open, self.captured = True, 0
        self._finished = None
        self._finished_event.clear()

    def on_playback_finished(self, position: int, interrupted: bool) -> None:
        """The far end played ``position`` samples of the open segment, which is over."""
        if not self.segment_open:
            return  # late or duplicate report
        self.segment_open = False
        self._finished = PlaybackFinished(max(0, min(position, self.captured)), interrupted,
                                          self.sample_rate)
        self._finished_event.set()

    async def wait_for_playout(self) -> PlaybackFinished:
        if self._finished is None and not self.segment_open:
            return PlaybackFinished(0, False, self.sample_rate)
        await self._finished_event.wait()
        assert self._finished is not None
        return self._finished


class LocalPacer(BaseAudioSink):
    """The default sink: paced ``AudioOut`` events through the engine's send (see above)."""

    def __init__(self, fmt: AudioFormat, send: Callable[[AudioOut], Awaitable[None]], *,
                 clock: Clock = SYSTEM_CLOCK, realtime: bool = True,
                 noise: NoiseGenerator | None = None) -> None:
        super().__init__(fmt.sample_rate)
        self.fmt, self.send, self.clock = fmt, send, clock
        self.realtime, self.noise = realtime, noise
        self.frame_samples = fmt.sample_rate * FRAME_MS // 1000
        self._origin: float | None = None  # the playhead model: origin + samples / rate
        self._origin_samples = 0
        self._inflight: deque[tuple[float, int]] = deque()  # (slot end, samples) unplayed
        self._played = 0
        self._flushed = False
        self._generation = 0  # bumped by clear_buffer: frames waiting for a slot drop
        self._wake = asyncio.Event()

    # ----- the sink contract ------------------------------------------------------------
    async def capture_frame(self, frame: SpeechFrame) -> None:
        if not self.segment_open:
            self._open_segment()
        generation = self._generation
        if self.realtime:
            self._count_underrun()
            await self._wait_for_slot()
            if generation != self._generation:
                return  # cleared while waiting: the caller never hears it
        size = frame.samples.size
        samples = frame.samples if self.noise is None else self.noise.mix_into(frame.samples)
        self.captured += size
        if self.realtime:
            self._inflight.append((self._reserve(size), size))
        else:
            self._played += size
        await self.send(AudioOut(self.fmt.encode(samples), frame.text, frame.timings))

    def flush(self) -> None:
        if not self.segment_open:
            return
        if not self.realtime:
            self.on_playback_finished(self.captured, False)
        else:
            self._flushed = True
        self._wake.set()

    def clear_buffer(self) -> None:
        self._generation += 1
        if self.segment_open:
            self._settle(self.clock.monotonic())
            self.on_playback_finished(self._played, True)
        # What was sent ahead is dropped: pacing restarts from the next frame.
        self._origin, self._inflight = None, deque()
        self._wake.set()

    async def run(self) -> None:
        """Reports paced segments once played; background noise while nobody speaks."""
        while True:
            self._wake.clear()
            if self.segment_open and self._flushed:
                await self._finish_when_played()
            elif not self.segment_open and self.noise is not None and self.realtime:
                await self._noise_frame()
            else:
                await self._wake.wait()

    # ----- pacing -----------------------------------------------------------------------
    def _open_segment(self) -> None:
        self.start_segment()
        self._played, self._flushed = 0, False
        self._inflight.clear()
        self._wake.set()

    def _playhead(self) -> float:
        """When the far end will have played everything sent so far."""
        assert self._origin is not None
        return self._origin + self._origin_samples / self.fmt.sample_rate

    def _count_underrun(self) -> None:
        """Everything sent had been played before this frame came: the caller heard a gap
        mid-utterance. Restart pacing rather than bursting to catch up."""
        if self.captured and self._origin is not None and \
                self.clock.monotonic() > self._playhead():
            self.underruns += 1
            self._origin = None

    async def _wait_for_slot(self) -> None:
        now = self.clock.monotonic()
        if self._origin is None or now - self._playhead() > LEAD_S * 4:
            self._origin, self._origin_samples = now, 0
        due = self._playhead() - LEAD_S
        if due > now:
            await self.clock.sleep(due - now)

    def _reserve(self, samples: int) -> float:
        """Take the next slot of ``samples``; returns when it ends (played)."""
        if self._origin is None:  # cleared between the wait and now
            self._origin, self._origin_samples = self.clock.monotonic(), 0
        self._origin_samples += samples
        return self._playhead()

    def _settle(self, now: float) -> None:
        while self._inflight and self._inflight[0][0] <= now:
            self._played += self._inflight.popleft()[1]

    async def _finish_when_played(self) -> None:
        segment = self.segment
        end = self._inflight[-1][0] if self._inflight else self.clock.monotonic()
        wait = end - self.clock.monotonic()
        if wait > 0:
            await self.clock.sleep(wait)
        if self.segment == segment and self.segment_open:
            self._settle(self.clock.monotonic())
            self.on_playback_finished(self.captured, False)

    async def _noise_frame(self) -> None:
        await self._wait_for_slot()
        if self.segment_open:
            return  # speech started meanwhile; it takes this slot
        assert self.noise is not None
        self._reserve(self.frame_samples)
        frame = self.noise.mix_into(np.zeros(self.frame_samples, dtype=np.int16))
        await self.send(AudioOut(self.fmt.encode(frame), "", None))
