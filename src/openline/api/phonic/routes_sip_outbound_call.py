"""``POST /v1/conversations/sip/outbound_call``: the agent calls through a SIP trunk.

The trunk travels in headers (``X-Sip-Address`` required, ``X-Sip-Auth-Username`` and
``X-Sip-Auth-Password`` optional), the rest in the body. The answer waits for the call's
outcome: 201 once answered, 200 for a dry run (everything validated, nothing dialled),
a ``SipCallError`` (400 or 409) when the trunk refused or nobody answered.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header
from fastapi.responses import JSONResponse

from openline.api.phonic.deps import Body, Svc, Who
from openline.api.phonic.sts_config import start_call
from openline.domain.errors import BadRequest, ValidationFailed
from openline.domain.limits import control_char_error
from openline.domain.phone_number import sip_settings
from openline.services.call_setup import ConfigurationFailed
from openline.services.telephony.sip_dial import SipCallFailed, Trunk

router = APIRouter(tags=["conversations"])
PCM = {"input_format": "pcm_8000", "output_format": "pcm_8000"}
MAX_DISPLAY_NAME = 64


def _text(body: dict[str, Any], name: str, *, required: bool) -> str | None:
    value = body.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ValidationFailed(f"{name} is required", {name: "required string"})
    return value.strip()


def _trunk_options(body: dict[str, Any]) -> None:
    """``sip``: UDP is what this endpoint speaks; SRTP is not available."""
    raw = body.get("sip")
    if raw is None:
        return
    if not isinstance(raw, dict):
        raise ValidationFailed("Invalid sip", {"sip": "must be an object"})
    if raw.get("transport") not in (None, "auto", "udp"):
        raise ValidationFailed("Openline's SIP endpoint speaks UDP only",
                               {"sip.transport": "use auto or udp"})
    if raw.get("media_encryption") == "required":
        raise ValidationFailed("SRTP is not available on Openline's SIP endpoint",
                               {"sip.media_encryption": "use disabled or allowed"})


@router.post("/conversations/sip/outbound_call", response_model=None)
async def sip_outbound_call(
    svc: Svc, who: Who, body: Body,
    x_sip_address: Annotated[str | None, Header()] = None,
    x_sip_auth_username: Annotated[str | None, Header()] = None,
    x_sip_auth_password: Annotated[str | None, Header()] = None,
) -> JSONResponse:
    """Dial ``to_phone_number`` from ``from_phone_number`` through the trunk."""
    if not x_sip_address or not x_sip_address.strip():
        # A missing header is Phonic's BasicError (its 400 is oneOf, and a ValidationError
        # body would match BasicError too).
        raise BadRequest("The X-Sip-Address header is required", code="missing_header")
    sip_settings(None, None, x_sip_address, x_sip_auth_username, x_sip_auth_password)
    _trunk_options(body)
    from_number = _text(body, "from_phone_number", required=True) or ""
    to_number = _text(body, "to_phone_number", required=True) or ""
    display_name = _text(body, "from_display_name", required=False)
    problem = display_name and (control_char_error(display_name) or (
        "must not contain line breaks" if any(c in display_name for c in "\r\n") else
        f"at most {MAX_DISPLAY_NAME} characters" if len(display_name) > MAX_DISPLAY_NAME
        else None))
    if problem:  # it goes into the From header: no CR/LF, no header injection
        raise ValidationFailed(f"Invalid from_display_name: {problem}",
                               {"from_display_name": problem})
    config = body.get("config") or {}
    if not isinstance(config, dict):
        raise ValidationFailed("config must be an object", {"config": "must be an object"})
    if svc.sip is None:
        raise ValidationFailed("SIP calls need Openline's SIP endpoint: set "
                               "OPENLINE_SIP_PORT", code="telephony_not_configured")
    dry_run = body.get("dry_run") is True
    start = start_call(who, {**config, **PCM}, "sip")
    trunk = Trunk(x_sip_address.strip(), x_sip_auth_username or None,
                  x_sip_auth_password or None)
    try:
        conversation_id = await svc.sip.dialer.dial(
            start, trunk, from_number, to_number, display_name=display_name,
            dry_run=dry_run, request_key=body)
    except ConfigurationFailed as exc:
        raise ValidationFailed(exc.message, code=exc.ended_by) from exc
    except SipCallFailed as exc:
        return JSONResponse(exc.body(), status_code=exc.http_status)
    return JSONResponse({"conversation_id": conversation_id, "twilio_call_sid": None,
                         "dry_run": dry_run}, status_code=200 if dry_run else 201)
