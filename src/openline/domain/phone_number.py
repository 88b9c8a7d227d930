"""Phone numbers: which numbers an agent answers, and how a custom number reaches it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

from openline.domain.agent import ConfigurationEndpoint
from openline.domain.errors import ValidationFailed
from openline.domain.limits import MAX_HEADER_VALUE_CHARS, MAX_SHORT_CHARS, control_char_error

#: ``pool``: drawn from Openline's pool; ``custom``: brought by the customer.
NumberSource = Literal["pool", "custom"]
#: ``none``: no number; ``pool``: one number from the pool; ``custom``: the listed numbers.
AssignmentMode = Literal["none", "pool", "custom"]
SipTransport = Literal["auto", "udp", "tcp", "tls"]
MediaEncryption = Literal["disabled", "allowed", "required"]
SIP_TRANSPORTS: tuple[str, ...] = get_args(SipTransport)
SIP_ENCRYPTION: tuple[str, ...] = get_args(MediaEncryption)


@dataclass(frozen=True)
class SipSettings:
    """How Openline reaches a custom number's SIP trunk.

    ``transport``/``media_encryption`` are set together (or both ``None``), and so are the
    three credentials: each half is optional on its own.
    """

    transport: SipTransport | None = None
    media_encryption: MediaEncryption | None = None
    address: str | None = None
    username: str | None = None
    password: str | None = None


def sip_settings(transport: str | None, media_encryption: str | None, address: str | None,
                 username: str | None, password: str | None) -> SipSettings:
    """Validated :class:`SipSettings` (pass ``None`` transport for "no media settings")."""
    if transport is not None and transport not in SIP_TRANSPORTS:
        raise ValidationFailed("Invalid sip", {"sip.transport": f"one of {SIP_TRANSPORTS}"})
    if media_encryption is not None and media_encryption not in SIP_ENCRYPTION:
        raise ValidationFailed("Invalid sip",
                               {"sip.media_encryption": f"one of {SIP_ENCRYPTION}"})
    for header, value, most in (("X-Sip-Address", address, MAX_SHORT_CHARS),
                                ("X-Sip-Auth-Username", username, MAX_SHORT_CHARS),
                                ("X-Sip-Auth-Password", password, MAX_HEADER_VALUE_CHARS)):
        problem = control_char_error(value or "") or (
            f"at most {most} characters" if len(value or "") > most else None)
        if problem:
            raise ValidationFailed(f"Invalid {header}: {problem}", {header: problem})
    if address and ";transport=" in address:
        raise ValidationFailed(
            "Invalid SIP address",
            {"X-Sip-Address": "must not carry ;transport=, use sip.transport"},
        )
    return SipSettings(transport, media_encryption, address or None,  # type: ignore[arg-type]
                       username if address else None, password if address else None)


@dataclass(frozen=True)
class PhoneNumber:
    """A number an agent answers."""

    number: str
    source: NumberSource
    sip: SipSettings | None = None
    configuration_endpoint: ConfigurationEndpoint | None = None


@dataclass(frozen=True)
class PhoneAssignment:
    """The numbers an agent should answer; applying it makes the inventory match."""

    mode: AssignmentMode
    custom_numbers: tuple[str, ...] = ()

    def rule_errors(self) -> dict[str, str]:
        """Cross-field rules, as ``{field: message}`` (empty when the assignment is valid)."""
        if self.mode == "custom" and not self.custom_numbers:
            return {"custom_phone_numbers": 'required when phone_number is "custom"'}
        return {}
