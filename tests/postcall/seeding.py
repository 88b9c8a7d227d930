"""Write finished conversations (with turns) straight into a server's database."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select

from openline.domain import ids
from openline.store import tables as t
from openline.store.db import Database

TURNS = [("user", "Hi, I'd like to book a table for two tomorrow at seven."),
         ("assistant", "Sure. May I have your name?"),
         ("user", "It's Dana Smith, and my number is 555 0199."),
         ("assistant", "Thanks Dana, you're booked for two tomorrow at seven.")]


async def aseed(database_url: str, *, project: str = "main", turns: list[tuple[str, str]] = TURNS,
                live: bool = False, config: dict[str, Any] | None = None,
                recording_path: str | None = None) -> str:
    db = Database(database_url)
    started = datetime.now(UTC) - timedelta(minutes=5)
    conv_id = ids.new_id(ids.CONVERSATION)
    try:
        async with db.session() as s:
            proj = await s.scalar(select(t.Project).where(t.Project.name == project))
            assert proj is not None
            s.add(t.Conversation(
                id=conv_id, workspace_id=proj.workspace_id, project_id=proj.id,
                origin="sdk-py", config=config or {}, started_at=started,
                ended_at=None if live else started + timedelta(seconds=20),
                duration_ms=None if live else 20_000.0, ended_by=None if live else "user",
                live_transcript="\n".join(
                    f"{'User' if r == 'user' else 'Assistant'}: {x}" for r, x in turns),
                latencies_ms=[500.0], recording_path=recording_path))
            await s.flush()
            for idx, (role, text) in enumerate(turns):
                s.add(t.ConversationItem(
                    id=ids.new_id(ids.CONVERSATION_ITEM), conversation_id=conv_id,
                    item_idx=idx, role=role, live_transcript=text,
                    started_at=started + timedelta(seconds=1 + 4 * idx), duration_ms=2000.0))
    finally:
        await db.dispose()
    return conv_id


def seed(database_url: str, **kw: Any) -> str:
    """One conversation (finished unless ``live``) with ``turns``; returns its id."""
    return asyncio.run(aseed(database_url, **kw))
