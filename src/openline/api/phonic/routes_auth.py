"""``/v1/auth`` tokens, ``/v1/api_keys`` and ``/v1/workspace``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from openline.api.phonic import schemas
from openline.api.phonic.deps import Body, Svc, Who
from openline.api.phonic.openapi_doc import error_responses
from openline.api.phonic.params import CLEAN_PARAMETERS
from openline.api.phonic.schemas import body_doc
from openline.api.phonic.views import iso
from openline.domain.errors import Forbidden, ValidationFailed
from openline.domain.limits import MAX_SHORT_CHARS

router = APIRouter(dependencies=[CLEAN_PARAMETERS])
_SESSION = {"type": "object", "properties": {
    "ttl_seconds": {"type": "integer", "minimum": 60, "maximum": 3600, "default": 300},
    "conversation_ids": {"type": "array", "items": {"type": "string"}}}}
_CONVERSATION = {"type": "object", "required": ["agent_id"], "properties": {
    "agent_id": {"type": "string"},
    "ttl_seconds": {"type": "integer", "minimum": 30, "maximum": 60, "default": 30}}}
_NAME = {"type": "object", "required": ["name"], "properties": {"name": {"type": "string"}}}
_WORKSPACE = {"type": "object", "properties": {
    "logo_url": {"type": ["string", "null"]},
    "invite_link_allowed_domains": {"type": "array", "items": {"type": "string"}},
    "ip_allowlist": {"type": "array", "items": {"type": "string"}}}}


@router.post("/auth/session_token", tags=["auth"], openapi_extra=body_doc(_SESSION, required=False))
async def create_session_token(svc: Svc, who: Who, body: Body) -> dict[str, Any]:
    ids = body.get("conversation_ids")
    if ids is not None and not (isinstance(ids, list) and all(isinstance(i, str) for i in ids)):
        raise ValidationFailed("Invalid conversation_ids",
                               {"conversation_ids": "must be a list of conversation IDs"})
    ids = schemas.string_list(body, "conversation_ids")
    token = await svc.auth.create_session_token(who, body.get("ttl_seconds"), ids)
    return {"session_token": token.token, "expires_at": iso(token.expires_at)}


@router.post("/auth/conversation_token", tags=["auth"], openapi_extra=body_doc(_CONVERSATION),
             responses=error_responses(404))
async def create_conversation_token(svc: Svc, who: Who, body: Body) -> dict[str, Any]:
    agent_id = body.get("agent_id")
    if not isinstance(agent_id, str) or not agent_id:
        raise ValidationFailed("agent_id is required", {"agent_id": "required"})
    schemas.check_text_fields(body, {"agent_id": MAX_SHORT_CHARS})
    token = await svc.auth.create_conversation_token(who, agent_id, body.get("ttl_seconds"))
    return {"conversation_token": token.token, "expires_at": iso(token.expires_at)}


def _api_key_only(who: Any) -> None:
    if not who.is_api_key:
        raise Forbidden("Only API keys can manage API keys")


def _name(body: dict[str, Any]) -> str:
    return schemas.key_name(body)


@router.post("/api_keys", status_code=201, tags=["api_keys"], openapi_extra=body_doc(_NAME))
async def create_api_key(svc: Svc, who: Who, body: Body) -> dict[str, Any]:
    _api_key_only(who)
    key = await svc.auth.create_key(who.workspace_id, _name(body))
    return {"id": key.id, "name": key.name, "api_key": key.secret}


@router.patch("/api_keys/{key_id}", tags=["api_keys"], openapi_extra=body_doc(_NAME))
async def rename_api_key(key_id: str, svc: Svc, who: Who, body: Body) -> dict[str, Any]:
    _api_key_only(who)
    await svc.auth.rename_key(who.workspace_id, key_id, _name(body))
    return {"success": True}


@router.delete("/api_keys/{key_id}", tags=["api_keys"])
async def delete_api_key(key_id: str, svc: Svc, who: Who) -> dict[str, Any]:
    _api_key_only(who)
    await svc.auth.revoke_key(who.workspace_id, key_id)
    return {"success": True}


@router.post("/api_keys/{key_id}/rotate", tags=["api_keys"])
async def rotate_api_key(key_id: str, svc: Svc, who: Who) -> dict[str, Any]:
    _api_key_only(who)
    key = await svc.auth.rotate_key(who.workspace_id, key_id)
    return {"id": key.id, "name": key.name, "api_key": key.secret}


@router.get("/workspace", tags=["workspace"])
async def get_workspace(svc: Svc, who: Who) -> dict[str, Any]:
    return await svc.auth.workspace_info(who.workspace_id)


@router.patch("/workspace", tags=["workspace"], openapi_extra=body_doc(_WORKSPACE))
async def update_workspace(svc: Svc, who: Who, body: Body) -> dict[str, Any]:
    await svc.auth.update_workspace(who.workspace_id, schemas.workspace_update(body))
    return {"success": True}
