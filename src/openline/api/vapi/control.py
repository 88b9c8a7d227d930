"""``monitor.controlUrl``: ``POST /call/{id}/control/{token}`` with a control message
(``say``, ``add-message``, ``control``, ``end-call``); the token is the credential."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from openline.api.phonic.deps import Svc, json_body
from openline.api.vapi.live_errors import vapi_error
from openline.domain.errors import NotFound, OpenlineError

router = APIRouter(tags=["vapi"])


@router.post("/call/{call_id}/control/{token}", response_model=None)
async def control(call_id: str, token: str, svc: Svc, request: Request) -> JSONResponse:
    calls = svc.vapi_calls
    try:
        if calls is None or not calls.token_valid(call_id, token):
            raise NotFound("Unknown call")
        message = await json_body(request)
        await calls.control(call_id, message)
    except OpenlineError as exc:
        return vapi_error(exc)
    return JSONResponse({"status": "ok", "type": message.get("type")})
