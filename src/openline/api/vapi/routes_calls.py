"""``/call``: Vapi calls, which are Openline conversations (``services/vapi/calls``).

``POST /call`` (starting calls) lives with the live half of the dialect.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import RedirectResponse

from openline.api.phonic.params import CLEAN_PARAMETERS
from openline.api.vapi.deps import Body, Filters, Vapi, Who
from openline.api.vapi.routing import VapiRoute
from openline.domain.errors import NotFound
from openline.services.vapi.calls import CallQuery

router = APIRouter(tags=["vapi: calls"], route_class=VapiRoute,
                   dependencies=[CLEAN_PARAMETERS])
_Id = Annotated[str | None, Query()]


@router.get("/call")
async def list_calls(
    vapi: Vapi, who: Who, q: Filters, id: _Id = None,
    assistant_id: Annotated[str | None, Query(alias="assistantId")] = None,
    phone_number_id: Annotated[str | None, Query(alias="phoneNumberId")] = None,
) -> list[dict[str, Any]]:
    query = CallQuery(q, id, assistant_id, phone_number_id)
    return [c.json() for c in await vapi.calls.list_all(who, query)]


@router.get("/call/{call_id}")
async def get_call(call_id: str, vapi: Vapi, who: Who) -> dict[str, Any]:
    return (await vapi.calls.get(who, call_id)).json()


@router.get("/call/{call_id}/stereo-recording", response_class=RedirectResponse)
async def stereo_recording(call_id: str, vapi: Vapi, who: Who) -> RedirectResponse:
    """The call's recording (caller left, assistant right): a redirect to its signed link.
    Openline records one stereo file, so the other artifact downloads are not served."""
    call = await vapi.calls.get(who, call_id)
    if call.recording_url is None:
        raise NotFound("This call has no recording")
    return RedirectResponse(call.recording_url, status_code=307)


#: the other artifact downloads of the SDK: Openline keeps none of these apart
_NOT_KEPT = ("mono-recording", "video-recording", "customer-recording",
             "assistant-recording", "pcap", "call-logs")


@router.get("/call/{call_id}/{artifact}")
async def other_artifact(call_id: str, artifact: str, vapi: Vapi, who: Who) -> None:
    """A clear 404: Openline records one stereo file per call (``stereo-recording``), keeps
    no packet capture, and has the call's API logs at ``/logs?callId=``."""
    await vapi.calls.get(who, call_id)  # 404 for an unknown call first
    if artifact not in _NOT_KEPT:
        raise NotFound(f"Unknown call artifact: {artifact}")
    raise NotFound(f"Openline keeps no {artifact} of a call: its recording is one stereo "
                   f"file (caller left, assistant right) at /call/{call_id}/stereo-recording")


@router.patch("/call/{call_id}")
async def update_call(call_id: str, vapi: Vapi, who: Who, body: Body) -> dict[str, Any]:
    return (await vapi.calls.update(who, call_id, body)).json()


@router.delete("/call/{call_id}")
async def delete_call(call_id: str, vapi: Vapi, who: Who, body: Body) -> dict[str, Any]:
    """Always sent with a body by the SDK: ``{}``, or ``{"ids": [...]}`` for several."""
    return (await vapi.calls.delete(who, call_id, body)).json()
