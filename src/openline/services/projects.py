"""Projects and their eval prompts."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from openline.domain import ids
from openline.domain.errors import Conflict, ValidationFailed
from openline.domain.extraction import EvalPrompt
from openline.domain.limits import MAX_EVAL_PROMPTS_PER_PROJECT, MAX_PROJECTS_PER_WORKSPACE
from openline.domain.project import Project, check_max_active
from openline.domain.unset import is_set
from openline.domain.validation import check_resource_name
from openline.services import lookup, mapping
from openline.services.commands import CreateEvalPrompt, CreateProject, UpdateProject
from openline.services.principal import Principal
from openline.store import tables as t
from openline.store.db import Database


class ProjectService:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def list_all(self, who: Principal) -> list[Project]:
        async with self.db.session() as s:
            rows = await s.scalars(
                select(t.Project).where(t.Project.workspace_id == who.workspace_id)
                .order_by(t.Project.created_at, t.Project.name)
            )
            return [await self._project(s, p) for p in rows]

    async def get(self, who: Principal, name_or_id: str) -> Project:
        async with self.db.session() as s:
            return await self._project(s, await lookup.project(s, who.workspace_id, name_or_id))

    async def _project(self, s: AsyncSession, p: t.Project) -> Project:
        agent = await s.get(t.Agent, p.default_agent_id) if p.default_agent_id else None
        active = await s.scalar(
            select(func.count()).select_from(t.Conversation)
            .where(t.Conversation.project_id == p.id, t.Conversation.ended_at.is_(None))
        )
        return mapping.project(p, agent, int(active or 0))

    async def create(self, who: Principal, cmd: CreateProject) -> Project:
        _check_name(cmd.name)
        row = t.Project(id=ids.new_id(ids.PROJECT), workspace_id=who.workspace_id, name=cmd.name)
        try:
            async with self.db.session() as s:
                await lookup.ensure_room(
                    s, t.Project.workspace_id, who.workspace_id, MAX_PROJECTS_PER_WORKSPACE,
                    f"A workspace has at most {MAX_PROJECTS_PER_WORKSPACE} projects", "name")
                s.add(row)
        except IntegrityError as exc:
            raise Conflict("Project name already exists", code="name_taken") from exc
        return mapping.project(row, None, 0)

    async def update(self, who: Principal, cmd: UpdateProject) -> Project:
        if is_set(cmd.name):
            _check_name(cmd.name)
        if is_set(cmd.max_active_conversations):
            try:
                check_max_active(cmd.max_active_conversations)
            except ValueError as exc:
                raise ValidationFailed("Invalid parameters",
                                       {"max_active_conversations": str(exc)}) from exc
        try:
            async with self.db.session() as s:
                p = await lookup.project(s, who.workspace_id, cmd.name_or_id)
                if is_set(cmd.default_agent):
                    p.default_agent_id = await self._default_agent(s, p, cmd.default_agent)
                if is_set(cmd.max_active_conversations):
                    p.max_active_conversations = cmd.max_active_conversations
                if is_set(cmd.name):
                    p.name = cmd.name
                await s.flush()
                return await self._project(s, p)
        except IntegrityError as exc:
            raise Conflict("Project name already exists", code="name_taken") from exc

    async def _default_agent(self, s: AsyncSession, p: t.Project, name: str | None) -> str | None:
        if name is None:
            return None
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

    async def list_eval_prompts(self, who: Principal, name_or_id: str) -> list[EvalPrompt]:
        async with self.db.session() as s:
            p = await lookup.project(s, who.workspace_id, name_or_id)
            rows = await s.scalars(
                select(t.EvalPrompt).where(t.EvalPrompt.project_id == p.id)
                .order_by(t.EvalPrompt.created_at)
            )
            return [mapping.eval_prompt(r) for r in rows]

    async def create_eval_prompt(self, who: Principal, cmd: CreateEvalPrompt) -> EvalPrompt:
        async with self.db.session() as s:
            p = await lookup.project(s, who.workspace_id, cmd.project)
            await lookup.ensure_room(
                s, t.EvalPrompt.project_id, p.id, MAX_EVAL_PROMPTS_PER_PROJECT,
                f"A project has at most {MAX_EVAL_PROMPTS_PER_PROJECT} eval prompts", "name")
            row = t.EvalPrompt(id=ids.new_id(ids.EVAL_PROMPT), project_id=p.id,
                               name=cmd.spec.name, prompt=cmd.spec.prompt)
            s.add(row)
        return mapping.eval_prompt(row)


def _check_name(name: str) -> None:
    try:
        check_resource_name(name)
    except ValueError as exc:
        raise ValidationFailed(f"Invalid parameters: {exc}", {"name": str(exc)}) from exc
