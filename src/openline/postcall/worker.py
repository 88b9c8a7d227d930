"""The in-process worker: claims jobs from a ``JobQueue`` and runs their handlers.

* Up to ``concurrency`` jobs run at once, each as a named task owned by the worker.
* While a job runs its lease is renewed every ``lease_s / 3`` seconds, so a long job is
  not re-claimed by another worker; a crashed process stops renewing and its jobs are
  re-claimed once their leases expire.
* A handler that raises is retried with exponential backoff
  (``retry_base_s * 2**(attempt-1)``, capped at ``retry_max_s``, +-20 % jitter) until
  the job's ``max_attempts``; ``PermanentJobError`` gives up at once.
* ``stop()`` stops claiming, lets running jobs finish for ``grace_s``, then cancels the
  rest and releases them to the queue (their attempt is not counted), so a restart
  resumes them and never re-runs one that completed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from openline.postcall.queue import ClaimedJob, JobQueue

log = logging.getLogger(__name__)

Handler = Callable[[ClaimedJob], Awaitable[None]]


class PermanentJobError(Exception):
    """Raised by a handler when retrying cannot help (bad payload, target gone)."""


@dataclass(frozen=True)
class WorkerOptions:
    """Tuning of one worker (the composition root fills these from settings)."""

    concurrency: int = 2
    lease_s: float = 120.0
    poll_s: float = 1.0
    retry_base_s: float = 2.0
    retry_max_s: float = 600.0
    grace_s: float = 5.0


def backoff_s(attempt: int, base_s: float, max_s: float) -> float:
    """Delay before the try after ``attempt`` (1-based): exponential, capped, jittered."""
    delay = min(max_s, base_s * 2 ** max(0, attempt - 1))
    return delay * random.uniform(0.8, 1.2)


class Worker:
    """Runs jobs of the kinds in ``handlers``; unknown kinds fail permanently."""

    def __init__(self, queue: JobQueue, handlers: Mapping[str, Handler],
                 options: WorkerOptions | None = None) -> None:
        self.queue = queue
        self.handlers = dict(handlers)
        self.options = options or WorkerOptions()
        self.worker_id = f"worker_{uuid.uuid4().hex[:12]}"
        self._running: dict[str, asyncio.Task[None]] = {}
        self._loop_task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    def start(self) -> None:
        """Start claiming in the background (call from inside the event loop)."""
        if self._loop_task is None:
            self._loop_task = asyncio.create_task(self._loop(), name=f"{self.worker_id}-loop")

    async def stop(self) -> None:
        """Stop claiming; finish or release what is running (see the module docstring)."""
        self._stopping.set()
        if self._loop_task is not None:
            # Not cancelled: a claim in flight must finish and hand its jobs to a task,
            # or they would sit "running" until their lease expires.
            await self._loop_task
            self._loop_task = None
        running = list(self._running.values())
        if running:
            _, pending = await asyncio.wait(running, timeout=self.options.grace_s)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

    async def run_until_idle(self, timeout_s: float = 30.0) -> None:
        """Claim and run until no job is left unfinished, retries included (tests, one-shot
        runs). Jobs another worker holds count as unfinished until done or re-claimed."""
        async with asyncio.timeout(timeout_s):
            while True:
                started = await self._claim_some()
                if self._running:
                    await asyncio.wait(list(self._running.values()),
                                       return_when=asyncio.FIRST_COMPLETED)
                elif not started:
                    if not await self.queue.unfinished():
                        return
                    await self.queue.wait_for_work(self.options.poll_s)

    async def _loop(self) -> None:
        while not self._stopping.is_set():
            try:
                started = await self._claim_some()
            except Exception:  # the database may be briefly unavailable; keep polling
                log.exception("job queue: claim failed")
                started = 0
            if not started:
                await self._idle()

    async def _idle(self) -> None:
        """Wait for new work, the poll interval, or ``stop()``, whichever comes first."""
        waits = [asyncio.create_task(self.queue.wait_for_work(self.options.poll_s)),
                 asyncio.create_task(self._stopping.wait())]
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in waits:
                task.cancel()
            await asyncio.gather(*waits, return_exceptions=True)

    async def _claim_some(self) -> int:
        free = self.options.concurrency - len(self._running)
        if free <= 0:
            return 0
        jobs = await self.queue.claim(self.worker_id, self.options.lease_s, free)
        for job in jobs:
            task = asyncio.create_task(self._run(job), name=f"job-{job.kind}-{job.id}")
            self._running[job.id] = task
            task.add_done_callback(self._forget)
        return len(jobs)

    def _forget(self, task: asyncio.Task[None]) -> None:
        for job_id, running in list(self._running.items()):
            if running is task:
                del self._running[job_id]

    async def _run(self, job: ClaimedJob) -> None:
        heartbeat = asyncio.create_task(self._heartbeat(job), name=f"lease-{job.id}")
        try:
            await self._execute(job)
        except asyncio.CancelledError:
            # Shutdown: hand the job back untouched so the next start runs it.
            await asyncio.shield(self.queue.release(job.id, self.worker_id))
            raise
        finally:
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat

    async def _execute(self, job: ClaimedJob) -> None:
        handler = self.handlers.get(job.kind)
        try:
            if handler is None:
                raise PermanentJobError(f"no handler for job kind {job.kind!r}")
            await handler(job)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            permanent = isinstance(exc, PermanentJobError) or job.last_attempt
            retry = None if permanent else backoff_s(
                job.attempt, self.options.retry_base_s, self.options.retry_max_s)
            log.warning("job %s (%s) attempt %d/%d failed: %s%s", job.id, job.kind,
                        job.attempt, job.max_attempts, exc,
                        "" if retry is None else f"; retrying in {retry:.1f}s")
            await self.queue.fail(job.id, self.worker_id, f"{type(exc).__name__}: {exc}", retry)
            return
        if not await self.queue.complete(job.id, self.worker_id):
            log.warning("job %s finished after its lease was lost", job.id)

    async def _heartbeat(self, job: ClaimedJob) -> None:
        while True:
            await asyncio.sleep(self.options.lease_s / 3)
            try:
                if not await self.queue.extend(job.id, self.worker_id, self.options.lease_s):
                    return
            except Exception:  # a missed renewal is retried at the next beat
                log.exception("job %s: lease renewal failed", job.id)
