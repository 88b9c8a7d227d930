"""aiosipua 0.7.1 with the RFC fixes Openline needs, as small subclasses (no fork).

* ``StrictUAC`` ACKs every non-2xx final response to an INVITE (RFC 3261 §17.1.1.3; the
  library goes straight to the authenticated re-INVITE, and a strict trunk waits for
  that ACK forever), also the 487 that answers our CANCEL (the library forgets the call
  when it cancels). On the first 2xx it takes the dialog's remote target from the
  response's ``Contact`` and its route set from ``Record-Route`` in reverse order
  (RFC 3261 §12.1.2), so ACK, BYE, REFER and re-INVITE go to the Contact through the
  route set instead of to the original To-URI.
* ``TolerantUAS`` absorbs retransmitted INVITEs instead of taking them for new calls.
* ``UdpTransport`` does without the ``DatagramTransport`` assertion that fails on CPython
  3.11 (a harmless but noisy traceback per socket), and learns its port when bound to 0,
  so Via and Contact carry the real one.

Both touch private state of the library (the UAC's ``_calls``, a call's ``_answered``
event), which is why aiosipua is pinned exactly (constraints.txt).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiosipua import (
    Dialog,
    DialogState,
    OutgoingCall,
    SdpMessage,
    SipDigestAuth,
    SipRequest,
    SipResponse,
    SipUAC,
    SipUAS,
    UdpSipTransport,
    parse_address,
    stringify_uri,
)

log = logging.getLogger(__name__)


@dataclass
class _Invite:
    request: SipRequest
    addr: tuple[str, int]


class StrictUAC(SipUAC):
    """``SipUAC`` that ACKs non-2xx finals and follows the 2xx ``Contact`` (see above)."""

    def __init__(self, transport: Any, **kwargs: Any) -> None:
        super().__init__(transport, **kwargs)
        #: the last INVITE sent per Call-ID, kept after the library forgets the call
        self._invites: dict[str, _Invite] = {}
        #: told the final answer to each REFER we send: (Call-ID, status, reason)
        self.on_refer_reply: Callable[[str, int, str], None] | None = None
        self._display_name: str | None = None

    def invite(self, from_uri: str, to_uri: str, addr: tuple[str, int], sdp: SdpMessage, *,
               auth: SipDigestAuth | None = None, display_name: str | None = None,
               user_agent: str | None = None) -> OutgoingCall:
        """``send_invite`` with a display name in From, remembered for the ACKs."""
        self._display_name = display_name
        try:
            call = self.send_invite(from_uri, to_uri, addr, sdp, auth=auth,
                                    user_agent=user_agent)
        finally:
            self._display_name = None
        self.remember(call.call_id)
        return call

    def _build_invite(self, dialog: Dialog, *, sdp_offer: SdpMessage | None,
                      user_agent: str | None) -> SipRequest:
        if self._display_name:
            dialog.metadata["display_name"] = self._display_name
        invite = super()._build_invite(dialog, sdp_offer=sdp_offer, user_agent=user_agent)
        name = dialog.metadata.get("display_name")
        if name:
            quoted = name.replace("\\", "\\\\").replace('"', '\\"')
            invite.headers.set_single(
                "From", f'"{quoted}" <{dialog.local_uri}>;tag={dialog.local_tag}')
        return invite

    def remember(self, call_id: str) -> None:
        """Note the INVITE the library just sent for ``call_id`` (after ``send_invite``
        and after each authenticated retry)."""
        call = self._calls.get(call_id)
        if call is not None:
            self._invites[call_id] = _Invite(call.invite, call.remote_addr)

    def forget(self, call_id: str) -> None:
        self._invites.pop(call_id, None)

    def handle_response(self, response: SipResponse, addr: tuple[str, int]) -> None:
        call_id = response.call_id or ""
        cseq = response.cseq
        is_invite = cseq is not None and cseq.method.upper() == "INVITE"
        if cseq is not None and cseq.method.upper() == "REFER" and \
                response.status_code >= 200 and self.on_refer_reply is not None:
            self.on_refer_reply(call_id, response.status_code, response.reason_phrase)
        if is_invite and response.status_code >= 300:
            self._ack_failure(call_id, response)
        elif is_invite and 200 <= response.status_code < 300:
            self._follow_contact(call_id, response)
        super().handle_response(response, addr)
        if is_invite:
            self.remember(call_id)  # the library may have sent an authenticated retry

    def _ack_failure(self, call_id: str, response: SipResponse) -> None:
        """ACK a non-2xx final: same Request-URI and Via (branch) as the INVITE, the
        response's To (with its tag), ``CSeq: n ACK``."""
        sent = self._invites.get(call_id)
        cseq = response.cseq
        if sent is None or cseq is None:
            return
        invite = sent.request
        invite_cseq = invite.cseq
        if invite_cseq is None or invite_cseq.seq != cseq.seq:
            return  # a retransmitted final of an earlier INVITE: already ACKed
        ack = SipRequest(method="ACK", uri=invite.uri)
        top_via = invite.headers.get_first("via")
        if top_via:
            ack.headers.append("Via", top_via)
        for name in ("From", "Call-ID"):
            value = invite.headers.get_first(name)
            if value:
                ack.headers.set_single(name, value)
        to = response.headers.get_first("to")
        if to:
            ack.headers.set_single("To", to)
        ack.headers.set_single("CSeq", f"{cseq.seq} ACK")
        ack.headers.set_single("Max-Forwards", "70")
        for route in invite.headers.get("route"):
            ack.headers.append("Route", route)
        self.transport.send(ack, sent.addr)

    def _follow_contact(self, call_id: str, response: SipResponse) -> None:
        """Before the library ACKs the first 2xx: the remote target and route set."""
        call = self._calls.get(call_id)
        if call is None or call._answered.is_set():
            return
        contact = response.headers.get_first("contact")
        if contact:
            try:
                call.dialog.remote_target = stringify_uri(parse_address(contact).uri)
            except Exception:  # a malformed Contact: keep the To-URI
                log.warning("unusable Contact in 2xx for %s: %r", call_id, contact)
        routes: list[str] = []
        for value in response.headers.get("record-route"):
            routes.extend(part.strip() for part in value.split(",") if part.strip())
        call.dialog.route_set = list(reversed(routes))


class TolerantUAS(SipUAS):
    """``SipUAS`` that absorbs retransmissions of an INVITE it is already handling.

    The library takes a retransmitted INVITE (no To tag, the same CSeq) for a new call
    while it rings, replacing the dialog being answered, and, once the 200 was sent, for a
    re-INVITE outside the dialog (481). Its server transaction answers neither: the
    provisional was sent, and the 2xx is retransmitted until the ACK comes. (After a
    final error the INVITE is handled again, which answers it again.)
    """

    def _handle_invite(self, request: SipRequest, addr: tuple[str, int]) -> None:
        existing = self._calls.get(request.call_id or "")
        to = request.to_addr
        if existing is not None and (to is None or not to.tag) \
                and existing.dialog.state != DialogState.TERMINATED:
            first, again = existing.invite.cseq, request.cseq
            if first is not None and again is not None and first.seq == again.seq:
                return
        super()._handle_invite(request, addr)


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, owner: UdpTransport) -> None:
        self.owner = owner

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.owner._udp_transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.owner._dispatch(data, (str(addr[0]), int(addr[1])))

    def error_received(self, exc: Exception) -> None:
        log.debug("SIP UDP error: %s", exc)


@dataclass
class UdpTransport(UdpSipTransport):
    """UDP SIP transport without the 3.11 assertion, knowing its bound port."""

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(lambda: _Protocol(self),
                                                           local_addr=self.local_addr)
        self._udp_transport = transport
        host, port = transport.get_extra_info("sockname")[:2]
        self.local_addr = (self.local_addr[0] or host, int(port))
