"""Conformance suite for ``openline.postcall.queue.JobQueue``: every implementation must pass it.

How to plug in an implementation (the database queue does this in ``test_queue.py``; the Redis
queue of the scale-out work adds one class the same way)::

    class TestRedisJobQueue(QueueConformance):
        @pytest.fixture
        async def backend(self) -> AsyncIterator[QueueBackend]:
            b = RedisBackend(...)      # a QueueBackend over fresh, empty storage
            yield b
            await b.close()

A ``QueueBackend`` is one storage under test. ``open()`` returns a new handle on it with its
own connections, as a second process would have; the suite uses several handles to model
competing nodes and restarts. ``view()`` reads a job's state for assertions only; it is not
part of the ``JobQueue`` contract the worker relies on.

The properties checked (see the queue module docstring for the contract):
exclusive claims under concurrent claimers on several handles, claim limits and delays, leases
that block others until they expire and are then re-claimed, heartbeats (``extend``) that keep
a lease, retries with a delay, terminal ``done``/``failed`` states, poison jobs, ``release``,
idempotent enqueue, wake-up on enqueue, and — through the real ``Worker`` — competing workers,
backoff, crash recovery and a restart mid-queue that loses nothing and runs nothing twice.
Lease timings are a few hundred milliseconds with generous margins, so a busy CI machine
does not make them flaky.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from dataclasses import dataclass
from typing import Protocol

import pytest

from openline.postcall.queue import ClaimedJob, JobQueue
from openline.postcall.worker import PermanentJobError, Worker, WorkerOptions
from openline.store.tables_postcall import DONE, FAILED, QUEUED, RUNNING

FAST = WorkerOptions(concurrency=3, lease_s=5.0, poll_s=0.05, retry_base_s=0.05,
                     retry_max_s=0.2, grace_s=2.0)


@dataclass(frozen=True)
class JobView:
    """What the suite observes of one job: its state, tries so far and last error."""

    status: str
    attempts: int
    last_error: str | None


class QueueBackend(Protocol):
    """One fresh storage for a ``JobQueue`` implementation (see the module docstring)."""

    #: whether ``enqueue(dedupe_key=...)`` is implemented (the contract says it should be)
    supports_dedupe: bool

    async def open(self) -> JobQueue:
        """A new queue handle on the same storage, with its own connections."""
        ...

    async def view(self, job_id: str) -> JobView | None:
        """The stored state of ``job_id``, or ``None`` when there is no such job."""
        ...


class Recorder:
    """Handler that notes every start and every finished run, per job payload ``n``."""

    def __init__(self, work_s: float = 0.0) -> None:
        self.work_s = work_s
        self.started: Counter[int] = Counter()
        self.finished: Counter[int] = Counter()
        self.progress = asyncio.Event()

    async def until(self, started: int = 0, finished: int = 0) -> None:
        while sum(self.started.values()) < started or sum(self.finished.values()) < finished:
            self.progress.clear()
            await asyncio.wait_for(self.progress.wait(), 10)

    async def __call__(self, job: ClaimedJob) -> None:
        n = int(job.payload["n"])
        self.started[n] += 1
        self.progress.set()
        await asyncio.sleep(self.work_s)
        self.finished[n] += 1
        self.progress.set()


async def must_view(backend: QueueBackend, job_id: str | None) -> JobView:
    assert job_id is not None
    view = await backend.view(job_id)
    assert view is not None, f"job {job_id} vanished"
    return view


async def statuses(backend: QueueBackend, job_ids: list[str | None]) -> Counter[str]:
    out: Counter[str] = Counter()
    for job_id in job_ids:
        out[(await must_view(backend, job_id)).status] += 1
    return out


async def claim_one(queue: JobQueue, worker_id: str, lease_s: float) -> ClaimedJob:
    jobs = await queue.claim(worker_id, lease_s=lease_s)
    assert len(jobs) == 1, f"expected one claimable job, got {jobs}"
    return jobs[0]


class QueueConformance:
    """The tests; a subclass provides the ``backend`` fixture (a ``QueueBackend``)."""

    # --- enqueue and claim -------------------------------------------------------------

    async def test_enqueue_stores_queued_jobs(self, backend: QueueBackend) -> None:
        queue = await backend.open()
        ids = [await queue.enqueue("count", {"n": n}) for n in range(3)]
        assert None not in ids and len(set(ids)) == 3
        assert await statuses(backend, ids) == {QUEUED: 3}
        assert await queue.unfinished() == 3
        assert await backend.view("job_does_not_exist") is None

    async def test_claim_hands_out_kind_payload_and_attempt(self, backend: QueueBackend) -> None:
        queue = await backend.open()
        job_id = await queue.enqueue("greet", {"who": "ann", "n": [1, 2]}, max_attempts=4)
        job = await claim_one(queue, "w1", lease_s=5)
        assert (job.id, job.kind, job.payload) == (job_id, "greet", {"who": "ann", "n": [1, 2]})
        assert (job.attempt, job.max_attempts, job.last_attempt) == (1, 4, False)
        assert await must_view(backend, job_id) == JobView(RUNNING, 1, None)
        assert await queue.unfinished() == 1  # running still counts as unfinished

    async def test_concurrent_claimers_take_each_job_exactly_once(
            self, backend: QueueBackend) -> None:
        handles = [await backend.open() for _ in range(3)]
        ids = {await handles[0].enqueue("count", {"n": n}) for n in range(40)}
        taken: list[tuple[str, str]] = []

        async def claimer(queue: JobQueue, worker_id: str) -> None:
            while batch := await queue.claim(worker_id, lease_s=30, limit=3):
                assert len(batch) <= 3
                taken.extend((job.id, worker_id) for job in batch)

        await asyncio.gather(*(claimer(q, f"w{i}-{k}")
                               for i, q in enumerate(handles) for k in range(4)))
        claimed_ids = [job_id for job_id, _ in taken]
        assert sorted(claimed_ids) == sorted(str(i) for i in ids)  # all, and none twice
        assert await statuses(backend, list(ids)) == {RUNNING: 40}
        for job_id in ids:
            assert (await must_view(backend, job_id)).attempts == 1

    async def test_claim_respects_limit_and_delay(self, backend: QueueBackend) -> None:
        queue = await backend.open()
        later = await queue.enqueue("count", {"n": 0}, delay_s=1.0)
        due = [await queue.enqueue("count", {"n": n}) for n in range(1, 4)]
        first = await queue.claim("w", lease_s=30, limit=2)
        assert len(first) == 2
        rest = await queue.claim("w", lease_s=30, limit=5)
        assert {j.id for j in first} | {j.id for j in rest} == set(due)  # not the delayed one
        assert await must_view(backend, later) == JobView(QUEUED, 0, None)
        await asyncio.sleep(1.1)
        assert [j.id for j in await queue.claim("w", lease_s=30, limit=5)] == [later]

    # --- leases and heartbeats ---------------------------------------------------------

    async def test_lease_blocks_others_until_it_expires_then_reclaims(
            self, backend: QueueBackend) -> None:
        a, b = await backend.open(), await backend.open()
        job_id = await a.enqueue("count", {"n": 1}, max_attempts=3)
        first = await claim_one(a, "slow", lease_s=0.4)
        assert await b.claim("fast", lease_s=5) == []  # the lease is still valid
        await asyncio.sleep(0.5)
        second = await claim_one(b, "fast", lease_s=5)
        assert (second.id, second.attempt) == (first.id, 2)
        # The first claim is gone: nothing it does may touch the job any more.
        assert not await a.extend(job_id or "", "slow", 5)
        assert not await a.complete(job_id or "", "slow")
        assert not await a.fail(job_id or "", "slow", "late", retry_in_s=None)
        assert not await a.release(job_id or "", "slow")
        assert await must_view(backend, job_id) == JobView(RUNNING, 2, None)
        assert await b.complete(second.id, "fast")
        assert await must_view(backend, job_id) == JobView(DONE, 2, None)

    async def test_extend_keeps_the_lease(self, backend: QueueBackend) -> None:
        a, b = await backend.open(), await backend.open()
        await a.enqueue("count", {"n": 1})
        job = await claim_one(a, "owner", lease_s=0.8)
        assert not await b.extend(job.id, "stranger", 60)  # only the owner may renew
        await asyncio.sleep(0.5)
        assert await a.extend(job.id, "owner", 1.5)
        await asyncio.sleep(0.6)  # past the first lease, inside the renewed one
        assert await b.claim("other", lease_s=5) == []
        await asyncio.sleep(1.2)  # the renewed lease has run out too
        assert (await claim_one(b, "other", lease_s=5)).attempt == 2

    async def test_worker_heartbeat_keeps_a_long_job_from_being_reclaimed(
            self, backend: QueueBackend) -> None:
        a, b = await backend.open(), await backend.open()
        record = Recorder(work_s=2.0)
        job_id = await a.enqueue("count", {"n": 1})
        worker = Worker(a, {"count": record},
                        WorkerOptions(concurrency=1, lease_s=0.9, poll_s=0.05, grace_s=5))
        worker.start()
        await record.until(started=1)
        stolen: list[ClaimedJob] = []
        while not record.finished:  # the job runs 2 s, more than twice its 0.9 s lease
            stolen += await b.claim("thief", lease_s=5)
            await asyncio.sleep(0.1)
        await worker.stop()
        assert stolen == [] and record.started == {1: 1}
        assert await must_view(backend, job_id) == JobView(DONE, 1, None)

    async def test_lease_expiring_on_the_last_attempt_fails_the_job(
            self, backend: QueueBackend) -> None:
        queue = await backend.open()
        job_id = await queue.enqueue("count", {"n": 1}, max_attempts=1)
        assert (await claim_one(queue, "dies", lease_s=0.3)).last_attempt
        await asyncio.sleep(0.4)
        assert await queue.claim("next", lease_s=5) == []  # a poison job is not run again
        view = await must_view(backend, job_id)
        assert (view.status, view.attempts) == (FAILED, 1) and view.last_error
        assert await queue.unfinished() == 0

    # --- outcomes ----------------------------------------------------------------------

    async def test_fail_with_retry_requeues_after_the_delay(self, backend: QueueBackend) -> None:
        queue = await backend.open()
        job_id = await queue.enqueue("count", {"n": 1}, max_attempts=3)
        job = await claim_one(queue, "w", lease_s=5)
        assert await queue.fail(job.id, "w", "RuntimeError: flaky", retry_in_s=0.5)
        assert await must_view(backend, job_id) == JobView(QUEUED, 1, "RuntimeError: flaky")
        assert await queue.claim("w", lease_s=5) == []  # not before its retry time
        assert await queue.unfinished() == 1
        await asyncio.sleep(0.6)
        retried = await claim_one(queue, "w", lease_s=5)
        assert (retried.id, retried.attempt) == (job_id, 2)

    async def test_done_is_terminal(self, backend: QueueBackend) -> None:
        queue = await backend.open()
        job_id = await queue.enqueue("count", {"n": 1})
        job = await claim_one(queue, "w", lease_s=0.2)
        assert await queue.complete(job.id, "w")
        await asyncio.sleep(0.3)  # even once the old lease time has passed
        assert await queue.claim("w2", lease_s=5) == []
        assert not await queue.complete(job.id, "w")  # a second outcome is refused
        assert not await queue.fail(job.id, "w", "late", retry_in_s=0.0)
        assert await must_view(backend, job_id) == JobView(DONE, 1, None)
        assert await queue.unfinished() == 0

    async def test_failed_is_terminal(self, backend: QueueBackend) -> None:
        queue = await backend.open()
        job_id = await queue.enqueue("count", {"n": 1})
        job = await claim_one(queue, "w", lease_s=0.2)
        assert await queue.fail(job.id, "w", "PermanentJobError: bad payload", retry_in_s=None)
        await asyncio.sleep(0.3)
        assert await queue.claim("w2", lease_s=5) == []
        assert not await queue.complete(job.id, "w")
        assert await must_view(backend, job_id) == JobView(
            FAILED, 1, "PermanentJobError: bad payload")
        assert await queue.unfinished() == 0

    async def test_release_hands_the_job_back_without_counting_it(
            self, backend: QueueBackend) -> None:
        queue = await backend.open()
        job_id = await queue.enqueue("count", {"n": 1})
        job = await claim_one(queue, "w", lease_s=60)
        assert not await queue.release(job.id, "someone-else")
        assert await queue.release(job.id, "w")
        assert await must_view(backend, job_id) == JobView(QUEUED, 0, None)
        again = await claim_one(queue, "w2", lease_s=60)  # at once, not after the lease
        assert (again.id, again.attempt) == (job_id, 1)

    # --- producers ---------------------------------------------------------------------

    async def test_dedupe_key_enqueues_once(self, backend: QueueBackend) -> None:
        if not backend.supports_dedupe:
            pytest.skip("this implementation has no idempotent enqueue")
        a, b = await backend.open(), await backend.open()
        first = await a.enqueue("count", {"n": 1}, dedupe_key="same")
        again = await b.enqueue("count", {"n": 2}, dedupe_key="same")
        assert first is not None and again is None
        assert (await claim_one(a, "w", 5)).payload == {"n": 1}
        racing = await asyncio.gather(*(q.enqueue("count", {"n": i}, dedupe_key="race")
                                        for i, q in enumerate([a, b] * 4)))
        assert len([job_id for job_id in racing if job_id is not None]) == 1
        assert await a.unfinished() == 2

    async def test_wait_for_work_wakes_on_enqueue_or_times_out(
            self, backend: QueueBackend) -> None:
        queue = await backend.open()
        loop = asyncio.get_running_loop()
        start = loop.time()
        await queue.wait_for_work(0.2)  # nothing enqueued: returns after the timeout
        assert loop.time() - start >= 0.15
        waiter = asyncio.create_task(queue.wait_for_work(10))
        await asyncio.sleep(0.05)
        start = loop.time()
        await queue.enqueue("count", {"n": 1})
        await asyncio.wait_for(waiter, 2)
        assert loop.time() - start < 2

    async def test_every_waiter_on_one_queue_wakes_on_enqueue(
            self, backend: QueueBackend) -> None:
        # Several workers share one queue object in a process (the post-call worker's
        # concurrency): one enqueue wakes them all, and none of them trips over another.
        queue = await backend.open()
        waiters = [asyncio.create_task(queue.wait_for_work(10)) for _ in range(3)]
        await asyncio.sleep(0.05)
        start = asyncio.get_running_loop().time()
        await queue.enqueue("count", {"n": 1})
        await asyncio.wait_for(asyncio.gather(*waiters), 2)
        assert asyncio.get_running_loop().time() - start < 2

    # --- through the real worker -------------------------------------------------------

    async def test_competing_workers_run_each_job_once(self, backend: QueueBackend) -> None:
        shared, other = await backend.open(), await backend.open()
        record = Recorder(work_s=0.01)
        ids = [await shared.enqueue("count", {"n": n}) for n in range(30)]
        workers = [Worker(q, {"count": record}, FAST) for q in (shared, shared, other)]
        await asyncio.gather(*(w.run_until_idle() for w in workers))
        assert record.finished == Counter(range(30)) and record.started == record.finished
        assert await statuses(backend, ids) == {DONE: 30}

    async def test_retries_with_backoff_then_gives_up(self, backend: QueueBackend) -> None:
        queue = await backend.open()
        tries: Counter[str] = Counter()
        times: list[float] = []

        async def flaky(job: ClaimedJob) -> None:
            tries[job.payload["mode"]] += 1
            if job.payload["mode"] == "flaky":
                times.append(asyncio.get_running_loop().time())
                if tries["flaky"] < 3:
                    raise RuntimeError("not yet")
            elif job.payload["mode"] == "broken":
                raise RuntimeError("always")
            else:
                raise PermanentJobError("bad payload")

        flaky_id = await queue.enqueue("k", {"mode": "flaky"}, max_attempts=5)
        broken_id = await queue.enqueue("k", {"mode": "broken"}, max_attempts=3)
        permanent_id = await queue.enqueue("k", {"mode": "permanent"}, max_attempts=5)
        unknown_id = await queue.enqueue("nobody-handles-this", {}, max_attempts=5)
        await Worker(queue, {"k": flaky}, FAST).run_until_idle()
        assert tries == {"flaky": 3, "broken": 3, "permanent": 1}
        gaps = [b - a for a, b in itertools.pairwise(times)]
        assert gaps[0] >= 0.04 and gaps[1] >= 0.08  # 0.05 s, then 0.1 s (+-20 %)
        assert await must_view(backend, flaky_id) == JobView(DONE, 3, None)
        assert await must_view(backend, broken_id) == JobView(FAILED, 3, "RuntimeError: always")
        assert await must_view(backend, permanent_id) == JobView(
            FAILED, 1, "PermanentJobError: bad payload")
        unknown = await must_view(backend, unknown_id)
        assert (unknown.status, unknown.attempts) == (FAILED, 1)

    async def test_crashed_workers_jobs_are_reclaimed_after_their_lease(
            self, backend: QueueBackend) -> None:
        queue, crashed = await backend.open(), await backend.open()
        record = Recorder()
        job_id = await queue.enqueue("count", {"n": 7})
        last_try = await queue.enqueue("count", {"n": 8}, max_attempts=1)
        dead = await crashed.claim("dead-worker", lease_s=0.3, limit=5)  # then "crashes"
        assert {j.payload["n"] for j in dead} == {7, 8}
        assert await queue.claim("other", lease_s=5) == []  # leases still valid
        await asyncio.sleep(0.35)
        await Worker(queue, {"count": record}, FAST).run_until_idle()
        assert record.finished == {7: 1}  # the job on its last attempt is not run again
        assert not await crashed.complete(str(job_id), "dead-worker")  # its claim is gone
        assert await statuses(backend, [job_id, last_try]) == {DONE: 1, FAILED: 1}

    async def test_restart_mid_queue_loses_none_and_runs_none_twice(
            self, backend: QueueBackend) -> None:
        before = await backend.open()
        record = Recorder(work_s=0.05)
        ids = [await before.enqueue("count", {"n": n}) for n in range(24)]
        first = Worker(before, {"count": record}, FAST)
        first.start()
        await record.until(finished=6)
        await first.stop()  # graceful: jobs in flight finish, nothing new is claimed
        done_before = sum(record.finished.values())
        assert 6 <= done_before < 24
        assert record.started == record.finished  # nothing was left half-run
        # A process that claimed work and died without a trace:
        orphaned = await (await backend.open()).claim("crashed-process", lease_s=0.2, limit=2)
        assert len(orphaned) == 2
        await asyncio.sleep(0.25)
        after = await backend.open()  # the restarted process: a new handle, same storage
        assert await after.unfinished() == 24 - done_before
        await Worker(after, {"count": record}, FAST).run_until_idle()
        assert record.finished == Counter(range(24)) and record.started == record.finished
        assert await statuses(backend, ids) == {DONE: 24}

    async def test_stop_releases_jobs_cut_short(self, backend: QueueBackend) -> None:
        queue = await backend.open()
        record = Recorder(work_s=5.0)
        job_id = await queue.enqueue("count", {"n": 1})
        impatient = Worker(queue, {"count": record},
                           WorkerOptions(poll_s=0.05, lease_s=60, grace_s=0.05))
        impatient.start()
        await record.until(started=1)
        await impatient.stop()  # cancels after the grace period and hands the job back
        assert await must_view(backend, job_id) == JobView(QUEUED, 0, None)
        record.work_s = 0.0
        await Worker(await backend.open(), {"count": record}, FAST).run_until_idle()
        assert record.finished == {1: 1}
