"""Time for the engine: one ``Clock`` for pacing, timers and turn timing.

Production uses ``SystemClock``. Tests run the engine on ``VirtualClock`` inside
``run_virtual()``: a ``VirtualTimeLoop`` whose time only moves when every task waits for
a timer, and then jumps straight to the next one. A scripted conversation of a minute then
runs in milliseconds and always in the same order, and neither sleeps nor flakes. Work
handed to threads (``run_in_executor``: the recogniser, synthesis) counts as instantaneous:
virtual time stands still until it comes back.
"""

from __future__ import annotations

import asyncio
import selectors
import time
from collections.abc import Coroutine
from concurrent.futures import Executor
from typing import Any, Protocol, TypeVar

T = TypeVar("T")
#: the wall-clock epoch a virtual clock starts at (2025-01-01T00:00:00Z)
VIRTUAL_EPOCH = 1_735_689_600.0


class Clock(Protocol):
    """Wall time, monotonic time and sleeping, as the engine sees them."""

    def now(self) -> float:
        """Seconds since the Unix epoch (``time.time``)."""
        ...

    def monotonic(self) -> float:
        """A monotonic reading in seconds (``time.monotonic``)."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds``."""
        ...


class SystemClock:
    """The real clocks."""

    def now(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


SYSTEM_CLOCK = SystemClock()


class VirtualClock:
    """The running event loop's time; virtual under ``VirtualTimeLoop``."""

    def __init__(self, epoch: float = VIRTUAL_EPOCH) -> None:
        self.epoch = epoch

    def now(self) -> float:
        return self.epoch + self.monotonic()

    def monotonic(self) -> float:
        return asyncio.get_running_loop().time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class _JumpingSelector:
    """Wraps the loop's selector: instead of blocking until the next timer, jump to it."""

    def __init__(self, inner: selectors.BaseSelector, loop: VirtualTimeLoop) -> None:
        self._inner, self._loop = inner, loop

    def select(self, timeout: float | None = None) -> list[Any]:
        ready = self._inner.select(0)
        if ready or timeout == 0:
            return ready
        if self._loop.threads_busy or timeout is None:
            # A thread will report back (or only I/O can wake us): wait for it for real,
            # without moving virtual time.
            return self._inner.select(None if timeout is None else 1.0)
        self._loop.advance(timeout)
        return []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """An event loop on virtual time (see the module docstring)."""

    def __init__(self) -> None:
        super().__init__()
        self._virtual_now = 0.0
        self._threads = 0
        inner: selectors.BaseSelector = self._selector  # type: ignore[has-type]
        self._selector = _JumpingSelector(inner, self)

    def time(self) -> float:
        return self._virtual_now

    def advance(self, seconds: float) -> None:
        """Move virtual time forward (the loop does this itself when idle)."""
        self._virtual_now += max(0.0, seconds)

    @property
    def threads_busy(self) -> bool:
        return self._threads > 0

    def run_in_executor(self, executor: Executor | None, func: Any,  # type: ignore[override]
                        *args: Any) -> asyncio.Future[Any]:
        future = super().run_in_executor(executor, func, *args)
        self._threads += 1
        future.add_done_callback(self._thread_done)
        return future

    def _thread_done(self, _: asyncio.Future[Any]) -> None:
        self._threads -= 1


def run_virtual(main: Coroutine[Any, Any, T]) -> T:
    """Run ``main`` to completion on a fresh ``VirtualTimeLoop`` (for tests)."""
    loop = VirtualTimeLoop()
    try:
        return loop.run_until_complete(main)
    finally:
        try:
            _cancel_remaining(loop)
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())
        finally:
            loop.close()


def _cancel_remaining(loop: asyncio.AbstractEventLoop) -> None:
    tasks = [t for t in asyncio.all_tasks(loop) if not t.done()]
    for task in tasks:
        task.cancel()
    if tasks:
        loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
