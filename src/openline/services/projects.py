"""Projects and their eval prompts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from openline.domain import ids
from openline.domain.errors import Conflict, ValidationFailed
from openline.domain.extraction import EvalPromptSpec
from openline.domain.validation import check_resource_name, parse
from openline.services import lookup
from openline.services.principal import Principal
from openline.store import tables as t
from openline.store.db import Database


@dataclass(frozen=True)
class ProjectView:
    project: t.Project
    default_agent: t.Agent | None
    active_conversations: int


class ProjectService:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def list_all(self, who: Principal) -> list[ProjectView]:
        async with self.db.session() as s:
            rows = await s.scalars(
                select(t.Project).where(t.Project.workspace_id == who.workspace_id)
                .order_by(t.Project.created_at, t.Project.name)
            )
            return [await self._view(s, p) for p in rows]

    async def get(self, who: Principal, name_or_id: str) -> ProjectView:
        async with self.db.session() as s:
            return await self._view(s, await lookup.project(s, who.workspace_id, name_or_id))

    async def _view(self, s: Any, p: t.Project) -> ProjectView:
        agent = await s.get(t.Agent, p.default_agent_id) if p.default_agent_id else None
        active = await s.scalar(
            select(func.count()).select_from(t.Conversation)
            .where(t.Conversation.project_id == p.id, t.Conversation.ended_at.is_(None))
        )
        return ProjectView(p, agent, int(active or 0))

    async def create(self, who: Principal, name: Any) -> t.Project:
        _check_name(name)
        row = t.Project(id=ids.new_id(ids.PROJECT), workspace_id=who.workspace_id, name=name)
        try:
            async with self.db.session() as s:
                s.add(row)
        except IntegrityError as exc:
            raise Conflict("Project name already exists", code="name_taken") from exc
        return row

    async def update(self, who: Principal, name_or_id: str, patch: dict[str, Any]) -> None:
        if "name" in patch:
            _check_name(patch["name"])
        limit = patch.get("max_active_conversations")
        if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool)
                                  or limit < 1):
            raise ValidationFailed("Invalid parameters",
                                   {"max_active_conversations": "must be a positive integer"})
        try:
            async with self.db.session() as s:
                p = await lookup.project(s, who.workspace_id, name_or_id)
                if "default_agent" in patch:
                    p.default_agent_id = await self._default_agent(s, p, patch["default_agent"])
                if "max_active_conversations" in patch:
                    p.max_active_conversations = limit
                if "name" in patch:
                    p.name = patch["name"]
                await s.flush()
        except IntegrityError as exc:
            raise Conflict("Project name already exists", code="name_taken") from exc

    async def _default_agent(self, s: Any, p: t.Project, name: Any) -> str | None:
        if name is None:
            return None
        if not isinstance(name, str):
            raise ValidationFailed("Invalid parameters", {"default_agent": "must be an agent name"})
        agent = await s.scalar(
            select(t.Agent).where(t.Agent.project_id == p.id, t.Agent.name == name)
        )
        if agent is None:
            raise ValidationFailed(
                "Invalid parameters", {"default_agent": f"no agent named {name!r} in this project"}
            )
        return str(agent.id)

    async def delete(self, who: Principal, name_or_id: str) -> None:
        async with self.db.session() as s:
            p = await lookup.project(s, who.workspace_id, name_or_id)
            count = await s.scalar(
                select(func.count()).select_from(t.Project)
                .where(t.Project.workspace_id == who.workspace_id)
            )
            if int(count or 0) <= 1:
                raise Conflict(
                    "Cannot delete the last project in a workspace",
                    code="last_project_in_workspace",
                )
            live = await s.scalar(
                select(func.count()).select_from(t.Conversation)
                .where(t.Conversation.project_id == p.id, t.Conversation.ended_at.is_(None))
            )
            if live:
                raise Conflict("Cannot delete a project with active conversations")
            await s.delete(p)

    async def list_eval_prompts(self, who: Principal, name_or_id: str) -> list[t.EvalPrompt]:
        async with self.db.session() as s:
            p = await lookup.project(s, who.workspace_id, name_or_id)
            rows = await s.scalars(
                select(t.EvalPrompt).where(t.EvalPrompt.project_id == p.id)
                .order_by(t.EvalPrompt.created_at)
            )
            return list(rows)

    async def create_eval_prompt(
        self, who: Principal, name_or_id: str, body: dict[str, Any]
    ) -> t.EvalPrompt:
        spec = parse(EvalPromptSpec, body)
        async with self.db.session() as s:
            p = await lookup.project(s, who.workspace_id, name_or_id)
            row = t.EvalPrompt(
                id=ids.new_id(ids.EVAL_PROMPT), project_id=p.id, name=spec.name, prompt=spec.prompt
            )
            s.add(row)
        return row


def _check_name(name: Any) -> None:
    try:
        if not isinstance(name, str):
            raise ValueError("name must be a string")
        check_resource_name(name)
    except ValueError as exc:
        raise ValidationFailed(f"Invalid parameters: {exc}", {"name": str(exc)}) from exc
