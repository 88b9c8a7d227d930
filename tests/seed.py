"""Write conversations straight into a live server's database (the engine is not involved)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select

from openline.domain import ids
from openline.store import tables as t
from openline.store.db import Database


async def _seed(database_url: str, project: str, rows: list[dict[str, Any]]) -> list[str]:
    db = Database(database_url)
    out: list[str] = []
    try:
        async with db.session() as s:
            proj = await s.scalar(select(t.Project).where(t.Project.name == project))
            assert proj is not None, project
            for spec in rows:
                conv_id = ids.new_id(ids.CONVERSATION)
                started = spec.get("started_at", datetime.now(UTC))
                live = spec.get("live", False)
                duration = spec.get("duration_ms", 30_000.0)
                s.add(t.Conversation(
                    id=conv_id, workspace_id=proj.workspace_id, project_id=proj.id,
                    agent_id=spec.get("agent_id"), agent_name=spec.get("agent_name"),
                    external_id=spec.get("external_id"), origin="sdk-py",
                    config={"input_format": "pcm_16000", "output_format": "pcm_16000",
                            "system_prompt": "Be brief.", "welcome_message": "Hi"},
                    started_at=started,
                    ended_at=None if live else started + timedelta(milliseconds=duration),
                    duration_ms=None if live else duration,
                    ended_by=None if live else "user",
                    live_transcript="User: hi\nAssistant: hello",
                    latencies_ms=[420.0, 515.5], interruptions_count=1,
                    **(_held_elsewhere() if live and spec.get("leased") else {}),
                ))
                await s.flush()
                s.add(t.ConversationItem(id=ids.new_id(ids.CONVERSATION_ITEM),
                                         conversation_id=conv_id, item_idx=0, role="user",
                                         live_transcript="hi", started_at=started,
                                         duration_ms=800.0))
                out.append(conv_id)
    finally:
        await db.dispose()
    return out


def _held_elsewhere() -> dict[str, Any]:
    """A live call another node is running: its lease renewed and an hour ahead, so no
    node's reaper closes it during a test (an unleased live row is a crashed node's call,
    closed at the next reap: what the lease tests want, and a race for everyone else)."""
    now = datetime.now(UTC)
    return {"owner_node": "node-elsewhere", "heartbeat_at": now,
            "lease_until": now + timedelta(hours=1)}


def seed_conversations(database_url: str, project: str, rows: list[dict[str, Any]]) -> list[str]:
    """Insert one conversation (plus one user item) per spec dict; returns their ids."""
    return asyncio.run(_seed(database_url, project, rows))


async def _finish(database_url: str, conversation_id: str) -> None:
    db = Database(database_url)
    try:
        async with db.session() as s:
            row = await s.get(t.Conversation, conversation_id)
            assert row is not None
            row.ended_at, row.ended_by, row.duration_ms = datetime.now(UTC), "user", 1000.0
    finally:
        await db.dispose()


def finish_conversation(database_url: str, conversation_id: str) -> None:
    """Mark a seeded live conversation as ended (so its project can be deleted)."""
    asyncio.run(_finish(database_url, conversation_id))


#: For async tests (``seed_conversations`` runs its own event loop).
aseed_conversations = _seed
