"""Twilio phone calls: what Twilio's webhooks and streams do to Openline conversations.

* **Inbound**: the voice webhook finds the agent whose number was called, honours a
  disabled agent and ``inbound_rollout``, prepares the conversation (which calls the
  configuration endpoint with ``call_info``) and answers ``<Connect><Stream>``; the
  stream that follows runs it.
* **Outbound**: ``place_call`` prepares the conversation and creates the call (inline
  TwiML, status callbacks, optional answering-machine detection); an unanswered call ends
  its conversation with ``call_busy``/``call_no_answer``/``call_failed``/``call_canceled``.
* **Call control** (``TwilioControl``, called by the transport, never from its read loop):
  keypad tones and transfers replace the call's TwiML; a returned transfer streams back.
* **Voicemail**: with ``detect_voicemail`` the greeting waits for the AMD result or the
  caller's first words; ``machine_end_*`` leaves the voicemail message and hangs up
  (``ended_by: voicemail``).

State lives in this process (``calls``): Twilio's webhooks and streams for one call must
reach the node that placed or answered it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass, replace
from typing import Any

from twilio.request_validator import RequestValidator

from openline.audio.codecs import WIRE_FORMATS
from openline.domain.errors import OpenlineError, ValidationFailed
from openline.domain.validation import check_e164
from openline.services.call_session import CallSession
from openline.services.call_setup import CallInfo, PreparedCall, StartCall
from openline.services.live import LiveService
from openline.services.principal import Principal
from openline.services.session_config import overrides_from_config
from openline.services.telephony import twiml
from openline.services.telephony.calls import UNANSWERED, PendingCall, PhoneCall, StreamTokens
from openline.services.telephony.numbers import caller_number, calling_number, owner_of
from openline.services.telephony.rest import TWILIO_API, TwilioRest, TwilioRestException
from openline.store import tables as t
from openline.transports import base as tb
from openline.transports.sts import WireSocket
from openline.transports.twilio import TwilioTransport, read_start
from openline.voice.tools import PhoneTransfer

log = logging.getLogger(__name__)
STATUS_EVENTS = ("initiated", "ringing", "answered", "completed")
GREETING = "Greet the caller in one short sentence and offer help."
NOT_IN_SERVICE = "The number you have called is not in service. Goodbye."
UNAVAILABLE = "This line is not taking calls right now. Please try again later. Goodbye."
BUSY = "All our lines are busy right now. Please try again later. Goodbye."
MACHINE = ("machine_start", "machine_end_beep", "machine_end_silence", "machine_end_other")
#: keep retrying a transfer nobody answers at most this many times
TRANSFER_RETRIES = 2


#: (CallSid, To, From) -> the call to start and a hook for its prepared conversation, or
#: text to say and hang up, or None
Unassigned = Callable[[str, str, str], Awaitable[
    "tuple[StartCall, Callable[[PreparedCall], Awaitable[None]]] | str | None"]]


@dataclass(frozen=True)
class TwilioOptions:
    """The Twilio account and where Twilio reaches this server."""

    account_sid: str
    auth_token: str
    #: the public base URL Twilio calls (``https://...``); streams use ``wss://``
    public_url: str
    api_base: str = TWILIO_API
    api_key_sid: str | None = None
    api_key_secret: str | None = None
    #: a stream must start this soon after the TwiML that announced it
    stream_token_s: float = 30.0
    ring_timeout_s: int = 60

    def url(self, path: str) -> str:
        return self.public_url.rstrip("/") + path

    @property
    def stream_url(self) -> str:
        base = self.public_url.rstrip("/")
        scheme, _, rest = base.partition("://")
        return f"{'wss' if scheme == 'https' else 'ws'}://{rest}/twilio/stream"


class TwilioService:
    """See the module docstring; also the transports' ``TwilioControl``."""

    def __init__(self, options: TwilioOptions, live: LiveService, *,
                 rest: TwilioRest | None = None,
                 transferred: Callable[[str, str], Awaitable[int]] | None = None,
                 rng: Callable[[], float] = random.random) -> None:
        self.options, self.live, self.db = options, live, live.db
        self.validator = RequestValidator(options.auth_token)
        self.rest = rest or TwilioRest(
            options.account_sid, options.api_key_sid or options.account_sid,
            options.api_key_secret or options.auth_token, api_base=options.api_base)
        self.transferred, self.rng = transferred, rng
        #: a dialect answering calls to numbers no agent holds (the Vapi dialect's
        #: ``assistant-request``): the call to start and what to do once it is prepared,
        #: or text to say before hanging up, or None (not in service)
        self.unassigned: Unassigned | None = None
        self.calls: dict[str, PhoneCall] = {}  # by conversation id
        self.by_sid: dict[str, PhoneCall] = {}
        self.tokens = StreamTokens()
        self._tasks: set[asyncio.Task[None]] = set()

    # ----- signatures ---------------------------------------------------------------------
    def webhook_valid(self, path: str, params: Any, signature: str | None) -> bool:
        """``X-Twilio-Signature`` over the public URL Twilio called (``path`` with its
        query) and the form parameters."""
        return bool(signature) and self.validator.validate(self.options.url(path), params,
                                                           signature or "")

    def stream_valid(self, signature: str | None) -> bool:
        """The stream upgrade's signature: over the ``wss://`` URL exactly as in the TwiML,
        with no parameters."""
        return bool(signature) and self.validator.validate(self.options.stream_url, {},
                                                           signature or "")

    # ----- inbound ------------------------------------------------------------------------
    async def inbound(self, form: Mapping[str, str]) -> str:
        """The voice webhook: TwiML that streams the call to its agent, or says why not."""
        sid, to = form.get("CallSid", ""), form.get("To", "")
        known = self.by_sid.get(sid)
        if known is not None:  # Twilio retried the webhook: the same call, a fresh token
            return self._stream_twiml(known)
        owner = await owner_of(self.db, to)
        if owner is None:
            return await self._unassigned(sid, to, caller_number(form.get("From")))
        if owner.agent.is_disabled:
            return twiml.say_and_hang_up(UNAVAILABLE)
        spec = owner.agent.spec
        rollout = 1.0 if spec.get("inbound_rollout") is None else float(spec["inbound_rollout"])
        forward = spec.get("inbound_rollout_forward_phone_number")
        if rollout < 1.0 and forward and self.rng() >= rollout:
            return twiml.forward(str(forward), form.get("From") or None)
        caller = caller_number(form.get("From"))
        config: dict[str, Any] = {"input_format": "mulaw_8000", "output_format": "mulaw_8000"}
        if owner.configuration_endpoint:
            config["configuration_endpoint"] = owner.configuration_endpoint
        start = StartCall(Principal(owner.workspace.id, owner.workspace.name),
                          agent=owner.agent.id, overrides=overrides_from_config(config),
                          origin="twilio", call_info=CallInfo(caller, to, sid))
        try:
            prepared = await self.live.setup.prepare(start)
        except OpenlineError as exc:
            log.warning("inbound call %s to %s refused: %s", sid, to, exc)
            return twiml.say_and_hang_up(BUSY if exc.code == "concurrency_limit_reached"
                                         else UNAVAILABLE)
        call = PhoneCall(prepared, "inbound", to, caller, call_sid=sid)
        self._track(call)
        self._expire_later(call, self.options.stream_token_s)
        return self._stream_twiml(call)

    async def _unassigned(self, sid: str, to: str, caller: str) -> str:
        """A number no agent holds: a dialect may still answer it (``unassigned``)."""
        answer = await self.unassigned(sid, to, caller) if self.unassigned else None
        if answer is None or isinstance(answer, str):
            return twiml.say_and_hang_up(answer or NOT_IN_SERVICE)
        start, prepared_hook = answer
        try:
            prepared = await self.live.setup.prepare(start)
        except OpenlineError as exc:
            log.warning("inbound call %s to %s refused: %s", sid, to, exc)
            return twiml.say_and_hang_up(UNAVAILABLE)
        await prepared_hook(prepared)
        call = PhoneCall(prepared, "inbound", to, caller, call_sid=sid)
        self._track(call)
        self._expire_later(call, self.options.stream_token_s)
        return self._stream_twiml(call)

    def _stream_twiml(self, call: PhoneCall, *, digits: str | None = None) -> str:
        token = self.tokens.issue(call, self.options.stream_token_s)
        return twiml.stream(self.options.stream_url,
                            {"token": token, "conversation_id": call.conversation_id},
                            digits=digits)

    def _track(self, call: PhoneCall) -> None:
        self.calls[call.conversation_id] = call
        if call.call_sid:
            self.by_sid[call.call_sid] = call
        self.live.registry.add(PendingCall(call, self._end_pending))

    def _expire_later(self, call: PhoneCall, after_s: float) -> None:
        """A call whose stream never comes ends rather than staying open."""
        async def expire() -> None:
            await asyncio.sleep(after_s)
            if call.transport is None and not call.finished.is_set():
                log.warning("no stream for call %s; ending it", call.call_sid)
                await self._end_pending(call, "error")

        self._spawn(expire())

    async def _end_pending(self, call: PhoneCall, ended_by: str) -> None:
        """End a call that never streamed (unanswered, cancelled, expired)."""
        if call.transport is not None:  # it started meanwhile: end the live session
            self._end_session(call, ended_by)
            return
        if call.ended_by is not None or call.finished.is_set():
            return  # already ending (our cancel makes Twilio report ``canceled`` too)
        call.ended_by = ended_by
        if ended_by == "user_canceled" and call.call_sid:
            with contextlib.suppress(TwilioRestException, OSError):
                await self.rest.update_call(call.call_sid, status="canceled")
        try:
            await self.live.end_unstarted(call.conversation_id, ended_by)
        finally:
            self._forget(call)

    def _forget(self, call: PhoneCall) -> None:
        call.finished.set()
        self.tokens.drop(call)
        self.calls.pop(call.conversation_id, None)
        if call.call_sid:
            self.by_sid.pop(call.call_sid, None)

    # ----- streams ------------------------------------------------------------------------
    async def serve_stream(self, socket: WireSocket) -> None:
        """One Media Streams connection: the first stream of a call runs its
        conversation; a later one (after keypad tones or a returned transfer) carries on
        the call already running."""
        start = await read_start(socket)
        call = self.tokens.take(start.parameters.get("token"), start.call_sid) \
            if start is not None else None
        if start is None or call is None or call.finished.is_set():
            await socket.close(1008, "unknown or expired stream")
            return
        if not start.is_mulaw_8k:
            await socket.close(1003, "only audio/x-mulaw at 8000 Hz is supported")
            return
        if call.call_sid is None:  # the stream of an outbound call beat our REST reply
            call.call_sid = start.call_sid
            self.by_sid[start.call_sid] = call
        if call.transport is not None:
            done = call.transport.attach(socket, start)
            self._returned(call)
            await done.wait()
            return
        transport = TwilioTransport(start.call_sid, self, WIRE_FORMATS["mulaw_8000"])
        call.transport = transport
        transport.attach(socket, start)
        self._hold_greeting(call)
        try:
            await self.live.run_prepared(call.prepared, transport, self._opened(call))
        finally:
            self._forget(call)

    def _opened(self, call: PhoneCall) -> Callable[[Any], Coroutine[Any, Any, None]]:
        async def opened(_: Any) -> None:
            if call.answered_by is not None:
                self._spawn(self._answered(call, call.answered_by))
        return opened

    def _hold_greeting(self, call: PhoneCall) -> None:
        """With voicemail detection the greeting waits for the AMD result (or the
        caller's first words): a greeting played into an answering machine is lost."""
        if not call.detect_voicemail or call.answered_by is not None:
            return
        cfg = call.prepared.resolved.session
        call.held_welcome = (cfg.welcome_message, cfg.generate_welcome_message)
        cfg.welcome_message, cfg.generate_welcome_message = "", False

    def _returned(self, call: PhoneCall) -> None:
        """A later stream of the call started: tell the agent what happened meanwhile."""
        note, call.note_on_return = call.note_on_return, None
        session = self.live.registry.local(call.conversation_id)
        if note and isinstance(session, CallSession):
            self._spawn(session.control(tb.GenerateReply(system_message=note)))

    def _end_session(self, call: PhoneCall, ended_by: str, gone: str | None = None) -> None:
        call.ended_by = call.ended_by or ended_by
        session = self.live.registry.local(call.conversation_id)
        if session is not None:
            session.end(ended_by)
        if gone and call.transport is not None:
            call.transport.finish(gone)

    # ----- outbound -----------------------------------------------------------------------
    async def place_call(self, start: StartCall, to_number: str, *,
                         detect_voicemail: bool = False, voicemail_message: str | None = None,
                         dry_run: bool = False, from_number: str | None = None,
                         prepared: Callable[[PreparedCall], None] | None = None) -> str | None:
        """Validate and place an outbound call; the conversation id (None for a dry run).
        Raises the reason it may not be placed (unknown agent, no number to call from,
        invalid config, Twilio's refusal). ``from_number``: the caller id to use (a
        dialect's own phone number), else the agent's Twilio number; ``prepared`` is told
        of the conversation before the call is placed (its stream may come at once)."""
        try:
            to_number = check_e164(to_number)
        except ValueError as exc:
            raise ValidationFailed(f"Invalid to_phone_number: {exc}",
                                   {"to_phone_number": str(exc)}) from exc
        agent, _, _, _ = await self.live.setup.validate(start)
        if from_number is None:
            from_number = await calling_number(self.db, agent.id) if agent else None
        if from_number is None:
            raise ValidationFailed("The agent has no phone number to call from",
                                   {"config.agent": "needs a phone number"})
        if dry_run:
            return None
        start = replace(start, origin="twilio", call_info=CallInfo(from_number, to_number))
        call = PhoneCall(await self.live.setup.prepare(start), "outbound", from_number,
                         to_number, detect_voicemail=detect_voicemail,
                         voicemail_message=voicemail_message)
        if prepared is not None:
            prepared(call.prepared)
        self._track(call)
        conv = call.conversation_id
        try:
            sid = await self.rest.create_call(
                to_number, from_number, self._stream_twiml(call),
                status_callback=self.options.url(f"/twilio/calls/{conv}/status"),
                events=STATUS_EVENTS, timeout_s=self.options.ring_timeout_s,
                amd_callback=self.options.url(f"/twilio/calls/{conv}/amd")
                if detect_voicemail else None)
        except (TwilioRestException, OSError) as exc:
            await self._end_pending(call, "call_failed")
            raise ValidationFailed(f"Twilio refused the call: {_reason(exc)}",
                                   {"to_phone_number": _reason(exc)}) from exc
        if call.call_sid is None:
            call.call_sid = sid
            self.by_sid[sid] = call
        await self._store_call_info(call)
        return conv

    async def _store_call_info(self, call: PhoneCall) -> None:
        info = CallInfo(call.other_number if call.direction == "inbound" else call.agent_number,
                        call.agent_number if call.direction == "inbound" else call.other_number,
                        call.call_sid)
        async with self.db.session() as s:
            row = await s.get(t.Conversation, call.conversation_id)
            if row is not None:
                row.call_info = info.stored()

    # ----- Twilio's callbacks -------------------------------------------------------------
    async def call_status(self, conversation_id: str, form: Mapping[str, str]) -> None:
        """A status callback (retried by Twilio: each CallSid + status acts once)."""
        call = self.calls.get(conversation_id)
        status = form.get("CallStatus", "")
        key = f"{form.get('CallSid', '')}:{status}"
        if call is None or key in call.statuses:
            return
        call.statuses.add(key)
        await self._note(call, "call_status", status)
        if status in UNANSWERED and call.transport is None:
            await self._end_pending(call, UNANSWERED[status])
        elif status in UNANSWERED or status == "completed":
            if call.transport is None:
                await self._end_pending(call, "user")
            else:
                self._end_session(call, "user", "completed")

    async def amd_result(self, conversation_id: str, form: Mapping[str, str]) -> None:
        """The asynchronous answering-machine detection result."""
        call = self.calls.get(conversation_id)
        answered_by = form.get("AnsweredBy", "unknown")
        if call is None or call.answered_by is not None:
            return
        call.answered_by = answered_by
        await self._note(call, "answered_by", answered_by)
        if call.transport is not None:
            await self._answered(call, answered_by)

    async def _answered(self, call: PhoneCall, answered_by: str) -> None:
        """Release the held greeting (a person), or leave the voicemail (a machine)."""
        transport = call.transport
        session = self.live.registry.local(call.conversation_id)
        if transport is None or not isinstance(session, CallSession):
            return
        await transport.sink.running.wait()
        if answered_by in MACHINE or answered_by == "fax":
            await self._leave_voicemail(call, transport, session)
            return
        held, call.held_welcome = call.held_welcome, None
        if held is None or transport.heard_caller:
            return  # the caller spoke first: the agent answers them instead
        text, generate = held
        if generate:
            await session.control(tb.GenerateReply(system_message=GREETING))
        elif text.strip():
            await session.control(tb.Say(text))

    async def _leave_voicemail(self, call: PhoneCall, transport: TwilioTransport,
                               session: CallSession) -> None:
        message = (call.voicemail_message or "").strip()
        call.held_welcome = None
        if message:
            await session.control(tb.Reset())  # stop whatever was said to the greeting
            transport.spoke.clear()
            await session.control(tb.Say(message, interruptible=False))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(transport.spoke.wait(), 20 + len(message) / 5)
        await self._note(call, "voicemail_left", bool(message))
        self._end_session(call, "voicemail")

    # ----- transfers ----------------------------------------------------------------------
    async def dial_finished(self, conversation_id: str, form: Mapping[str, str]) -> str:
        """The transfer's ``<Dial action>``: TwiML for what happens next."""
        call = self.calls.get(conversation_id)
        status = form.get("DialCallStatus", "")
        if call is None or call.transfer is None:
            return twiml.hang_up()
        if status in ("completed", "answered"):
            await self._transfer_answered(call)
            return twiml.hang_up()
        request = call.transfer
        await self._note(call, "transfer", {"to": request.phone_number, "status": status})
        if request.on_transfer_no_answer == "keep_retrying" and \
                call.transfer_attempts < TRANSFER_RETRIES:
            call.transfer_attempts += 1
            return self._transfer_twiml(call, request)
        call.transfer = None
        call.note_on_return = (
            f"The transfer to {request.phone_number} was not completed ({status}). The "
            "caller is back with you: tell them, briefly, and offer to help otherwise.")
        return self._stream_twiml(call)

    async def transfer_answered(self, conversation_id: str, form: Mapping[str, str]) -> None:
        """The transferred leg's status callback (subscribed to ``answered``)."""
        call = self.calls.get(conversation_id)
        if call is not None and call.transfer is not None and \
                form.get("CallStatus") in ("in-progress", "answered"):
            await self._transfer_answered(call)

    async def _transfer_answered(self, call: PhoneCall) -> None:
        request = call.transfer
        if request is None or call.ended_by == "transferred":
            return
        await self._note(call, "transfer", {"to": request.phone_number, "status": "answered"})
        self._end_session(call, "transferred", "transferred")
        if self.transferred is not None:
            try:
                await self.transferred(call.conversation_id, request.phone_number)
            except Exception:
                log.exception("could not publish the transfer of %s", call.conversation_id)

    def _transfer_twiml(self, call: PhoneCall, request: PhoneTransfer) -> str:
        conv = call.conversation_id
        caller_id = call.agent_number if request.use_agent_phone_number else (
            call.other_number if call.other_number != "anonymous" else call.agent_number)
        return twiml.transfer(request, caller_id,
                              action=self.options.url(f"/twilio/calls/{conv}/dial"),
                              answered_callback=self.options.url(
                                  f"/twilio/calls/{conv}/transfer"))

    # ----- TwilioControl (called by the transport, off its read loop) ---------------------
    async def play_digits(self, call_sid: str, digits: str) -> None:
        call = self.by_sid.get(call_sid)
        if call is not None:
            await self.rest.update_call(call_sid, twiml=self._stream_twiml(call, digits=digits))

    async def transfer(self, call_sid: str, request: PhoneTransfer) -> None:
        call = self.by_sid.get(call_sid)
        if call is None:
            return
        call.transfer, call.transfer_attempts = request, 0
        await self._note(call, "transfer", {"to": request.phone_number, "status": "dialing"})
        await self.rest.update_call(call_sid, twiml=self._transfer_twiml(call, request))

    async def hang_up(self, call_sid: str) -> None:
        await self.rest.update_call(call_sid, status="completed")

    # ----- helpers ------------------------------------------------------------------------
    async def _note(self, call: PhoneCall, key: str, value: Any) -> None:
        """Keep a telephony fact in the conversation's ``metadata.twilio``."""
        async with self.db.session() as s:
            row = await s.get(t.Conversation, call.conversation_id)
            if row is not None:
                meta = dict(row.meta or {})
                meta["twilio"] = {**(meta.get("twilio") or {}), key: value}
                row.meta = meta

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await self.rest.close()


def _reason(exc: Exception) -> str:
    if isinstance(exc, TwilioRestException):
        return f"{exc.msg} (Twilio error {exc.code})" if exc.code else str(exc.msg)
    return str(exc) or type(exc).__name__
