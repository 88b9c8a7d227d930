"""Openline's ``ended_by`` values as Vapi ``endedReason`` (spec §5.2)."""

from __future__ import annotations

import pytest

from openline.services.vapi.call_view import ended_reason


@pytest.mark.parametrize(("ended_by", "origin", "reason"), [
    ("call_busy", "sip", "customer-busy"),
    ("call_busy", "twilio", "customer-busy"),
    ("call_no_answer", "twilio", "customer-did-not-answer"),
    ("call_canceled", "sip", "manually-canceled"),
    ("call_failed", "sip", "call.in-progress.error-sip-outbound-call-failed-to-connect"),
    ("call_failed", "twilio", "twilio-failed-to-connect-call"),
    ("user", "vapi", "customer-ended-call"),
    ("assistant", "vapi", "assistant-ended-call"),
])
def test_every_way_a_call_ends_has_its_vapi_reason(ended_by: str, origin: str,
                                                   reason: str) -> None:
    assert ended_reason(ended_by, origin) == reason


def test_a_running_call_has_no_reason() -> None:
    assert ended_reason(None, "twilio") is None
