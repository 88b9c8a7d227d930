"""``data_retention_policy``: transcripts and recordings deleted once their hours are up.

At a conversation's end the due times are written to ``conversation_retention``
(``services/external_storage.py`` ``ArtifactKeeper``). This scheduled job deletes what
is due, on every node (the deletes are idempotent; two nodes at once do the same work):

* transcripts: the conversation's live and post-call transcripts and summary, every
  item's transcripts and its tool calls' request and response bodies, and the task
  results' reasoning;
* audio: the recording file, and the conversation's link to it.

What stays is the metadata (ids, times, durations, who ended it, latencies), and
``deletion_info`` says when each part went. The clock is injected, so tests move time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from openline.store import tables as t
from openline.store import tables_phonic as tph
from openline.store.db import Database
from openline.store.tables import utcnow

log = logging.getLogger(__name__)

#: conversations handled per sweep and kind (the next sweep takes the rest)
BATCH = 200


@dataclass(frozen=True)
class Swept:
    """How many conversations lost their transcripts and their recordings in one sweep."""

    transcripts: int
    audio: int


class RetentionSweeper:
    """Deletes due transcripts and recordings; ``start`` runs it every ``every_s``."""

    def __init__(self, db: Database, *, every_s: float = 300.0,
                 clock: Callable[[], datetime] = utcnow) -> None:
        self.db, self.every_s, self.clock = db, every_s, clock
        self._task: asyncio.Task[None] | None = None

    async def sweep(self) -> Swept:
        """Delete everything due now (after giving due times to conversations without)."""
        await self.backfill()
        now = self.clock()
        table = tph.ConversationRetention
        async with self.db.session() as s:
            transcripts = list(await s.scalars(select(table).where(
                table.transcripts_due_at <= now, table.transcripts_deleted_at.is_(None))
                .limit(BATCH)))
            for row in transcripts:
                await _drop_transcripts(s, row.conversation_id)
                row.transcripts_deleted_at = now
        async with self.db.session() as s:
            audio = list(await s.scalars(select(table).where(
                table.audio_due_at <= now, table.audio_recordings_deleted_at.is_(None))
                .limit(BATCH)))
            for row in audio:
                await _drop_recording(s, row.conversation_id)
                row.audio_recordings_deleted_at = now
        return Swept(len(transcripts), len(audio))

    async def backfill(self) -> int:
        """Due times for ended conversations that have none: closed by another node's
        lease reaper after a crash (zero retention never ran for them), or ended before
        this release. Counted from the end of the conversation."""
        c, r = t.Conversation, tph.ConversationRetention
        try:
            async with self.db.session() as s:
                rows = (await s.execute(select(c.id, c.config, c.ended_at).outerjoin(
                    r, r.conversation_id == c.id).where(
                    c.ended_at.is_not(None), r.conversation_id.is_(None)).limit(BATCH))).all()
                for conversation_id, config, ended_at in rows:
                    s.add(tph.ConversationRetention(conversation_id=conversation_id,
                                                    **due_times(config or {}, ended_at)))
        except IntegrityError:  # another node gave them due times at the same moment
            return 0
        return len(rows)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(),
                                                                name="retention-sweeper")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            try:
                swept = await self.sweep()
                if swept.transcripts or swept.audio:
                    log.info("retention: deleted %d transcripts, %d recordings",
                             swept.transcripts, swept.audio)
            except Exception:  # the next sweep tries again
                log.exception("retention sweep failed")
            await asyncio.sleep(self.every_s)


def due_times(config: dict[str, Any], ended_at: datetime) -> dict[str, Any]:
    """When a conversation's transcripts and recording are due, from its configuration
    snapshot (the agent's ``data_retention_policy``): at its end under zero retention."""
    policy = config.get("data_retention_policy") or {}
    if policy.get("zero_data_retention"):
        return {"transcripts_due_at": ended_at, "audio_due_at": ended_at}

    def due(key: str) -> datetime | None:
        hours = (policy.get(key) or {}).get("delete_after_hours")
        return ended_at + timedelta(hours=hours) if hours else None

    return {"transcripts_due_at": due("transcripts"), "audio_due_at": due("audio_recordings")}


async def _drop_transcripts(s: Any, conversation_id: str) -> None:
    conv = await s.get(t.Conversation, conversation_id)
    if conv is None:
        return
    conv.live_transcript = conv.post_call_transcript = conv.summary = None
    conv.task_results = {name: {"completed": r.get("completed"), "reasoning": ""}
                         for name, r in (conv.task_results or {}).items()}
    for item in await s.scalars(select(t.ConversationItem).where(
            t.ConversationItem.conversation_id == conversation_id)):
        item.live_transcript = item.post_call_transcript = None
        item.tool_calls = [{k: v for k, v in call.items()
                            if k not in ("request_body", "response_body", "query_params")}
                           for call in item.tool_calls or []]


async def _drop_recording(s: Any, conversation_id: str) -> None:
    conv = await s.get(t.Conversation, conversation_id)
    if conv is None or conv.recording_path is None:
        return
    path = Path(conv.recording_path)
    await asyncio.to_thread(path.unlink, True)
    conv.recording_path = None
