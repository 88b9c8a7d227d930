"""Paced assistant audio output, and exact knowledge of what the caller has heard.

Each assistant utterance (welcome, reply, poke, ``say``) is an ``Utterance``: the reply
pipeline puts synthesized sentences into it, the ``Playout`` loop cuts them into 40 ms
frames, encodes them and sends them at real-time pace (a small lead absorbs jitter), or as
fast as they come when the client asked for ``stream_ahead_of_real_time``. Each frame
carries the words it speaks, so on barge-in the heard text is exactly the text of the
frames already sent.

Queue policy: an utterance's sentence queue is unbounded but finite (one reply); the
utterance queue is FIFO; ``interrupt()`` drops the current utterance and every queued
interruptible one.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from openline.audio.codecs import AudioFormat
from openline.audio.noise import NoiseGenerator
from openline.audio.resample import resample
from openline.voice.events import AudioOut

FRAME_MS = 40
#: how far ahead of real time paced audio may run (absorbs scheduling jitter)
LEAD_S = 0.12

Int16 = npt.NDArray[np.int16]


@dataclass
class Utterance:
    """One assistant speech unit, filled by a producer and drained by the playout."""

    kind: str
    interruptible: bool = True
    timings: dict[str, float] | None = None
    _sentences: asyncio.Queue[tuple[Int16, str] | None] = field(default_factory=asyncio.Queue)
    heard: list[str] = field(default_factory=list)
    full_text: list[str] = field(default_factory=list)
    sent_samples: int = 0
    started_at: float | None = None  # wall clock (time.time) of the first frame
    first_frame_at: float | None = None  # monotonic
    interrupted: bool = False
    recorded: bool = False  # stored as a conversation item
    done: asyncio.Event = field(default_factory=asyncio.Event)

    _queued: int = 0
    _played: int = 0
    _progress: asyncio.Event = field(default_factory=asyncio.Event)

    def put(self, samples: Int16, text: str) -> None:
        """Queue a synthesized sentence (already at the output rate)."""
        self.full_text.append(text)
        self._queued += 1
        self._sentences.put_nowait((samples, text))

    def sentence_played(self) -> None:
        self._played += 1
        self._progress.set()

    async def drained(self) -> None:
        """Wait until every sentence queued so far has been sent (or the utterance ended)."""
        target = self._queued
        while self._played < target and not self.interrupted and not self.done.is_set():
            self._progress.clear()
            await self._progress.wait()

    def close(self) -> None:
        """No more sentences will come."""
        self._sentences.put_nowait(None)

    async def next_sentence(self) -> tuple[Int16, str] | None:
        """The next queued sentence (None once closed) - for consumers other than Playout."""
        return await self._sentences.get()

    @property
    def heard_text(self) -> str:
        return " ".join(w for w in self.heard if w).strip()

    @property
    def text(self) -> str:
        return " ".join(t for t in self.full_text if t).strip()


class Playout:
    """Sends utterances frame by frame; one per conversation."""

    def __init__(
        self,
        fmt: AudioFormat,
        send: Callable[[AudioOut], Awaitable[None]],
        *,
        realtime: bool = True,
        noise: NoiseGenerator | None = None,
        on_frame: Callable[[Int16, float], None] | None = None,
    ) -> None:
        self.fmt = fmt
        self.send = send
        self.realtime = realtime
        self.noise = noise
        self.on_frame = on_frame
        self.frame_samples = fmt.sample_rate * FRAME_MS // 1000
        self._queue: deque[Utterance] = deque()
        self._wake = asyncio.Event()
        self.current: Utterance | None = None
        self.underruns = 0
        self._clock: float | None = None
        self._clock_samples = 0
        #: callbacks for assistant_started/finished_speaking
        self.on_start: Callable[[Utterance], Awaitable[None]] | None = None
        self.on_finish: Callable[[Utterance], Awaitable[None]] | None = None

    def enqueue(self, utterance: Utterance) -> None:
        self._queue.append(utterance)
        self._wake.set()

    @property
    def speaking(self) -> bool:
        """An utterance has started and is not finished."""
        return self.current is not None and self.current.started_at is not None

    def interrupt(self) -> Utterance | None:
        """Stop the current utterance (if interruptible) and drop queued interruptible ones."""
        current = self.current
        if current is None or not current.interruptible:
            return None
        current.interrupted = True
        self._queue = deque(u for u in self._queue if not u.interruptible)
        for u in list(self._queue):
            if u.interruptible:
                u.interrupted = True
                u.done.set()
        self._wake.set()
        return current

    async def run(self) -> None:
        """The playout task: never returns until cancelled."""
        while True:
            if not self._queue:
                await self._idle()
                continue
            utterance = self._queue.popleft()
            self.current = utterance
            try:
                await self._play(utterance)
            finally:
                utterance.done.set()
                utterance._progress.set()
                self.current = None

    async def _idle(self) -> None:
        self._wake.clear()
        if self.noise is None or not self.realtime:
            await self._wake.wait()
            return
        # Background noise keeps flowing while nobody speaks.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout=FRAME_MS / 1000)
        if not self._wake.is_set():
            await self._send_frame(np.zeros(self.frame_samples, dtype=np.int16), "", None)

    async def _play(self, utt: Utterance) -> None:
        while not utt.interrupted:
            item = await self._next_sentence(utt)
            if item is None:
                break
            samples, text = item
            pending = samples
            words = text.split()
            frames = max(1, -(-pending.size // self.frame_samples))
            for k in range(frames):
                if utt.interrupted:
                    break
                frame = pending[k * self.frame_samples:(k + 1) * self.frame_samples]
                lo, hi = round(k * len(words) / frames), round((k + 1) * len(words) / frames)
                chunk_text = " ".join(words[lo:hi])
                await self._emit(utt, frame, chunk_text)
            utt.sentence_played()
        if utt.started_at is not None and self.on_finish is not None:
            await self.on_finish(utt)

    async def _next_sentence(self, utt: Utterance) -> tuple[Int16, str] | None:
        """The next sentence, or None when the utterance ended or was interrupted."""
        starved = utt._sentences.empty() and utt.started_at is not None
        getter = asyncio.ensure_future(utt._sentences.get())
        stopper = asyncio.ensure_future(self._wait_interrupt(utt))
        try:
            done, _ = await asyncio.wait({getter, stopper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopper.cancel()
        if getter not in done:
            getter.cancel()
            return None
        item = getter.result()
        if (item is not None and starved and self.realtime and self._clock is not None
                and time.monotonic() > self._clock_time()):
            # Everything sent had been played before the next sentence came: the caller
            # heard a gap mid-utterance. Restart pacing rather than bursting to catch up.
            self.underruns += 1
            self._clock = None
        return item

    async def _wait_interrupt(self, utt: Utterance) -> None:
        while not utt.interrupted:
            self._wake.clear()
            await self._wake.wait()

    async def _emit(self, utt: Utterance, frame: Int16, text: str) -> None:
        first = utt.started_at is None
        if first:
            utt.started_at = time.time()
            utt.first_frame_at = time.monotonic()
            if self.on_start is not None:
                await self.on_start(utt)
        await self._send_frame(frame, text, utt.timings if first else None)
        utt.sent_samples += frame.size
        if text:
            utt.heard.append(text)

    async def _send_frame(self, frame: Int16, text: str, timings: dict[str, float] | None
                          ) -> None:
        if self.realtime:
            await self._pace(frame.size)
        if self.noise is not None:
            frame = self.noise.mix_into(frame)
        if self.on_frame is not None:
            self.on_frame(frame, time.monotonic())
        await self.send(AudioOut(self.fmt.encode(frame), text, timings))

    async def _pace(self, samples: int) -> None:
        now = time.monotonic()
        if self._clock is None or now - self._clock_time() > LEAD_S * 4:
            self._clock, self._clock_samples = now, 0
        due = self._clock_time() - LEAD_S
        if due > now:
            await asyncio.sleep(due - now)
        self._clock_samples += samples

    def _clock_time(self) -> float:
        assert self._clock is not None
        return self._clock + self._clock_samples / self.fmt.sample_rate


def to_output_rate(samples: Int16, rate: int, fmt: AudioFormat) -> Int16:
    """Resample synthesized audio to the wire format's rate."""
    if rate == fmt.sample_rate:
        return samples
    return np.asarray(resample(samples, rate, fmt.sample_rate), dtype=np.int16)
