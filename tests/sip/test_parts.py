"""The SIP endpoint's pure parts: addresses, numbers, the inbound guard's digest, RTP
ranges, in-dialog next hops, the failure table."""

from __future__ import annotations

import pytest
from aiosipua import SipDigestAuth, build_credentials, parse_auth, stringify_auth

from openline.boot.sip import rtp_range
from openline.services.telephony.sip_auth import (
    NONCE_TTL_S,
    InboundGuard,
    Verdict,
    parse_networks,
    split_address,
)
from openline.services.telephony.sip_calls import number_from_uri
from openline.services.telephony.sip_dial import failure, next_hop


def test_addresses_and_numbers() -> None:
    assert split_address("trunk.example.com") == ("trunk.example.com", 5060)
    assert split_address("sip:agent@10.0.0.5:5070;transport=udp") == ("10.0.0.5", 5070)
    assert split_address("[2001:db8::1]:5062") == ("2001:db8::1", 5062)
    with pytest.raises(ValueError):
        split_address("host:99999")
    assert number_from_uri("<sip:+15550001000@127.0.0.1:5060;user=phone>") == "+15550001000"
    assert number_from_uri("sip:15550001000@trunk") == "+15550001000"
    assert rtp_range("40000-40100") == (40000, 40100)
    with pytest.raises(ValueError):
        rtp_range("80-90")


def test_next_hop_follows_routes_then_the_contact() -> None:
    trunk = ("192.0.2.1", 5060)
    assert next_hop([], "sip:trunk@127.0.0.1:5090", trunk) == ("127.0.0.1", 5090)
    assert next_hop(["<sip:10.0.0.1:5070;lr>"], "sip:x@127.0.0.1", trunk) == ("10.0.0.1", 5070)
    assert next_hop([], "sip:trunk@carrier.example", trunk) == trunk


def test_failure_table() -> None:
    assert failure(486, "Busy Here")[0] == "call_busy"
    assert failure(408, "Request Timeout")[0] == "call_no_answer"
    ended_by, error = failure(404, "Not Found")
    assert (ended_by, error.http_status, error.code) == ("call_failed", 400,
                                                         "invalid_phone_number")
    assert failure(503, "Service Unavailable")[1].http_status == 409


def _answer(guard: InboundGuard, password: str, uri: str = "sip:+1555@127.0.0.1") -> str:
    challenge = parse_auth(guard.challenge())
    creds = build_credentials(SipDigestAuth("trunk", password), challenge, "INVITE", uri)
    assert creds is not None
    return stringify_auth(creds)


def test_the_guard_allows_challenges_and_checks_digest() -> None:
    now = [1_000_000.0]
    guard = InboundGuard(parse_networks(["10.0.0.0/8"]), "trunk", "s3cret",
                         clock=lambda: now[0])
    assert guard.check("10.1.2.3", None, "INVITE") is Verdict.ALLOWED
    assert guard.check("192.0.2.9", None, "INVITE", frozenset({"192.0.2.9"})) \
        is Verdict.ALLOWED  # the number's own trunk
    assert guard.check("192.0.2.7", None, "INVITE") is Verdict.CHALLENGE
    assert guard.check("192.0.2.7", _answer(guard, "s3cret"), "INVITE") is Verdict.ALLOWED
    assert guard.check("192.0.2.7", _answer(guard, "wrong"), "INVITE") is Verdict.FORBIDDEN
    stale = _answer(guard, "s3cret")
    now[0] += NONCE_TTL_S + 1
    assert guard.check("192.0.2.7", stale, "INVITE") is Verdict.FORBIDDEN
    forged = stale.replace('nonce="', 'nonce="9')
    assert guard.check("192.0.2.7", forged, "INVITE") is Verdict.FORBIDDEN
    closed = InboundGuard(parse_networks(["10.0.0.0/8"]))
    assert closed.check("192.0.2.7", None, "INVITE") is Verdict.FORBIDDEN


INVITE = (
    "INVITE sip:+15550001000@127.0.0.1:5060 SIP/2.0\r\n"
    "Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-1\r\n"
    "From: <sip:+15557770101@127.0.0.1:5070>;tag=a1\r\n"
    "To: <sip:+15550001000@127.0.0.1:5060>\r\n"
    "Call-ID: retrans-1\r\nCSeq: {cseq} INVITE\r\nContact: <sip:caller@127.0.0.1:5070>\r\n"
    "Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n")


def test_a_retransmitted_invite_is_not_a_new_call() -> None:
    from aiosipua import SipMessage, SipTransport

    from openline.transports.sip_ua import TolerantUAS

    class Wire(SipTransport):
        def __init__(self) -> None:
            self.sent: list[object] = []

        def send(self, message: object, addr: tuple[str, int]) -> None:
            self.sent.append(message)

    uas = TolerantUAS(Wire())
    calls: list[object] = []
    uas.on_invite = calls.append
    for cseq in (1, 1, 1):  # the INVITE and two retransmissions
        uas._handle_request(SipMessage.parse(INVITE.format(cseq=cseq).encode()),
                            ("127.0.0.1", 5070))
    assert len(calls) == 1 and uas.get_call("retrans-1") is calls[0]
    calls[0].reject(486)  # type: ignore[attr-defined]
    uas._handle_request(SipMessage.parse(INVITE.format(cseq=1).encode()), ("127.0.0.1", 5070))
    assert len(calls) == 2  # after a final error it is handled (and answered) again
