"""Owner-node leases on live conversations, so that several nodes can share one database.

Every live conversation row names its owner node and holds a lease the owner renews while
the call runs (``heartbeat_at`` is the last renewal: evidence the call was alive then). A
node closes only conversations whose lease has expired - at start-up and periodically -
never the live calls of another node.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import ColumnElement, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from openline.audio.wav import read_wav
from openline.store import tables as t
from openline.store.db import Database
from openline.store.tables import utcnow
from openline.voice.recorder import recover as recover_recording

log = logging.getLogger(__name__)


class LeaseKeeper:
    """Renews this node's leases and closes conversations whose owner is gone."""

    def __init__(self, db: Database, node_id: str, live_ids: Callable[[], list[str]],
                 recordings_dir: Path, *, lease_s: float = 30.0,
                 renew_every_s: float | None = None,
                 on_closed: Callable[[list[str]], Awaitable[None]] | None = None) -> None:
        self.db, self.node_id, self.live_ids = db, node_id, live_ids
        #: told the ids this node closed (archive their recordings, queue post-call work)
        self.on_closed = on_closed
        self.recordings_dir = recordings_dir
        self.lease_s = lease_s
        self.renew_every_s = renew_every_s or lease_s / 3
        self._task: asyncio.Task[None] | None = None

    async def renew(self) -> int:
        """Extend the lease of every call this node runs; returns how many rows moved."""
        ids = self.live_ids()
        if not ids:
            return 0
        now = utcnow()
        async with self.db.writer() as s:
            result = await s.execute(
                update(t.Conversation)
                .where(t.Conversation.id.in_(ids), t.Conversation.ended_at.is_(None),
                       t.Conversation.owner_node == self.node_id)
                .values(heartbeat_at=now, lease_until=now + timedelta(seconds=self.lease_s)))
        return int(getattr(result, "rowcount", 0) or 0)

    async def close_expired(self) -> int:
        """End (``ended_by: "error"``) the open conversations whose lease has expired.

        Rows without a lease (written before leases existed) count as expired. The end
        time is the last evidence of life: the last heartbeat, the end of the last stored
        turn, or the length of the recording flushed to disk, whichever is latest.
        """
        now, mine = utcnow(), set(self.live_ids())
        expired = or_(t.Conversation.lease_until.is_(None), t.Conversation.lease_until < now)
        async with self.db.session() as s:
            candidates = list(await s.scalars(select(t.Conversation.id).where(
                t.Conversation.ended_at.is_(None), expired)))
        # Several nodes reap at once: each row goes to whichever takes its lease first,
        # so one node alone recovers its recording and closes it.
        closed = [c for c in candidates if c not in mine and await self._take(c, expired)]
        async with self.db.session() as s:
            rows = [row for c in closed if (row := await s.get(t.Conversation, c)) is not None]
            for row in rows:
                await self._close(s, row)
        if rows:
            log.warning("closed %d conversation(s) whose node stopped renewing", len(rows))
            if self.on_closed is not None:
                await self.on_closed(closed)
        return len(rows)

    async def _take(self, conversation_id: str, expired: ColumnElement[bool]) -> bool:
        async with self.db.session() as s:
            result = await s.execute(
                update(t.Conversation)
                .where(t.Conversation.id == conversation_id,
                       t.Conversation.ended_at.is_(None), expired)
                .values(lease_until=utcnow() + timedelta(seconds=self.lease_s))
                .execution_options(synchronize_session=False))
        return int(getattr(result, "rowcount", 0) or 0) == 1

    async def _close(self, s: AsyncSession, row: t.Conversation) -> None:
        last_item = await s.execute(
            select(t.ConversationItem.started_at, t.ConversationItem.duration_ms)
            .where(t.ConversationItem.conversation_id == row.id)
            .order_by(t.ConversationItem.item_idx.desc()).limit(1))
        evidence = [row.started_at, row.heartbeat_at]
        item = last_item.first()
        if item is not None and item[0] is not None:
            evidence.append(item[0] + timedelta(milliseconds=item[1] or 0))
        path = await asyncio.to_thread(recover_recording, self.recordings_dir, row.id,
                                       self.recordings_dir / f"{row.id}.wav")
        if path is not None:
            row.recording_path = str(path)
            evidence.append(row.started_at + timedelta(seconds=await _seconds(path)))
        row.close(max(e for e in evidence if isinstance(e, datetime)), "error")

    def start(self, reap_every_s: float | None = None) -> None:
        """Renew and reap in the background until ``stop``."""
        # Reaping as often as renewing: a dead node's calls close within ~4/3 of a lease.
        self._task = asyncio.create_task(self._loop(reap_every_s or self.renew_every_s),
                                         name="lease-keeper")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _loop(self, reap_every_s: float) -> None:
        loop = asyncio.get_running_loop()
        next_reap = loop.time() + reap_every_s
        while True:
            await asyncio.sleep(self.renew_every_s)
            try:
                await self.renew()
                if loop.time() >= next_reap:
                    next_reap = loop.time() + reap_every_s
                    await self.close_expired()
            except Exception:  # a database hiccup must not stop the leases for good
                log.exception("lease renewal failed")


async def _seconds(path: Path) -> float:
    samples, rate = await asyncio.to_thread(read_wav, path)
    return float(samples.shape[0]) / rate
