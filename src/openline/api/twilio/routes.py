"""``/twilio/...``: the URLs Twilio calls. Every request is checked against its
``X-Twilio-Signature`` (403 when missing or wrong), computed over the public URL
(``OPENLINE_PUBLIC_URL``), never the URL this server happens to see behind a proxy.

Point a Twilio number's "A call comes in" webhook at ``<public URL>/twilio/voice``
(HTTP POST); outbound calls set their own callbacks.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, Request, WebSocket
from fastapi.responses import PlainTextResponse, Response

from openline.api.phonic.ws import StarletteSocket
from openline.services.hub import Services
from openline.services.telephony.service import TwilioService

router = APIRouter(prefix="/twilio", include_in_schema=False)
SIGNATURE = "x-twilio-signature"
EMPTY = '<?xml version="1.0" encoding="UTF-8"?><Response />'


class Form(dict[str, list[str]]):
    """A form body with repeated keys (what ``RequestValidator`` signs)."""

    def getlist(self, key: str) -> list[str]:
        return self.get(key, [])


async def _form(request: Request) -> Form:
    """Twilio's ``application/x-www-form-urlencoded`` body (the only kind it sends)."""
    form = Form()
    for key, value in parse_qsl((await request.body()).decode("utf-8", "replace"),
                                keep_blank_values=True):
        form.setdefault(key, []).append(value)
    return form


def _xml(body: str) -> Response:
    return Response(body, media_type="application/xml")


async def _signed(request: Request) -> tuple[TwilioService, dict[str, str]] | Response:
    """The Twilio service and the form, or the response that refuses the request."""
    services: Services = request.app.state.services
    twilio = services.twilio
    if twilio is None:
        return PlainTextResponse("Twilio is not configured on this server", status_code=404)
    form = await _form(request)
    path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    if not twilio.webhook_valid(path, form, request.headers.get(SIGNATURE)):
        return PlainTextResponse("Invalid Twilio signature", status_code=403)
    return twilio, {key: values[0] for key, values in form.items()}


async def _callback(request: Request,
                    handle: Callable[[TwilioService, dict[str, str]], Awaitable[Any]]
                    ) -> Response:
    checked = await _signed(request)
    if isinstance(checked, Response):
        return checked
    result = await handle(*checked)
    return _xml(result if isinstance(result, str) else EMPTY)


@router.post("/voice")
async def voice(request: Request) -> Response:
    """An inbound call: TwiML that streams it to the agent whose number was called."""
    return await _callback(request, lambda svc, form: svc.inbound(form))


@router.post("/calls/{conversation_id}/status")
async def call_status(conversation_id: str, request: Request) -> Response:
    return await _callback(request, lambda svc, form: svc.call_status(conversation_id, form))


@router.post("/calls/{conversation_id}/amd")
async def amd(conversation_id: str, request: Request) -> Response:
    return await _callback(request, lambda svc, form: svc.amd_result(conversation_id, form))


@router.post("/calls/{conversation_id}/dial")
async def dial_finished(conversation_id: str, request: Request) -> Response:
    return await _callback(request,
                           lambda svc, form: svc.dial_finished(conversation_id, form))


@router.post("/calls/{conversation_id}/transfer")
async def transfer_answered(conversation_id: str, request: Request) -> Response:
    return await _callback(request,
                           lambda svc, form: svc.transfer_answered(conversation_id, form))


@router.websocket("/stream")
async def stream(ws: WebSocket) -> None:
    """A Media Streams connection; its signature covers the ``wss://`` URL of the TwiML."""
    services: Services = ws.app.state.services
    twilio = services.twilio
    if twilio is None or not twilio.stream_valid(ws.headers.get(SIGNATURE)):
        await ws.send_denial_response(PlainTextResponse("Invalid Twilio signature",
                                                        status_code=403))
        return
    await ws.accept()
    await twilio.serve_stream(StarletteSocket(ws))
