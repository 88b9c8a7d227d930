"""``POST /call``: create a Vapi call (a ``vapi.websocket`` call, or an outbound phone
call for ``customer.number``); 201 with the ``Call`` (``services/vapi/calls_create``)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from openline.api.phonic.deps import Svc
from openline.api.vapi.deps import Body, Who
from openline.api.vapi.routing import VapiRoute
from openline.domain.errors import ValidationFailed

router = APIRouter(tags=["vapi: calls"], route_class=VapiRoute)


@router.post("/call", response_model=None)
async def create_call(svc: Svc, who: Who, body: Body) -> JSONResponse:
    """Refusals are 400/404 in Vapi's error shape and place nothing (the SDK retries 5xx,
    and a retried create would dial the customer again)."""
    if svc.vapi_calls is None:
        raise ValidationFailed("Vapi calls are not available on this server")
    call: dict[str, Any] = await svc.vapi_calls.create(who, body)
    return JSONResponse(call, status_code=201)
