"""``SlotGate``: live requests before background ones, and preemption of background work."""

from __future__ import annotations

import asyncio

import pytest

from openline.providers.llm.slots import SlotGate


async def _settle() -> None:
    for _ in range(3):
        await asyncio.sleep(0)


async def test_a_free_slot_is_taken_at_once_and_given_back() -> None:
    gate = SlotGate(2)
    a, b = await gate.acquire(), await gate.acquire(background=True)
    waiter = asyncio.create_task(gate.acquire())
    await _settle()
    assert not waiter.done() and gate.waiting == 1
    gate.release(a)
    handed = await asyncio.wait_for(waiter, 1)
    assert handed.background is False
    gate.release(handed)
    gate.release(b)
    gate.release(b)  # twice is harmless: the slot is not counted again
    assert gate.waiting == 0
    c, d = await gate.acquire(), await gate.acquire()
    extra = asyncio.create_task(gate.acquire())
    await _settle()
    assert not extra.done()  # still two slots, not three
    gate.release(c)
    gate.release(d)
    await asyncio.wait_for(extra, 1)


async def test_live_waiters_go_before_background_ones_that_came_first() -> None:
    gate = SlotGate(1)
    held = await gate.acquire()
    order: list[str] = []

    async def take(name: str, background: bool) -> None:
        lease = await gate.acquire(background=background)
        order.append(name)
        gate.release(lease)

    tasks = [asyncio.create_task(take("post-call", True))]
    await _settle()
    tasks += [asyncio.create_task(take("reply 1", False)),
              asyncio.create_task(take("reply 2", False))]
    await _settle()
    gate.release(held)
    await asyncio.wait_for(asyncio.gather(*tasks), 1)
    assert order == ["reply 1", "reply 2", "post-call"]


async def test_a_live_request_stops_the_newest_background_generation_only() -> None:
    gate = SlotGate(2)
    old, new = await gate.acquire(background=True), await gate.acquire(background=True)
    first = asyncio.create_task(gate.acquire())
    await _settle()
    assert new.preempted.is_set() and not old.preempted.is_set()
    second = asyncio.create_task(gate.acquire())
    await _settle()
    assert old.preempted.is_set()  # one stops per live request waiting
    gate.release(new)
    gate.release(old)
    for task in (first, second):
        assert not (await asyncio.wait_for(task, 1)).preempted.is_set()


async def test_live_and_unpreemptible_leases_are_never_stopped() -> None:
    gate = SlotGate(2)
    live = await gate.acquire()
    kept = await gate.acquire(background=True, preemptible=False)
    waiter = asyncio.create_task(gate.acquire())
    await _settle()
    assert not live.preempted.is_set() and not kept.preempted.is_set()
    assert not live.preemptible and not kept.preemptible
    gate.release(kept)
    await asyncio.wait_for(waiter, 1)


async def test_a_cancelled_waiter_leaves_the_queue_and_the_slot_moves_on() -> None:
    gate = SlotGate(1)
    held = await gate.acquire()
    gone = asyncio.create_task(gate.acquire())
    later = asyncio.create_task(gate.acquire(background=True))
    await _settle()
    gone.cancel()
    with pytest.raises(asyncio.CancelledError):
        await gone
    assert gate.waiting == 1
    gate.release(held)
    lease = await asyncio.wait_for(later, 1)
    assert lease.background
    # Handed the slot in the same step as it was cancelled: the slot is given back.
    racing = asyncio.create_task(gate.acquire())
    await _settle()
    gate.release(lease)
    racing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await racing
    await asyncio.wait_for(gate.acquire(), 1)


async def test_a_waiter_cancelled_before_a_release_reaches_it_is_skipped() -> None:
    gate = SlotGate(1)
    held = await gate.acquire()
    gone = asyncio.create_task(gate.acquire())
    await _settle()
    gone.cancel()  # its future is cancelled now; the task sees it at its next step
    gate.release(held)  # skips it: the slot is free again
    with pytest.raises(asyncio.CancelledError):
        await gone
    assert gate.waiting == 0
    await asyncio.wait_for(gate.acquire(), 1)


def test_at_least_one_slot() -> None:
    with pytest.raises(ValueError, match="slots"):
        SlotGate(0)


async def test_work_for_an_idle_model_only_gets_a_free_slot_nobody_waits_for() -> None:
    gate = SlotGate(1)
    warm = gate.try_acquire()
    assert warm is not None and warm.background and warm.preemptible
    assert gate.try_acquire() is None  # the one slot is taken
    live = asyncio.create_task(gate.acquire())
    await _settle()
    assert warm.preempted.is_set()  # a live request stops it, as any background work
    gate.release(warm)
    lease = await asyncio.wait_for(live, 1)
    queued = asyncio.create_task(gate.acquire(background=True))
    await _settle()
    gate.release(lease)
    post_call = await asyncio.wait_for(queued, 1)
    waiting = asyncio.create_task(gate.acquire())
    await _settle()
    gate.release(post_call)  # freed, but handed straight to the live waiter
    assert gate.try_acquire() is None
    gate.release(await asyncio.wait_for(waiting, 1))
    assert gate.try_acquire() is not None  # idle at last
