"""Vapi outbound phone calls over SIP: ``POST /call`` from a ``byo-phone-number`` (or
another SIP provider's number) dials ``customer.number`` through Openline's SIP endpoint.

The trunk is the phone number's own SIP settings, stored with it: ``sipUri`` (where the
INVITE goes) and ``authentication`` (``username``/``password`` for the trunk's digest
challenge), the same settings ``phone_numbers`` gives the number's assistant for inbound
calls. A ``credentialId`` names a Vapi credential, which Openline does not store: a number
without ``sipUri`` is refused with a clear error rather than dialled somewhere guessed.

As Vapi does, ``POST /call`` answers at once (``queued``): the conversation is prepared,
then the SIP service's dial (``SipDialer._ring``: INVITE, digest, ring timeout) runs in
the background. A dial that fails ends the conversation (``call_failed``, ``call_busy``,
``call_no_answer``), which the call's ``endedReason`` reports.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

from openline.domain.errors import ValidationFailed
from openline.domain.validation import check_e164
from openline.services.call_setup import CallInfo, PreparedCall, StartCall
from openline.services.telephony.sip import SipService
from openline.services.telephony.sip_auth import resolve, split_address
from openline.services.telephony.sip_calls import wire_formats
from openline.services.telephony.sip_dial import SipCallFailed, Trunk

log = logging.getLogger(__name__)


def trunk_of(phone_number: dict[str, Any]) -> Trunk:
    """The trunk a SIP phone number dials through (``ValidationFailed`` without one)."""
    uri = phone_number.get("sipUri")
    if phone_number.get("provider") == "vapi" or not (isinstance(uri, str) and uri.strip()):
        raise ValidationFailed(
            "Outbound SIP calls go to the phone number's sipUri (Openline keeps no Vapi "
            "credentials to find a trunk by credentialId): set sipUri, and authentication "
            "if the trunk asks for a password",
            {"phoneNumber.sipUri": "required for an outbound SIP call"})
    auth = phone_number.get("authentication")
    auth = auth if isinstance(auth, dict) else {}
    return Trunk(uri.strip(), auth.get("username"), auth.get("password"))


class VapiSipDialer:
    """``calls_create.SipDialer`` over a ``SipService``."""

    def __init__(self, sip: SipService) -> None:
        self.sip = sip

    async def place_call(self, start: StartCall, to_number: str, phone_number: dict[str, Any]
                         ) -> str:
        """Prepare the call and start dialling ``to_number`` from the phone number's
        ``number``; the conversation id at once. ``ValidationFailed`` before anything is
        stored (no trunk, bad numbers or address, a start the live service refuses)."""
        trunk = trunk_of(phone_number)
        caller = _e164("phoneNumber.number", phone_number.get("number"))
        callee = _e164("customer.number", to_number)
        try:
            host, port = split_address(trunk.address)
            addr = await resolve(trunk.address)
        except ValueError as exc:
            raise ValidationFailed(f"Invalid phoneNumber.sipUri: {exc}",
                                   {"phoneNumber.sipUri": str(exc)}) from exc
        svc = self.sip
        await svc.live.setup.validate(start)
        prepared = wire_formats(await svc.live.setup.prepare(
            replace(start, origin="sip", call_info=CallInfo(caller, callee))))
        svc._spawn(self._ring(prepared, trunk, f"{host}:{port}", addr, caller, callee))
        return prepared.id

    async def _ring(self, prepared: PreparedCall, trunk: Trunk, trunk_host: str,
                    addr: tuple[str, int], caller: str, callee: str) -> None:
        # The dial ends the conversation itself when it fails; what is left is to log.
        try:
            await self.sip.dialer._ring(prepared, trunk, trunk_host, addr, caller, callee,
                                        None)
        except SipCallFailed as exc:
            log.info("outbound SIP call %s failed: %s %s", prepared.id, exc.sip_status_code,
                     exc.sip_status)
        except Exception:
            log.exception("outbound SIP call %s failed", prepared.id)


def _e164(field: str, value: Any) -> str:
    try:
        return check_e164(value if isinstance(value, str) else "")
    except ValueError as exc:
        raise ValidationFailed(f"Invalid {field}: {exc}", {field: str(exc)}) from exc
