"""The database handle: async engine, sessions, and migrations applied at start.

``secret_key`` (from the composition root) seals secrets at rest: see ``store/sealed.py``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import event
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from openline.store import sealed
from openline.store import tables as _tables
from openline.store import tables_dashboard as _tables_dashboard  # noqa: F401  (registers them)
from openline.store import tables_phonic as _tables_phonic
from openline.store import tables_postcall as _tables_postcall
from openline.store import tables_vapi as _tables_vapi
from openline.store import tables_vapi_live as _tables_vapi_live

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
#: Every column holding secrets, for sealing what older releases left in plaintext.
SEALED_COLUMNS = (*_tables.SEALED_COLUMNS, *_tables_postcall.SEALED_COLUMNS,
                  *_tables_phonic.SEALED_COLUMNS, *_tables_vapi.SEALED_COLUMNS,
                  *_tables_vapi_live.SEALED_COLUMNS)


def sqlite_url(data_dir: Path) -> str:
    """The embedded default: one SQLite file in the data directory."""
    return f"sqlite+aiosqlite:///{(data_dir / 'openline.db').resolve()}"


class Database:
    """Owns the engine and hands out sessions. One per process."""

    def __init__(self, url: str, *, echo: bool = False, secret_key: str | None = None) -> None:
        """``secret_key`` seals secrets at rest; without one (tests seeding rows, tools)
        secrets are written in plaintext and a sealed value cannot be read."""
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        kwargs: dict[str, Any] = {"echo": echo}
        if self.is_sqlite:
            # One writer at a time is SQLite's model; a busy timeout queues writers
            # instead of failing them.
            kwargs["connect_args"] = {"timeout": 30}
        else:
            kwargs.update(pool_size=10, max_overflow=20, pool_pre_ping=True)
        self.engine: AsyncEngine = create_async_engine(url, **kwargs)
        if self.is_sqlite:
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
        self.box = sealed.SecretBox(secret_key) if secret_key else None
        if self.box is not None:
            sealed.register(self.engine.sync_engine.dialect, self.box)
        self._sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        self._write_lock = asyncio.Lock()

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """A session inside one transaction: committed on success, rolled back on error."""
        async with self._sessions() as session, session.begin():
            yield session

    @asynccontextmanager
    async def writer(self) -> AsyncIterator[AsyncSession]:
        """A session for hot-path writes (conversation items and ends).

        SQLite has one write lock; many conversations writing at once made aiosqlite's
        connection threads wait on it (busy timeout) and starve the event loop of the GIL.
        Here those writes queue in-process instead. Never nest it inside another session.
        """
        if not self.is_sqlite:
            async with self.session() as session:
                yield session
            return
        async with self._write_lock, self.session() as session:
            yield session

    async def migrate(self) -> None:
        """Bring the schema to the newest Alembic revision, then check the secret key.

        Raises ``sealed.SecretKeyError`` when the key is not the one that sealed this
        database's secrets.
        """
        async with self.engine.begin() as conn:
            await conn.run_sync(_upgrade, self.box)

    async def dispose(self) -> None:
        await self.engine.dispose()


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def alembic_config(connection: Connection | None = None,
                   box: sealed.SecretBox | None = None) -> Config:
    """Alembic configuration pointing at the packaged migrations (``box``: for the
    migrations that seal secrets)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    if connection is not None:
        cfg.attributes["connection"] = connection
    cfg.attributes["secret_box"] = box
    return cfg


def _upgrade(connection: Connection, box: sealed.SecretBox | None) -> None:
    command.upgrade(alembic_config(connection, box), "head")
    if box is not None:
        sealed.check_key(connection, box, SEALED_COLUMNS)
