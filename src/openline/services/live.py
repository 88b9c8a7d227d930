"""Live conversations: start (agent + config -> engine), persist as they run, cancel, recover.

Every item is written as its turn completes, so a crash loses at most the turn in flight;
at start-up, conversations a crash left open are closed with ``ended_by: "error"``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, select

from openline.domain import ids
from openline.domain.errors import Conflict, Forbidden, NotFound, OpenlineError, ValidationFailed
from openline.domain.tool_call import ToolCallRecord
from openline.services import lookup, tool_loading
from openline.services.outbound import (
    CallContext,
    ConfigEndpointFailed,
    HttpWebhookCaller,
    fetch_configuration,
)
from openline.services.principal import Principal
from openline.services.session_config import ResolvedConfig, resolve
from openline.store import tables as t
from openline.store.db import Database
from openline.store.tables import utcnow
from openline.voice.config import AgentSwitch
from openline.voice.recorder import recover as recover_recording
from openline.voice.session import (
    Conversation,
    ConversationResult,
    ItemRecord,
    Providers,
    Send,
)
from openline.voice.tools import RuntimeTool

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
        self.tool_items: dict[str, str] = {}  # tool call record id -> item id

    async def item(self, record: ItemRecord) -> None:
        idx, self.next_idx = self.next_idx, self.next_idx + 1
        speaker = "User" if record.role == "user" else "Assistant"
        self.lines.append(f"{speaker}: {record.text}")
        item_id = ids.new_id(ids.CONVERSATION_ITEM)
        self.tool_items.update({str(c.id): item_id for c in record.tool_calls})
        async with self.db.writer() as s:
            s.add(t.ConversationItem(
                id=item_id, conversation_id=self.conversation_id,
                item_idx=idx, role=record.role, live_transcript=record.text,
                started_at=record.started_at, duration_ms=round(record.duration_ms, 1),
                voice_id=record.voice_id, audio_speed=record.audio_speed,
                system_prompt=record.system_prompt,
                tool_calls=[c.to_stored() for c in record.tool_calls],
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
        stored = record.to_stored()
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
    def transcript(self) -> str:
        return "\n".join(self.lines)


class LiveService:
    """Starts and tracks the conversations running in this process."""

    #: called with a conversation's id once its end is stored (queues post-call work)
    on_ended: Callable[[str], Awaitable[None]] | None = None

    def __init__(self, db: Database, providers: Providers, recordings_dir: Path,
                 voices: Callable[[], tuple[set[str], str]], *,
                 http: httpx.AsyncClient | None = None,
                 allow_private_urls: bool = False) -> None:
        self.db, self.providers, self.recordings_dir = db, providers, recordings_dir
        self._voices = voices
        self.http = http or httpx.AsyncClient(follow_redirects=False)
        self.allow_private_urls = allow_private_urls
        self.live: dict[str, LiveConversation] = {}
        self._idle = asyncio.Event()
        self._idle.set()

    async def start(self, who: Principal, config: dict[str, Any], send: Send,
                    origin: str = "sdk-py") -> LiveConversation:
        """Resolve agent, config, tools and the configuration endpoint; build the engine."""
        conv_id = ids.new_id(ids.CONVERSATION)
        async with self.db.session() as s:
            agent, project = await self._agent_for(s, who, config)
            resolved = self.resolve_config(conv_id, agent, config)
            tools = await tool_loading.load(s, project.id, _tool_definitions(agent, config))
            await self._check_capacity(s, project)
            s.add(t.Conversation(
                id=conv_id, workspace_id=who.workspace_id, project_id=project.id,
                agent_id=agent.id if agent else None, agent_name=agent.name if agent else None,
                external_id=_external_id(config), origin=origin, config=resolved.snapshot,
                started_at=utcnow(),
            ))
        endpoint = config.get("configuration_endpoint") or (
            agent.spec.get("configuration_endpoint") if agent else None)
        if endpoint:
            resolved, tools = await self._configure(conv_id, agent, project, config, endpoint,
                                                    resolved, tools)
        resolved.session.runtime_tools, resolved.session.built_in_tools = tools
        writer = ItemWriter(self.db, conv_id)
        webhooks = HttpWebhookCaller(self.http, CallContext(conv_id),
                                     allow_private=self.allow_private_urls)
        directory = _Directory(self, project.id, agent.spec if agent else None)
        engine = Conversation(resolved.session, self.providers, send, writer,
                              webhooks=webhooks, agents=directory,
                              recordings_dir=self.recordings_dir)
        live = LiveConversation(conv_id, who.workspace_id, engine, resolved)
        self.live[conv_id] = live
        self._idle.clear()
        return live

    async def wait_idle(self, timeout_s: float) -> None:
        """Until no conversation is live in this process, or ``timeout_s`` has passed."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                await self._idle.wait()

    def resolve_config(self, conv_id: str, agent: t.Agent | None, config: dict[str, Any]
                       ) -> ResolvedConfig:
        """The agent's settings plus ``config`` overrides, with this process's voices."""
        installed, default_voice = self._voices()
        return resolve(conv_id, agent.spec if agent else None, config,
                       installed_voices=installed, default_voice=default_voice)

    async def _configure(
        self, conv_id: str, agent: t.Agent | None, project: t.Project, config: dict[str, Any],
        endpoint: dict[str, Any], resolved: ResolvedConfig, tools: LoadedTools,
    ) -> tuple[ResolvedConfig, LoadedTools]:
        """Ask the configuration endpoint for overrides; a failure ends the conversation."""
        spec = resolved.spec
        payload = {"project": {"name": project.name}, "conversation_id": conv_id,
                   "agent": {"name": agent.name if agent else None,
                             "welcome_message": spec.welcome_message,
                             "system_prompt": spec.system_prompt, "tools": spec.tools,
                             "boosted_keywords": spec.boosted_keywords}}
        try:
            overrides = await fetch_configuration(self.http, endpoint, payload,
                                                  allow_private=self.allow_private_urls)
            metadata = overrides.pop("metadata", None)
            merged = {**config, **overrides, "configuration_endpoint": None}
            if overrides:
                resolved = self.resolve_config(conv_id, agent, merged)
                if "tools" in overrides:
                    async with self.db.session() as s:
                        tools = await tool_loading.load(s, project.id, merged["tools"] or [])
        except ValidationFailed as exc:
            await self._end_unstarted(conv_id, "configuration_endpoint_invalid_response")
            raise ConfigurationFailed("configuration_endpoint_invalid_response",
                                      f"invalid overrides: {exc.message}") from exc
        except ConfigEndpointFailed as exc:
            await self._end_unstarted(conv_id, exc.ended_by)
            raise ConfigurationFailed(exc.ended_by, str(exc)) from exc
        async with self.db.session() as s:
            row = await s.get(t.Conversation, conv_id)
            if row is not None:
                row.config, row.meta = resolved.snapshot, metadata
                row.external_id = _external_id(merged) or row.external_id
        return resolved, tools

    async def _end_unstarted(self, conv_id: str, ended_by: str) -> None:
        async with self.db.session() as s:
            row = await s.get(t.Conversation, conv_id)
            if row is not None:
                row.ended_at, row.ended_by = utcnow(), ended_by
                row.duration_ms = round((row.ended_at - row.started_at).total_seconds() * 1000, 1)

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
        async with self.db.writer() as s:
            row = await s.get(t.Conversation, live.id)
            if row is not None:
                ended = engine.lifecycle.ended_at or utcnow()
                row.ended_at = ended
                row.ended_by = result.ended_by if result else (engine.lifecycle.ended_by or "error")
                row.duration_ms = round((ended - row.started_at).total_seconds() * 1000, 1)
                row.latencies_ms = list(engine.latencies_ms)
                row.interruptions_count = engine.interruptions
                row.recording_path = str(path) if path else None
                if isinstance(engine.observer, ItemWriter):
                    row.live_transcript = engine.observer.transcript
        if self.on_ended is not None:
            try:
                await self.on_ended(live.id)
            except Exception:  # post-call work is recovered at the next start-up
                log.exception("could not queue post-call work for %s", live.id)
        self.live.pop(live.id, None)
        if not self.live:
            self._idle.set()
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

    async def load_tools(self, conversation_id: str, definitions: list[Any]
                         ) -> list[RuntimeTool]:
        """``update_tools_subset``: names of stored tools or built-ins, or inline tools."""
        async with self.db.session() as s:
            row = await s.get(t.Conversation, conversation_id)
            if row is None:
                raise NotFound("Conversation not found")
            tools, _ = await tool_loading.load(s, row.project_id, definitions)
        return tools

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
                path = await asyncio.to_thread(recover_recording, self.recordings_dir, row.id,
                                               self.recordings_dir / f"{row.id}.wav")
                if path is not None:
                    row.recording_path = str(path)
        return len(rows)

    async def shutdown(self) -> None:
        """End every live conversation (server stopping) and wait for them to be stored."""
        for live in list(self.live.values()):
            live.engine.end("error")
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(10):
                while self.live:
                    await next(iter(self.live.values())).finished.wait()


LoadedTools = tuple[list[RuntimeTool], tuple[str, ...]]


class ConfigurationFailed(OpenlineError):
    """The configuration endpoint failed; the conversation ended before it started."""

    def __init__(self, ended_by: str, message: str) -> None:
        super().__init__(f"Configuration endpoint failed: {message}", code=ended_by)
        self.ended_by = ended_by


def _tool_definitions(agent: t.Agent | None, config: dict[str, Any]) -> list[Any]:
    """Inline ``config.tools`` replace the agent's tool list (the agent is the fallback)."""
    if isinstance(config.get("tools"), list):
        return list(config["tools"])
    return list(agent.spec.get("tools") or []) if agent else []


class _Directory:
    """``AgentDirectory`` for transfers: agents of the conversation's project."""

    def __init__(self, service: LiveService, project_id: str,
                 current: dict[str, Any] | None) -> None:
        self.service, self.project_id, self.current = service, project_id, current

    async def switch_to(self, agent_name: str) -> AgentSwitch:
        async with self.service.db.session() as s:
            agent = await s.scalar(select(t.Agent).where(
                t.Agent.project_id == self.project_id, t.Agent.name == agent_name))
            if agent is None:
                raise NotFound(f"Agent {agent_name!r} not found")
            tools, built_ins = await tool_loading.load(s, self.project_id,
                                                      agent.spec.get("tools") or [])
        resolved = self.service.resolve_config("transfer", agent, {})
        cfg = resolved.session
        return AgentSwitch(agent.id, agent.name, cfg.system_prompt, cfg.voice_id,
                           cfg.audio_speed, built_ins, tools)


def _external_id(config: dict[str, Any]) -> str | None:
    value = config.get("external_id")
    return value.strip() or None if isinstance(value, str) else None

