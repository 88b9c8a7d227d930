"""The database job queue (SQLite and PostgreSQL) against the queue conformance suite."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from openline.postcall.queue import DbJobQueue, JobQueue
from openline.store.db import Database
from tests.conftest import PG_ADMIN_DSN
from tests.postcall.queue_conformance import JobView, QueueBackend, QueueConformance


async def _admin(sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


class DbBackend:
    """``QueueBackend`` over one migrated database; each ``open()`` is a new engine, as
    another process on the same database would have."""

    supports_dedupe = True

    def __init__(self, url: str) -> None:
        self.url = url
        self._databases: list[Database] = []
        self._inspector: DbJobQueue | None = None

    async def start(self) -> DbBackend:
        self._inspector = DbJobQueue(self._database())
        await self._inspector.db.migrate()
        return self

    def _database(self) -> Database:
        database = Database(self.url)
        self._databases.append(database)
        return database

    async def open(self) -> JobQueue:
        return DbJobQueue(self._database())

    async def view(self, job_id: str) -> JobView | None:
        assert self._inspector is not None
        job = await self._inspector.get(job_id)
        return None if job is None else JobView(job.status, job.attempts, job.last_error)

    async def close(self) -> None:
        for database in self._databases:
            await database.dispose()


class TestDbJobQueue(QueueConformance):
    @pytest.fixture(params=["sqlite", "postgres"])
    async def backend(self, request: pytest.FixtureRequest,
                      tmp_path: Path) -> AsyncIterator[QueueBackend]:
        """A fresh, migrated database per test (PostgreSQL: a throwaway database)."""
        name = "openline_q_" + uuid.uuid4().hex[:10]
        if request.param == "sqlite":
            url = f"sqlite+aiosqlite:///{tmp_path / 'q.db'}"
        else:
            await _admin(f'CREATE DATABASE "{name}"')
            base = PG_ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
            url = f"{base}/{name}"
        backend = await DbBackend(url).start()
        yield backend
        await backend.close()
        if request.param == "postgres":
            await _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
