"""``POST /call``: a Vapi call, as a WebSocket call or an outbound phone call.

* ``transport: {provider: "vapi.websocket", audioFormat}``: the conversation is prepared
  at once (stored, leased, ``queued``) and runs when the client connects to the returned
  ``transport.websocketCallUrl`` (within ``pending_s``, else it ends unstarted).
* ``customer.number``: an outbound phone call. The phone number (``phoneNumberId``, or a
  transient ``phoneNumber``) picks the path by its ``provider``: ``twilio`` goes through
  the Twilio service; a SIP provider (``byo-phone-number``, ``telnyx``, ``vonage``) dials
  through the number's ``sipUri`` trunk (``sip_dialer``: ``live_sip``; refused when the
  server's SIP endpoint is off).
* The assistant: ``assistantId`` (a stored assistant is an agent), or an inline
  ``assistant``, with ``assistantOverrides`` (``variableValues``) on top. With neither, the
  org's server URL is asked with ``assistant-request`` (spec section 6.3 reply forms).

The call's id is its conversation's id. What only the Vapi dialect needs (the create body,
the server and its credential, sealed) is kept in ``vapi_calls``; the running call gets a
``VapiLiveCall`` (``live_call``) through the live service's extension seam. The
``monitor.controlUrl`` and the socket URL carry an HMAC of the call id under the server's
secret key: the URL is the credential, as with Vapi, and any node can check it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from sqlalchemy import select

from openline.domain.conversation import Conversation
from openline.domain.errors import Conflict, NotFound, OpenlineError, ValidationFailed
from openline.domain.events import ConversationEnded, DomainEvent
from openline.services.call_session import CallSession
from openline.services.call_setup import CallInfo, PreparedCall, StartCall
from openline.services.live import LiveService
from openline.services.live_registry import OwnerUnreachable
from openline.services.principal import Principal
from openline.services.telephony.service import TwilioService
from openline.services.vapi import assistant_map as am
from openline.services.vapi import call_view
from openline.services.vapi import live_assistant as la
from openline.services.vapi.assistants import AssistantService
from openline.services.vapi.calls import CallService
from openline.services.vapi.docs import VapiDocs
from openline.services.vapi.live_call import CallFacts, VapiLiveCall
from openline.services.vapi.live_choice import AssistantResolver, CallStart
from openline.services.vapi.live_requests import AssistantRequestFailed, end_of_call_report
from openline.services.vapi.phone_numbers import VapiNumberService
from openline.services.vapi.server_messages import ServerMessages, ServerTarget, encode
from openline.services.vapi.squads import SquadService
from openline.store.tables import Workspace, utcnow
from openline.store.tables_vapi import VapiResource
from openline.store.tables_vapi_live import VapiCall
from openline.transports import base as tb
from openline.transports.vapi_ws import (
    BinarySocket,
    Command,
    EndCall,
    InvalidAudioFormat,
    SayThenEnd,
    VapiWsTransport,
    parse_control,
    wire_format,
)
from openline.voice.tools import RuntimeTool

log = logging.getLogger(__name__)
WEBSOCKET, OUTBOUND, INBOUND = "vapi.websocketCall", "outboundPhoneCall", "inboundPhoneCall"
#: body keys that start a call with something this dialect does not run here
UNSUPPORTED_TARGETS = ("squad", "workflowId", "workflow", "customers")
SIP_PROVIDERS = ("vapi", "byo-phone-number", "telnyx", "vonage")
CALL_KIND = "call"
#: create-body keys the call's document keeps (and the call view echoes)
ECHOED = ("assistant", "assistantOverrides", "customer", "name", "phoneNumberId",
          "metadata", "phoneNumber")


class SipDialer(Protocol):
    """The SIP path's outbound calls (the SIP work plugs in here)."""

    async def place_call(self, start: StartCall, to_number: str, phone_number: dict[str, Any]
                         ) -> str: ...


@dataclass(frozen=True)
class VapiLiveOptions:
    public_url: str
    secret_key: str
    #: the org's server URL: ``assistant-request`` for calls that name no assistant
    org_server: ServerTarget | None = None
    #: a WebSocket call whose client has not connected after this long ends unstarted
    pending_s: float = 60.0
    #: a tool's server still silent after this long: ``hang`` goes out
    hang_after_s: float = 5.0


@dataclass
class CallPlan:
    """A created call waiting to run (or running): its facts and inline tools."""

    facts: CallFacts
    tools: list[RuntimeTool] = field(default_factory=list)
    built_ins: tuple[str, ...] = ()
    #: the ``Call`` as ``POST /call`` answered
    view: dict[str, Any] = field(default_factory=dict)
    prepared: PreparedCall | None = None
    live: VapiLiveCall | None = None
    finished: asyncio.Event = field(default_factory=asyncio.Event)


class PendingSocket:
    """A ``LiveCall`` for a WebSocket call whose client has not connected yet."""

    def __init__(self, plan: CallPlan, calls: VapiCalls) -> None:
        self.plan, self.calls = plan, calls

    @property
    def id(self) -> str:
        return str(self.plan.facts.call["id"])

    @property
    def workspace_id(self) -> str:
        return str(self.plan.facts.call["orgId"])

    def end(self, ended_by: str) -> None:
        self.calls.spawn(self.calls.end_pending(self.id, ended_by))

    async def wait_finished(self) -> None:
        await self.plan.finished.wait()


class VapiCalls:
    """Creates Vapi calls, runs their sockets and control URLs, reports their end."""

    def __init__(self, live: LiveService, messages: ServerMessages, options: VapiLiveOptions,
                 *, assistants: AssistantService, numbers: VapiNumberService, docs: VapiDocs,
                 calls: CallService, squads: SquadService | None = None,
                 twilio: TwilioService | None = None,
                 sip_dialer: SipDialer | None = None,
                 recording_url: Callable[[Conversation], str | None] | None = None) -> None:
        self.live, self.messages, self.options = live, messages, options
        self.numbers, self.docs, self.calls = numbers, docs, calls
        self.resolver = AssistantResolver(assistants, docs, messages, options.org_server,
                                          squads)
        self.twilio, self.sip_dialer = twilio, sip_dialer
        self.recording_url = recording_url
        self.plans: dict[str, CallPlan] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        live.extensions.append(self.extension)

    # ----- URLs and their tokens ----------------------------------------------------------
    def token(self, call_id: str) -> str:
        key = self.options.secret_key.encode()
        return hmac.new(key, f"vapi-call:{call_id}".encode(), hashlib.sha256).hexdigest()[:32]

    def token_valid(self, call_id: str, token: str) -> bool:
        return hmac.compare_digest(self.token(call_id), token)

    def urls(self, call_id: str) -> tuple[str, str]:
        """(the socket's ``websocketCallUrl``, the ``monitor.controlUrl``)."""
        base = self.options.public_url.rstrip("/")
        scheme, _, rest = base.partition("://")
        ws = f"{'wss' if scheme == 'https' else 'ws'}://{rest}"
        path = f"/call/{call_id}/%s/{self.token(call_id)}"
        return ws + path % "transport", base + path % "control"

    # ----- create ---------------------------------------------------------------------------
    async def create(self, who: Principal, body: dict[str, Any]) -> dict[str, Any]:
        """Create and start a call; the Vapi ``Call`` (``queued``). Refusals raise
        ``ValidationFailed`` (400) or ``NotFound`` and change nothing."""
        for key in UNSUPPORTED_TARGETS:
            if body.get(key) is not None:
                raise ValidationFailed(f"{key} is not supported on this server's calls"
                                       + (" (create the squad, then give squadId)"
                                          if key == "squad" else ""), {key: "unsupported"})
        transport = body.get("transport")
        if transport is not None and not isinstance(transport, dict):
            raise ValidationFailed("transport must be an object", {"transport": "object"})
        if transport and transport.get("provider") == "vapi.websocket":
            return await self._websocket_call(who, body, transport)
        if transport:
            raise ValidationFailed("transport.provider must be 'vapi.websocket' (phone calls "
                                   "take customer.number)", {"transport.provider": "unsupported"})
        customer = body.get("customer")
        if isinstance(customer, dict) and customer.get("number"):
            return await self._phone_call(who, body, customer)
        raise ValidationFailed("Give transport {provider: 'vapi.websocket'} or customer.number",
                               {"customer.number": "required for a phone call"})

    async def _websocket_call(self, who: Principal, body: dict[str, Any],
                              transport: dict[str, Any]) -> dict[str, Any]:
        if body.get("phoneNumberId") or body.get("phoneNumber"):
            raise ValidationFailed("The vapi.websocket transport cannot be combined with a "
                                   "phone number", {"phoneNumberId": "not with vapi.websocket"})
        try:
            fmt = wire_format(transport.get("audioFormat"))
        except InvalidAudioFormat as exc:
            raise ValidationFailed(str(exc), {exc.field: str(exc)}) from exc
        resolved = await self.resolver.resolve(
            who, body, _call_stub(who, WEBSOCKET), {"input_format": fmt.name,
                                                    "output_format": fmt.name},
            "vapi.websocket")
        prepared = await self.live.setup.prepare(resolved.start)
        plan = self._new_plan(prepared.id, body, resolved)
        ws_url, _ = self.urls(prepared.id)
        doc = {**self._doc(body, resolved, WEBSOCKET, prepared.id),
               "transport": {**transport, "websocketCallUrl": ws_url}}
        await self._store(who, plan, doc, body)
        plan.prepared = prepared
        self.live.registry.add(PendingSocket(plan, self))
        self.spawn(self._expire(prepared.id))
        return plan.view

    async def _phone_call(self, who: Principal, body: dict[str, Any],
                          customer: dict[str, Any]) -> dict[str, Any]:
        number = await self._phone_number(who, body)
        provider = number.get("provider")
        resolved = await self.resolver.resolve(
            who, body, _call_stub(who, OUTBOUND), {"input_format": "mulaw_8000",
                                                   "output_format": "mulaw_8000"},
            "twilio" if provider == "twilio" else "sip")
        if resolved.server is None and isinstance(number.get("server"), dict):
            # precedence: the assistant's server, then the phone number's, then the org's
            resolved.server = la.target_of(number["server"])
        resolved.server = resolved.server or self.resolver.org_server
        if provider in SIP_PROVIDERS:
            # The SIP path (the phone number's provider picks it): ``live_sip``. It returns
            # before the INVITE goes out, so the plan below exists before the call runs.
            if self.sip_dialer is None:
                raise ValidationFailed(f"Phone numbers of provider {provider!r} call through "
                                       "SIP: this server's SIP endpoint is off (set "
                                       "OPENLINE_SIP_PORT)",
                                       {"phoneNumber.provider": "SIP calls unavailable"})
            call_id = await self.sip_dialer.place_call(resolved.start, str(customer["number"]),
                                                       number)
        elif provider == "twilio":
            call_id = await self._twilio_call(resolved, body, str(customer["number"]), number)
        else:
            raise ValidationFailed(f"Unknown phone number provider {provider!r}",
                                   {"phoneNumber.provider": "unknown"})
        plan = self.plans.get(call_id) or self._new_plan(call_id, body, resolved)
        await self._store(who, plan, self._doc(body, resolved, OUTBOUND, call_id), body)
        return plan.view

    async def _twilio_call(self, resolved: CallStart, body: dict[str, Any], to: str,
                           number: dict[str, Any]) -> str:
        if self.twilio is None:
            raise ValidationFailed("Twilio phone calls need OPENLINE_TWILIO_ACCOUNT_SID and "
                                   "OPENLINE_TWILIO_AUTH_TOKEN", code="telephony_not_configured")
        sid = number.get("twilioAccountSid")
        if sid and sid != self.twilio.options.account_sid:
            raise ValidationFailed("The phone number's twilioAccountSid is not this server's "
                                   "Twilio account", {"twilioAccountSid": "unknown account"})
        # The plan is known before Twilio is asked: the call's stream may start at once.
        placed: list[str] = []

        def prepared(call: PreparedCall) -> None:
            placed.append(call.id)
            self._new_plan(call.id, body, resolved)

        try:
            conversation_id = await self.twilio.place_call(
                resolved.start, to, from_number=str(number["number"]), prepared=prepared)
        except Exception:
            for call_id in placed:
                self.plans.pop(call_id, None)
            raise
        assert conversation_id is not None
        return conversation_id

    async def _phone_number(self, who: Principal, body: dict[str, Any]) -> dict[str, Any]:
        """The phone number the call is made from (``provider``, ``number``)."""
        if body.get("phoneNumberId"):
            found = await self.numbers.get(who, str(body["phoneNumberId"]))
            return {**found.doc, "id": found.id}
        transient = body.get("phoneNumber")
        if isinstance(transient, dict) and transient.get("twilioPhoneNumber"):
            return {**transient, "provider": "twilio", "number": transient["twilioPhoneNumber"]}
        raise ValidationFailed("A phone call needs phoneNumberId (or a transient phoneNumber)",
                               {"phoneNumberId": "required for a phone call"})

    def _doc(self, body: dict[str, Any], resolved: CallStart, call_type: str,
             call_id: str) -> dict[str, Any]:
        """The call's Vapi document: what the client sent (no secrets) and what is known
        before it runs; the call view computes the rest."""
        _, control_url = self.urls(call_id)
        doc = {k: la.public(v) for k, v in body.items() if k in ECHOED}
        doc.update(type=call_type, status="queued", monitor={"controlUrl": control_url})
        if resolved.choice.assistant_id:
            doc["assistantId"] = resolved.choice.assistant_id
        return doc

    def _new_plan(self, call_id: str, body: dict[str, Any], resolved: CallStart
                  ) -> CallPlan:
        """The plan the call's live call is built from (registered before it can run)."""
        phone = body.get("phoneNumber")
        facts = CallFacts({"id": call_id, **_call_stub(resolved.start.principal, "")},
                          la.public(resolved.choice.assistant), body.get("customer"),
                          la.public(phone) if isinstance(phone, dict) else None,
                          resolved.server)
        plan = CallPlan(facts, resolved.tools, resolved.built_ins)
        self.plans[call_id] = plan
        return plan

    async def _store(self, who: Principal, plan: CallPlan, doc: dict[str, Any],
                     body: dict[str, Any]) -> None:
        """Store the call's documents; the plan gets the ``Call`` as answered."""
        call_id, server = str(plan.facts.call["id"]), plan.facts.server
        async with self.live.db.session() as s:
            await self.docs.insert(s, who, CALL_KIND, doc, doc_id=call_id,
                                   link_id=body.get("phoneNumberId"))
            s.add(VapiCall(id=call_id, workspace_id=who.workspace_id, call_type=doc["type"],
                           request=la.public(body),
                           server=json.dumps(server.to_json()) if server else None))
        plan.view = (await self.calls.get(who, call_id)).json()
        plan.facts.call = {k: v for k, v in plan.view.items()
                           if k not in ("messages", "artifact", "analysis", "transcript")}

    # ----- inbound calls to numbers no assistant holds ---------------------------------------
    async def inbound(self, sid: str, to: str, caller: str
                      ) -> tuple[StartCall, Callable[[PreparedCall], Awaitable[None]]] | str | None:
        """The Twilio service's ``unassigned``: a Vapi number with no assistant asks its
        server (else the org's) with ``assistant-request``; an ``error`` reply is said to
        the caller. None: no Vapi number, or no server to ask (not in service)."""
        found = await self._number_for(to)
        if found is None:
            return None
        who, number = found
        ask = la.target_of(number["server"], request=True) \
            if isinstance(number.get("server"), dict) else self.resolver.org_server
        if ask is None:
            return None
        body = {"phoneNumberId": number["id"], "phoneNumber": number,
                "customer": {"number": caller}}
        stub = {**_call_stub(who, INBOUND), "phoneNumberId": number["id"],
                "phoneCallProvider": "twilio", "phoneCallProviderId": sid}
        try:
            resolved = await self.resolver.resolve(
                who, body, stub, {"input_format": "mulaw_8000", "output_format": "mulaw_8000"},
                "twilio", ask)
        except AssistantRequestFailed as exc:
            log.warning("assistant-request for %s failed: %s", to, exc.message)
            return exc.spoken or None
        except OpenlineError as exc:
            log.warning("assistant-request for %s: %s", to, exc.message)
            return None
        resolved.server = resolved.server or ask
        start = replace(resolved.start, call_info=CallInfo(caller, to, sid))

        async def prepared(call: PreparedCall) -> None:
            plan = self._new_plan(call.id, body, resolved)
            await self._store(who, plan, self._doc(body, resolved, INBOUND, call.id), body)

        return start, prepared

    async def _number_for(self, number: str) -> tuple[Principal, dict[str, Any]] | None:
        """The Vapi phone number ``number`` with no assistant, and its workspace."""
        async with self.live.db.session() as s:
            rows = list(await s.scalars(select(VapiResource).where(
                VapiResource.kind == "phone-number").order_by(VapiResource.created_at)))
            for row in rows:
                doc = dict(row.doc or {})
                if doc.get("number") == number and not doc.get("assistantId"):
                    workspace = await s.get(Workspace, row.workspace_id)
                    if workspace is not None:
                        return Principal(workspace.id, workspace.name), {**doc, "id": row.id}
        return None

    # ----- running ----------------------------------------------------------------------------
    def extension(self, prepared: PreparedCall) -> VapiLiveCall | None:
        """The live service's seam: a Vapi call gets its live call and inline tools."""
        plan = self.plans.get(prepared.id)
        if plan is None:
            return None
        loaded, built_ins = prepared.tools
        for key, value in am.call_limits(plan.facts.assistant).items():
            setattr(prepared.resolved.session, key, value)  # the engine is built after this
        prepared.tools = ([*plan.tools, *loaded], tuple(dict.fromkeys((*built_ins,
                                                                         *plan.built_ins))))
        plan.live = VapiLiveCall(plan.facts, self.messages, self.spawn, self.end_call,
                                 on_finished=self._finished, on_started=self._started)
        plan.live.hang_after_s = self.options.hang_after_s
        return plan.live

    async def serve_socket(self, call_id: str, socket: BinarySocket) -> bool:
        """Run a WebSocket call on the client's socket; False when no such call waits."""
        plan = self.plans.get(call_id)
        if plan is None or plan.prepared is None or plan.live is not None:
            return False
        prepared, plan.prepared = plan.prepared, None
        fmt = prepared.resolved.session.input_format
        try:
            await self.live.run_prepared(prepared, VapiWsTransport(socket, fmt))
        finally:
            plan.finished.set()
        return True

    async def control(self, call_id: str, message: Any) -> None:
        """A ``monitor.controlUrl`` message (``ValidationFailed`` when it cannot apply)."""
        command = parse_control(message)
        if isinstance(command, str):
            raise ValidationFailed(command, {"type": command})
        plan = self.plans.get(call_id)
        session = self.live.registry.local(call_id)
        if session is None:  # another node runs it (or nobody): that node applies it
            await self._control_elsewhere(call_id, command)
            return
        if isinstance(command, EndCall):
            self.end_call(call_id, "user_canceled", None)
            return
        if plan is None or plan.live is None or not isinstance(session, CallSession):
            raise ValidationFailed("The call is not in progress", {"type": "call not started"})
        try:
            await plan.live.run_command(command, session)
        except tb.ControlRejected as exc:
            raise ValidationFailed(exc.message, exc.param_errors) from exc

    async def _control_elsewhere(self, call_id: str, command: Command) -> None:
        """A control for a call this node does not run, through ``LiveService`` (the
        owner applies it over the control channel; one node: it is not live)."""
        if isinstance(command, SayThenEnd):
            # Ending once the words were heard needs the call's own live call.
            raise ValidationFailed("say with endCallAfterSpoken must reach the server running "
                                   "the call; send say, then end-call",
                                   {"endCallAfterSpoken": "not across servers"})
        who = await self._principal_of(call_id)
        try:
            if isinstance(command, EndCall):
                await self.live.cancel(who, call_id)
                return
            for part in command if isinstance(command, tuple) else (command,):
                await self.live.control(who, call_id, part)
        except (NotFound, Conflict) as exc:
            if isinstance(command, EndCall):
                raise NotFound("The call is not live on this server") from exc
            raise ValidationFailed("The call is not in progress",
                                   {"type": "call not started"}) from exc
        except tb.ControlRejected as exc:
            raise ValidationFailed(exc.message, exc.param_errors) from exc
        except (TimeoutError, OwnerUnreachable) as exc:
            raise Conflict("The server running the call did not answer; try again",
                           code="owner_unreachable") from exc

    async def _principal_of(self, call_id: str) -> Principal:
        """The workspace a created call belongs to (its control URL's token is the
        credential; the live service checks the call against it)."""
        async with self.live.db.session() as s:
            row = await s.get(VapiCall, call_id)
            workspace = await s.get(Workspace, row.workspace_id) if row is not None else None
        if row is None or workspace is None:
            raise NotFound("The call is not live on this server")
        return Principal(workspace.id, workspace.name)

    def end_call(self, call_id: str, ended_by: str, reason: str | None) -> None:
        """End a live call, with Vapi's ``endedReason`` when ``ended_by`` says less."""
        session = self.live.registry.local(call_id)
        plan = self.plans.get(call_id)
        if reason:
            if plan is not None and plan.live is not None:
                plan.live.reason = reason
            self.spawn(self._ended_reason(call_id, reason))
        if session is not None:
            session.end(ended_by)

    async def _ended_reason(self, call_id: str, reason: str) -> None:
        async with self.live.db.session() as s:
            row = await s.get(VapiCall, call_id)
            if row is not None:
                row.ended_reason = reason

    async def end_pending(self, call_id: str, ended_by: str) -> None:
        plan = self.plans.get(call_id)
        if plan is None or plan.prepared is None:
            return
        plan.prepared = None
        await self.live.end_unstarted(call_id, ended_by)
        plan.finished.set()
        self.plans.pop(call_id, None)

    async def _expire(self, call_id: str) -> None:
        await asyncio.sleep(self.options.pending_s)
        await self.end_pending(call_id, "error")

    async def _started(self, call_id: str) -> None:
        """The call's media started: it is no longer ``queued`` (the view says
        ``in-progress`` while it runs)."""
        async with self.live.db.session() as s:
            doc = await s.get(VapiResource, call_id)
            if doc is not None and doc.kind == CALL_KIND:
                doc.doc = {k: v for k, v in (doc.doc or {}).items() if k != "status"}
                doc.updated_at = utcnow()

    def _finished(self, call_id: str) -> None:
        self.plans.pop(call_id, None)

    # ----- after the call ---------------------------------------------------------------------
    async def on_domain_event(self, event: DomainEvent) -> None:
        """``conversation.ended`` (post-call work stored): queue the end-of-call report."""
        if not isinstance(event, ConversationEnded):
            return
        conv = event.conversation
        plan = self.plans.get(conv.id)
        if plan is not None and plan.live is None:  # it never ran (an unanswered call)
            self.plans.pop(conv.id, None)
        async with self.live.db.session() as s:
            row = await s.get(VapiCall, conv.id)
            doc = await s.get(VapiResource, conv.id)
        if row is None or not row.server:
            return
        url = self.recording_url(conv) if self.recording_url else None
        report = end_of_call_report(conv, row, dict(doc.doc or {}) if doc else {}, url)
        await self.messages.enqueue(conv.id, encode(report), f"vapi:end-of-call:{conv.id}")

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        with contextlib.suppress(Exception):
            await asyncio.gather(*self._tasks, return_exceptions=True)


def _call_stub(who: Principal, call_type: str) -> dict[str, Any]:
    """The ``call`` an ``assistant-request`` describes (before the call exists)."""
    now = call_view.iso(utcnow())
    return {"orgId": who.workspace_id, "type": call_type, "status": "queued",
            "createdAt": now, "updatedAt": now}
