"""Several nodes starting at once on one empty PostgreSQL database (issue 16: N nodes)."""

from __future__ import annotations

import asyncio

from sqlalchemy import func, select, text

from openline.services.auth import AuthService
from openline.store import tables as t
from openline.store.db import MIGRATIONS_DIR, Database
from tests.support.databases import fresh_postgres_async

NODES = 4


async def _start_one(url: str) -> bool:
    """What every node does at start-up: migrate, then bootstrap. True: it made the key."""
    db = Database(url, secret_key="concurrent-start-key")
    try:
        await db.migrate()
        return await AuthService(db).bootstrap() is not None
    finally:
        await db.dispose()


async def test_nodes_starting_together_migrate_once_and_bootstrap_once() -> None:
    async with fresh_postgres_async("openline_start_") as url:
        made = await asyncio.gather(*(_start_one(url) for _ in range(NODES)))
        assert sorted(made) == [False] * (NODES - 1) + [True]
        db = Database(url, secret_key="concurrent-start-key")
        try:
            async with db.session() as s:
                workspaces = await s.scalar(select(func.count()).select_from(t.Workspace))
                keys = await s.scalar(select(func.count()).select_from(t.ApiKey))
                head = await s.scalar(text("SELECT version_num FROM alembic_version"))
            assert (workspaces, keys) == (1, 1)
            newest = max(p.stem.split("_")[0] for p in (MIGRATIONS_DIR / "versions").glob("0*.py"))
            assert head == newest
        finally:
            await db.dispose()

