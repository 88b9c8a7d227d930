"""The engine's observer: each finished turn becomes a stored item as it completes.

Each turn is its own transaction, committed before the next one starts, so a crash loses
at most the turn in flight.
"""

from __future__ import annotations

from openline.domain import ids
from openline.domain.tool_call import ToolCallRecord
from openline.services.redaction import Protection
from openline.store import tables as t
from openline.store.db import Database
from openline.store.tables import utcnow
from openline.voice.session import ItemRecord


class ItemWriter:
    """The engine's observer: one row per finished turn, transcript kept current."""

    def __init__(self, db: Database, conversation_id: str,
                 protection: Protection | None = None) -> None:
        self.db = db
        self.conversation_id = conversation_id
        #: redaction and zero retention apply before anything is written
        self.protection = protection or Protection()
        self.next_idx = 0
        self.lines: list[str] = []
        #: the transcript as spoken, in memory only (external storage delivers it)
        self.spoken: list[str] = []
        self.tool_items: dict[str, str] = {}  # tool call record id -> item id

    async def item(self, record: ItemRecord) -> None:
        idx, self.next_idx = self.next_idx, self.next_idx + 1
        speaker = "User" if record.role == "user" else "Assistant"
        keep = self.protection
        text = keep.text(record.text)
        self.spoken.append(f"{speaker}: {record.text}")
        if text is not None:
            self.lines.append(f"{speaker}: {text}")
        item_id = ids.new_id(ids.CONVERSATION_ITEM)
        self.tool_items.update({str(c.id): item_id for c in record.tool_calls})
        async with self.db.writer() as s:
            s.add(t.ConversationItem(
                id=item_id, conversation_id=self.conversation_id,
                item_idx=idx, role=record.role, live_transcript=text,
                started_at=record.started_at, duration_ms=round(record.duration_ms, 1),
                voice_id=record.voice_id, audio_speed=record.audio_speed,
                system_prompt=record.system_prompt,
                tool_calls=[keep.document(c.to_stored()) for c in record.tool_calls]
                if keep.keeps_anything else [],
            ))
            row = await s.get(t.Conversation, self.conversation_id)
            if row is not None:
                row.live_transcript = self.transcript
        # Each turn is its own transaction: committed before the next one starts.

    async def tool_result(self, record: ToolCallRecord) -> None:
        """An async tool finished after its item was stored: update that record."""
        item_id = self.tool_items.get(str(record.id))
        if item_id is None:
            return  # the item is not stored yet; it will carry the final record
        if not self.protection.keeps_anything:
            return
        stored = self.protection.document(record.to_stored())
        async with self.db.session() as s:
            row = await s.get(t.ConversationItem, item_id)
            if row is not None:
                row.tool_calls = [stored if c.get("id") == record.id else c
                                  for c in row.tool_calls]

    async def transferred(self, agent_id: str, agent_name: str) -> None:
        """Keep every transfer on the conversation (``metadata.transfers``)."""
        async with self.db.session() as s:
            row = await s.get(t.Conversation, self.conversation_id)
            if row is not None:
                meta = dict(row.meta or {})
                meta["transfers"] = [*meta.get("transfers", []), {
                    "agent": {"id": agent_id, "name": agent_name},
                    "at": utcnow().isoformat()}]
                row.meta = meta

    @property
    def transcript(self) -> str | None:
        """The stored transcript (redacted; ``None`` under zero data retention)."""
        return "\n".join(self.lines) if self.protection.keeps_anything else None
