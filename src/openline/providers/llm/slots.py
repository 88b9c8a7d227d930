"""Admission to an embedded model's generation slots: live replies first.

An embedded LLM on a small machine has few slots (llama.cpp's default here is one), and a
post-call extraction of a few hundred tokens holds one for seconds. A caller waiting for
the next reply must not queue behind it. ``SlotGate`` admits requests in two classes:

* live requests (replies, tool decisions, speculative replies; a person is waiting)
  before background ones (post-call analysis), each class first come, first served;
* a live request that finds every slot taken marks one background lease *preempted*:
  its generation stops at the next token and the request queues again behind the live
  ones, starting over (the provider throws away what it had, so its caller sees one
  whole result). A background request is preempted at most ``max_preemptions`` times,
  then keeps its slot, so post-call work still finishes under constant live load.

Single event loop; the ``preempted`` flag is a ``threading.Event`` because the
generation's token callback reads it on the runner thread.
"""

from __future__ import annotations

import asyncio
import math
import os
import threading
from collections import deque
from dataclasses import dataclass, field

#: how often one background request may be stopped for live ones before it keeps its slot
MAX_PREEMPTIONS = 3


@dataclass(eq=False)
class Lease:
    """One admitted request; ``preempted`` is set when a live request wants its slot."""

    background: bool
    preemptible: bool
    preempted: threading.Event = field(default_factory=threading.Event)


class SlotGate:
    """``slots`` concurrent generations, live before background (see the module doc)."""

    def __init__(self, slots: int) -> None:
        if slots < 1:
            raise ValueError("slots must be >= 1")
        self._free = slots
        self._held: list[Lease] = []
        self._waiting: dict[bool, deque[tuple[Lease, asyncio.Future[None]]]] = {
            False: deque(), True: deque()}

    @property
    def waiting(self) -> int:
        """Requests queued for a slot (diagnostics, tests)."""
        return sum(len(q) for q in self._waiting.values())

    async def acquire(self, *, background: bool = False, preemptible: bool = True) -> Lease:
        """Wait for a slot; ``preemptible`` matters for background requests only."""
        lease = Lease(background, background and preemptible)
        ahead = self._waiting[False] if background else ()
        if self._free > 0 and not ahead and not self._waiting[background]:
            self._free -= 1
            self._held.append(lease)
            return lease
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting[background].append((lease, waiter))
        if not background:
            self._preempt_one()
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release(lease)  # handed a slot just as the caller gave up
            elif (lease, waiter) in self._waiting[background]:  # a release may have dropped it
                self._waiting[background].remove((lease, waiter))
            raise
        return lease

    def try_acquire(self) -> Lease | None:
        """A preemptible background slot now, or None when none is free or anyone waits
        for one (work that is only worth doing on an idle model: a warm-up)."""
        if self._free == 0 or self.waiting:
            return None
        self._free -= 1
        lease = Lease(background=True, preemptible=True)
        self._held.append(lease)
        return lease

    def release(self, lease: Lease) -> None:
        """Give the slot back: to the next live waiter, else the next background one."""
        if lease not in self._held:
            return
        self._held.remove(lease)
        for queue in (self._waiting[False], self._waiting[True]):
            while queue:
                nxt, waiter = queue.popleft()
                if not waiter.done():
                    self._held.append(nxt)
                    waiter.set_result(None)
                    return
        self._free += 1

    def _preempt_one(self) -> None:
        """Stop the newest preemptible background generation (the least work lost),
        unless one already stops for each live request waiting."""
        stopping = sum(1 for lease in self._held if lease.preempted.is_set())
        if self._free > 0 or stopping >= len(self._waiting[False]):
            return
        for lease in reversed(self._held):
            if lease.preemptible and not lease.preempted.is_set():
                lease.preempted.set()
                return


class PromptSlots:
    """Which llama.cpp slot a completion runs in, so that a conversation finds its own
    transcript still cached there.

    llama.cpp keeps one prompt per slot. Left to choose, it did not send a conversation
    back to its own slot: with four conversations taking turns on four slots, each request
    found only the shared persona and example cached (``cached_prompt_tokens`` 101) and
    processed its whole call again, 300-500 ms to the first token on one thread instead
    of about 115 ms. So the provider pins each request (``id_slot``):

    * a request of a ``session`` (``GenerationOptions.session``: the conversation) to the
      idle slot that session used last. A transcript prefix alone does not say it: a
      speculative reply that was dropped because the caller went on leaves a prompt that
      ends in "Assistant:", which the caller's longer line does not extend;
    * one without a session to the idle slot whose last prompt it extends;
    * a new conversation to the free slot (no live conversation's: ended, used by
      post-call work, or never used) that holds the most of its prompt: a call of the
      same agent finds the persona cached there, where another agent's slot or an empty
      one makes its first turn process it too; among equals an ended call's slot, then
      the least recently used one. With no free slot, the least recently used idle one;
    * requests of no conversation (post-call analysis, which runs when a call has
      ended) leave the ended calls' slots to the next call.

    Single event loop; at most as many completions run at once as the slot gate admits,
    which is never more than the slots.
    """

    def __init__(self, slots: int) -> None:
        if slots < 1:
            raise ValueError("slots must be >= 1")
        self._prompts: list[str | None] = [None] * slots
        self._sessions: list[str | None] = [None] * slots
        self._used = [0] * slots  # when each slot was last given back (a counter)
        self._busy: set[int] = set()
        self._ending: set[int] = set()  # busy slots whose conversation has ended
        self._clock = 0

    @property
    def count(self) -> int:
        """How many slots there are."""
        return len(self._prompts)

    def take(self, prompt: str, session: str | None = None) -> int:
        """The slot for ``prompt`` of ``session``, marked busy until ``give_back``."""
        idle = [i for i in range(len(self._prompts)) if i not in self._busy]
        if not idle:
            raise RuntimeError("every llama.cpp slot is busy")
        if session is not None:
            owners = [i for i in idle if self._sessions[i] == session]
        else:
            owners = [i for i in idle if (held := self._prompts[i]) and prompt.startswith(held)]
        free = [i for i in idle if self._sessions[i] is None]  # ended, post-call or unused
        if owners:
            slot = max(owners, key=lambda i: (len(self._prompts[i] or ""), self._used[i]))
        elif session is not None and free:  # the most of this prompt cached, then LRU
            slot = max(free, key=lambda i: (_shared(self._prompts[i], prompt), -self._used[i]))
        elif session is not None:
            slot = min(idle, key=lambda i: self._used[i])
        else:  # post-call work and the like: an ended call's slot is kept for the next call
            slot = min(idle, key=lambda i: self._used[i] if self._used[i] >= 0 else math.inf)
        self._busy.add(slot)
        self._sessions[slot] = session
        return slot

    def holds(self, session: str) -> bool:
        """Does a slot (busy or idle) belong to ``session``?"""
        return session in self._sessions

    def give_back(self, slot: int, prompt: str, session: str | None = None) -> None:
        """``slot`` is idle again and holds ``prompt`` of ``session``."""
        self._busy.discard(slot)
        self._prompts[slot], self._sessions[slot] = prompt, session
        self._clock += 1
        self._used[slot] = self._clock
        if slot in self._ending:
            self._ending.discard(slot)
            self._release(slot)

    def end(self, session: str) -> None:
        """``session`` is over: its slots go first to the next new conversation."""
        for slot, held in enumerate(self._sessions):
            if held == session:
                if slot in self._busy:
                    self._ending.add(slot)
                else:
                    self._release(slot)

    def _release(self, slot: int) -> None:
        self._sessions[slot] = None
        self._used[slot] = -1  # before the empty slots (0) and every used one


def _shared(held: str | None, prompt: str) -> int:
    """How many leading characters ``prompt`` has in common with a slot's ``held`` one."""
    if not held:
        return 0
    return len(os.path.commonprefix([held, prompt]))  # noqa: RUF071 (text, not paths)
