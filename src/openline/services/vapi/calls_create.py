"""``POST /call``: a Vapi call, as a WebSocket call or an outbound phone call.

* ``transport: {provider: "vapi.websocket", audioFormat}``: the conversation is prepared
  at once (stored, leased, ``queued``) and runs when the client connects to the returned
  ``transport.websocketCallUrl`` (within ``pending_s``, else it ends unstarted).
* ``customer.number``: an outbound phone call. The phone number (``phoneNumberId``, or a
  transient ``phoneNumber``) picks the path by its ``provider``: ``twilio`` goes through
  the Twilio service; a SIP provider (``vapi`` with a SIP URI, ``byo-phone-number``) is
  the SIP path's, refused here until it exists (``sip_dialer``).
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
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from sqlalchemy import select

from openline.domain.conversation import Conversation
from openline.domain.errors import NotFound, ValidationFailed
from openline.domain.events import ConversationEnded, DomainEvent
from openline.services.call_session import CallSession
from openline.services.call_setup import PreparedCall, StartCall
from openline.services.live import LiveService
from openline.services.principal import Principal
from openline.services.session_config import overrides_from_config
from openline.services.telephony.service import TwilioService
from openline.services.vapi import live_assistant as la
from openline.services.vapi.live_call import CallFacts, VapiLiveCall
from openline.services.vapi.live_requests import (
    AssistantChoice,
    ask_for_assistant,
    end_of_call_report,
)
from openline.services.vapi.server_messages import ServerMessages, ServerTarget, encode
from openline.store import tables as t
from openline.store.tables_vapi_live import VapiCall
from openline.transports import base as tb
from openline.transports.vapi_ws import (
    BinarySocket,
    EndCall,
    InvalidAudioFormat,
    VapiWsTransport,
    parse_control,
    wire_format,
)
from openline.voice.tools import RuntimeTool

log = logging.getLogger(__name__)
WEBSOCKET, OUTBOUND = "vapi.websocketCall", "outboundPhoneCall"
#: body keys that start a call with something this dialect does not run here
UNSUPPORTED_TARGETS = ("squadId", "squad", "workflowId", "workflow", "customers")
SIP_PROVIDERS = ("vapi", "byo-phone-number", "telnyx", "vonage")


class PhoneNumbers(Protocol):
    """The Vapi phone numbers of a workspace (the REST half of the dialect stores them)."""

    async def get(self, workspace_id: str, phone_number_id: str) -> dict[str, Any] | None: ...


class Assistants(Protocol):
    """Stored Vapi assistants as documents (an assistant is an agent)."""

    async def get(self, workspace_id: str, assistant_id: str) -> dict[str, Any] | None: ...


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


@dataclass
class CallPlan:
    """A created call waiting to run (or running): its facts and inline tools."""

    facts: CallFacts
    tools: list[RuntimeTool] = field(default_factory=list)
    built_ins: tuple[str, ...] = ()
    prepared: PreparedCall | None = None
    live: VapiLiveCall | None = None
    finished: asyncio.Event = field(default_factory=asyncio.Event)


class AgentAssistants:
    """``Assistants`` until the stored-assistant mapping is wired in: the agent's id and
    name, plus the Vapi document it keeps under ``spec["vapi"]`` if any."""

    def __init__(self, live: LiveService) -> None:
        self.live = live

    async def get(self, workspace_id: str, assistant_id: str) -> dict[str, Any] | None:
        async with self.live.db.session() as s:
            agent = await s.get(t.Agent, assistant_id)
            project = await s.get(t.Project, agent.project_id) if agent else None
        if agent is None or project is None or project.workspace_id != workspace_id:
            return None
        stored = agent.spec.get("vapi")
        return {**(stored if isinstance(stored, dict) else {}), "id": agent.id,
                "name": agent.name}


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
                 *, twilio: TwilioService | None = None, phone_numbers: PhoneNumbers | None = None,
                 assistants: Assistants | None = None, sip_dialer: SipDialer | None = None,
                 recording_url: Callable[[Conversation], str | None] | None = None) -> None:
        self.live, self.messages, self.options = live, messages, options
        self.twilio, self.phone_numbers, self.sip_dialer = twilio, phone_numbers, sip_dialer
        self.assistants: Assistants = assistants or AgentAssistants(live)
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
                raise ValidationFailed(f"{key} is not supported on this server's calls",
                                       {key: "unsupported"})
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

    async def _assistant(self, who: Principal, body: dict[str, Any], call: dict[str, Any]
                         ) -> AssistantChoice:
        """Which assistant runs the call, with its overrides merged."""
        overrides = body.get("assistantOverrides")
        if overrides is not None and not isinstance(overrides, dict):
            raise ValidationFailed("assistantOverrides must be an object",
                                   {"assistantOverrides": "must be an object"})
        if body.get("assistantId") and body.get("assistant"):
            raise ValidationFailed("Give assistantId or assistant, not both",
                                   {"assistant": "conflicts with assistantId"})
        if body.get("assistantId"):
            return await self._stored(who, str(body["assistantId"]), overrides)
        if isinstance(body.get("assistant"), dict):
            return AssistantChoice(None, la.merge_overrides(body["assistant"], overrides))
        if body.get("assistant") is not None:
            raise ValidationFailed("assistant must be an object", {"assistant": "object"})
        if self.options.org_server is None:
            raise ValidationFailed(
                "The call names no assistant and no server URL is set to ask for one "
                "(call-start-error-neither-assistant-nor-server-set)",
                {"assistantId": "required"},
                code="call-start-error-neither-assistant-nor-server-set")
        choice = await ask_for_assistant(self.messages, self.options.org_server,
                                         {"type": "assistant-request", "call": call,
                                          **({"customer": body["customer"]}
                                             if body.get("customer") else {})})
        if choice.assistant_id:
            stored = await self._stored(who, choice.assistant_id, choice.assistant)
            return replace(stored, server=self.options.org_server)
        return replace(choice, server=self.options.org_server)

    async def _stored(self, who: Principal, assistant_id: str,
                      overrides: dict[str, Any] | None) -> AssistantChoice:
        document = await self.assistants.get(who.workspace_id, assistant_id)
        if document is None:
            raise NotFound(f"Couldn't find assistant {assistant_id!r}")
        return AssistantChoice(assistant_id, la.merge_overrides(document, overrides))

    def _start(self, who: Principal, choice: AssistantChoice, formats: dict[str, str],
               origin: str) -> tuple[StartCall, list[RuntimeTool], tuple[str, ...]]:
        config = {**la.session_config(choice.assistant), **formats}
        tools, built_ins = la.runtime_tools(choice.assistant)
        start = StartCall(who, agent=choice.assistant_id, overrides=overrides_from_config(config),
                          origin=origin)
        return start, tools, tuple(built_ins)

    def _facts(self, who: Principal, call: dict[str, Any], choice: AssistantChoice,
               body: dict[str, Any]) -> CallFacts:
        server = choice.server or la.server_target(choice.assistant)
        return CallFacts(call, _public(choice.assistant), body.get("customer"),
                         _public(body.get("phoneNumber") or {}) or None, server)

    async def _websocket_call(self, who: Principal, body: dict[str, Any],
                              transport: dict[str, Any]) -> dict[str, Any]:
        if body.get("phoneNumberId") or body.get("phoneNumber"):
            raise ValidationFailed("The vapi.websocket transport cannot be combined with a "
                                   "phone number", {"phoneNumberId": "not with vapi.websocket"})
        try:
            fmt = wire_format(transport.get("audioFormat"))
        except InvalidAudioFormat as exc:
            raise ValidationFailed(str(exc), {exc.field: str(exc)}) from exc
        call = _call_stub(who, WEBSOCKET, body)
        choice = await self._assistant(who, body, call)
        start, tools, built_ins = self._start(
            who, choice, {"input_format": fmt.name, "output_format": fmt.name}, "vapi.websocket")
        self._check_tools(tools)
        prepared = await self.live.setup.prepare(start)
        call = {**call, "id": prepared.id}
        plan = CallPlan(self._facts(who, call, choice, body), tools, built_ins, prepared)
        plan.facts.call = self.view(call, choice, body)
        await self._store(who, prepared.id, WEBSOCKET, body, plan.facts.server)
        self.plans[prepared.id] = plan
        self.live.registry.add(PendingSocket(plan, self))
        self.spawn(self._expire(prepared.id))
        return plan.facts.call

    def _check_tools(self, tools: list[RuntimeTool]) -> None:
        names = [tool.name for tool in tools]
        if len(set(names)) != len(names):
            raise ValidationFailed("Tool names must be unique", {"model.tools": "duplicates"})

    async def _phone_call(self, who: Principal, body: dict[str, Any],
                          customer: dict[str, Any]) -> dict[str, Any]:
        number = await self._phone_number(who, body)
        call = _call_stub(who, OUTBOUND, body)
        choice = await self._assistant(who, body, call)
        formats = {"input_format": "mulaw_8000", "output_format": "mulaw_8000"}
        provider = number.get("provider")
        start, tools, built_ins = self._start(who, choice, formats, "twilio")
        self._check_tools(tools)
        if provider in SIP_PROVIDERS:
            if self.sip_dialer is None:
                raise ValidationFailed(f"Phone numbers of provider {provider!r} call through "
                                       "SIP, which this server does not offer yet",
                                       {"phoneNumber.provider": "SIP calls unavailable"})
            call_id = await self.sip_dialer.place_call(start, str(customer["number"]), number)
        elif provider == "twilio":
            call_id = await self._twilio_call(start, str(customer["number"]), number)
        else:
            raise ValidationFailed(f"Unknown phone number provider {provider!r}",
                                   {"phoneNumber.provider": "unknown"})
        call = {**call, "id": call_id, "phoneCallProvider": "twilio" if provider == "twilio"
                else "vapi", "phoneCallTransport": "pstn" if provider == "twilio" else "sip"}
        plan = CallPlan(self._facts(who, call, choice, body), tools, built_ins)
        plan.facts.call = self.view(call, choice, body)
        await self._store(who, call_id, OUTBOUND, body, plan.facts.server)
        self.plans[call_id] = plan
        return plan.facts.call

    async def _twilio_call(self, start: StartCall, to: str, number: dict[str, Any]) -> str:
        if self.twilio is None:
            raise ValidationFailed("Twilio phone calls need OPENLINE_TWILIO_ACCOUNT_SID and "
                                   "OPENLINE_TWILIO_AUTH_TOKEN", code="telephony_not_configured")
        sid = number.get("twilioAccountSid")
        if sid and sid != self.twilio.options.account_sid:
            raise ValidationFailed("phoneNumber.twilioAccountSid is not this server's Twilio "
                                   "account", {"phoneNumber.twilioAccountSid": "unknown account"})
        conversation_id = await self.twilio.place_call(start, to, from_number=str(number["number"]))
        assert conversation_id is not None
        return conversation_id

    async def _phone_number(self, who: Principal, body: dict[str, Any]) -> dict[str, Any]:
        """The phone number the call is made from (``provider``, ``number``)."""
        if body.get("phoneNumberId"):
            found = await self.phone_numbers.get(who.workspace_id, str(body["phoneNumberId"])) \
                if self.phone_numbers else None
            if found is None:
                raise NotFound(f"Couldn't find phone number {body['phoneNumberId']!r}")
            return found
        transient = body.get("phoneNumber")
        if isinstance(transient, dict) and transient.get("twilioPhoneNumber"):
            return {**transient, "provider": "twilio", "number": transient["twilioPhoneNumber"]}
        raise ValidationFailed("A phone call needs phoneNumberId (or a transient phoneNumber)",
                               {"phoneNumberId": "required for a phone call"})

    async def _store(self, who: Principal, call_id: str, call_type: str, body: dict[str, Any],
                     server: ServerTarget | None) -> None:
        async with self.live.db.session() as s:
            s.add(VapiCall(id=call_id, workspace_id=who.workspace_id, call_type=call_type,
                           request=_public(body),
                           server=json.dumps(server.to_json()) if server else None))

    def view(self, call: dict[str, Any], choice: AssistantChoice, body: dict[str, Any]
             ) -> dict[str, Any]:
        """The Vapi ``Call`` as ``POST /call`` answers it."""
        ws_url, control_url = self.urls(call["id"])
        out = {**call, "status": "queued", "cost": 0, "monitor": {"controlUrl": control_url}}
        if choice.assistant_id:
            out["assistantId"] = choice.assistant_id
        for key in ("assistant", "assistantOverrides", "customer", "name", "phoneNumberId",
                    "metadata"):
            if body.get(key) is not None:
                out[key] = _public(body[key])
        if call["type"] == WEBSOCKET:
            out["transport"] = {**body["transport"], "websocketCallUrl": ws_url}
        return out

    # ----- running ----------------------------------------------------------------------------
    def extension(self, prepared: PreparedCall) -> VapiLiveCall | None:
        """The live service's seam: a Vapi call gets its live call and inline tools."""
        plan = self.plans.get(prepared.id)
        if plan is None:
            return None
        loaded, built_ins = prepared.tools
        prepared.tools = ([*plan.tools, *loaded], tuple(dict.fromkeys((*built_ins,
                                                                         *plan.built_ins))))
        plan.live = VapiLiveCall(plan.facts, self.messages, self.spawn, self.end_call,
                                 on_finished=self._finished)
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
        if isinstance(command, EndCall):
            if session is None:
                raise NotFound("The call is not live on this server")
            self.end_call(call_id, "user_canceled", None)
            return
        if plan is None or plan.live is None or not isinstance(session, CallSession):
            raise ValidationFailed("The call is not in progress", {"type": "call not started"})
        try:
            await plan.live.run_command(command, session)
        except tb.ControlRejected as exc:
            raise ValidationFailed(exc.message, exc.param_errors) from exc

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

    def _finished(self, call_id: str) -> None:
        self.plans.pop(call_id, None)

    # ----- after the call ---------------------------------------------------------------------
    async def on_domain_event(self, event: DomainEvent) -> None:
        """``conversation.ended`` (post-call work stored): queue the end-of-call report."""
        if not isinstance(event, ConversationEnded):
            return
        conv = event.conversation
        async with self.live.db.session() as s:
            row = await s.scalar(select(VapiCall).where(VapiCall.id == conv.id))
        if row is None or not row.server:
            return
        report = end_of_call_report(conv, row, self.recording_url)
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


def _call_stub(who: Principal, call_type: str, body: dict[str, Any]) -> dict[str, Any]:
    from openline.store.tables import utcnow

    now = utcnow().isoformat().replace("+00:00", "Z")
    return {"id": "", "orgId": who.workspace_id, "type": call_type, "createdAt": now,
            "updatedAt": now}


SECRET_KEYS = frozenset({"secret", "serverUrlSecret", "headers", "credentials", "token",
                         "secretKey", "twilioAuthToken", "twilioApiSecret", "password",
                         "clientSecret"})


def _public(value: Any) -> Any:
    """A document without its secrets (what is echoed and stored in the clear)."""
    if isinstance(value, dict):
        return {k: _public(v) for k, v in value.items() if k not in SECRET_KEYS}
    if isinstance(value, list):
        return [_public(v) for v in value]
    return value
