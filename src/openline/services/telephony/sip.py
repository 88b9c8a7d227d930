"""Openline's own SIP endpoint: what INVITEs, BYEs, REFERs and NOTIFYs do to conversations.

* **Inbound**: an INVITE from an allowed source (``sip_auth``) to a number of one of the
  workspace's agents is answered as that agent: 100 (the library), 180, RTP bound on the
  SDP answer's port, 200 with the answer, then the conversation runs on a
  ``SipTransport``. Unknown number: 404. Disabled agent: 480. ``inbound_rollout``: a 302
  to the forward number. No G.711 in the offer: 488. The concurrency limit: 486. The
  configuration endpoint gets ``call_info`` and the INVITE's ``X-`` headers.
  CANCEL before the 200 ends the prepared conversation (``call_canceled``); OPTIONS is
  answered by the library (200 with ``Allow``); a re-INVITE for hold is answered with the
  mirrored direction and pauses our media.
* **Outbound**: ``sip_dial.SipDialer`` (``conversations.sip_outbound_call``, and
  ``outbound_call`` for agents whose number is a SIP number).
* **In the dialog**: a far-end BYE ends the conversation (``ended_by: user``); the end of
  the conversation sends BYE. ``transfer`` sends a blind REFER once what the agent said has
  been heard: a refused REFER is an error for the tool, a 2xx sipfrag ends the call
  (``transferred``, then BYE), a failed sipfrag hands the caller back to the agent.

State lives in this process: a dialog's requests must reach the node that holds it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from aiosipua import DialogState, IncomingCall, SipRequest

from openline.domain.errors import OpenlineError
from openline.services.call_session import CallSession
from openline.services.call_setup import CallInfo, StartCall
from openline.services.live import LiveService
from openline.services.principal import Principal
from openline.services.session_config import overrides_from_config
from openline.services.telephony.calls import PendingCall
from openline.services.telephony.numbers import caller_number
from openline.services.telephony.sip_auth import InboundGuard, Verdict, parse_networks, resolve
from openline.services.telephony.sip_calls import (
    SipCall,
    number_from_uri,
    sip_owner_of,
    wire_formats,
)
from openline.services.telephony.sip_dial import SipDialer
from openline.store import tables as t
from openline.transports import base as tb
from openline.transports.sip import SipCallStats, SipTransport
from openline.transports.sip_media import NoCodec, RtpPorts, answer_sdp, close_quietly
from openline.transports.sip_ua import StrictUAC, TolerantUAS, UdpTransport
from openline.voice.tools import PhoneTransfer, TransferRefused

log = logging.getLogger(__name__)
PCM = {"input_format": "pcm_8000", "output_format": "pcm_8000"}
#: how long a transfer waits for the agent's last words to be heard, and for the REFER's
#: answer
SETTLE_S, REFER_WAIT_S = 10.0, 8.0
#: how long a finished call's INVITE is kept for ACKing late non-2xx finals
ACK_WINDOW_S = 32.0
#: how long stopping the endpoint waits for its calls to end (BYEs sent, stored)
STOP_WAIT_S = 5.0
#: what the agent says with a transfer reaches the sink within this time of the tool call
GRACE_S = 0.25
#: after a successful sipfrag, the tool call's outcome is stored before the call ends
TOOL_SETTLE_S = 0.3


@dataclass(frozen=True)
class SipCallInfo(CallInfo):
    """``call_info`` of a SIP call: the INVITE's ``X-`` headers ride along (they reach the
    configuration endpoint and stay on the record)."""

    sip_headers: dict[str, str] | None = None


@dataclass(frozen=True)
class SipOptions:
    """Where the endpoint listens and whom it answers."""

    host: str = "127.0.0.1"
    port: int = 5060
    #: the address put in Via, Contact and SDP (behind NAT); default: ``host``
    public_ip: str | None = None
    #: RTP port range (even ports); None: ephemeral ports
    rtp_ports: tuple[int, int] | None = None
    #: sources answered without digest (CIDRs or addresses)
    allow: tuple[str, ...] = ()
    inbound_username: str | None = None
    inbound_password: str | None = None
    realm: str = "openline"
    #: an outbound call that rings this long is CANCELled (no answer)
    ring_timeout_s: float = 30.0
    user_agent: str = "Openline"
    #: keep each call's received payloads in its statistics (tests, benchmarks)
    capture_media: bool = False


class SipService:
    """See the module docstring; also every call transport's ``SipControl``."""

    def __init__(self, options: SipOptions, live: LiveService, *,
                 transferred: Callable[[str, str], Awaitable[int]] | None = None,
                 rng: Callable[[], float] = random.random) -> None:
        self.options, self.live, self.db = options, live, live.db
        self.transferred, self.rng = transferred, rng
        self.guard = InboundGuard(parse_networks(options.allow), options.inbound_username,
                                  options.inbound_password, options.realm)
        self.media_ip = options.public_ip or options.host
        self.ports = RtpPorts(options.host, options.rtp_ports)
        self.transport = UdpTransport(local_addr=(options.host, options.port))
        self.uac = StrictUAC(self.transport)
        self.uas = TolerantUAS(self.transport, uac=self.uac, user_agent=options.user_agent)
        self.calls: dict[str, SipCall] = {}  # by SIP Call-ID
        self._inviting: dict[str, IncomingCall] = {}  # INVITEs being set up
        self._canceled: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._notes = asyncio.Lock()  # serialises ``_note`` (metadata read-modify-write)
        #: called with each finished call's media statistics (tests, benchmarks)
        self.observers: list[Callable[[SipCallStats], None]] = []
        self.dialer = SipDialer(self)

    # ----- lifecycle ----------------------------------------------------------------------
    async def start(self) -> tuple[str, int]:
        """Bind the SIP socket; returns where it listens."""
        uas = self.uas
        uas.on_invite = self._on_invite
        uas.on_reinvite = self._on_reinvite
        uas.on_bye = self._on_bye
        uas.on_cancel = self._on_cancel
        uas.on_transfer_progress = self._on_transfer_progress
        uas.on_ack_timeout = self._on_ack_timeout
        self.uac.on_refer_reply = self._on_refer_reply
        await uas.start()
        port = self.transport.local_addr[1]
        advertised = (self.media_ip, port)
        uas.advertised_addr = advertised
        self.uac.advertised_addr = advertised
        return self.transport.local_addr

    async def stop(self) -> None:
        """End every call (BYE while the socket is still open), then close it."""
        calls = list(self.calls.values())
        for call in calls:
            if call.transport is None:
                await self._end_pending(call, "error")
            else:
                self._end_session(call, "error")
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(STOP_WAIT_S):
                for call in calls:
                    await call.finished.wait()
        for task in list(self._tasks):
            task.cancel()
        await self.uas.stop()

    @property
    def address(self) -> tuple[str, int]:
        return self.transport.local_addr

    # ----- library callbacks (synchronous: each spawns its work) -------------------------
    def _on_invite(self, incoming: IncomingCall) -> None:
        call_id = incoming.call_id
        earlier = self._inviting.get(call_id)
        if earlier is not None and _same_cseq(earlier.invite, incoming.invite):
            self.uas._calls[call_id] = earlier  # a retransmission: keep the first dialog
            return
        self._inviting[call_id] = incoming
        self._spawn(self._inbound(incoming))

    def _on_cancel(self, request: SipRequest, addr: tuple[str, int]) -> None:
        call_id = request.call_id or ""
        self._canceled.add(call_id)
        call = self.calls.get(call_id)
        if call is not None and call.transport is None:
            self._spawn(self._end_pending(call, "call_canceled"))

    def _on_bye(self, incoming: IncomingCall, request: SipRequest) -> None:
        call = self.calls.get(incoming.call_id)
        if call is not None and call.transport is not None:
            call.ended_by = call.ended_by or "user"
            call.transport.remote_ended()

    def _on_ack_timeout(self, incoming: IncomingCall) -> None:
        call = self.calls.get(incoming.call_id)
        if call is not None:
            log.warning("no ACK for the 200 of SIP call %s; ending it", incoming.call_id)
            self._end_session(call, "error")

    def _on_reinvite(self, incoming: IncomingCall) -> None:
        """A re-INVITE: hold / resume (the mirrored direction), a new remote address, or a
        session refresh; the codec stays (488 otherwise)."""
        call = self.calls.get(incoming.call_id)
        port = call.reservation.port if call is not None and call.reservation else 0
        if call is None or call.transport is None or incoming.sdp_offer is None or not port:
            incoming.accept(None)
            return
        try:
            answer = answer_sdp(incoming.sdp_offer, self.media_ip, port)
        except NoCodec:
            answer = None
        if answer is None or answer.payload_type != call.transport.payload_type:
            self._respond(incoming, 488, "Not Acceptable Here")
            return
        sink = call.transport.sink
        sink.held = answer.direction in ("sendonly", "inactive")
        if call.answer is None or (answer.remote != call.answer.remote and answer.remote[1]):
            call.transport.rtp.update_remote(answer.remote)
        call.answer = answer
        incoming.accept(answer.sdp)
        self._spawn(self._note(call, "hold", sink.held))

    # ----- inbound --------------------------------------------------------------------------
    async def _inbound(self, incoming: IncomingCall) -> None:
        call_id = incoming.call_id
        try:
            await self._answer(incoming)
        except Exception:
            log.exception("inbound SIP call %s failed", call_id)
            if not incoming._answered:
                self._respond(incoming, 500, "Server Internal Error")
            call = self.calls.get(call_id)
            if call is not None and call.transport is None:  # prepared, never ran
                await self._end_pending(call, "error")
        finally:
            if self._inviting.get(call_id) is incoming:
                self._inviting.pop(call_id, None)
            self._canceled.discard(call_id)

    async def _answer(self, incoming: IncomingCall) -> None:
        """Route, authorise and answer one INVITE (see the module docstring)."""
        invite, ip = incoming.invite, incoming.source_addr[0]
        number = number_from_uri(invite.uri)
        owner = await sip_owner_of(self.db, number)
        if owner is None and number_from_uri(incoming.callee) != number:
            number = number_from_uri(incoming.callee)
            owner = await sip_owner_of(self.db, number)
        trunk_ips: frozenset[str] = frozenset()
        if owner is not None and owner.trunk_address:
            with contextlib.suppress(ValueError):  # an unresolvable trunk allows no one
                trunk_ips = frozenset([(await resolve(owner.trunk_address))[0]])
        verdict = self.guard.check(ip, invite.get_header("authorization"), "INVITE",
                                   trunk_ips)
        if verdict is Verdict.CHALLENGE:
            self._respond(incoming, 401, "Unauthorized",
                          {"WWW-Authenticate": self.guard.challenge()})
            return
        if verdict is Verdict.FORBIDDEN:
            log.warning("SIP INVITE from %s refused (not allowed)", ip)
            self._respond(incoming, 403, "Forbidden")
            return
        if owner is None:
            self._respond(incoming, 404, "Not Found")
            return
        agent = owner.owner.agent
        if agent.is_disabled:
            self._respond(incoming, 480, "Temporarily Unavailable")
            return
        if self._forwarded(incoming, agent.spec):
            return
        await self._accept(incoming, owner.owner, owner.trunk_address, number)

    def _forwarded(self, incoming: IncomingCall, spec: dict[str, Any]) -> bool:
        """``inbound_rollout``: the share of calls not taken goes to the forward number
        (302 with its Contact at the caller's trunk)."""
        rollout = 1.0 if spec.get("inbound_rollout") is None else float(spec["inbound_rollout"])
        forward = spec.get("inbound_rollout_forward_phone_number")
        if rollout >= 1.0 or not forward or self.rng() < rollout:
            return False
        host, port = incoming.source_addr
        self._respond(incoming, 302, "Moved Temporarily",
                      {"Contact": f"<sip:{forward}@{host}:{port}>"})
        return True

    async def _accept(self, incoming: IncomingCall, owner: Any, trunk: str | None,
                      number: str) -> None:
        call_id = incoming.call_id
        reservation = self.ports.reserve()
        try:
            answer = answer_sdp(incoming.sdp_offer, self.media_ip, reservation.port)
        except NoCodec as exc:
            reservation.release()
            log.info("SIP call %s: %s", call_id, exc)
            self._respond(incoming, 488, "Not Acceptable Here")
            return
        caller = caller_number(number_from_uri(incoming.caller))
        config: dict[str, Any] = dict(PCM)
        if owner.configuration_endpoint:
            config["configuration_endpoint"] = owner.configuration_endpoint
        info = SipCallInfo(caller, number, sip_headers=incoming.x_headers or None)
        incoming.ringing()  # while the configuration endpoint answers
        start = StartCall(Principal(owner.workspace.id, owner.workspace.name),
                          agent=owner.agent.id, overrides=overrides_from_config(config),
                          origin="sip", call_info=info)
        try:
            prepared = wire_formats(await self.live.setup.prepare(start))
        except OpenlineError as exc:
            reservation.release()
            log.warning("inbound SIP call %s to %s refused: %s", call_id, number, exc)
            busy = exc.code == "concurrency_limit_reached"
            self._respond(incoming, 486 if busy else 480,
                          "Busy Here" if busy else "Temporarily Unavailable")
            return
        host, port = incoming.source_addr
        call = SipCall(prepared, "inbound", call_id, number, caller, incoming.source_addr,
                       trunk or f"{host}:{port}", incoming=incoming, reservation=reservation,
                       answer=answer)
        self._track(call)
        if call_id in self._canceled:
            await self._end_pending(call, "call_canceled")
            return
        rtp = await reservation.open(answer.remote, answer.payload_type,
                                     answer.dtmf_payload_type)
        if call_id in self._canceled or call.finished.is_set():
            await close_quietly(rtp)
            await self._end_pending(call, call.ended_by or "call_canceled")
            return
        call.transport = SipTransport(call_id, answer.payload_type, rtp, self,
                                      capture=self.options.capture_media)
        call.transport.sink.held = answer.direction in ("sendonly", "inactive")
        incoming.accept(answer.sdp)
        await self._note(call, "call", {"call_id": call_id, "codec": call.transport.stats.codec,
                                        "direction": "inbound"})
        await self.run(call)

    async def run(self, call: SipCall) -> None:
        """Run an answered call's conversation to its stored end."""
        assert call.transport is not None
        try:
            await self.live.run_prepared(call.prepared, call.transport)
            await self._note(call, "media", media_summary(call.transport.stats))
        finally:
            self._forget(call)

    # ----- call state -------------------------------------------------------------------
    def _track(self, call: SipCall) -> None:
        self.calls[call.call_id] = call
        self.live.registry.add(PendingCall(call, self._end_pending))

    async def _end_pending(self, call: SipCall, ended_by: str) -> None:
        """End a call that has no media yet (cancelled, refused, unanswered)."""
        if call.transport is not None:
            self._end_session(call, ended_by)
            return
        if call.finished.is_set() or (call.ended_by is not None and call.canceled):
            return
        call.ended_by = call.ended_by or ended_by
        call.canceled = True
        if call.outgoing is not None and call.outgoing.dialog.state == DialogState.EARLY:
            call.outgoing.cancel(self.uac)
        try:
            await self.live.end_unstarted(call.conversation_id, call.ended_by)
        finally:
            self._forget(call)

    def _forget(self, call: SipCall) -> None:
        call.finished.set()
        if self.calls.get(call.call_id) is call:
            del self.calls[call.call_id]
        # Keep the INVITE a while: the 487 to our CANCEL (or a retransmitted final) still
        # needs its ACK (RFC 3261 Timer D: 32 s).
        asyncio.get_running_loop().call_later(ACK_WINDOW_S, self.uac.forget, call.call_id)
        self.uas._calls.pop(call.call_id, None)
        if call.reservation is not None:
            call.reservation.release()
        if call.transport is not None:
            for observer in self.observers:
                with contextlib.suppress(Exception):
                    observer(call.transport.stats)

    def _end_session(self, call: SipCall, ended_by: str) -> None:
        call.ended_by = call.ended_by or ended_by
        session = self.live.registry.local(call.conversation_id)
        if session is not None:
            session.end(ended_by)

    # ----- SipControl (called by the transports) ----------------------------------------
    async def hang_up(self, call_id: str) -> None:
        """BYE to the far end (the conversation ended on our side)."""
        call = self.calls.get(call_id)
        dialog = call.dialog if call is not None else None
        if call is None or dialog is None or dialog.state != DialogState.CONFIRMED:
            return
        if call.incoming is not None:
            call.incoming._stop_retransmissions()
            call.incoming.hangup()
        else:
            self.uac.send_bye(dialog, call.peer)

    async def transfer(self, call_id: str, request: PhoneTransfer) -> bool:
        """Blind transfer: REFER once the agent's last words were heard; True once the
        trunk accepted it (202), ``TransferRefused`` when it answered >= 300. What happens
        next comes in NOTIFYs."""
        call = self.calls.get(call_id)
        dialog = call.dialog if call is not None else None
        if call is None or call.transport is None or dialog is None \
                or dialog.state != DialogState.CONFIRMED:
            return False
        await asyncio.sleep(GRACE_S)
        await call.transport.wait_heard(SETTLE_S)
        target = refer_target(request.phone_number, call.trunk)
        call.refer_reply = asyncio.get_running_loop().create_future()
        call.transfer = request
        self.uac.send_refer(dialog, target, call.peer)
        try:
            status, reason = await asyncio.wait_for(call.refer_reply, REFER_WAIT_S)
        except TimeoutError:
            status, reason = 408, "No answer to REFER"
        await self._note(call, "refer", {"to": request.phone_number, "refer_to": target,
                                         "status": status, "reason": reason})
        if status >= 300:
            call.transfer = None
            raise TransferRefused(status, reason)  # the tool result names the refusal
        return True

    def _on_refer_reply(self, call_id: str, status: int, reason: str) -> None:
        call = self.calls.get(call_id)
        if call is not None and call.refer_reply is not None and not call.refer_reply.done():
            call.refer_reply.set_result((status, reason))

    def _on_transfer_progress(self, call_id: str, status: int, reason: str) -> None:
        call = self.calls.get(call_id)
        if call is None or call.transfer is None or status < 200:
            return
        request, call.transfer = call.transfer, None
        self._spawn(self._transfer_done(call, request, status, reason))

    async def _transfer_done(self, call: SipCall, request: PhoneTransfer, status: int,
                             reason: str) -> None:
        await self._note(call, "transfer", {"to": request.phone_number, "status": status,
                                            "reason": reason})
        if status < 300:
            await asyncio.sleep(TOOL_SETTLE_S)
            self._end_session(call, "transferred")
            if self.transferred is not None:
                try:
                    await self.transferred(call.conversation_id, request.phone_number)
                except Exception:
                    log.exception("could not publish the transfer of %s", call.conversation_id)
            return
        session = self.live.registry.local(call.conversation_id)
        if isinstance(session, CallSession):
            await session.control(tb.GenerateReply(system_message=(
                f"The transfer to {request.phone_number} did not go through ({status} "
                f"{reason}). The caller is still with you: tell them, briefly, and offer to "
                "help otherwise.")))

    # ----- helpers ----------------------------------------------------------------------
    def _respond(self, incoming: IncomingCall, status: int, reason: str,
                 headers: dict[str, str] | None = None) -> None:
        """A final non-2xx answer to an INVITE (the library's ``reject`` takes no
        headers)."""
        response = incoming.dialog.create_response(incoming.invite, status, reason)
        for name, value in (headers or {}).items():
            response.headers.set_single(name, value)
        if self.options.user_agent:
            response.headers.set_single("User-Agent", self.options.user_agent)
        incoming._stop_retransmissions()
        self.transport.send_reply(response)
        incoming.dialog.terminate()

    async def _note(self, call: SipCall, key: str, value: Any) -> None:
        """Keep a telephony fact in the conversation's ``metadata.sip``."""
        # One note at a time: each is a read-modify-write of the same JSON (the REFER's
        # answer and its NOTIFY arrive together), and a concurrent one would drop the other.
        async with self._notes, self.db.session() as s:
            row = await s.get(t.Conversation, call.conversation_id)
            if row is not None:
                meta = dict(row.meta or {})
                meta["sip"] = {**(meta.get("sip") or {}), key: value}
                row.meta = meta

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def media_summary(stats: SipCallStats) -> dict[str, Any]:
    """What the call's media did, for ``metadata.sip.media``: packets each way, and how
    late the pacer sent its packets (ms after their 20 ms slot)."""
    late = sorted(stats.lateness_s)

    def at(q: float) -> float:
        return round(late[min(len(late) - 1, int(q * len(late)))] * 1000, 2) if late else 0.0

    return {"rx_frames": stats.rx_frames, "tx_packets": stats.tx_packets,
            "tx_speech_packets": stats.tx_speech_packets, "gap_frames": stats.gap_frames,
            "pacing_late_ms": {"p50": at(0.5), "p99": at(0.99), "max": at(1.0)}}


def refer_target(number: str, trunk: str) -> str:
    """The Refer-To URI: a SIP URI as given, else the number at the call's trunk."""
    if number.lower().startswith(("sip:", "sips:")):
        return number
    return f"sip:{number}@{trunk}"


def _same_cseq(a: SipRequest, b: SipRequest) -> bool:
    ca, cb = a.cseq, b.cseq
    return ca is not None and cb is not None and ca.seq == cb.seq
