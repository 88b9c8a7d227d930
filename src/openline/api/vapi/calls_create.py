"""``POST /call``: create a Vapi call (a ``vapi.websocket`` call, or an outbound phone
call for ``customer.number``); 201 with the ``Call``."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from openline.api.phonic.deps import Svc, get_principal, json_body
from openline.api.vapi.live_errors import vapi_error
from openline.domain.errors import OpenlineError, ValidationFailed

router = APIRouter(tags=["vapi"])


@router.post("/call", response_model=None)
async def create_call(svc: Svc, request: Request) -> JSONResponse:
    """Refusals are 400/404 in Vapi's error shape and change nothing."""
    try:
        who = await get_principal(request, svc)
        body = await json_body(request)
        if svc.vapi_calls is None:
            raise ValidationFailed("Vapi calls are not available on this server")
        call = await svc.vapi_calls.create(who, body)
    except OpenlineError as exc:
        return vapi_error(exc)
    return JSONResponse(call, status_code=201)
