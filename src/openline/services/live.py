"""Live conversations: start (agent + config -> engine), persist as they run, cancel, recover.

Every item is written as its turn completes, so a crash loses at most the turn in flight;
at start-up, conversations a crash left open are closed with ``ended_by: "error"``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from openline.domain import ids
from openline.domain.errors import Conflict, Forbidden, NotFound
from openline.services import lookup
from openline.services.principal import Principal
from openline.services.session_config import ResolvedConfig, resolve
from openline.store import tables as t
from openline.store.db import Database
from openline.store.tables import utcnow
from openline.voice.session import (
    Conversation,
    ConversationResult,
    ItemRecord,
    Providers,
    Send,
)

log = logging.getLogger(__name__)
CANCEL_ACK_TIMEOUT_S = 5.0


@dataclass
class LiveConversation:
    """A running conversation and what is needed to store its end."""

    id: str
    workspace_id: str
    engine: Conversation
    resolved: ResolvedConfig
    finished: asyncio.Event = field(default_factory=asyncio.Event)


class ItemWriter:
    """The engine's observer: one row per finished turn, transcript kept current."""

    def __init__(self, db: Database, conversation_id: str) -> None:
        self.db = db
        self.conversation_id = conversation_id
        self.next_idx = 0
        self.lines: list[str] = []

    async def item(self, record: ItemRecord) -> None:
        idx, self.next_idx = self.next_idx, self.next_idx + 1
        speaker = "User" if record.role == "user" else "Assistant"
        self.lines.append(f"{speaker}: {record.text}")
        async with self.db.session() as s:
            s.add(t.ConversationItem(
                id=ids.new_id(ids.CONVERSATION_ITEM), conversation_id=self.conversation_id,
                item_idx=idx, role=record.role, live_transcript=record.text,
                started_at=record.started_at, duration_ms=round(record.duration_ms, 1),
                voice_id=record.voice_id, audio_speed=record.audio_speed,
                system_prompt=record.system_prompt, tool_calls=record.tool_calls,
            ))
            row = await s.get(t.Conversation, self.conversation_id)
            if row is not None:
                row.live_transcript = self.transcript
        # Each turn is its own transaction: committed before the next one starts.

    @property
    def transcript(self) -> str:
        return "\n".join(self.lines)


class LiveService:
    """Starts and tracks the conversations running in this process."""

    def __init__(self, db: Database, providers: Providers, recordings_dir: Path,
                 voices: Callable[[], tuple[set[str], str]]) -> None:
        self.db, self.providers, self.recordings_dir = db, providers, recordings_dir
        self._voices = voices
        self.live: dict[str, LiveConversation] = {}

    async def start(self, who: Principal, config: dict[str, Any], send: Send,
                    origin: str = "sdk-py") -> LiveConversation:
        """Resolve the agent and config, store the conversation, build its engine."""
        conv_id = ids.new_id(ids.CONVERSATION)
        async with self.db.session() as s:
            agent, project = await self._agent_for(s, who, config)
            installed, default_voice = self._voices()
            resolved = resolve(conv_id, agent.spec if agent else None, config,
                               installed_voices=installed, default_voice=default_voice)
            await self._check_capacity(s, project)
            s.add(t.Conversation(
                id=conv_id, workspace_id=who.workspace_id, project_id=project.id,
                agent_id=agent.id if agent else None, agent_name=agent.name if agent else None,
                external_id=_external_id(config), origin=origin, config=resolved.snapshot,
                started_at=utcnow(),
            ))
        writer = ItemWriter(self.db, conv_id)
        engine = Conversation(resolved.session, self.providers, send, writer)
        live = LiveConversation(conv_id, who.workspace_id, engine, resolved)
        self.live[conv_id] = live
        return live

    async def _agent_for(self, s: Any, who: Principal, config: dict[str, Any]
                         ) -> tuple[t.Agent | None, t.Project]:
        name = config.get("agent")
        if who.kind == "conversation_token":
            agent = await s.get(t.Agent, who.agent_id)
            if agent is None or (name and name not in (agent.name, agent.id)):
                raise Forbidden("This conversation token is for another agent")
            project = await s.get(t.Project, agent.project_id)
        elif name:
            agent, project = await lookup.agent(s, who.workspace_id, config.get("project"),
                                                str(name))
        else:
            project = await lookup.project(s, who.workspace_id, config.get("project"))
            agent = await s.get(t.Agent, project.default_agent_id) \
                if project.default_agent_id else None
        if agent is not None and agent.is_disabled:
            raise Forbidden(f"Agent {agent.name!r} is disabled")
        return agent, project

    async def _check_capacity(self, s: Any, project: t.Project) -> None:
        ws = await s.get(t.Workspace, project.workspace_id)
        limit = project.max_active_conversations or (ws.max_active_conversations if ws else None)
        if limit is None:
            return
        active = await s.scalar(select(func.count()).select_from(t.Conversation).where(
            t.Conversation.project_id == project.id, t.Conversation.ended_at.is_(None)))
        if int(active or 0) >= limit:
            raise Conflict("Concurrency limit reached", code="concurrency_limit_reached")

    async def run(self, live: LiveConversation) -> ConversationResult:
        """Run the engine to its end and store the outcome (also when the run fails)."""
        result: ConversationResult | None = None
        try:
            result = await live.engine.run()
            return result
        finally:
            await asyncio.shield(self._finish(live, result))

    async def _finish(self, live: LiveConversation, result: ConversationResult | None) -> None:
        path: Path | None = None
        engine = live.engine
        try:
            path = await asyncio.to_thread(
                engine.recorder.save, self.recordings_dir / f"{live.id}.wav")
        except Exception:  # a failed recording must not lose the conversation record
            log.exception("could not save the recording of %s", live.id)
        async with self.db.session() as s:
            row = await s.get(t.Conversation, live.id)
            if row is not None:
                ended = utcnow()
                row.ended_at = ended
                row.ended_by = result.ended_by if result else (engine.lifecycle.ended_by or "error")
                row.duration_ms = round((ended - row.started_at).total_seconds() * 1000, 1)
                row.latencies_ms = list(engine.latencies_ms)
                row.interruptions_count = engine.interruptions
                row.recording_path = str(path) if path else None
                if isinstance(engine.observer, ItemWriter):
                    row.live_transcript = engine.observer.transcript
        self.live.pop(live.id, None)
        live.finished.set()

    async def cancel(self, who: Principal, conversation_id: str) -> None:
        """End a live conversation (``user_canceled``); 409 if it already ended."""
        live = self.live.get(conversation_id)
        if live is None or live.workspace_id != who.workspace_id:
            async with self.db.session() as s:
                row = await s.get(t.Conversation, conversation_id)
            if row is None or row.workspace_id != who.workspace_id:
                raise NotFound("Conversation not found")
            if row.ended_at is not None:
                raise Conflict("Conversation already ended")
            raise TimeoutError("conversation is not running in this process")
        live.engine.end("user_canceled")
        async with asyncio.timeout(CANCEL_ACK_TIMEOUT_S):
            await live.finished.wait()

    async def set_external_id(self, conversation_id: str, external_id: str) -> None:
        async with self.db.session() as s:
            row = await s.get(t.Conversation, conversation_id)
            if row is not None:
                row.external_id = external_id

    async def close_orphans(self) -> int:
        """Close conversations a crash left open (none of them is running here)."""
        async with self.db.session() as s:
            rows = list(await s.scalars(
                select(t.Conversation).where(t.Conversation.ended_at.is_(None))))
            for row in rows:
                if row.id in self.live:
                    continue
                last = await s.scalar(select(func.max(t.ConversationItem.started_at)).where(
                    t.ConversationItem.conversation_id == row.id))
                row.ended_at = last or row.started_at
                row.ended_by = "error"
                row.duration_ms = round((row.ended_at - row.started_at).total_seconds() * 1000, 1)
        return len(rows)

    async def shutdown(self) -> None:
        """End every live conversation (server stopping) and wait for them to be stored."""
        for live in list(self.live.values()):
            live.engine.end("error")
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(10):
                while self.live:
                    await next(iter(self.live.values())).finished.wait()


def _external_id(config: dict[str, Any]) -> str | None:
    value = config.get("external_id")
    return value.strip() or None if isinstance(value, str) else None

