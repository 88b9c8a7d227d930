"""Earliest-deadline-first scheduling of synthesis steps across simultaneous calls.

A neural TTS on two cores serves one step (one sentence or clause through the model) at
a time. With a plain FIFO, a caller whose reply is about to start waits behind every step
other calls have queued, e.g. the next sentence of a long answer whose audio is still
playing for seconds. ``SynthesisScheduler`` instead runs the queued step with the earliest
*deadline*:

* the first step of a ``synthesize`` call is due when the call arrives: nobody hears
  anything until it is done (time to first audio);
* a later step is due when the audio already produced for that call runs out, counted in
  real time from its first chunk (``PlaybackClock``): it may wait while other calls'
  first clauses go ahead, but not so long that its own playback stalls.

A step that is already running cannot be interrupted (the model run is one blocking
call), so the bound on a first clause's wait is one step: that is why the engines
synthesize in sentence and clause units. Steps of one call run one after another (a
generator is advanced by one ``next()`` per step).
"""

from __future__ import annotations

import asyncio
import functools
import heapq
import itertools
import time
from collections.abc import Callable
from typing import Any, TypeVar

from openline.providers.base import BlockingRunner

T = TypeVar("T")


_Entry = tuple[float, int, Callable[[], Any], "asyncio.Future[Any]"]


class SynthesisScheduler:
    """Runs blocking steps on ``runner``, at most ``runner.max_concurrency`` at once, the
    earliest deadline (``time.monotonic()`` seconds) first; ties in arrival order."""

    def __init__(self, runner: BlockingRunner) -> None:
        self.runner = runner
        self._queue: list[_Entry] = []
        self._order = itertools.count()
        self._running = 0

    @property
    def queued(self) -> int:
        """Steps waiting to start (cancelled ones included until they are skipped)."""
        return len(self._queue)

    async def run(self, deadline: float, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` when it is the most urgent step; cancelling the wait before it
        starts drops it, after it started lets it finish in the background."""
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        entry: _Entry = (deadline, next(self._order), functools.partial(fn, *args), future)
        heapq.heappush(self._queue, entry)
        self._dispatch()
        return await future

    def _dispatch(self) -> None:
        while self._running < self.runner.max_concurrency and self._queue:
            _, _, call, future = heapq.heappop(self._queue)
            if future.done():  # its caller gave up while it was queued
                continue
            self._running += 1
            task = asyncio.ensure_future(self.runner.run(call))
            task.add_done_callback(functools.partial(self._finished, future))

    def _finished(self, future: asyncio.Future[Any], task: asyncio.Future[Any]) -> None:
        self._running -= 1
        if task.cancelled():
            future.cancel()
        elif (exc := task.exception()) is not None:  # also marks it retrieved
            if not future.done():
                future.set_exception(exc)
        elif not future.done():
            future.set_result(task.result())
        self._dispatch()


class PlaybackClock:
    """When one call's audio runs out, if played in real time from its first chunk."""

    def __init__(self) -> None:
        self.arrived = time.monotonic()
        self._started: float | None = None
        self._audio_s = 0.0

    def add(self, seconds: float) -> None:
        """Record a chunk of ``seconds`` of audio handed to the caller."""
        if self._started is None:
            self._started = time.monotonic()
        self._audio_s += seconds

    @property
    def deadline(self) -> float:
        """The arrival time until the first chunk; then the end of the audio so far."""
        if self._started is None:
            return self.arrived
        return self._started + self._audio_s
