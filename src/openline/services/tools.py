"""Custom tools and extraction schemas: project-scoped named definitions."""

from __future__ import annotations

import dataclasses

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from openline.domain import ids
from openline.domain.errors import Conflict, ValidationFailed
from openline.domain.extraction import (
    ExtractionSchema,
    ExtractionSchemaSpec,
    apply_schema_changes,
)
from openline.domain.limits import MAX_SCHEMAS_PER_PROJECT, MAX_TOOLS_PER_PROJECT
from openline.domain.tool import Tool, ToolSpec, validated
from openline.domain.tool_changes import ToolChanges, apply_tool_changes
from openline.services import lookup, mapping
from openline.services.commands import (
    CreateExtractionSchema,
    CreateTool,
    UpdateExtractionSchema,
    UpdateTool,
)
from openline.services.masking import keep_masked
from openline.services.principal import Principal
from openline.services.url_safety import UnsafeUrl, validate_url
from openline.store import tables as t
from openline.store.db import Database
from openline.store.tables import utcnow

TOOL_TAKEN = "Tool name already exists"
SCHEMA_TAKEN = "Extraction schema name already exists"


class ToolService:
    def __init__(self, db: Database, *, allow_private_urls: bool = False) -> None:
        self.db = db
        self.allow_private_urls = allow_private_urls

    def _check_endpoint(self, spec: ToolSpec) -> None:
        """A webhook tool's URL is vetted when it is stored, not only when it is called."""
        if not spec.endpoint_url:
            return
        try:  # placeholders ({id}) are filled per call: check the URL around them
            validate_url(spec.endpoint_url.replace("{", "").replace("}", ""),
                         allow_private=self.allow_private_urls)
        except UnsafeUrl as exc:
            raise ValidationFailed(f"Invalid parameters: endpoint_url: {exc}",
                                   {"endpoint_url": str(exc)}, code="unsafe_url") from exc

    async def list_all(self, who: Principal, project: str | None) -> list[Tool]:
        async with self.db.session() as s:
            proj = await lookup.project(s, who.workspace_id, project)
            rows = await s.scalars(
                select(t.Tool).where(t.Tool.project_id == proj.id)
                .order_by(t.Tool.created_at, t.Tool.name)
            )
            return [mapping.tool(r, proj) for r in rows]

    async def get(self, who: Principal, project: str | None, name_or_id: str) -> Tool:
        async with self.db.session() as s:
            return mapping.tool(*await lookup.tool(s, who.workspace_id, project, name_or_id))

    async def create(self, who: Principal, cmd: CreateTool) -> Tool:
        spec = validated(cmd.spec)
        self._check_endpoint(spec)
        try:
            async with self.db.session() as s:
                proj = await lookup.project(s, who.workspace_id, cmd.project)
                await _check_transfer_agents(s, proj, spec)
                await lookup.ensure_name_free(s, t.Tool, proj.id, spec.name, None, TOOL_TAKEN)
                await lookup.ensure_room(
                    s, t.Tool.project_id, proj.id, MAX_TOOLS_PER_PROJECT,
                    f"A project has at most {MAX_TOOLS_PER_PROJECT} tools", "project")
                row = t.Tool(id=ids.new_id(ids.TOOL), project_id=proj.id, name=spec.name,
                             spec=mapping.dump_spec(spec))
                s.add(row)
        except IntegrityError as exc:
            raise Conflict(TOOL_TAKEN, code="name_taken") from exc
        return mapping.tool(row, proj)

    async def update(self, who: Principal, cmd: UpdateTool) -> Tool:
        try:
            async with self.db.session() as s:
                row, proj = await lookup.tool(s, who.workspace_id, cmd.key.project,
                                              cmd.key.name_or_id)
                old = mapping.load_spec(ToolSpec, row.spec)
                spec = apply_tool_changes(old, _keep_masked_headers(cmd.changes, old))
                self._check_endpoint(spec)
                await _check_transfer_agents(s, proj, spec)
                if spec.name != row.name:
                    await lookup.ensure_name_free(s, t.Tool, proj.id, spec.name, row.id,
                                                  TOOL_TAKEN)
                    await _rename_in_agents(s, proj.id, row.name, spec.name)
                row.name, row.spec, row.updated_at = spec.name, mapping.dump_spec(spec), utcnow()
        except IntegrityError as exc:
            raise Conflict(TOOL_TAKEN, code="name_taken") from exc
        return mapping.tool(row, proj)

    async def delete(self, who: Principal, project: str | None, name_or_id: str) -> None:
        async with self.db.session() as s:
            row, proj = await lookup.tool(s, who.workspace_id, project, name_or_id)
            await _rename_in_agents(s, proj.id, row.name, None)
            await s.delete(row)


def _keep_masked_headers(changes: ToolChanges, old: ToolSpec) -> ToolChanges:
    """Header values sent back masked (as a read shows them) keep the stored secrets."""
    if not isinstance(changes.endpoint_headers, dict):
        return changes
    return dataclasses.replace(
        changes, endpoint_headers=keep_masked(changes.endpoint_headers, old.endpoint_headers))


async def _check_transfer_agents(s: AsyncSession, proj: t.Project, spec: ToolSpec) -> None:
    names = spec.agents_to_transfer_to or []
    if not names:
        return
    found = set(await s.scalars(
        select(t.Agent.name).where(t.Agent.project_id == proj.id, t.Agent.name.in_(names))
    ))
    missing = [n for n in names if n not in found]
    if missing:
        raise ValidationFailed(
            f"Unknown agents: {', '.join(missing)}",
            {"agents_to_transfer_to": f"no such agent in this project: {', '.join(missing)}"},
        )


async def _rename_in_agents(s: AsyncSession, project_id: str, old: str, new: str | None) -> None:
    """Keep agents' ``tools`` lists pointing at real tools after a rename or delete."""
    agents = await s.scalars(select(t.Agent).where(t.Agent.project_id == project_id))
    for agent in agents:
        tools = list(agent.spec.get("tools") or [])
        if old not in tools:
            continue
        tools = [new if n == old else n for n in tools if new is not None or n != old]
        # The stored document changes in one key only: the rest stays byte-for-byte.
        agent.spec = {**agent.spec, "tools": tools}
        agent.version_number += 1
        agent.updated_at = utcnow()
        s.add(t.AgentVersion(agent_id=agent.id, version_number=agent.version_number,
                             spec=agent.spec))


class ExtractionSchemaService:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def list_all(self, who: Principal, project: str | None) -> list[ExtractionSchema]:
        async with self.db.session() as s:
            proj = await lookup.project(s, who.workspace_id, project)
            rows = await s.scalars(
                select(t.ExtractionSchema).where(t.ExtractionSchema.project_id == proj.id)
                .order_by(t.ExtractionSchema.created_at, t.ExtractionSchema.name)
            )
            return [mapping.extraction_schema(r, proj) for r in rows]

    async def get(self, who: Principal, project: str | None,
                  name_or_id: str) -> ExtractionSchema:
        async with self.db.session() as s:
            return mapping.extraction_schema(*await lookup.extraction_schema(
                s, who.workspace_id, project, name_or_id))

    async def create(self, who: Principal, cmd: CreateExtractionSchema) -> ExtractionSchema:
        spec = cmd.spec
        try:
            async with self.db.session() as s:
                proj = await lookup.project(s, who.workspace_id, cmd.project)
                await lookup.ensure_name_free(s, t.ExtractionSchema, proj.id, spec.name, None,
                                              SCHEMA_TAKEN)
                await lookup.ensure_room(
                    s, t.ExtractionSchema.project_id, proj.id, MAX_SCHEMAS_PER_PROJECT,
                    f"A project has at most {MAX_SCHEMAS_PER_PROJECT} extraction schemas",
                    "project")
                row = t.ExtractionSchema(
                    id=ids.new_id(ids.EXTRACTION_SCHEMA), project_id=proj.id, name=spec.name,
                    spec=mapping.dump_spec(spec),
                )
                s.add(row)
        except IntegrityError as exc:
            raise Conflict(SCHEMA_TAKEN, code="name_taken") from exc
        return mapping.extraction_schema(row, proj)

    async def update(self, who: Principal, cmd: UpdateExtractionSchema) -> ExtractionSchema:
        try:
            async with self.db.session() as s:
                row, proj = await lookup.extraction_schema(s, who.workspace_id, cmd.key.project,
                                                           cmd.key.name_or_id)
                old = mapping.load_spec(ExtractionSchemaSpec, row.spec)
                spec = apply_schema_changes(old, cmd.changes)
                if spec.name != row.name:
                    await lookup.ensure_name_free(s, t.ExtractionSchema, proj.id, spec.name,
                                                  row.id, SCHEMA_TAKEN)
                row.name, row.spec = spec.name, mapping.dump_spec(spec)
        except IntegrityError as exc:
            raise Conflict(SCHEMA_TAKEN, code="name_taken") from exc
        return mapping.extraction_schema(row, proj)

    async def delete(self, who: Principal, project: str | None, name_or_id: str) -> None:
        async with self.db.session() as s:
            row, _ = await lookup.extraction_schema(s, who.workspace_id, project, name_or_id)
            await s.delete(row)
