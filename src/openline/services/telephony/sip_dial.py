"""Outbound SIP calls: the INVITE to the trunk, digest, and what a failed dial means.

``dial`` prepares the conversation, offers PCMU/PCMA + telephone-event on a reserved RTP
port, sends the INVITE to the trunk (``StrictUAC``: the 401/407 is ACKed, then the INVITE
is retried with credentials) and waits for the final answer. A 2xx starts the
conversation; anything else ends it (``ended_by``) and raises ``SipCallFailed`` with the
carrier's status for the HTTP answer:

=====================  ================  ======  =====================
SIP final              ended_by          HTTP    code
=====================  ================  ======  =====================
404 / 484 / 604        call_failed       400     invalid_phone_number
401 / 403 / 407        call_failed       400     sip_auth_failed
486 / 600 / 603        call_busy         409     sip_call_failed
480 / 408, no answer   call_no_answer    409     sip_call_failed
anything else (503)    call_failed       409     sip_call_failed
=====================  ================  ======  =====================

No answer within ``ring_timeout_s``: CANCEL (the 487 is ACKed). The Phonic SDK retries a
409 twice with the same body; a failed dial is remembered for ``FAILED_DIAL_TTL_S`` so
those retries get the same answer instead of ringing the person twice more.
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import json
import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from aiosipua import SipDigestAuth

from openline.domain.errors import ValidationFailed
from openline.domain.validation import check_e164
from openline.services.call_setup import CallInfo, StartCall
from openline.services.telephony.sip_auth import resolve, split_address
from openline.services.telephony.sip_calls import SipCall, agent_sip_number, wire_formats
from openline.transports.sip import SipTransport
from openline.transports.sip_media import NoCodec, close_quietly, offer_sdp, read_answer

if TYPE_CHECKING:
    from openline.services.telephony.sip import SipService

FAILED_DIAL_TTL_S = 30.0
INVALID_NUMBER = {404, 484, 604}
AUTH = {401, 403, 407}
BUSY = {486, 600, 603}
NO_ANSWER = {480, 408}
#: the status reported when Openline gave up waiting for an answer (and CANCELled)
TIMED_OUT = (408, "No answer")


@dataclass(frozen=True)
class Trunk:
    """Where an outbound call goes: ``X-Sip-Address`` and optional digest credentials."""

    address: str
    username: str | None = None
    password: str | None = None


class SipCallFailed(Exception):
    """The dial failed: Phonic's ``SipCallError`` body and status."""

    def __init__(self, http_status: int, code: str, message: str, sip_status_code: int,
                 sip_status: str) -> None:
        super().__init__(message)
        self.http_status, self.code, self.message = http_status, code, message
        self.sip_status_code, self.sip_status = sip_status_code, sip_status

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "code": self.code,
                          "sip_status_code": self.sip_status_code,
                          "sip_status": self.sip_status}}


def failure(status: int, reason: str) -> tuple[str, SipCallFailed]:
    """``ended_by`` and the error for a failed dial (see the module docstring)."""
    if status in INVALID_NUMBER:
        return "call_failed", SipCallFailed(400, "invalid_phone_number",
                                            "The dialed phone number does not exist.",
                                            status, reason)
    if status in AUTH:
        return "call_failed", SipCallFailed(400, "sip_auth_failed",
                                            "The SIP trunk refused the credentials.",
                                            status, reason)
    ended_by = "call_busy" if status in BUSY else \
        "call_no_answer" if status in NO_ANSWER else "call_failed"
    return ended_by, SipCallFailed(409, "sip_call_failed", "The SIP call could not be "
                                   "completed.", status, reason)


class SipDialer:
    """Places outbound calls for a ``SipService``."""

    def __init__(self, service: SipService) -> None:
        self.service = service
        self._failed: dict[str, tuple[float, SipCallFailed]] = {}

    async def dial(self, start: StartCall, trunk: Trunk, from_number: str, to_number: str, *,
                   display_name: str | None = None, dry_run: bool = False,
                   request_key: Any = None) -> str | None:
        """Place a call; the conversation id once answered (None for a dry run).
        Raises ``ValidationFailed`` before dialling, ``SipCallFailed`` after."""
        from_number = _number("from_phone_number", from_number)
        to_number = _number("to_phone_number", to_number)
        try:
            host, port = split_address(trunk.address)
        except ValueError as exc:
            raise ValidationFailed(f"Invalid X-Sip-Address: {exc}",
                                   {"X-Sip-Address": str(exc)}) from exc
        svc = self.service
        await svc.live.setup.validate(start)
        if dry_run:
            return None
        key = _key(start.principal.workspace_id, trunk, from_number, to_number, display_name,
                   request_key)
        self._expire()
        if key in self._failed:
            raise self._failed[key][1]
        try:
            addr = await resolve(trunk.address)
        except ValueError as exc:
            raise ValidationFailed(f"Invalid X-Sip-Address: {exc}",
                                   {"X-Sip-Address": str(exc)}) from exc
        prepared = wire_formats(await svc.live.setup.prepare(
            replace(start, origin="sip", call_info=CallInfo(from_number, to_number))))
        try:
            return await self._ring(prepared, trunk, f"{host}:{port}", addr, from_number,
                                    to_number, display_name)
        except SipCallFailed as exc:
            self._failed[key] = (time.monotonic() + FAILED_DIAL_TTL_S, exc)
            raise

    async def _ring(self, prepared: Any, trunk: Trunk, trunk_host: str,
                    addr: tuple[str, int], from_number: str, to_number: str,
                    display_name: str | None) -> str:
        svc = self.service
        local = svc.transport.local_addr
        auth = SipDigestAuth(trunk.username, trunk.password or "") if trunk.username else None
        reservation = None
        try:
            reservation = svc.ports.reserve()
            outgoing = svc.uac.invite(
                f"sip:{from_number}@{svc.media_ip}:{local[1]}",
                f"sip:{to_number}@{trunk_host}", addr,
                offer_sdp(svc.media_ip, reservation.port), auth=auth,
                display_name=display_name, user_agent=svc.options.user_agent)
        except Exception:  # nothing was sent: the prepared conversation ends at once
            if reservation is not None:
                reservation.release()
            await svc.live.end_unstarted(prepared.id, "call_failed")
            raise
        call = SipCall(prepared, "outbound", outgoing.call_id, from_number, to_number, addr,
                       trunk_host, outgoing=outgoing, reservation=reservation)
        svc._track(call)
        status, reason = await self._outcome(call)
        if status >= 300:
            ended_by, error = failure(status, reason)
            await svc._note(call, "dial", {"status": status, "reason": reason})
            await svc._end_pending(call, ended_by)
            raise error
        try:
            return await self._answered(call)
        except SipCallFailed:
            raise
        except Exception:  # e.g. the RTP port was taken: hang up, end it, say so
            if call.outgoing is not None:
                call.outgoing.hangup(svc.uac)
            await svc._end_pending(call, "error")
            raise

    async def _outcome(self, call: SipCall) -> tuple[int, str]:
        """The INVITE's final status: the trunk's, ``TIMED_OUT`` (CANCEL sent), or 487 when
        the conversation was cancelled while it rang."""
        outgoing = call.outgoing
        assert outgoing is not None
        answered = asyncio.ensure_future(
            outgoing.wait_answered(timeout=self.service.options.ring_timeout_s))
        ended = asyncio.ensure_future(call.finished.wait())
        try:
            await asyncio.wait({answered, ended}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            ended.cancel()
        if not answered.done() or call.canceled:  # conversations.cancel while it rang
            answered.cancel()
            return 487, "Request Terminated"
        error = answered.exception()
        if isinstance(error, TimeoutError):
            outgoing.cancel(self.service.uac)
            return TIMED_OUT
        if error is not None:
            return outgoing._reject_code, outgoing._reject_reason
        return 200, "OK"

    async def _answered(self, call: SipCall) -> str:
        svc = self.service
        assert call.outgoing is not None and call.reservation is not None
        try:
            answer = read_answer(call.outgoing.sdp_answer)
        except NoCodec as exc:
            call.outgoing.hangup(svc.uac)
            await svc._end_pending(call, "call_failed")
            raise SipCallFailed(409, "sip_call_failed", "The SIP call could not be "
                                "completed.", 488, str(exc)) from exc
        rtp = await call.reservation.open(answer.remote, answer.payload_type,
                                          answer.dtmf_payload_type)
        if call.finished.is_set():
            await close_quietly(rtp)
            raise SipCallFailed(409, "sip_call_failed", "The SIP call ended before it "
                                "started.", 487, "Request Terminated")
        call.answer = answer
        call.peer = next_hop(call.outgoing.dialog.route_set,
                             call.outgoing.dialog.remote_target, call.peer)
        call.transport = SipTransport(call.call_id, answer.payload_type, rtp, svc,
                                      capture=svc.options.capture_media)
        call.transport.sink.held = answer.direction in ("sendonly", "inactive")
        await svc._note(call, "call", {"call_id": call.call_id, "direction": "outbound",
                                       "codec": call.transport.stats.codec})
        svc._spawn(svc.run(call))
        return call.conversation_id

    async def agent_trunk(self, start: StartCall) -> tuple[Trunk, str] | None:
        """The trunk and calling number of the call's agent when its number is a SIP
        number (``outbound_call`` then dials through it), else None."""
        agent, _, _, _ = await self.service.live.setup.validate(start)
        number = await agent_sip_number(self.service.db, agent.id) if agent else None
        if number is None:
            return None
        return Trunk(number.address, number.username, number.password), number.number

    def _expire(self) -> None:
        now = time.monotonic()
        for key in [k for k, (until, _) in self._failed.items() if until <= now]:
            del self._failed[key]


def next_hop(route_set: list[str], remote_target: str,
             fallback: tuple[str, int]) -> tuple[str, int]:
    """Where in-dialog requests go (RFC 3261 §12.2.1.1, loose routing): the first Route's
    address, else the remote target's (the 2xx Contact). Only IP literals are taken; a
    host name keeps the trunk's resolved address (``fallback``)."""
    uri = route_set[0].strip().strip("<>").split(">", 1)[0] if route_set else remote_target
    try:
        host, port = split_address(uri)
        ipaddress.ip_address(host)
    except ValueError:
        return fallback
    return host, port


def _number(field: str, value: str) -> str:
    try:
        return check_e164(value)
    except ValueError as exc:
        raise ValidationFailed(f"Invalid {field}: {exc}", {field: str(exc)}) from exc


def _key(*parts: Any) -> str:
    raw = json.dumps([p if isinstance(p, str | None) else repr(p) if not isinstance(
        p, dict | list) else p for p in parts], sort_keys=True, default=str)
    return hashlib.sha256(raw.encode()).hexdigest()
