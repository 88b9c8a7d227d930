"""Before a call runs: which agent, which settings, which tools, may it start at all.

``prepare`` resolves the agent (and the credential's right to it), applies the per-call
overrides, loads the tools, checks the concurrency limit, inserts the conversation row
(owned by this node, with a lease) and asks the agent's configuration endpoint for
overrides. Nothing here talks to a transport.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import func, select

from openline.domain import ids
from openline.domain.errors import (
    Conflict,
    Forbidden,
    NotFound,
    OpenlineError,
    ValidationFailed,
)
from openline.services import lookup, tool_loading
from openline.services.outbound import ConfigEndpointFailed, fetch_configuration
from openline.services.principal import Principal
from openline.services.session_config import ResolvedConfig, resolve
from openline.store import tables as t
from openline.store.db import Database
from openline.store.tables import utcnow
from openline.voice.config import AgentSwitch
from openline.voice.tools import RuntimeTool

LoadedTools = tuple[list[RuntimeTool], tuple[str, ...]]
Voices = Callable[[], tuple[set[str], str]]


@dataclass(frozen=True)
class CallInfo:
    """Where a call comes from and goes to (telephony); stored as ``call_info``."""

    from_number: str | None = None
    to_number: str | None = None
    carrier: str | None = None
    carrier_call_id: str | None = None
    direction: str | None = None  # "inbound" | "outbound"

    def stored(self) -> dict[str, Any] | None:
        values = {k: v for k, v in vars(self).items() if v is not None}
        return values or None


@dataclass(frozen=True)
class StartCall:
    """A request to start a conversation, whatever the dialect or transport.

    ``overrides`` use Openline's override vocabulary (``agent``, ``project``,
    ``system_prompt``, ``voice_id``, ``input_format``, ``tools``, ``template_variables``...);
    each dialect translates its own request into it.
    """

    principal: Principal
    overrides: Mapping[str, Any]
    origin: str = "direct"
    call_info: CallInfo | None = None


@dataclass
class PreparedCall:
    """Everything needed to build the engine of a conversation that may start."""

    id: str
    workspace_id: str
    project_id: str
    agent: t.Agent | None
    resolved: ResolvedConfig
    tools: LoadedTools


class ConfigurationFailed(OpenlineError):
    """The configuration endpoint failed; the conversation ended before it started."""

    def __init__(self, ended_by: str, message: str) -> None:
        super().__init__(f"Configuration endpoint failed: {message}", code=ended_by)
        self.ended_by = ended_by


class CallSetup:
    """Turns a ``StartCall`` into a stored, leased conversation ready to run."""

    def __init__(self, db: Database, voices: Voices, http: httpx.AsyncClient, *,
                 node_id: str, lease_s: float, allow_private_urls: bool = False) -> None:
        self.db, self._voices, self.http = db, voices, http
        self.node_id, self.lease_s = node_id, lease_s
        self.allow_private_urls = allow_private_urls

    def resolve_config(self, conv_id: str, agent: t.Agent | None, config: Mapping[str, Any]
                       ) -> ResolvedConfig:
        """The agent's settings plus overrides, with this process's voices."""
        installed, default_voice = self._voices()
        return resolve(conv_id, agent.spec if agent else None, dict(config),
                       installed_voices=installed, default_voice=default_voice)

    async def prepare(self, start: StartCall) -> PreparedCall:
        """Resolve and store the conversation; raises the reason it may not start."""
        conv_id = ids.new_id(ids.CONVERSATION)
        config, who = start.overrides, start.principal
        check_types(config)
        async with self.db.session() as s:
            agent, project = await _agent_for(s, who, config)
            resolved = self.resolve_config(conv_id, agent, config)
            tools = await tool_loading.load(s, project.id, _tool_definitions(agent, config))
        # The count and the insert are one step: the project row is locked for the
        # transaction (PostgreSQL), and hot-path writes queue in-process (SQLite).
        async with self.db.writer() as s:
            await _check_capacity(s, project.id)
            now = utcnow()
            s.add(t.Conversation(
                id=conv_id, workspace_id=who.workspace_id, project_id=project.id,
                agent_id=agent.id if agent else None, agent_name=agent.name if agent else None,
                external_id=external_id(config), origin=start.origin,
                config=resolved.snapshot, started_at=now,
                call_info=start.call_info.stored() if start.call_info else None,
                owner_node=self.node_id, heartbeat_at=now,
                lease_until=now + timedelta(seconds=self.lease_s),
            ))
        call = PreparedCall(conv_id, who.workspace_id, project.id, agent, resolved, tools)
        endpoint = config.get("configuration_endpoint") or (
            agent.spec.get("configuration_endpoint") if agent else None)
        if endpoint:
            await self._configure(call, project, config, endpoint)
        return call

    async def _configure(self, call: PreparedCall, project: t.Project,
                         config: Mapping[str, Any], endpoint: dict[str, Any]) -> None:
        """Ask the configuration endpoint for overrides; a failure ends the conversation."""
        spec, agent = call.resolved.spec, call.agent
        payload = {"project": {"name": project.name}, "conversation_id": call.id,
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
                call.resolved = self.resolve_config(call.id, agent, merged)
                if "tools" in overrides:
                    async with self.db.session() as s:
                        call.tools = await tool_loading.load(s, project.id,
                                                             merged["tools"] or [])
        except ValidationFailed as exc:
            await self._end_unstarted(call.id, "configuration_endpoint_invalid_response")
            raise ConfigurationFailed("configuration_endpoint_invalid_response",
                                      f"invalid overrides: {exc.message}") from exc
        except ConfigEndpointFailed as exc:
            await self._end_unstarted(call.id, exc.ended_by)
            raise ConfigurationFailed(exc.ended_by, str(exc)) from exc
        async with self.db.session() as s:
            row = await s.get(t.Conversation, call.id)
            if row is not None:
                row.config, row.meta = call.resolved.snapshot, metadata
                row.external_id = external_id(merged) or row.external_id

    async def _end_unstarted(self, conv_id: str, ended_by: str) -> None:
        async with self.db.session() as s:
            row = await s.get(t.Conversation, conv_id)
            if row is not None:
                row.ended_at, row.ended_by = utcnow(), ended_by
                row.duration_ms = round((row.ended_at - row.started_at).total_seconds() * 1000, 1)
                row.lease_until = None


async def _agent_for(s: Any, who: Principal, config: Mapping[str, Any]
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


async def _check_capacity(s: Any, project_id: str) -> None:
    project = await s.scalar(select(t.Project).where(t.Project.id == project_id)
                             .with_for_update())
    ws = await s.get(t.Workspace, project.workspace_id)
    limit = project.max_active_conversations or (ws.max_active_conversations if ws else None)
    if limit is None:
        return
    active = await s.scalar(select(func.count()).select_from(t.Conversation).where(
        t.Conversation.project_id == project.id, t.Conversation.ended_at.is_(None)))
    if int(active or 0) >= limit:
        raise Conflict("Concurrency limit reached", code="concurrency_limit_reached")


#: per-call keys the agent's own validation does not see, and the types they take
_TYPES: dict[str, tuple[type, ...]] = {
    "agent": (str,), "project": (str,), "external_id": (str,), "tools": (list,),
    "input_format": (str,), "output_format": (str,), "stream_ahead_of_real_time": (bool,),
    "template_variables": (dict,), "configuration_endpoint": (dict,),
}
_TYPE_NAMES = {str: "a string", list: "a list", bool: "a boolean", dict: "an object"}


def check_types(config: Mapping[str, Any]) -> None:
    """A precise error for each per-call key of the wrong type (null means unset)."""
    errors = {key: f"must be {_TYPE_NAMES[types[0]]}"
              for key, types in _TYPES.items()
              if config.get(key) is not None and not isinstance(config[key], types)}
    if errors:
        key, message = next(iter(errors.items()))
        raise ValidationFailed(f"Invalid config: {key}: {message}", errors)


def _tool_definitions(agent: t.Agent | None, config: Mapping[str, Any]) -> list[Any]:
    """Inline ``tools`` replace the agent's tool list (the agent is the fallback)."""
    if isinstance(config.get("tools"), list):
        return list(config["tools"])
    return list(agent.spec.get("tools") or []) if agent else []


def external_id(config: Mapping[str, Any]) -> str | None:
    value = config.get("external_id")
    return value.strip() or None if isinstance(value, str) else None


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
        cfg = self.setup.resolve_config("transfer", agent, {}).session
        return AgentSwitch(agent.id, agent.name, cfg.system_prompt, cfg.voice_id,
                           cfg.audio_speed, built_ins, tools)
