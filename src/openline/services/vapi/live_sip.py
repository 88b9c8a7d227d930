"""Vapi outbound phone calls over SIP: ``POST /call`` from a ``byo-phone-number`` (or
another SIP provider's number) dials ``customer.number`` through Openline's SIP endpoint.

The trunk is the phone number's own SIP settings, stored with it: ``sipUri`` (where the
INVITE goes) and ``authentication`` (``username``/``password`` for the trunk's digest
challenge), the same settings ``phone_numbers`` gives the number's assistant for inbound
calls. A ``credentialId`` names a Vapi credential, which Openline does not store: a number
without ``sipUri`` is refused with a clear error rather than dialled somewhere guessed.

The dial is the SIP service's (``SipDialer.dial``): ``POST /call`` answers once the far
end picked up; a failed dial is the dialect's error, with the SIP status in it.
"""

from __future__ import annotations

from typing import Any

from openline.domain.errors import Conflict, ValidationFailed
from openline.services.call_setup import StartCall
from openline.services.telephony.sip import SipService
from openline.services.telephony.sip_dial import SipCallFailed, Trunk


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
        """Dial ``to_number`` from the phone number's ``number``; the conversation id once
        answered. Raises ``ValidationFailed`` (nothing dialled) or ``Conflict`` (the dial
        failed; the conversation is stored as ended)."""
        trunk = trunk_of(phone_number)
        from_number = phone_number.get("number")
        if not (isinstance(from_number, str) and from_number):
            raise ValidationFailed("An outbound SIP call needs the phone number's number "
                                   "(the caller id)", {"phoneNumber.number": "required"})
        try:
            call_id = await self.sip.dialer.dial(start, trunk, from_number, to_number)
        except SipCallFailed as exc:
            message = f"{exc.message} (SIP {exc.sip_status_code} {exc.sip_status})"
            if exc.http_status == 400:
                raise ValidationFailed(message, {"customer.number": exc.code},
                                       code=exc.code) from exc
            raise Conflict(message, code=exc.code) from exc
        assert call_id is not None  # not a dry run
        return call_id
