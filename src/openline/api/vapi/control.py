"""``monitor.controlUrl``: ``POST /call/{id}/control/{token}`` with a control message
(``say``, ``add-message``, ``control``, ``end-call``); the token is the credential."""

from __future__ import annotations

from fastapi import APIRouter

from openline.api.phonic.deps import Svc
from openline.api.vapi.deps import Body
from openline.api.vapi.routing import VapiRoute
from openline.domain.errors import NotFound

router = APIRouter(tags=["vapi: calls"], route_class=VapiRoute)


@router.post("/call/{call_id}/control/{token}")
async def control(call_id: str, token: str, svc: Svc, body: Body) -> dict[str, str]:
    calls = svc.vapi_calls
    if calls is None or not calls.token_valid(call_id, token):
        raise NotFound("Call not found")
    await calls.control(call_id, body)
    return {"status": "ok", "type": str(body.get("type"))}
