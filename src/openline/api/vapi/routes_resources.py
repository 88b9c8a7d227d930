"""``/tool``, ``/squad``, ``/phone-number`` and the legacy ``/block``: plain CRUD with Vapi's
list filters; each resource's meaning lives in ``services/vapi``."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query

from openline.api.phonic.params import CLEAN_PARAMETERS
from openline.api.vapi.deps import Body, Filters, Vapi, Who, parse_limit
from openline.api.vapi.routing import VapiRoute
from openline.domain.errors import ValidationFailed
from openline.services.vapi.blocks import KIND as BLOCK
from openline.services.vapi.blocks import check_block
from openline.services.vapi.call_view import iso
from openline.services.vapi.docs import MAX_LIMIT, Doc, ListQuery
from openline.services.vapi.phone_numbers import number_json
from openline.services.vapi.squads import squad_json
from openline.services.vapi.tools import tool_json

router = APIRouter(tags=["vapi: resources"], route_class=VapiRoute,
                   dependencies=[CLEAN_PARAMETERS])


# --- tools -----------------------------------------------------------------------------------

@router.get("/tool")
async def list_tools(vapi: Vapi, who: Who, q: Filters) -> list[dict[str, Any]]:
    return [tool_json(d, who.workspace_id) for d in await vapi.tools.list_all(who, q)]


@router.post("/tool", status_code=201)
async def create_tool(vapi: Vapi, who: Who, body: Body) -> dict[str, Any]:
    return tool_json(await vapi.tools.create(who, body), who.workspace_id)


@router.get("/tool/{tool_id}")
async def get_tool(tool_id: str, vapi: Vapi, who: Who) -> dict[str, Any]:
    return tool_json(await vapi.tools.get(who, tool_id), who.workspace_id)


@router.patch("/tool/{tool_id}")
async def update_tool(tool_id: str, vapi: Vapi, who: Who, body: Body) -> dict[str, Any]:
    return tool_json(await vapi.tools.update(who, tool_id, body), who.workspace_id)


@router.delete("/tool/{tool_id}")
async def delete_tool(tool_id: str, vapi: Vapi, who: Who) -> dict[str, Any]:
    return tool_json(await vapi.tools.delete(who, tool_id), who.workspace_id)


# --- squads ----------------------------------------------------------------------------------

@router.get("/squad")
async def list_squads(vapi: Vapi, who: Who, q: Filters,
                      id_any: Annotated[list[str] | None, Query(alias="idAny")] = None,
                      ) -> list[dict[str, Any]]:
    query = ListQuery(q.limit, q.created, q.updated, tuple(id_any or ()))
    return [squad_json(d, who.workspace_id) for d in await vapi.squads.list_all(who, query)]


@router.post("/squad", status_code=201)
async def create_squad(vapi: Vapi, who: Who, body: Body) -> dict[str, Any]:
    return squad_json(await vapi.squads.create(who, body), who.workspace_id)


@router.get("/squad/{squad_id}")
async def get_squad(squad_id: str, vapi: Vapi, who: Who) -> dict[str, Any]:
    return squad_json(await vapi.squads.get(who, squad_id), who.workspace_id)


@router.patch("/squad/{squad_id}")
async def update_squad(squad_id: str, vapi: Vapi, who: Who, body: Body) -> dict[str, Any]:
    return squad_json(await vapi.squads.update(who, squad_id, body), who.workspace_id)


@router.delete("/squad/{squad_id}")
async def delete_squad(squad_id: str, vapi: Vapi, who: Who) -> dict[str, Any]:
    return squad_json(await vapi.squads.delete(who, squad_id), who.workspace_id)


# --- phone numbers ---------------------------------------------------------------------------

@router.get("/phone-number")
async def list_numbers(vapi: Vapi, who: Who, q: Filters) -> list[dict[str, Any]]:
    return [number_json(d, who.workspace_id)
            for d in await vapi.phone_numbers.list_all(who, q)]


@router.get("/v2/phone-number")
async def list_numbers_paginated(
    vapi: Vapi, who: Who, q: Filters, search: Annotated[str | None, Query()] = None,
    page: Annotated[str | None, Query()] = None,
    sort_order: Annotated[Literal["ASC", "DESC"] | None, Query(alias="sortOrder")] = None,
    sort_by: Annotated[Literal["createdAt", "duration", "cost"] | None,
                       Query(alias="sortBy")] = None,
) -> dict[str, Any]:
    """``{results, metadata}``; ``search`` matches name, number or SIP URI (any case).
    Numbers cost nothing and have no duration here, so every ``sortBy`` sorts by creation."""
    number = parse_limit(page, 1)
    if number < 1:
        raise ValidationFailed("page must be at least 1", {"page": "at least 1"})
    found = await vapi.phone_numbers.list_all(who, ListQuery(MAX_LIMIT, q.created, q.updated))
    if search:
        needle = search.lower()
        found = [d for d in found if any(needle in str(d.doc.get(k) or "").lower()
                                         for k in ("name", "number", "sipUri"))]
    if sort_order == "ASC":
        found.reverse()
    size = q.limit
    results = [number_json(d, who.workspace_id)
               for d in found[(number - 1) * size:number * size]] if size else []
    pages = -(-len(found) // size) if size else 0
    return {"results": results, "metadata": {
        "itemsPerPage": size, "totalItems": len(found), "currentPage": number,
        "totalPages": pages, "hasNextPage": number < pages, "sortOrder": sort_order or "DESC"}}


@router.post("/phone-number", status_code=201)
async def create_number(vapi: Vapi, who: Who, body: Body) -> dict[str, Any]:
    return number_json(await vapi.phone_numbers.create(who, body), who.workspace_id)


@router.get("/phone-number/{number_id}")
async def get_number(number_id: str, vapi: Vapi, who: Who) -> dict[str, Any]:
    return number_json(await vapi.phone_numbers.get(who, number_id), who.workspace_id)


@router.patch("/phone-number/{number_id}")
async def update_number(number_id: str, vapi: Vapi, who: Who, body: Body) -> dict[str, Any]:
    return number_json(await vapi.phone_numbers.update(who, number_id, body),
                       who.workspace_id)


@router.delete("/phone-number/{number_id}")
async def delete_number(number_id: str, vapi: Vapi, who: Who) -> dict[str, Any]:
    return number_json(await vapi.phone_numbers.delete(who, number_id), who.workspace_id)


# --- blocks (SDK 0.1.0-0.4.x) ----------------------------------------------------------------

def _block(d: Doc, org_id: str) -> dict[str, Any]:
    return {**d.doc, "id": d.id, "orgId": org_id, "createdAt": iso(d.created_at),
            "updatedAt": iso(d.updated_at)}


@router.get("/block")
async def list_blocks(vapi: Vapi, who: Who, q: Filters) -> list[dict[str, Any]]:
    return [_block(d, who.workspace_id) for d in await vapi.docs.list_all(who, BLOCK, q)]


@router.post("/block", status_code=201)
async def create_block(vapi: Vapi, who: Who, body: Body) -> dict[str, Any]:
    check_block(body)
    return _block(await vapi.docs.create(who, BLOCK, body), who.workspace_id)


@router.get("/block/{block_id}")
async def get_block(block_id: str, vapi: Vapi, who: Who) -> dict[str, Any]:
    return _block(await vapi.docs.get(who, BLOCK, block_id), who.workspace_id)


@router.patch("/block/{block_id}")
async def update_block(block_id: str, vapi: Vapi, who: Who, body: Body) -> dict[str, Any]:
    current = await vapi.docs.get(who, BLOCK, block_id)
    check_block(body, current_type=str(current.doc.get("type")))
    doc = await vapi.docs.replace(who, BLOCK, block_id, {**current.doc, **body})
    return _block(doc, who.workspace_id)


@router.delete("/block/{block_id}")
async def delete_block(block_id: str, vapi: Vapi, who: Who) -> dict[str, Any]:
    return _block(await vapi.docs.delete(who, BLOCK, block_id), who.workspace_id)
