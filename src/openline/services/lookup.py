"""Name-or-ID resolution inside a workspace, shared by every resource service."""

from __future__ import annotations

from typing import TypeVar

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from openline.domain.errors import Conflict, NotFound, ValidationFailed
from openline.store import tables as t

DEFAULT_PROJECT = "main"

Row = TypeVar("Row", t.Agent, t.Tool, t.ExtractionSchema)


async def project(s: AsyncSession, workspace_id: str, name_or_id: str | None) -> t.Project:
    """A project by ID, or by name (default ``main``); 404 otherwise."""
    key = name_or_id or DEFAULT_PROJECT
    column = t.Project.id if key.startswith("proj_") else t.Project.name
    row = await s.scalar(
        select(t.Project).where(t.Project.workspace_id == workspace_id, column == key)
    )
    if row is None:
        raise NotFound("Project not found")
    return row


async def in_project(
    s: AsyncSession,
    model: type[Row],
    id_prefix: str,
    what: str,
    workspace_id: str,
    project_name: str | None,
    name_or_id: str,
) -> tuple[Row, t.Project]:
    """A project-scoped row by ID (anywhere in the workspace) or by name (in ``project``)."""
    if name_or_id.startswith(id_prefix + "_"):
        hit = (await s.execute(
            select(model, t.Project)
            .join(t.Project, t.Project.id == model.project_id)
            .where(model.id == name_or_id, t.Project.workspace_id == workspace_id)
        )).first()
        if hit is None:
            raise NotFound(f"{what} not found")
        return hit[0], hit[1]
    proj = await project(s, workspace_id, project_name)
    row = await s.scalar(select(model).where(model.project_id == proj.id, model.name == name_or_id))
    if row is None:
        raise NotFound(f"{what} not found")
    return row, proj


async def ensure_name_free(
    s: AsyncSession, model: type[Row], project_id: str, name: str, own_id: str | None,
    message: str,
) -> None:
    """409 ``name_taken`` when another row of ``model`` in the project has ``name``."""
    other = await s.scalar(
        select(model.id).where(model.project_id == project_id, model.name == name)
    )
    if other is not None and other != own_id:
        raise Conflict(message, code="name_taken")


async def agent(
    s: AsyncSession, workspace_id: str, project_name: str | None, name_or_id: str
) -> tuple[t.Agent, t.Project]:
    return await in_project(s, t.Agent, "agent", "Agent", workspace_id, project_name, name_or_id)


async def tool(
    s: AsyncSession, workspace_id: str, project_name: str | None, name_or_id: str
) -> tuple[t.Tool, t.Project]:
    return await in_project(s, t.Tool, "tool", "Tool", workspace_id, project_name, name_or_id)


async def extraction_schema(
    s: AsyncSession, workspace_id: str, project_name: str | None, name_or_id: str
) -> tuple[t.ExtractionSchema, t.Project]:
    return await in_project(
        s, t.ExtractionSchema, "conv_extract_schema", "Extraction schema",
        workspace_id, project_name, name_or_id,
    )


async def ensure_room(s: AsyncSession, column: InstrumentedAttribute[str], owner: str,
                      limit: int, message: str, param: str) -> None:
    """At most ``limit`` rows with ``column == owner``, so that listing them stays bounded.

    Two creates racing at the limit may both pass: the bound is then exceeded by the
    concurrent creates, not without limit."""
    count = await s.scalar(select(func.count()).where(column == owner))
    if (count or 0) >= limit:
        raise ValidationFailed(message, {param: message}, code="limit_reached")
