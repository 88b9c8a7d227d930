"""Vapi assistants over Openline agents (``assistant_map`` says which keys set which fields).

An assistant's ID is its agent's ID. Creating one creates the agent (in the workspace's
default project) and keeps the assistant document; reading one reads the agent and lays its
configuration over the document, so agents made through Phonic are assistants too.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select

from openline.domain.agent import Agent
from openline.domain.agent_changes import AgentChanges
from openline.domain.errors import Conflict, NotFound
from openline.services import lookup, mapping
from openline.services import phone_numbers as phones
from openline.services.agents import AgentService
from openline.services.commands import CreateAgent, Key, UpdateAgent
from openline.services.principal import Principal
from openline.services.vapi import assistant_map as amap
from openline.services.vapi.call_view import iso
from openline.services.vapi.docs import ListQuery, VapiDocs
from openline.store import tables as t
from openline.store.db import Database
from openline.store.tables_vapi import VapiResource

KIND = "assistant"


@dataclass(frozen=True)
class Assistant:
    """An agent, its Vapi document and its times."""

    agent: Agent
    org_id: str
    doc: dict[str, Any]
    created_at: datetime
    updated_at: datetime

    @property
    def id(self) -> str:
        return self.agent.id

    def json(self) -> dict[str, Any]:
        """The Vapi ``Assistant`` object."""
        out = amap.view(self.agent.spec, self.doc)
        out.update(id=self.agent.id, orgId=self.org_id, createdAt=iso(self.created_at),
                   updatedAt=iso(self.updated_at))
        return out


class AssistantService:
    def __init__(self, db: Database, agents: AgentService, docs: VapiDocs) -> None:
        self.db, self.agents, self.docs = db, agents, docs

    async def tool_names(self, who: Principal, body: Mapping[str, Any]) -> dict[str, str]:
        """Vapi tool ID (or Openline tool ID) -> Openline tool name (``""``: none) for the
        ``model.toolIds`` of ``body``."""
        model = body.get("model")
        wanted = [i for i in (model.get("toolIds") or []) if isinstance(i, str)] \
            if isinstance(model, dict) else []
        if not wanted:
            return {}
        found = await self.docs.many(who, "tool", wanted)
        linked = {d.link_id for d in found.values() if d.link_id}
        async with self.db.session() as s:
            rows = (await s.execute(
                select(t.Tool.id, t.Tool.name).join(t.Project, t.Project.id == t.Tool.project_id)
                .where(t.Project.workspace_id == who.workspace_id,
                       t.Tool.id.in_([*wanted, *linked])))).all()
        names = {row.id: row.name for row in rows}
        out = {i: names.get(d.link_id or "", "") for i, d in found.items()}
        out.update({i: names[i] for i in wanted if i in names})
        return out

    async def create(self, who: Principal, body: dict[str, Any]) -> Assistant:
        amap.check_body(body)
        tools = await self.tool_names(who, body)
        base = amap.slug_for(body.get("name"), "assistant")
        name = base
        for attempt in range(5):
            spec = amap.new_spec(body, name, tools)
            try:
                agent = await self.agents.create(who, CreateAgent(spec))
                break
            except Conflict as exc:
                if exc.code != "name_taken" or attempt == 4:
                    raise
                name = f"{base}-{uuid.uuid4().hex[:8]}"
        await self.docs.create(who, KIND, body, doc_id=agent.id, link_id=agent.id)
        return await self.get(who, agent.id)

    async def get(self, who: Principal, assistant_id: str) -> Assistant:
        async with self.db.session() as s:
            hit = (await s.execute(
                select(t.Agent, t.Project).join(t.Project, t.Project.id == t.Agent.project_id)
                .where(t.Agent.id == assistant_id, t.Project.workspace_id == who.workspace_id)
            )).first()
            if hit is None:
                raise NotFound("Assistant not found")
            return (await self._assistants(s, hit[1], [hit[0]]))[0]

    async def list_all(self, who: Principal, q: ListQuery) -> list[Assistant]:
        """The default project's agents, newest first, within the filters."""
        a = t.Agent
        async with self.db.session() as s:
            proj = await lookup.project(s, who.workspace_id, None)
            rows = list(await s.scalars(
                select(a).where(a.project_id == proj.id, *q.created.clauses(a.created_at),
                                *q.updated.clauses(a.updated_at))
                .order_by(a.created_at.desc(), a.id.desc()).limit(q.limit)))
            return await self._assistants(s, proj, rows)

    async def _assistants(self, s: Any, proj: t.Project, rows: list[t.Agent]) -> list[Assistant]:
        if not rows:
            return []
        numbers = await phones.numbers_of(s, [r.id for r in rows])
        docs = {d.id: dict(d.doc or {}) for d in await s.scalars(
            select(VapiResource).where(VapiResource.id.in_([r.id for r in rows]),
                                       VapiResource.kind == KIND))}
        return [Assistant(mapping.agent(r, proj, numbers[r.id]), proj.workspace_id,
                          docs.get(r.id, {}),
                          r.created_at, r.updated_at) for r in rows]

    async def update(self, who: Principal, assistant_id: str, body: dict[str, Any]) -> Assistant:
        """A partial update: the keys sent replace the document's, and set the agent."""
        amap.check_body(body)
        current = await self.get(who, assistant_id)
        tools = await self.tool_names(who, body)
        changes = amap.changes_for(body, tools)
        merged = {**current.doc, **body}
        renamed = isinstance(body.get("name"), str) and body["name"] != current.json()["name"]
        if renamed:  # the agent follows, so both dialects show the new name
            await self._rename(who, assistant_id, changes, amap.slug_for(body["name"], "assistant"))
        elif not changes.is_empty():
            await self.agents.update(who, UpdateAgent(Key(assistant_id), changes))
        async with self.db.session() as s:
            row = await self.docs.row(s, who, KIND, assistant_id)
            if row is None:
                await self.docs.insert(s, who, KIND, merged, doc_id=assistant_id,
                                       link_id=assistant_id)
            else:
                row.doc, row.updated_at = merged, t.utcnow()
            agent_row = await s.get(t.Agent, assistant_id)
            if agent_row is not None:
                agent_row.updated_at = t.utcnow()
        return await self.get(who, assistant_id)

    async def _rename(self, who: Principal, assistant_id: str, changes: AgentChanges,
                      base: str) -> None:
        name = base
        for attempt in range(5):
            try:
                await self.agents.update(who, UpdateAgent(
                    Key(assistant_id), dataclasses.replace(changes, name=name)))
                return
            except Conflict as exc:
                if exc.code != "name_taken" or attempt == 4:
                    raise
                name = f"{base}-{uuid.uuid4().hex[:8]}"

    async def delete(self, who: Principal, assistant_id: str) -> Assistant:
        gone = await self.get(who, assistant_id)
        await self.agents.delete(who, None, assistant_id)
        async with self.db.session() as s:
            row = await self.docs.row(s, who, KIND, assistant_id)
            if row is not None:
                await s.delete(row)
        return gone
