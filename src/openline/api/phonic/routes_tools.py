"""``/v1/tools`` and ``/v1/extraction_schemas``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from openline.api.phonic import schemas
from openline.api.phonic.deps import Body, ProjectParam, Svc, Who
from openline.api.phonic.openapi_doc import error_responses
from openline.api.phonic.params import CLEAN_PARAMETERS
from openline.api.phonic.schemas import body_doc
from openline.api.phonic.views import created_json, schema_json, tool_view
from openline.domain.extraction import ExtractionSchemaSpec
from openline.domain.tool import ToolSpec
from openline.services.commands import Key

router = APIRouter(dependencies=[CLEAN_PARAMETERS])


@router.get("/tools", tags=["tools"])
async def list_tools(svc: Svc, who: Who, project: ProjectParam = None) -> dict[str, Any]:
    return {"tools": [tool_view(t) for t in await svc.tools.list_all(who, project)]}


@router.post("/tools", status_code=201, tags=["tools"], openapi_extra=body_doc(ToolSpec),
             responses=error_responses(409))
async def create_tool(svc: Svc, who: Who, body: Body, project: ProjectParam = None
                      ) -> dict[str, Any]:
    return created_json(await svc.tools.create(who, schemas.tool_create(body, project)))


@router.get("/tools/{name_or_id}", tags=["tools"])
async def get_tool(name_or_id: str, svc: Svc, who: Who, project: ProjectParam = None
                   ) -> dict[str, Any]:
    return {"tool": tool_view(await svc.tools.get(who, project, name_or_id))}


@router.patch("/tools/{name_or_id}", tags=["tools"],
              openapi_extra=body_doc(ToolSpec, required=False), responses=error_responses(409))
async def update_tool(name_or_id: str, svc: Svc, who: Who, body: Body,
                      project: ProjectParam = None) -> dict[str, Any]:
    await svc.tools.update(who, schemas.tool_update(body, Key(name_or_id, project)))
    return {"success": True}


@router.delete("/tools/{name_or_id}", tags=["tools"])
async def delete_tool(name_or_id: str, svc: Svc, who: Who, project: ProjectParam = None
                      ) -> dict[str, Any]:
    await svc.tools.delete(who, project, name_or_id)
    return {"success": True}


@router.get("/extraction_schemas", tags=["extraction_schemas"])
async def list_schemas(svc: Svc, who: Who, project: ProjectParam = None) -> dict[str, Any]:
    schemas_ = await svc.schemas.list_all(who, project)
    return {"extraction_schemas": [schema_json(s) for s in schemas_]}


@router.post("/extraction_schemas", status_code=201, tags=["extraction_schemas"],
             openapi_extra=body_doc(ExtractionSchemaSpec), responses=error_responses(409))
async def create_schema(svc: Svc, who: Who, body: Body, project: ProjectParam = None
                        ) -> dict[str, Any]:
    return created_json(await svc.schemas.create(who, schemas.schema_create(body, project)))


@router.get("/extraction_schemas/{name_or_id}", tags=["extraction_schemas"])
async def get_schema(name_or_id: str, svc: Svc, who: Who, project: ProjectParam = None
                     ) -> dict[str, Any]:
    return {"extraction_schema": schema_json(await svc.schemas.get(who, project, name_or_id))}


@router.patch("/extraction_schemas/{name_or_id}", tags=["extraction_schemas"],
              openapi_extra=body_doc(ExtractionSchemaSpec, required=False),
              responses=error_responses(409))
async def update_schema(name_or_id: str, svc: Svc, who: Who, body: Body,
                        project: ProjectParam = None) -> dict[str, Any]:
    await svc.schemas.update(who, schemas.schema_update(body, Key(name_or_id, project)))
    return {"success": True}


@router.delete("/extraction_schemas/{name_or_id}", tags=["extraction_schemas"])
async def delete_schema(name_or_id: str, svc: Svc, who: Who, project: ProjectParam = None
                        ) -> dict[str, Any]:
    await svc.schemas.delete(who, project, name_or_id)
    return {"success": True}
