"""A worker-only process boots from the composition root and runs post-call work."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sqlalchemy import select

from openline.boot.worker import run_worker
from openline.postcall.queue import Job
from openline.settings import Settings
from openline.store import tables as t
from openline.store.db import Database
from tests.conftest import fake_providers, start_server
from tests.seed import aseed_conversations


async def test_worker_process_runs_the_post_call_job_of_an_ended_conversation(
        tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'w.db'}"
    start_server(url, tmp_path).stop()  # schema and the default project
    [ended] = await aseed_conversations(url, "main", [{}])
    [live] = await aseed_conversations(url, "main", [{"live": True}])
    stop = asyncio.Event()
    settings = Settings(data_dir=tmp_path, database_url=url, job_poll_s=0.1)
    worker = asyncio.create_task(run_worker(settings, fake_providers(), stop=stop,
                                            verbose=False))
    db = Database(url)
    try:
        async with asyncio.timeout(20):
            while True:
                async with db.session() as s:
                    jobs = {j.dedupe_key: j.status for j in await s.scalars(select(Job))}
                if jobs.get(f"postcall:{ended}") == "done":
                    break
                await asyncio.sleep(0.1)
        async with db.session() as s:
            row = await s.get(t.Conversation, ended)
            orphan = await s.get(t.Conversation, live)
        assert row is not None and row.summary  # the post-call job really ran
        # the lease-less open conversation was closed as a crash leftover
        assert orphan is not None and orphan.ended_by == "error"
    finally:
        stop.set()
        await asyncio.wait_for(worker, 10)
        await db.dispose()
