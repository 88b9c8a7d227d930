"""Throwaway PostgreSQL databases for tests that must not share the session's database."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Iterator

import asyncpg

from tests.conftest import PG_ADMIN_DSN


async def admin(sql: str) -> None:
    """Run one statement as the admin user (CREATE/DROP DATABASE cannot run in a pool)."""
    conn = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def url_of(name: str) -> str:
    """The SQLAlchemy URL of database ``name`` on the test server."""
    base = PG_ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
    return f"{base}/{name}"


@contextlib.asynccontextmanager
async def fresh_postgres_async(prefix: str = "openline_t_") -> AsyncIterator[str]:
    """A new, empty database for the duration of the block; dropped (forcibly) after."""
    name = prefix + uuid.uuid4().hex[:12]
    await admin(f'CREATE DATABASE "{name}"')
    try:
        yield url_of(name)
    finally:
        await admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.contextmanager
def fresh_postgres(prefix: str = "openline_t_") -> Iterator[str]:
    """``fresh_postgres_async`` for synchronous fixtures (outside any running loop)."""
    name = prefix + uuid.uuid4().hex[:12]
    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    try:
        yield url_of(name)
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
