"""``POST /v1/conversations/outbound_call``: the agent calls a phone number (through
Twilio, or through its SIP trunk when its number is a custom SIP number)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from openline.api.phonic.deps import Body, Svc, Who
from openline.api.phonic.sts_config import start_call
from openline.domain.errors import ValidationFailed
from openline.services.call_setup import ConfigurationFailed
from openline.services.hub import Services
from openline.services.principal import Principal
from openline.services.telephony.sip_dial import SipCallFailed

router = APIRouter(tags=["conversations"])
#: Openline's voicemail options ride in ``config.additional_params`` (Phonic has no field)
VOICEMAIL_KEYS = ("detect_voicemail", "voicemail_message")


@router.post("/conversations/outbound_call", response_model=None)
async def outbound_call(svc: Svc, who: Who, body: Body) -> JSONResponse:
    """201 ``{"conversation_id"}`` once Twilio accepted the call; 200 for a dry run,
    which validates everything and places nothing. Refusals are 400s: the SDK retries
    5xx answers, and a retried dial calls the person again."""
    to = body.get("to_phone_number")
    if not isinstance(to, str) or not to.strip():
        raise ValidationFailed("to_phone_number is required",
                               {"to_phone_number": "required E.164 number"})
    config = body.get("config") or {}
    if not isinstance(config, dict):
        raise ValidationFailed("config must be an object", {"config": "must be an object"})
    extras: Any = config.get("additional_params") or {}
    extras = extras if isinstance(extras, dict) else {}
    message = extras.get("voicemail_message")
    dry_run = body.get("dry_run") is True
    if svc.sip is not None:  # an agent whose number is a SIP number calls through its trunk
        placed = await sip_outbound(svc, who, body, config, to.strip(), extras, dry_run)
        if placed is not None:
            return placed
    if svc.twilio is None:
        raise ValidationFailed("Outbound calls need Twilio: set OPENLINE_TWILIO_ACCOUNT_SID "
                               "and OPENLINE_TWILIO_AUTH_TOKEN", code="telephony_not_configured")
    start = start_call(who, {**config, "input_format": "mulaw_8000",
                             "output_format": "mulaw_8000"}, "twilio")
    try:
        conversation_id = await svc.twilio.place_call(
            start, to.strip(), detect_voicemail=extras.get("detect_voicemail") is True,
            voicemail_message=message if isinstance(message, str) else None, dry_run=dry_run)
    except ConfigurationFailed as exc:
        raise ValidationFailed(exc.message, code=exc.ended_by) from exc
    if dry_run:
        return JSONResponse({"conversation_id": None, "dry_run": True}, status_code=200)
    return JSONResponse({"conversation_id": conversation_id, "dry_run": False},
                        status_code=201)


async def sip_outbound(svc: Services, who: Principal, body: dict[str, Any],
                       config: dict[str, Any], to: str, extras: dict[str, Any],
                       dry_run: bool) -> JSONResponse | None:
    """The SIP-number path of ``outbound_call`` (None: the agent has no SIP number)."""
    assert svc.sip is not None
    start = start_call(who, {**config, "input_format": "pcm_8000",
                             "output_format": "pcm_8000"}, "sip")
    found = await svc.sip.dialer.agent_trunk(start)
    if found is None:
        return None
    if extras.get("detect_voicemail") is True:
        raise ValidationFailed("Voicemail detection needs Twilio; this agent's number is a "
                               "SIP number", {"config.additional_params.detect_voicemail":
                                              "not available over SIP"})
    trunk, from_number = found
    try:
        conversation_id = await svc.sip.dialer.dial(start, trunk, from_number, to,
                                                    dry_run=dry_run, request_key=body)
    except ConfigurationFailed as exc:
        raise ValidationFailed(exc.message, code=exc.ended_by) from exc
    except SipCallFailed as exc:
        return JSONResponse(exc.body(), status_code=exc.http_status)
    if dry_run:
        return JSONResponse({"conversation_id": None, "dry_run": True}, status_code=200)
    return JSONResponse({"conversation_id": conversation_id, "dry_run": False},
                        status_code=201)
