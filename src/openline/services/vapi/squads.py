"""Vapi squads: assistants that transfer the call to each other.

A squad is stored as sent. Each member's ``assistantDestinations`` become one Openline
``built_in_transfer_to_agent`` tool on the member's agent, naming the destination agents,
so a call that starts with ``members[0]`` moves between the squad's assistants through
Openline's own transfer. A member given inline (``assistant``) becomes an assistant of its
own (an agent). What the squad created is kept under ``_openline`` in its document (never
shown) and removed with it.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Mapping
from typing import Any

from openline.domain.agent_changes import AgentChanges
from openline.domain.errors import NotFound, ValidationFailed
from openline.domain.tool import ToolSpec
from openline.domain.validation import first_error_message, parse
from openline.services.agents import AgentService
from openline.services.commands import CreateTool, Key, UpdateAgent
from openline.services.principal import Principal
from openline.services.tools import ToolService
from openline.services.vapi.assistants import AssistantService
from openline.services.vapi.call_view import iso
from openline.services.vapi.docs import Doc, ListQuery, VapiDocs
from openline.services.vapi.tools import VapiToolService

KIND = "squad"
_INTERNAL = "_openline"


def check_squad(body: Mapping[str, Any], *, partial: bool) -> None:
    errors: dict[str, str] = {}
    members = body.get("members")
    if members is None and not partial:
        errors["members"] = "members is required"
    elif members is not None and not (isinstance(members, list) and members):
        errors["members"] = "members must be a non-empty list"
    elif members is not None:
        for i, member in enumerate(members):
            if not isinstance(member, dict):
                errors[f"members.{i}"] = "each member must be an object"
                continue
            dests = member.get("assistantDestinations")
            if dests is not None and not (isinstance(dests, list) and all(
                    isinstance(d, dict) and d.get("type") == "assistant"
                    and isinstance(d.get("assistantName") or d.get("assistantId"), str)
                    for d in dests)):
                errors[f"members.{i}.assistantDestinations"] = (
                    "each destination needs type 'assistant' and an assistantName")
    if body.get("name") is not None and not isinstance(body["name"], str):
        errors["name"] = "name must be a string"
    if errors:
        raise ValidationFailed(first_error_message(errors), errors)


def squad_json(d: Doc, org_id: str) -> dict[str, Any]:
    out = {k: v for k, v in d.doc.items() if k != _INTERNAL}
    out.update(id=d.id, orgId=org_id, createdAt=iso(d.created_at), updatedAt=iso(d.updated_at))
    return out


class SquadService:
    def __init__(self, docs: VapiDocs, assistants: AssistantService, agents: AgentService,
                 tools: ToolService, vapi_tools: VapiToolService) -> None:
        self.docs, self.assistants, self.agents = docs, assistants, agents
        self.tools, self.vapi_tools = tools, vapi_tools

    async def _members(self, who: Principal, members: list[dict[str, Any]],
                       created: list[str]) -> list[str | None]:
        """Each member's agent ID (inline assistants are created, into ``created``)."""
        ids: list[str | None] = []
        for i, member in enumerate(members):
            if isinstance(member.get("assistantId"), str):
                try:
                    ids.append((await self.assistants.get(who, member["assistantId"])).id)
                except NotFound as exc:
                    raise ValidationFailed(
                        f"Assistant not found: {member['assistantId']}",
                        {f"members.{i}.assistantId": "no such assistant"}) from exc
            elif isinstance(member.get("assistant"), dict):
                made = await self.assistants.create(who, dict(member["assistant"]))
                created.append(made.id)
                ids.append(made.id)
            else:  # an empty member (the SDK's own example) is kept, with no assistant
                ids.append(None)
        return ids

    async def _wire(self, who: Principal, members: list[dict[str, Any]],
                    agent_ids: list[str | None], tool_ids: list[str]) -> None:
        """One transfer tool per member with destinations (their IDs into ``tool_ids``).
        Every destination is checked before anything is created."""
        names = await self.vapi_tools.agent_names(who)
        by_id = {}
        for agent_id in agent_ids:
            if agent_id is not None:
                by_id[agent_id] = (await self.assistants.get(who, agent_id)).agent.name
        plan: list[tuple[str, list[str]]] = []
        for i, (member, agent_id) in enumerate(zip(members, agent_ids, strict=True)):
            targets: list[str] = []
            for d in member.get("assistantDestinations") or []:
                key = d.get("assistantName") or d.get("assistantId")
                target = names.get(key) or by_id.get(key)
                if target is None:
                    raise ValidationFailed(
                        f"Unknown assistant: {key}",
                        {f"members.{i}.assistantDestinations": f"no assistant named {key}"})
                targets.append(target)
            if targets and agent_id is not None:
                plan.append((agent_id, targets))
        for agent_id, targets in plan:
            spec = parse(ToolSpec, {
                "name": f"squad_transfer_{uuid.uuid4().hex[:12]}",  # one per member and squad
                "description": "Transfer the call to another assistant of the squad",
                "type": "built_in_transfer_to_agent", "execution_mode": "sync",
                "agents_to_transfer_to": list(dict.fromkeys(targets))})
            tool = await self.tools.create(who, CreateTool(spec))
            tool_ids.append(tool.id)
            agent = (await self.assistants.get(who, agent_id)).agent
            await self.agents.update(who, UpdateAgent(Key(agent_id), AgentChanges(
                tools=[*agent.spec.tools, spec.name])))

    async def _unwire(self, who: Principal, internal: Mapping[str, Any]) -> None:
        for tool_id in internal.get("tools") or []:
            with contextlib.suppress(NotFound):
                await self.tools.delete(who, None, tool_id)
        for agent_id in internal.get("assistants") or []:
            with contextlib.suppress(NotFound):
                await self.assistants.delete(who, agent_id)

    async def _build(self, who: Principal, body: Mapping[str, Any]) -> dict[str, Any]:
        members = [dict(m) for m in body.get("members") or []]
        created: list[str] = []
        tools: list[str] = []
        try:
            agent_ids = await self._members(who, members, created)
            await self._wire(who, members, agent_ids, tools)
        except Exception:  # nothing the failed request made is left behind
            await self._unwire(who, {"assistants": created, "tools": tools})
            raise
        return {"members": agent_ids, "tools": tools, "assistants": created}

    async def create(self, who: Principal, body: dict[str, Any]) -> Doc:
        check_squad(body, partial=False)
        internal = await self._build(who, body)
        return await self.docs.create(who, KIND, {**body, _INTERNAL: internal})

    async def get(self, who: Principal, squad_id: str) -> Doc:
        return await self.docs.get(who, KIND, squad_id)

    async def list_all(self, who: Principal, q: ListQuery) -> list[Doc]:
        return await self.docs.list_all(who, KIND, q)

    async def update(self, who: Principal, squad_id: str, body: dict[str, Any]) -> Doc:
        check_squad(body, partial=True)
        current = await self.docs.get(who, KIND, squad_id)
        merged = {**current.doc, **body}
        internal = dict(current.doc.get(_INTERNAL) or {})
        if "members" in body:
            fresh = await self._build(who, merged)
            await self._unwire(who, internal)
            internal = fresh
        merged[_INTERNAL] = internal
        return await self.docs.replace(who, KIND, squad_id, merged)

    async def delete(self, who: Principal, squad_id: str) -> Doc:
        current = await self.docs.get(who, KIND, squad_id)
        await self._unwire(who, current.doc.get(_INTERNAL) or {})
        return await self.docs.delete(who, KIND, squad_id)

    async def first_member(self, who: Principal, squad_id: str) -> str:
        """The agent a squad's call starts with (``members[0]``)."""
        doc = (await self.get(who, squad_id)).doc
        members = [m for m in (doc.get(_INTERNAL) or {}).get("members") or [] if m]
        if not members:
            raise ValidationFailed("The squad has no members", {"squadId": "no members"})
        return str(members[0])
