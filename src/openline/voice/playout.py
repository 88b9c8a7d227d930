"""Plays assistant utterances, one after the other, into the conversation's audio sink.

The loop takes ``SpeechHandle``s in FIFO order, cuts each synthesized sentence into 40 ms
``SpeechFrame``s (the sentence's words spread over its frames, so each frame carries the
words it speaks), writes them into the sink, flushes, and waits for the sink's report of
what was played before the next utterance starts. ``interrupt()`` (barge-in) stops the
current utterance, drops every queued interruptible one and clears the sink.

Queue policy: the utterance queue is FIFO and unbounded but small (one entry per pending
utterance); barge-in empties it of interruptible entries.

Back-off: after a barge-in that cut audio off, no utterance starts before ``backoff_s``
has passed (Vapi's ``stopSpeakingPlan.backoffSeconds``; 0 by default): the reply to the
interruption, or the resumption after a noise, waits that long from the cut.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable

import numpy as np
import numpy.typing as npt

from openline.audio.codecs import AudioFormat
from openline.audio.resample import resample
from openline.voice.clock import SYSTEM_CLOCK, Clock
from openline.voice.io import FRAME_MS, AudioSink, SpeechFrame
from openline.voice.speech import SpeechHandle

Int16 = npt.NDArray[np.int16]
Hook = Callable[[SpeechHandle], Awaitable[None]]


class Playout:
    """One per conversation: the only writer of its sink."""

    def __init__(self, fmt: AudioFormat, sink: AudioSink, *, clock: Clock = SYSTEM_CLOCK,
                 on_start: Hook | None = None, on_finish: Hook | None = None,
                 on_frame: Callable[[Int16, float], None] | None = None,
                 backoff_s: float = 0.0) -> None:
        self.fmt, self.sink, self.clock = fmt, sink, clock
        self.backoff_s = backoff_s
        self._quiet_until = 0.0  # monotonic: no utterance starts before (the back-off)
        self.on_start, self.on_finish, self.on_frame = on_start, on_finish, on_frame
        self.frame_samples = fmt.sample_rate * FRAME_MS // 1000
        self._queue: deque[SpeechHandle] = deque()
        self._wake = asyncio.Event()
        self.current: SpeechHandle | None = None

    def enqueue(self, handle: SpeechHandle) -> None:
        self._queue.append(handle)
        self._wake.set()

    @property
    def speaking(self) -> bool:
        """An utterance has started and is not finished."""
        return self.current is not None and self.current.started

    def interrupt(self) -> SpeechHandle | None:
        """Barge-in: stop the current utterance (if it may be interrupted) and drop the
        queued interruptible ones; returns the current one if it had started."""
        current = self.current
        if current is None or not current.interrupt():
            return None
        for queued in [h for h in self._queue if h.interruptible]:
            self._queue.remove(queued)
            queued.interrupt()
            queued.playout_done()
        if current.started:
            self.sink.clear_buffer()
            self._quiet_until = self.clock.monotonic() + self.backoff_s
        self._wake.set()
        return current if current.started else None

    def drop_all(self) -> bool:
        """``reset``: stop everything interruptible, playing or queued; True when audio the
        far end was playing got cleared."""
        cleared = self.interrupt() is not None
        for queued in [h for h in self._queue if h.interruptible]:
            self._queue.remove(queued)
            queued.interrupt()
            queued.playout_done()
        return cleared

    async def run(self) -> None:
        """The playout task: never returns until cancelled."""
        while True:
            if not self._queue:
                self._wake.clear()
                await self._wake.wait()
                continue
            handle = self._queue.popleft()
            self.current = handle
            try:
                await self._play(handle)
            finally:
                self.current = None
                handle.playout_done()

    async def _play(self, handle: SpeechHandle) -> None:
        while not handle.interrupted:
            item = await self._next_sentence(handle)
            if item is None:
                break
            await self._play_sentence(handle, *item)
            handle.sentence_sent()
        if not handle.started:
            return
        if handle.sent_samples:
            if not handle.interrupted:
                self.sink.flush()
            finished = await self.sink.wait_for_playout()
            handle.played_samples = finished.position
            if finished.interrupted:
                handle.interrupted = True  # also when the far end cut it (a transport clear)
        if self.on_finish is not None:
            await self.on_finish(handle)

    async def _play_sentence(self, handle: SpeechHandle, samples: Int16, text: str) -> None:
        words = text.split()
        frames = max(1, -(-samples.size // self.frame_samples))
        for k in range(frames):
            if handle.interrupted:
                return
            frame = samples[k * self.frame_samples:(k + 1) * self.frame_samples]
            lo, hi = round(k * len(words) / frames), round((k + 1) * len(words) / frames)
            await self._emit(handle, frame, " ".join(words[lo:hi]))

    async def _next_sentence(self, handle: SpeechHandle) -> tuple[Int16, str] | None:
        """The next sentence, or None when the utterance ended or was interrupted."""
        getter = asyncio.ensure_future(handle.next_sentence())
        stopper = asyncio.ensure_future(self._wait_interrupt(handle))
        try:
            done, _ = await asyncio.wait({getter, stopper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopper.cancel()
            if not getter.done():
                getter.cancel()
        return getter.result() if getter in done else None

    async def _wait_interrupt(self, handle: SpeechHandle) -> None:
        while not handle.interrupted:
            self._wake.clear()
            await self._wake.wait()

    async def _emit(self, handle: SpeechHandle, frame: Int16, text: str) -> None:
        first = not handle.started
        if first and (wait := self._quiet_until - self.clock.monotonic()) > 0:
            await self.clock.sleep(wait)  # the back-off after a barge-in
            if handle.interrupted:
                return
        if first:
            handle.started_at = self.clock.now()
            handle.first_frame_at = self.clock.monotonic()
            if self.on_start is not None:
                await self.on_start(handle)
            if handle.interrupted:
                return
        await self.sink.capture_frame(SpeechFrame(frame, text,
                                                  handle.first_frame_timings() if first
                                                  else None))
        if self.on_frame is not None:
            self.on_frame(frame, self.clock.monotonic())
        handle.frame_sent(frame.size, text)


def to_output_rate(samples: Int16, rate: int, fmt: AudioFormat) -> Int16:
    """Resample synthesized audio to the wire format's rate."""
    if rate == fmt.sample_rate:
        return samples
    return np.asarray(resample(samples, rate, fmt.sample_rate), dtype=np.int16)
