"""Before a call runs: which agent, which settings, which tools, may it start at all.

``prepare`` resolves the agent (and the credential's right to it), applies the per-call
overrides, loads the tools, checks the concurrency limit, inserts the conversation row
(owned by this node, with a lease) and asks the agent's configuration endpoint for
overrides. Nothing here talks to a transport.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import func, select

from openline.domain import ids
from openline.domain.agent import AgentSpec
from openline.domain.agent_changes import AgentChanges
from openline.domain.errors import (
    Conflict,
    Forbidden,
    NotFound,
    OpenlineError,
    ValidationFailed,
)
from openline.domain.languages import LanguageSupport
from openline.domain.unset import Unset
from openline.services import lookup, tool_loading
from openline.services.mapping import load_spec
from openline.services.outbound import ConfigEndpointFailed, fetch_configuration
from openline.services.principal import Principal
from openline.services.session_config import (
    ResolvedConfig,
    SessionOverrides,
    overrides_from_config,
    resolve_overrides,
)
from openline.store import tables as t
from openline.store.db import Database
from openline.store.tables import utcnow
from openline.voice.config import AgentSwitch
from openline.voice.tools import RuntimeTool

LoadedTools = tuple[list[RuntimeTool], tuple[str, ...]]
Voices = Callable[[], tuple[set[str], str]]


@dataclass(frozen=True)
class CallInfo:
    """Where a phone call comes from and goes to; stored as the conversation's
    ``call_info`` (Phonic's keys) and sent to the configuration endpoint."""

    from_phone_number: str | None = None
    to_phone_number: str | None = None
    twilio_call_sid: str | None = None

    def stored(self) -> dict[str, Any] | None:
        values = {k: v for k, v in vars(self).items() if v is not None}
        return values or None


@dataclass(frozen=True)
class StartCall:
    """A request to start a conversation, whatever the dialect or transport.

    Each dialect translates its own request (the Phonic ``config`` message, a Vapi
    assistant with ``assistantOverrides``, an inbound phone call) into this command.
    """

    principal: Principal
    #: the agent's name or id (``None``: the project's default agent, if any)
    agent: str | None = None
    project: str | None = None
    overrides: SessionOverrides = field(default_factory=SessionOverrides)
    #: tool definitions replacing the agent's (names of stored tools or built-ins, or inline)
    tools: Sequence[Any] | None = None
    external_id: str | None = None
    origin: str = "direct"
    call_info: CallInfo | None = None
    #: an incoming phone call (the agent's ``listen_only_inbound_enabled`` applies)
    inbound: bool = False


@dataclass
class PreparedCall:
    """Everything needed to build the engine of a conversation that may start."""

    id: str
    workspace_id: str
    project_id: str
    agent: t.Agent | None
    resolved: ResolvedConfig
    tools: LoadedTools
    call_info: CallInfo | None = None


class ConfigurationFailed(OpenlineError):
    """The configuration endpoint failed; the conversation ended before it started."""

    def __init__(self, ended_by: str, message: str) -> None:
        super().__init__(f"Configuration endpoint failed: {message}", code=ended_by)
        self.ended_by = ended_by


class CallSetup:
    """Turns a ``StartCall`` into a stored, leased conversation ready to run."""

    #: what the installed models can do (languages); set by the composition root
    languages: Callable[[], LanguageSupport] | None = None

    def __init__(self, db: Database, voices: Voices, http: httpx.AsyncClient, *,
                 node_id: str, lease_s: float, allow_private_urls: bool = False,
                 max_concurrent: int = 100) -> None:
        self.db, self._voices, self.http = db, voices, http
        self.node_id, self.lease_s = node_id, lease_s
        #: live conversations per workspace unless the workspace sets its own limit
        self.max_concurrent = max_concurrent
        self.allow_private_urls = allow_private_urls

    def resolve_config(self, conv_id: str, agent: t.Agent | None,
                       overrides: SessionOverrides, inbound: bool = False) -> ResolvedConfig:
        """The agent's settings plus overrides, with this process's voices and models."""
        installed, default_voice = self._voices()
        spec = load_spec(AgentSpec, agent.spec) if agent else None
        support = self.languages() if self.languages is not None else None
        return resolve_overrides(conv_id, spec, overrides, installed_voices=installed,
                                 default_voice=default_voice, support=support,
                                 inbound=inbound)

    async def validate(self, start: StartCall, conv_id: str = "dry_run"
                       ) -> tuple[t.Agent | None, t.Project, ResolvedConfig, LoadedTools]:
        """Everything ``prepare`` checks before storing anything (a dry run stops here)."""
        async with self.db.session() as s:
            agent, project = await _agent_for(s, start.principal, start)
            resolved = self.resolve_config(conv_id, agent, start.overrides, start.inbound)
            tools = await tool_loading.load(s, project.id, _tool_definitions(agent, start))
        return agent, project, resolved, tools

    async def prepare(self, start: StartCall) -> PreparedCall:
        """Resolve and store the conversation; raises the reason it may not start."""
        conv_id = ids.new_id(ids.CONVERSATION)
        who = start.principal
        agent, project, resolved, tools = await self.validate(start, conv_id)
        # The count and the insert are one step: the workspace and project rows are locked
        # for the transaction (PostgreSQL: across every node sharing the database), and
        # hot-path writes queue in-process (SQLite, one node).
        async with self.db.writer() as s:
            await _check_capacity(s, project.id, self.max_concurrent)
            now = utcnow()
            s.add(t.Conversation(
                id=conv_id, workspace_id=who.workspace_id, project_id=project.id,
                agent_id=agent.id if agent else None, agent_name=agent.name if agent else None,
                external_id=_clean(start.external_id), origin=start.origin,
                config=resolved.snapshot, started_at=now,
                call_info=start.call_info.stored() if start.call_info else None,
                owner_node=self.node_id, heartbeat_at=now,
                lease_until=now + timedelta(seconds=self.lease_s),
            ))
        call = PreparedCall(conv_id, who.workspace_id, project.id, agent, resolved, tools,
                            start.call_info)
        endpoint = resolved.spec.configuration_endpoint
        if endpoint is not None:
            await self._configure(call, project, start, endpoint.model_dump(mode="json"))
        return call

    async def _configure(self, call: PreparedCall, project: t.Project, start: StartCall,
                         endpoint: dict[str, Any]) -> None:
        """Ask the configuration endpoint for overrides; a failure ends the conversation."""
        spec, agent = call.resolved.spec, call.agent
        payload = {"project": {"name": project.name}, "conversation_id": call.id,
                   "agent": {"name": agent.name if agent else None,
                             "welcome_message": spec.welcome_message,
                             "system_prompt": spec.system_prompt,
                             "tools": spec.tools,
                             "boosted_keywords": spec.boosted_keywords}}
        if start.call_info is not None:  # phone calls: who calls whom, and the carrier's id
            payload.update(start.call_info.stored() or {})
        try:
            reply = await fetch_configuration(self.http, endpoint, payload,
                                              allow_private=self.allow_private_urls)
            metadata = reply.pop("metadata", None)
            if reply:
                extra = overrides_from_config(
                    {**reply, "configuration_endpoint": None})
                call.resolved = self.resolve_config(
                    call.id, agent, merge_overrides(start.overrides, extra), start.inbound)
                if "tools" in reply:
                    async with self.db.session() as s:
                        call.tools = await tool_loading.load(s, project.id,
                                                             reply["tools"] or [])
        except ValidationFailed as exc:
            await self.end_unstarted(call.id, "configuration_endpoint_invalid_response")
            raise ConfigurationFailed("configuration_endpoint_invalid_response",
                                      f"invalid overrides: {exc.message}") from exc
        except ConfigEndpointFailed as exc:
            await self.end_unstarted(call.id, exc.ended_by)
            raise ConfigurationFailed(exc.ended_by, str(exc)) from exc
        async with self.db.session() as s:
            row = await s.get(t.Conversation, call.id)
            if row is not None:
                row.config, row.meta = call.resolved.snapshot, metadata
                value = reply.get("external_id")
                row.external_id = _clean(value if isinstance(value, str) else None) \
                    or row.external_id

    async def end_unstarted(self, conv_id: str, ended_by: str) -> None:
        """End a stored conversation that never ran (refused, or a phone call that was
        never answered)."""
        async with self.db.session() as s:
            row = await s.get(t.Conversation, conv_id)
            if row is not None:
                row.close(utcnow(), ended_by)


async def _agent_for(s: Any, who: Principal, start: StartCall
                     ) -> tuple[t.Agent | None, t.Project]:
    name = start.agent
    if who.kind == "conversation_token":
        agent = await s.get(t.Agent, who.agent_id)
        if agent is None or (name and name not in (agent.name, agent.id)):
            raise Forbidden("This conversation token is for another agent")
        project = await s.get(t.Project, agent.project_id)
    elif name:
        agent, project = await lookup.agent(s, who.workspace_id, start.project, name)
    else:
        project = await lookup.project(s, who.workspace_id, start.project)
        agent = await s.get(t.Agent, project.default_agent_id) \
            if project.default_agent_id else None
    if agent is not None and agent.is_disabled:
        raise Forbidden(f"Agent {agent.name!r} is disabled")
    return agent, project


#: the key of a workspace's own limit in ``workspaces.settings`` (``openline limit N``)
LIMIT_SETTING = "max_concurrent_conversations"


def workspace_limit(ws: t.Workspace | None, default_limit: int) -> int:
    """The workspace's own limit of live conversations, else the nodes' setting
    (``OPENLINE_MAX_CONCURRENT_CONVERSATIONS``). The ``max_active_conversations`` column
    written by earlier releases (always 100) is not consulted."""
    own = (ws.settings or {}).get(LIMIT_SETTING) if ws is not None else None
    return own if isinstance(own, int) and own > 0 else default_limit


async def _check_capacity(s: Any, project_id: str, default_limit: int) -> None:
    """Refuse a start beyond the workspace's limit or the project's own limit.

    The database is the authority: live conversations are the rows without an end whose
    owner still renews the lease, counted under a lock on the workspace row (then the
    project row, always in that order). A node that dies stops renewing, so its calls stop
    counting when their leases expire, even before a reaper closes them: no counter to
    drift.
    """
    workspace_id = await s.scalar(select(t.Project.workspace_id)
                                  .where(t.Project.id == project_id))
    ws = await s.scalar(select(t.Workspace).where(t.Workspace.id == workspace_id)
                        .with_for_update())
    project = await s.scalar(select(t.Project).where(t.Project.id == project_id)
                             .with_for_update())
    live = (t.Conversation.ended_at.is_(None), t.Conversation.lease_until >= utcnow())
    ws_limit = workspace_limit(ws, default_limit)
    in_workspace = await s.scalar(select(func.count()).select_from(t.Conversation).where(
        t.Conversation.workspace_id == workspace_id, *live))
    if int(in_workspace or 0) >= ws_limit:
        raise Conflict("Concurrency limit reached", code="concurrency_limit_reached")
    if project.max_active_conversations is None:
        return
    in_project = await s.scalar(select(func.count()).select_from(t.Conversation).where(
        t.Conversation.project_id == project.id, *live))
    if int(in_project or 0) >= project.max_active_conversations:
        raise Conflict("Concurrency limit reached", code="concurrency_limit_reached")


def _tool_definitions(agent: t.Agent | None, start: StartCall) -> list[Any]:
    """The call's tools replace the agent's tool list (the agent is the fallback)."""
    if start.tools is not None:
        return list(start.tools)
    return list(agent.spec.get("tools") or []) if agent else []


def _clean(value: str | None) -> str | None:
    return (value.strip() or None) if value else None


def merge_overrides(base: SessionOverrides, extra: SessionOverrides) -> SessionOverrides:
    """``extra`` (e.g. the configuration endpoint's reply) on top of ``base``."""
    return SessionOverrides(
        agent=AgentChanges(**{**base.agent.given(), **extra.agent.given()}),
        input_format=base.input_format if isinstance(extra.input_format, Unset)
        else extra.input_format,
        output_format=base.output_format if isinstance(extra.output_format, Unset)
        else extra.output_format,
        template_variables={**base.template_variables, **extra.template_variables},
        stream_ahead_of_real_time=base.stream_ahead_of_real_time
        or extra.stream_ahead_of_real_time)


class TransferDirectory:
    """``AgentDirectory`` for transfers: agents of the conversation's project."""

    def __init__(self, setup: CallSetup, project_id: str) -> None:
        self.setup, self.project_id = setup, project_id

    async def switch_to(self, agent_name: str) -> AgentSwitch:
        async with self.setup.db.session() as s:
            agent = await s.scalar(select(t.Agent).where(
                t.Agent.project_id == self.project_id, t.Agent.name == agent_name))
            if agent is None:
                raise NotFound(f"Agent {agent_name!r} not found")
            tools, built_ins = await tool_loading.load(s, self.project_id,
                                                      agent.spec.get("tools") or [])
        cfg = self.setup.resolve_config("transfer", agent, SessionOverrides()).session
        return AgentSwitch(agent.id, agent.name, cfg.system_prompt, cfg.voice_id,
                           cfg.audio_speed, built_ins, tools)
