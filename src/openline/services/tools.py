"""Custom tools and extraction schemas: project-scoped named definitions."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from openline.domain import ids
from openline.domain.errors import Conflict, ValidationFailed
from openline.domain.extraction import ExtractionSchemaSpec
from openline.domain.tool import ToolSpec, tool_rule_errors, with_default_locations
from openline.domain.validation import param_errors_from, parse
from openline.services import lookup
from openline.services.principal import Principal
from openline.store import tables as t
from openline.store.db import Database
from openline.store.tables import utcnow

TOOL_TAKEN = "Tool name already exists"
SCHEMA_TAKEN = "Extraction schema name already exists"


@dataclass(frozen=True)
class ToolView:
    tool: t.Tool
    project: t.Project


def validate_tool(body: dict[str, Any], explicit: set[str]) -> ToolSpec:
    """Parse a tool body and apply the type-specific rules; all errors at once."""
    try:
        spec = ToolSpec.model_validate(body)
    except ValidationError as exc:
        errors = param_errors_from(exc)
        field, msg = next(iter(errors.items()))
        raise ValidationFailed(f"Invalid parameters: {field}: {msg}", errors) from exc
    errors = tool_rule_errors(spec, explicit)
    if errors:
        field, msg = next(iter(errors.items()))
        raise ValidationFailed(f"Invalid parameters: {field}: {msg}", errors)
    return with_default_locations(spec)


def _dump(spec: ToolSpec) -> dict[str, Any]:
    return spec.model_dump(mode="json")


class ToolService:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def list_all(self, who: Principal, project: str | None) -> list[ToolView]:
        async with self.db.session() as s:
            proj = await lookup.project(s, who.workspace_id, project)
            rows = await s.scalars(
                select(t.Tool).where(t.Tool.project_id == proj.id)
                .order_by(t.Tool.created_at, t.Tool.name)
            )
            return [ToolView(r, proj) for r in rows]

    async def get(self, who: Principal, project: str | None, name_or_id: str) -> ToolView:
        async with self.db.session() as s:
            return ToolView(*await lookup.tool(s, who.workspace_id, project, name_or_id))

    async def create(self, who: Principal, project: str | None, body: dict[str, Any]) -> t.Tool:
        spec = validate_tool(body, set(body))
        try:
            async with self.db.session() as s:
                proj = await lookup.project(s, who.workspace_id, project)
                await _check_transfer_agents(s, proj, spec)
                await lookup.ensure_name_free(s, t.Tool, proj.id, spec.name, None, TOOL_TAKEN)
                row = t.Tool(id=ids.new_id(ids.TOOL), project_id=proj.id, name=spec.name,
                             spec=_dump(spec))
                s.add(row)
        except IntegrityError as exc:
            raise Conflict(TOOL_TAKEN, code="name_taken") from exc
        return row

    async def update(
        self, who: Principal, project: str | None, name_or_id: str, patch: dict[str, Any]
    ) -> None:
        try:
            async with self.db.session() as s:
                row, proj = await lookup.tool(s, who.workspace_id, project, name_or_id)
                old = row.spec
                _check_relocation(old, patch)
                spec = validate_tool({**old, **patch}, set(patch))
                await _check_transfer_agents(s, proj, spec)
                if spec.name != row.name:
                    await lookup.ensure_name_free(s, t.Tool, proj.id, spec.name, row.id,
                                                  TOOL_TAKEN)
                    await _rename_in_agents(s, proj.id, row.name, spec.name)
                row.name, row.spec, row.updated_at = spec.name, _dump(spec), utcnow()
        except IntegrityError as exc:
            raise Conflict(TOOL_TAKEN, code="name_taken") from exc

    async def delete(self, who: Principal, project: str | None, name_or_id: str) -> None:
        async with self.db.session() as s:
            row, proj = await lookup.tool(s, who.workspace_id, project, name_or_id)
            await _rename_in_agents(s, proj.id, row.name, None)
            await s.delete(row)


def _check_relocation(old: dict[str, Any], patch: dict[str, Any]) -> None:
    """Changing ``type`` or ``endpoint_method`` needs every parameter's location re-sent."""
    moved = any(k in patch and patch[k] != old.get(k) for k in ("type", "endpoint_method"))
    merged = {**old, **patch}
    if not moved or merged.get("type") != "custom_webhook" or not merged.get("parameters"):
        return
    given = patch.get("parameters")
    if isinstance(given, list) and all(isinstance(p, dict) and p.get("location") for p in given):
        return
    if isinstance(given, dict) and isinstance(patch.get("parameter_locations"), dict):
        return
    raise ValidationFailed(
        "When changing type or endpoint_method, all parameters must include explicit location",
        {"parameters": "re-send every parameter with an explicit location"},
    )


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
        agent.spec = {**agent.spec, "tools": tools}
        agent.version_number += 1
        agent.updated_at = utcnow()
        s.add(t.AgentVersion(agent_id=agent.id, version_number=agent.version_number,
                             spec=agent.spec))


@dataclass(frozen=True)
class SchemaView:
    schema: t.ExtractionSchema
    project: t.Project


class ExtractionSchemaService:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def list_all(self, who: Principal, project: str | None) -> list[t.ExtractionSchema]:
        async with self.db.session() as s:
            proj = await lookup.project(s, who.workspace_id, project)
            rows = await s.scalars(
                select(t.ExtractionSchema).where(t.ExtractionSchema.project_id == proj.id)
                .order_by(t.ExtractionSchema.created_at, t.ExtractionSchema.name)
            )
            return list(rows)

    async def get(self, who: Principal, project: str | None, name_or_id: str) -> SchemaView:
        async with self.db.session() as s:
            return SchemaView(*await lookup.extraction_schema(
                s, who.workspace_id, project, name_or_id))

    async def create(
        self, who: Principal, project: str | None, body: dict[str, Any]
    ) -> t.ExtractionSchema:
        spec = parse(ExtractionSchemaSpec, body)
        try:
            async with self.db.session() as s:
                proj = await lookup.project(s, who.workspace_id, project)
                await lookup.ensure_name_free(s, t.ExtractionSchema, proj.id, spec.name, None,
                                              SCHEMA_TAKEN)
                row = t.ExtractionSchema(
                    id=ids.new_id(ids.EXTRACTION_SCHEMA), project_id=proj.id, name=spec.name,
                    spec=spec.model_dump(mode="json"),
                )
                s.add(row)
        except IntegrityError as exc:
            raise Conflict(SCHEMA_TAKEN, code="name_taken") from exc
        return row

    async def update(
        self, who: Principal, project: str | None, name_or_id: str, patch: dict[str, Any]
    ) -> None:
        try:
            async with self.db.session() as s:
                row, proj = await lookup.extraction_schema(s, who.workspace_id, project, name_or_id)
                spec = parse(ExtractionSchemaSpec, {**row.spec, **patch})
                if spec.name != row.name:
                    await lookup.ensure_name_free(s, t.ExtractionSchema, proj.id, spec.name,
                                                  row.id, SCHEMA_TAKEN)
                row.name, row.spec = spec.name, spec.model_dump(mode="json")
        except IntegrityError as exc:
            raise Conflict(SCHEMA_TAKEN, code="name_taken") from exc

    async def delete(self, who: Principal, project: str | None, name_or_id: str) -> None:
        async with self.db.session() as s:
            row, _ = await lookup.extraction_schema(s, who.workspace_id, project, name_or_id)
            await s.delete(row)
