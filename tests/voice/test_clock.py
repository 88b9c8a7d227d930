"""The virtual clock the engine tests run on."""

from __future__ import annotations

import asyncio
import time

from openline.voice.clock import VIRTUAL_EPOCH, SystemClock, VirtualClock, run_virtual


def test_sleeps_jump_to_the_next_timer_in_order() -> None:
    order: list[tuple[str, float]] = []
    clock = VirtualClock()

    async def sleeper(name: str, seconds: float) -> None:
        await clock.sleep(seconds)
        order.append((name, clock.monotonic()))

    async def main() -> float:
        await asyncio.gather(sleeper("late", 600), sleeper("early", 0.25), sleeper("mid", 60))
        return clock.now()

    start = time.perf_counter()
    now = run_virtual(main())
    assert order == [("early", 0.25), ("mid", 60.0), ("late", 600.0)]
    assert now == VIRTUAL_EPOCH + 600
    assert time.perf_counter() - start < 2  # ten virtual minutes


def test_work_in_threads_takes_no_virtual_time() -> None:
    async def main() -> tuple[float, float]:
        loop = asyncio.get_running_loop()
        before = loop.time()
        timer = asyncio.create_task(asyncio.sleep(0.01))  # must not fire "during" the thread
        await loop.run_in_executor(None, time.sleep, 0.05)
        during = loop.time()
        await timer
        return during - before, loop.time() - before

    during, after = run_virtual(main())
    assert during == 0.0 and after == 0.01


def test_timeouts_are_virtual_too() -> None:
    async def main() -> float:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(5):
                await asyncio.Event().wait()
        except TimeoutError:
            return loop.time()
        raise AssertionError("no timeout")

    assert run_virtual(main()) == 5.0


def test_the_system_clock_is_the_real_one() -> None:
    clock = SystemClock()
    assert abs(clock.now() - time.time()) < 1 and abs(clock.monotonic() - time.monotonic()) < 1
