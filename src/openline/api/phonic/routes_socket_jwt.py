"""``/v1/socket_jwt_keys``: Openline's own API for the keys that verify ``?jwt=`` sockets
(Phonic configures them in its dashboard; see ``services/socket_jwt.py``)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from openline.api.phonic.deps import Body, Svc, Who
from openline.api.phonic.params import CLEAN_PARAMETERS
from openline.api.phonic.schemas import body_doc
from openline.api.phonic.views import iso
from openline.services.hub import Services
from openline.services.socket_jwt import ALGORITHMS, JwtKey, SocketJwtService

router = APIRouter(tags=["socket_jwt_keys"], dependencies=[CLEAN_PARAMETERS])
_CREATE = {"type": "object", "required": ["issuer", "key"], "properties": {
    "issuer": {"type": "string", "description": "the `iss` your tokens carry"},
    "audience": {"type": "string", "description": "the `aud` they carry (default: openline)"},
    "algorithm": {"type": "string", "enum": list(ALGORITHMS), "default": "HS256"},
    "key": {"type": "string", "description": "HMAC secret, or a PEM public key"}}}


def _jwt(svc: Services) -> SocketJwtService:
    assert svc.socket_jwt is not None  # every built app has it
    return svc.socket_jwt


def key_json(key: JwtKey) -> dict[str, Any]:
    return {"id": key.id, "issuer": key.issuer, "audience": key.audience,
            "algorithm": key.algorithm, "created_at": iso(key.created_at)}


@router.post("/socket_jwt_keys", status_code=201, openapi_extra=body_doc(_CREATE))
async def register_key(svc: Svc, who: Who, body: Body) -> dict[str, Any]:
    """Register a verification key; its tokens then open ``/v1/sts/ws?jwt=``."""
    return key_json(await _jwt(svc).register(who, body))


@router.get("/socket_jwt_keys")
async def list_keys(svc: Svc, who: Who) -> dict[str, Any]:
    return {"socket_jwt_keys": [key_json(k) for k in await _jwt(svc).list_all(who)]}


@router.delete("/socket_jwt_keys/{key_id}")
async def delete_key(key_id: str, svc: Svc, who: Who) -> dict[str, Any]:
    await _jwt(svc).delete(who, key_id)
    return {"success": True}
