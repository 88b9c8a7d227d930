"""The TTS step scheduler: earliest deadline first, cancelled steps skipped."""

from __future__ import annotations

import asyncio
import threading

from openline.providers.base import BlockingRunner
from openline.providers.tts.schedule import PlaybackClock, SynthesisScheduler


async def test_queued_steps_run_earliest_deadline_first() -> None:
    runner = BlockingRunner("sched-test", 1)
    scheduler = SynthesisScheduler(runner)
    gate = threading.Event()
    order: list[str] = []

    def step(name: str) -> str:
        if name == "running":
            gate.wait(5)
        order.append(name)
        return name

    running = asyncio.create_task(scheduler.run(0.0, step, "running"))
    await asyncio.sleep(0)  # dispatched: the only worker is busy now
    late = asyncio.create_task(scheduler.run(30.0, step, "late"))
    early = asyncio.create_task(scheduler.run(10.0, step, "early"))
    tie = asyncio.create_task(scheduler.run(10.0, step, "tie"))  # after "early": arrival
    await asyncio.sleep(0)
    assert scheduler.queued == 3
    gate.set()
    assert await asyncio.gather(running, late, early, tie) == ["running", "late", "early", "tie"]
    assert order == ["running", "early", "tie", "late"]
    runner.shutdown()


async def test_a_step_cancelled_while_queued_never_runs() -> None:
    runner = BlockingRunner("sched-test", 1)
    scheduler = SynthesisScheduler(runner)
    gate = threading.Event()
    ran: list[str] = []

    def step(name: str) -> None:
        if name == "first":
            gate.wait(5)
        ran.append(name)

    first = asyncio.create_task(scheduler.run(0.0, step, "first"))
    await asyncio.sleep(0)
    dropped = asyncio.create_task(scheduler.run(1.0, step, "dropped"))
    kept = asyncio.create_task(scheduler.run(2.0, step, "kept"))
    await asyncio.sleep(0)
    dropped.cancel()
    gate.set()
    await asyncio.gather(first, kept)
    assert ran == ["first", "kept"]
    runner.shutdown()


async def test_errors_reach_the_caller_and_the_queue_moves_on() -> None:
    runner = BlockingRunner("sched-test", 1)
    scheduler = SynthesisScheduler(runner)

    def boom() -> None:
        raise ValueError("bad sentence")

    failed = asyncio.create_task(scheduler.run(0.0, boom))
    after = asyncio.create_task(scheduler.run(1.0, lambda: "next"))
    results = await asyncio.gather(failed, after, return_exceptions=True)
    assert isinstance(results[0], ValueError) and results[1] == "next"
    runner.shutdown()


def test_playback_clock_deadline_is_arrival_then_end_of_audio() -> None:
    clock = PlaybackClock()
    assert clock.deadline == clock.arrived
    clock.add(2.0)
    first = clock.deadline
    assert first >= clock.arrived + 2.0
    clock.add(1.5)
    assert clock.deadline == first + 1.5
