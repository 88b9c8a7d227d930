"""``/v1/tools`` and ``/v1/extraction_schemas``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from openline.api.phonic.deps import Body, ProjectParam, Svc, Who
from openline.api.phonic.schemas import body_doc
from openline.api.phonic.views import schema_json, tool_json
from openline.domain.extraction import ExtractionSchemaSpec
from openline.domain.tool import ToolSpec

router = APIRouter()


@router.get("/tools", tags=["tools"])
async def list_tools(svc: Svc, who: Who, project: ProjectParam = None) -> dict[str, Any]:
    return {"tools": [tool_json(v) for v in await svc.tools.list_all(who, project)]}


@router.post("/tools", status_code=201, tags=["tools"], openapi_extra=body_doc(ToolSpec))
async def create_tool(svc: Svc, who: Who, body: Body, project: ProjectParam = None
                      ) -> dict[str, Any]:
    row = await svc.tools.create(who, project, body)
    return {"id": row.id, "name": row.name}


@router.get("/tools/{name_or_id}", tags=["tools"])
async def get_tool(name_or_id: str, svc: Svc, who: Who, project: ProjectParam = None
                   ) -> dict[str, Any]:
    return {"tool": tool_json(await svc.tools.get(who, project, name_or_id))}


@router.patch("/tools/{name_or_id}", tags=["tools"],
              openapi_extra=body_doc(ToolSpec, required=False))
async def update_tool(name_or_id: str, svc: Svc, who: Who, body: Body,
                      project: ProjectParam = None) -> dict[str, Any]:
    await svc.tools.update(who, project, name_or_id, body)
    return {"success": True}


@router.delete("/tools/{name_or_id}", tags=["tools"])
async def delete_tool(name_or_id: str, svc: Svc, who: Who, project: ProjectParam = None
                      ) -> dict[str, Any]:
    await svc.tools.delete(who, project, name_or_id)
    return {"success": True}


@router.get("/extraction_schemas", tags=["extraction_schemas"])
async def list_schemas(svc: Svc, who: Who, project: ProjectParam = None) -> dict[str, Any]:
    rows = await svc.schemas.list_all(who, project)
    return {"extraction_schemas": [schema_json(r) for r in rows]}


@router.post("/extraction_schemas", status_code=201, tags=["extraction_schemas"],
             openapi_extra=body_doc(ExtractionSchemaSpec))
async def create_schema(svc: Svc, who: Who, body: Body, project: ProjectParam = None
                        ) -> dict[str, Any]:
    row = await svc.schemas.create(who, project, body)
    return {"id": row.id, "name": row.name}


@router.get("/extraction_schemas/{name_or_id}", tags=["extraction_schemas"])
async def get_schema(name_or_id: str, svc: Svc, who: Who, project: ProjectParam = None
                     ) -> dict[str, Any]:
    view = await svc.schemas.get(who, project, name_or_id)
    return {"extraction_schema": schema_json(view.schema)}


@router.patch("/extraction_schemas/{name_or_id}", tags=["extraction_schemas"],
              openapi_extra=body_doc(ExtractionSchemaSpec, required=False))
async def update_schema(name_or_id: str, svc: Svc, who: Who, body: Body,
                        project: ProjectParam = None) -> dict[str, Any]:
    await svc.schemas.update(who, project, name_or_id, body)
    return {"success": True}


@router.delete("/extraction_schemas/{name_or_id}", tags=["extraction_schemas"])
async def delete_schema(name_or_id: str, svc: Svc, who: Who, project: ProjectParam = None
                        ) -> dict[str, Any]:
    await svc.schemas.delete(who, project, name_or_id)
    return {"success": True}
