"""``/v1/agents``: CRUD, upsert, enable/disable and phone numbers."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header

from openline.api.phonic import schemas
from openline.api.phonic.deps import Body, ProjectParam, Svc, Who
from openline.api.phonic.openapi_doc import error_responses
from openline.api.phonic.params import CLEAN_PARAMETERS
from openline.api.phonic.schemas import body_doc
from openline.api.phonic.views import agent_json, created_json
from openline.domain.agent import AgentSpec
from openline.services.commands import Key

router = APIRouter(tags=["agents"], dependencies=[CLEAN_PARAMETERS])
_NUMBER = {"type": "object", "required": ["phone_number"], "properties": {
    "phone_number": {"type": "string"},
    "configuration_endpoint": {"$ref": "#/components/schemas/ConfigurationEndpoint"},
    "sip": {"type": "object", "properties": {
        "transport": {"enum": ["auto", "udp", "tcp", "tls"]},
        "media_encryption": {"enum": ["disabled", "allowed", "required"]}}}}}


@router.get("/agents")
async def list_agents(svc: Svc, who: Who, project: ProjectParam = None) -> dict[str, Any]:
    return {"agents": [agent_json(a) for a in await svc.agents.list_all(who, project)]}


@router.post("/agents", status_code=201, openapi_extra=body_doc(AgentSpec),
             responses=error_responses(409))
async def create_agent(svc: Svc, who: Who, body: Body, project: ProjectParam = None
                       ) -> dict[str, Any]:
    agent = await svc.agents.create(who, schemas.agent_create(body, project))
    return created_json(agent)


@router.put("/agents/upsert", openapi_extra=body_doc(AgentSpec),
            responses=error_responses(409))
async def upsert_agent(svc: Svc, who: Who, body: Body, project: ProjectParam = None
                       ) -> dict[str, Any]:
    result = await svc.agents.upsert(who, schemas.agent_create(body, project))
    return {"agent": agent_json(result.agent), "inserted": result.inserted,
            "updated": result.updated}


@router.get("/agents/{name_or_id}")
async def get_agent(name_or_id: str, svc: Svc, who: Who, project: ProjectParam = None
                    ) -> dict[str, Any]:
    return {"agent": agent_json(await svc.agents.get(who, project, name_or_id))}


@router.patch("/agents/{name_or_id}", openapi_extra=body_doc(AgentSpec, required=False),
              responses=error_responses(409))
async def update_agent(name_or_id: str, svc: Svc, who: Who, body: Body,
                       project: ProjectParam = None) -> dict[str, Any]:
    agent = await svc.agents.update(who, schemas.agent_update(body, Key(name_or_id, project)))
    return {"success": True, "version_number": agent.version_number,
            "agent": agent_json(agent)}


@router.delete("/agents/{name_or_id}")
async def delete_agent(name_or_id: str, svc: Svc, who: Who, project: ProjectParam = None
                       ) -> dict[str, Any]:
    await svc.agents.delete(who, project, name_or_id)
    return {"success": True}


@router.post("/agents/{name_or_id}/disable")
async def disable_agent(name_or_id: str, svc: Svc, who: Who, project: ProjectParam = None
                        ) -> dict[str, Any]:
    await svc.agents.set_disabled(who, project, name_or_id, True)
    return {"success": True}


@router.post("/agents/{name_or_id}/enable")
async def enable_agent(name_or_id: str, svc: Svc, who: Who, project: ProjectParam = None
                       ) -> dict[str, Any]:
    await svc.agents.set_disabled(who, project, name_or_id, False)
    return {"success": True}


@router.post("/agents/{name_or_id}/custom-phone-numbers", openapi_extra=body_doc(_NUMBER),
             responses=error_responses(409))
async def add_custom_phone_number(
    name_or_id: str, svc: Svc, who: Who, body: Body, project: ProjectParam = None,
    x_sip_address: Annotated[str | None, Header()] = None,
    x_sip_auth_username: Annotated[str | None, Header()] = None,
    x_sip_auth_password: Annotated[str | None, Header()] = None,
) -> dict[str, Any]:
    cmd = schemas.custom_number(body, Key(name_or_id, project), x_sip_address,
                                x_sip_auth_username, x_sip_auth_password)
    await svc.agents.add_custom_number(who, cmd)
    return {"success": True}


@router.delete("/agents/{name_or_id}/custom-phone-numbers", openapi_extra=body_doc(_NUMBER))
async def delete_custom_phone_number(name_or_id: str, svc: Svc, who: Who, body: Body,
                                     project: ProjectParam = None) -> dict[str, Any]:
    await svc.agents.remove_custom_number(
        who, schemas.number_removal(body, Key(name_or_id, project)))
    return {"success": True}


@router.patch("/agents/{name_or_id}/phone-numbers", openapi_extra=body_doc(_NUMBER))
async def update_phone_number(name_or_id: str, svc: Svc, who: Who, body: Body,
                              project: ProjectParam = None) -> dict[str, Any]:
    await svc.agents.update_number(who, schemas.number_update(body, Key(name_or_id, project)))
    return {"success": True}
