"""The durable job queue and worker on real databases (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from openline.postcall.queue import ClaimedJob, DbJobQueue
from openline.postcall.worker import PermanentJobError, Worker, WorkerOptions
from openline.store.db import Database
from openline.store.tables_postcall import DONE, FAILED, QUEUED
from tests.conftest import PG_ADMIN_DSN

FAST = WorkerOptions(concurrency=3, lease_s=5.0, poll_s=0.05, retry_base_s=0.05,
                     retry_max_s=0.2, grace_s=2.0)


async def _admin(sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@pytest.fixture(params=["sqlite", "postgres"])
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    """A fresh, migrated database per test (PostgreSQL: a throwaway database)."""
    name = "openline_q_" + uuid.uuid4().hex[:10]
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'q.db'}"
    else:
        await _admin(f'CREATE DATABASE "{name}"')
        base = PG_ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
        url = f"{base}/{name}"
    database = Database(url)
    await database.migrate()
    yield database
    await database.dispose()
    if request.param == "postgres":
        await _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


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


async def _statuses(queue: DbJobQueue, job_ids: list[str | None]) -> Counter[str]:
    out: Counter[str] = Counter()
    for job_id in job_ids:
        assert job_id is not None
        job = await queue.get(job_id)
        assert job is not None
        out[job.status] += 1
    return out


async def test_competing_workers_run_each_job_once(db: Database) -> None:
    queue = DbJobQueue(db)
    record = Recorder(work_s=0.01)
    ids = [await queue.enqueue("count", {"n": n}) for n in range(30)]
    workers = [Worker(queue, {"count": record}, FAST) for _ in range(3)]
    await asyncio.gather(*(w.run_until_idle() for w in workers))
    assert record.finished == Counter(range(30)) and record.started == record.finished
    assert await _statuses(queue, ids) == {DONE: 30}


async def test_dedupe_key_enqueues_once(db: Database) -> None:
    queue = DbJobQueue(db)
    first = await queue.enqueue("count", {"n": 1}, dedupe_key="same")
    again = await queue.enqueue("count", {"n": 2}, dedupe_key="same")
    assert first is not None and again is None


async def test_retries_with_backoff_then_gives_up(db: Database) -> None:
    queue = DbJobQueue(db)
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
    flaky_job, broken_job = await queue.get(str(flaky_id)), await queue.get(str(broken_id))
    assert flaky_job is not None and flaky_job.status == DONE and flaky_job.attempts == 3
    assert broken_job is not None and broken_job.status == FAILED
    assert broken_job.last_error == "RuntimeError: always"
    assert await _statuses(queue, [permanent_id, unknown_id]) == {FAILED: 2}


async def test_crashed_workers_jobs_are_reclaimed_after_their_lease(db: Database) -> None:
    queue = DbJobQueue(db)
    record = Recorder()
    job_id = await queue.enqueue("count", {"n": 7})
    last_try = await queue.enqueue("count", {"n": 8}, max_attempts=1)
    dead = await queue.claim("dead-worker", lease_s=0.3, limit=5)  # then "crashes"
    assert {j.payload["n"] for j in dead} == {7, 8}
    assert await queue.claim("other", lease_s=5) == []  # leases still valid
    await asyncio.sleep(0.35)
    await Worker(queue, {"count": record}, FAST).run_until_idle()
    assert record.finished == {7: 1}  # the job on its last attempt is not run again
    assert not await queue.complete(str(job_id), "dead-worker")  # its claim is gone
    assert await _statuses(queue, [job_id, last_try]) == {DONE: 1, FAILED: 1}


async def test_restart_mid_queue_loses_none_and_runs_none_twice(db: Database) -> None:
    queue = DbJobQueue(db)
    record = Recorder(work_s=0.05)
    ids = [await queue.enqueue("count", {"n": n}) for n in range(24)]
    first = Worker(queue, {"count": record}, FAST)
    first.start()
    await record.until(finished=6)
    await first.stop()  # graceful: jobs in flight finish, nothing new is claimed
    done_before = sum(record.finished.values())
    assert 6 <= done_before < 24
    # A process that claimed work and died without a trace:
    orphaned = await queue.claim("crashed-process", lease_s=0.2, limit=2)
    assert len(orphaned) == 2
    await asyncio.sleep(0.25)
    await Worker(queue, {"count": record}, FAST).run_until_idle()
    assert record.finished == Counter(range(24))
    assert await _statuses(queue, ids) == {DONE: 24}


async def test_stop_releases_jobs_cut_short(db: Database) -> None:
    queue = DbJobQueue(db)
    record = Recorder(work_s=5.0)
    job_id = await queue.enqueue("count", {"n": 1})
    impatient = Worker(queue, {"count": record},
                       WorkerOptions(poll_s=0.05, lease_s=60, grace_s=0.05))
    impatient.start()
    await record.until(started=1)
    await impatient.stop()  # cancels after the grace period and hands the job back
    job = await queue.get(str(job_id))
    assert job is not None and job.status == QUEUED and job.attempts == 0
    record.work_s = 0.0
    await Worker(queue, {"count": record}, FAST).run_until_idle()
    assert record.finished == {1: 1}
