"""``/assistant``: Vapi assistants, which are Openline agents (``services/vapi/assistants``)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from openline.api.phonic.params import CLEAN_PARAMETERS
from openline.api.vapi.deps import Body, Filters, Vapi, Who
from openline.api.vapi.routing import VapiRoute

router = APIRouter(tags=["vapi: assistants"], route_class=VapiRoute,
                   dependencies=[CLEAN_PARAMETERS])


@router.get("/assistant")
async def list_assistants(vapi: Vapi, who: Who, q: Filters) -> list[dict[str, Any]]:
    return [a.json() for a in await vapi.assistants.list_all(who, q)]


@router.post("/assistant", status_code=201)
async def create_assistant(vapi: Vapi, who: Who, body: Body) -> dict[str, Any]:
    return (await vapi.assistants.create(who, body)).json()


@router.get("/assistant/{assistant_id}")
async def get_assistant(assistant_id: str, vapi: Vapi, who: Who) -> dict[str, Any]:
    return (await vapi.assistants.get(who, assistant_id)).json()


@router.patch("/assistant/{assistant_id}")
async def update_assistant(assistant_id: str, vapi: Vapi, who: Who,
                           body: Body) -> dict[str, Any]:
    return (await vapi.assistants.update(who, assistant_id, body)).json()


@router.delete("/assistant/{assistant_id}")
async def delete_assistant(assistant_id: str, vapi: Vapi, who: Who) -> dict[str, Any]:
    return (await vapi.assistants.delete(who, assistant_id)).json()
