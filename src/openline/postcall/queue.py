"""The durable job queue: a small interface and its database implementation.

Semantics (what every implementation must keep, so a Redis-backed one can replace this):

* ``enqueue`` stores a job; with a ``dedupe_key`` a second enqueue is a no-op, so
  producers may retry freely.
* ``claim`` hands a job to exactly one worker and starts a **lease**: until
  ``lease_until`` nobody else may take it. A worker that crashes simply stops renewing
  its lease; once it expires the job is claimable again (at-least-once execution), so
  handlers must be idempotent. ``attempts`` counts claims; a job whose lease expires on
  its last attempt is marked ``failed`` instead of being run again.
* ``extend`` renews the lease of a running job (heartbeat for long jobs).
* ``complete`` and ``fail`` only act while the caller still holds the claim; they return
  ``False`` when the lease was lost (another worker re-claimed the job).
* ``done`` and ``failed`` are terminal: a finished job is never claimed again.
* ``release`` puts a claimed job back without counting the attempt (graceful shutdown).

The database version claims with a conditional ``UPDATE ... WHERE id = ? AND (queued and
due, or running with an expired lease)``: the row is taken by whichever transaction
updates it first, on SQLite and PostgreSQL alike, without ``SKIP LOCKED``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import ColumnElement, and_, func, or_, select, update
from sqlalchemy.exc import IntegrityError

from openline.domain import ids
from openline.store.db import Database
from openline.store.tables import utcnow
from openline.store.tables_postcall import DONE, FAILED, QUEUED, RUNNING, Job

log = logging.getLogger(__name__)
JOB_ID_PREFIX = "job"


@dataclass(frozen=True)
class ClaimedJob:
    """A job handed to a worker: run ``kind`` with ``payload``; this is try ``attempt``."""

    id: str
    kind: str
    payload: dict[str, Any]
    attempt: int
    max_attempts: int

    @property
    def last_attempt(self) -> bool:
        return self.attempt >= self.max_attempts


class JobQueue(Protocol):
    """What the worker needs from a queue (database today, Redis for scale-out later)."""

    async def enqueue(self, kind: str, payload: dict[str, Any], *, dedupe_key: str | None = None,
                      max_attempts: int = 5, delay_s: float = 0.0) -> str | None:
        """Store a job; returns its id, or ``None`` when ``dedupe_key`` already exists."""
        ...

    async def claim(self, worker_id: str, lease_s: float, limit: int = 1) -> list[ClaimedJob]:
        """Take up to ``limit`` due jobs for ``worker_id`` (see the module docstring)."""
        ...

    async def extend(self, job_id: str, worker_id: str, lease_s: float) -> bool:
        """Renew the lease; ``False`` when the claim was lost."""
        ...

    async def complete(self, job_id: str, worker_id: str) -> bool:
        """Mark done; ``False`` when the claim was lost."""
        ...

    async def fail(self, job_id: str, worker_id: str, error: str,
                   retry_in_s: float | None) -> bool:
        """Record a failed try: queue it again after ``retry_in_s`` or, if None, give up."""
        ...

    async def release(self, job_id: str, worker_id: str) -> bool:
        """Give a claimed job back without counting the attempt."""
        ...

    async def wait_for_work(self, timeout_s: float) -> None:
        """Return when a job may be available (new enqueue) or after ``timeout_s``."""
        ...

    async def unfinished(self) -> int:
        """How many jobs are queued or running (not yet ``done`` or ``failed``)."""
        ...


class DbJobQueue:
    """``JobQueue`` on the application database (SQLite or PostgreSQL)."""

    def __init__(self, db: Database) -> None:
        self.db = db
        # Wakes this process's worker on enqueue; other processes find work by polling.
        self._wakeup = asyncio.Event()

    async def enqueue(self, kind: str, payload: dict[str, Any], *, dedupe_key: str | None = None,
                      max_attempts: int = 5, delay_s: float = 0.0) -> str | None:
        job_id = ids.new_id(JOB_ID_PREFIX)
        try:
            async with self.db.session() as s:
                if dedupe_key is not None and await s.scalar(
                        select(Job.id).where(Job.dedupe_key == dedupe_key)):
                    return None
                s.add(Job(id=job_id, kind=kind, payload=payload, dedupe_key=dedupe_key,
                          max_attempts=max(1, max_attempts),
                          run_at=utcnow() + timedelta(seconds=delay_s)))
        except IntegrityError:
            return None  # a concurrent enqueue with the same dedupe_key won
        self._wakeup.set()
        return job_id

    async def claim(self, worker_id: str, lease_s: float, limit: int = 1) -> list[ClaimedJob]:
        now = utcnow()
        await self._fail_exhausted(now)
        async with self.db.session() as s:
            candidates = list(await s.scalars(
                select(Job.id).where(_claimable(now)).order_by(Job.run_at).limit(limit * 4)))
        claimed: list[ClaimedJob] = []
        for job_id in candidates:
            if len(claimed) >= limit:
                break
            job = await self._take(job_id, worker_id, now, lease_s)
            if job is not None:
                claimed.append(job)
        return claimed

    async def _take(self, job_id: str, worker_id: str, now: datetime,
                    lease_s: float) -> ClaimedJob | None:
        """The atomic step: only one concurrent UPDATE can match the claimable row."""
        async with self.db.session() as s:
            result = await s.execute(
                update(Job).where(Job.id == job_id, _claimable(now))
                .values(status=RUNNING, locked_by=worker_id, attempts=Job.attempts + 1,
                        lease_until=now + timedelta(seconds=lease_s))
                .execution_options(synchronize_session=False))
            if _rowcount(result) != 1:
                return None
            row = await s.get(Job, job_id, populate_existing=True)
            assert row is not None
            return ClaimedJob(row.id, row.kind, dict(row.payload or {}), row.attempts,
                              row.max_attempts)

    async def _fail_exhausted(self, now: datetime) -> None:
        """A job whose lease ran out on its last attempt is not run again (poison jobs)."""
        async with self.db.session() as s:
            await s.execute(
                update(Job).where(Job.status == RUNNING, Job.lease_until < now,
                                  Job.attempts >= Job.max_attempts)
                .values(status=FAILED, finished_at=now, locked_by=None,
                        last_error="lease expired on the last attempt (worker died?)")
                .execution_options(synchronize_session=False))

    async def extend(self, job_id: str, worker_id: str, lease_s: float) -> bool:
        return await self._owned_update(job_id, worker_id,
                                        lease_until=utcnow() + timedelta(seconds=lease_s))

    async def complete(self, job_id: str, worker_id: str) -> bool:
        return await self._owned_update(job_id, worker_id, status=DONE, finished_at=utcnow(),
                                        lease_until=None, last_error=None)

    async def fail(self, job_id: str, worker_id: str, error: str,
                   retry_in_s: float | None) -> bool:
        now = utcnow()
        if retry_in_s is None:
            return await self._owned_update(job_id, worker_id, status=FAILED, finished_at=now,
                                            lease_until=None, last_error=error[:2000])
        ok = await self._owned_update(
            job_id, worker_id, status=QUEUED, locked_by=None, lease_until=None,
            run_at=now + timedelta(seconds=retry_in_s), last_error=error[:2000])
        return ok

    async def release(self, job_id: str, worker_id: str) -> bool:
        return await self._owned_update(job_id, worker_id, status=QUEUED, locked_by=None,
                                        lease_until=None, run_at=utcnow(),
                                        attempts=Job.attempts - 1)

    async def _owned_update(self, job_id: str, worker_id: str, **values: Any) -> bool:
        async with self.db.session() as s:
            result = await s.execute(
                update(Job).where(Job.id == job_id, Job.locked_by == worker_id,
                                  Job.status == RUNNING)
                .values(**values).execution_options(synchronize_session=False))
            return _rowcount(result) == 1

    async def wait_for_work(self, timeout_s: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wakeup.wait(), timeout_s)
        self._wakeup.clear()

    async def unfinished(self) -> int:
        async with self.db.session() as s:
            count = await s.scalar(select(func.count()).select_from(Job).where(
                Job.status.in_((QUEUED, RUNNING))))
        return int(count or 0)

    async def get(self, job_id: str) -> Job | None:
        """The stored job (tests, diagnostics)."""
        async with self.db.session() as s:
            return await s.get(Job, job_id)


def _claimable(now: datetime) -> ColumnElement[bool]:
    due = and_(Job.status == QUEUED, Job.run_at <= now)
    abandoned = and_(Job.status == RUNNING, Job.lease_until < now,
                     Job.attempts < Job.max_attempts)
    return or_(due, abandoned)


def _rowcount(result: Any) -> int:
    return int(getattr(result, "rowcount", 0) or 0)
