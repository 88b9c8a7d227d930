"""One running Vapi call: the engine's events as Vapi messages, tools run by the server.

``VapiLiveCall`` is the Vapi dialect's ``CallExtension`` (``services/live.py``) for one
call. It wraps the call's transport and its item observer, so it sees what happens
whatever carries the call (the ``vapi.websocket`` socket, a Twilio phone call):

* ``status-update`` (``in-progress`` when media starts, ``ended`` with ``endedReason``),
  ``speech-update`` (who started or stopped speaking, with the turn number),
  ``transcript`` (final: the caller's recognised words, the assistant's heard words),
  ``conversation-update`` (the messages so far, after each turn is stored),
  ``user-interrupted`` (barge-in) and ``hang`` (a tool's server is slow);
* ``tool-calls`` (``function-call`` for legacy functions): the model's tool calls POSTed
  to the tool's (or the assistant's) server; the reply's ``result`` goes back to the model,
  which speaks from it.

Server messages go, in order, through one queue per call (a slow server never holds up
the audio); each is tried once and, failing that, retried from the durable queue. Client
messages go to the call's socket, when it has one.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from openline.audio.codecs import AudioFormat
from openline.domain.tool_call import ToolCallRecord
from openline.services.vapi import call_view
from openline.services.vapi import live_assistant as la
from openline.services.vapi.server_messages import ServerError, ServerMessages, ServerTarget
from openline.transports import base as tb
from openline.transports.vapi_ws import Command, SayThenEnd, VapiWsTransport, apply_command
from openline.voice import events as ev
from openline.voice.contracts import ConversationObserver, ItemRecord
from openline.voice.io import AudioSink
from openline.voice.tools import (
    PhoneTransfer,
    RuntimeTool,
    TransferRefused,
    WebhookCaller,
    WebhookResult,
)

log = logging.getLogger(__name__)
#: a tool's server that has not answered after this long gets a ``hang`` message out
HANG_AFTER_S = 5.0
#: how long the end of a call waits for its queued server messages to go out
FLUSH_S = 10.0
Spawn = Callable[[Coroutine[Any, Any, None]], None]
EndCall = Callable[[str, str, str], None]


@dataclass
class CallFacts:
    """What every message of the call carries (the ``call`` object and its context)."""

    call: dict[str, Any]
    assistant: dict[str, Any]
    customer: dict[str, Any] | None = None
    phone_number: dict[str, Any] | None = None
    server: ServerTarget | None = None
    started_at: float = field(default_factory=time.time)


class VapiLiveCall:
    """The Vapi dialect's extension of one call (see the module docstring)."""

    def __init__(self, facts: CallFacts, messages: ServerMessages, spawn: Spawn,
                 end_call: EndCall, on_finished: Callable[[str], None] | None = None,
                 on_started: Callable[[str], Coroutine[Any, Any, None]] | None = None) -> None:
        self.facts, self.messages, self.spawn, self.end_call = facts, messages, spawn, end_call
        self.on_finished, self.on_started = on_finished, on_started
        assistant = facts.assistant
        self.server_wants = la.wanted(assistant, "serverMessages", la.DEFAULT_SERVER_MESSAGES)
        self.client_wants = la.wanted(assistant, "clientMessages", la.DEFAULT_CLIENT_MESSAGES)
        self.client: VapiWsTransport | None = None
        self.tapped: TappedTransport | None = None
        self.history: list[dict[str, Any]] = []
        self.openai: list[dict[str, Any]] = []
        self.turn = {"user": 0, "assistant": 0}
        self.assistant_speaking = False
        self._spoke = asyncio.Event()
        self._outbox: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self._draining = False
        self._drained = asyncio.Event()
        self._ended = False
        #: Vapi's ``endedReason`` when the engine's ``ended_by`` says less
        self.reason: str | None = None
        self.hang_after_s = HANG_AFTER_S

    @property
    def id(self) -> str:
        return str(self.facts.call["id"])

    # ----- CallExtension ----------------------------------------------------------------
    def transport(self, inner: tb.CallTransport) -> tb.CallTransport:
        if isinstance(inner, VapiWsTransport):
            self.client = inner
            inner.run_command = self.run_command
        self.tapped = TappedTransport(inner, self)
        return self.tapped

    def observer(self, inner: ConversationObserver) -> ConversationObserver:
        return TappedObserver(inner, self)

    def webhooks(self, default: WebhookCaller) -> WebhookCaller:
        return VapiToolCaller(self, default)

    # ----- messages ---------------------------------------------------------------------
    def common(self, kind: str) -> dict[str, Any]:
        facts = self.facts
        message: dict[str, Any] = {"type": kind, "timestamp": int(time.time() * 1000),
                                   "call": facts.call, "assistant": facts.assistant}
        if facts.customer:
            message["customer"] = facts.customer
        if facts.phone_number:
            message["phoneNumber"] = facts.phone_number
        return message

    async def emit(self, kind: str, **payload: Any) -> None:
        """One event to whoever wants it: the client socket and/or the server."""
        message = {**self.common(kind), **payload}
        final = kind == "transcript" and payload.get("transcriptType") == "final" \
            and la.FINAL_TRANSCRIPT in self.server_wants
        if (kind in self.server_wants or final) and self.facts.server is not None:
            self._queue(message)
        if self.client is not None and kind in self.client_wants:
            client = {k: v for k, v in message.items() if k != "assistant"}
            await self.client.send_message(client)

    def _queue(self, message: dict[str, Any]) -> None:
        if not self._draining:  # one sender per call, owned by the calls service
            self._draining = True
            self.spawn(self._deliver_all())
        self._outbox.put_nowait(message)

    async def _deliver_all(self) -> None:
        """The call's server messages, one at a time and in order."""
        target = self.facts.server
        assert target is not None
        try:
            while (message := await self._outbox.get()) is not None:
                try:
                    await self.messages.deliver_event(self.id, target, message)
                except Exception:  # one lost event must not stop the others
                    log.exception("could not deliver %s for %s", message.get("type"), self.id)
        finally:
            self._drained.set()

    async def flush(self) -> None:
        """The queued server messages are out (or ``FLUSH_S`` passed)."""
        if not self._draining:
            return
        self._outbox.put_nowait(None)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._drained.wait()), FLUSH_S)

    # ----- what happens on the call -----------------------------------------------------
    async def started(self) -> None:
        self.facts.started_at = time.time()
        self.facts.call = {**self.facts.call, "status": "in-progress"}
        if self.on_started is not None:
            self.spawn(self.on_started(self.id))
        await self.emit("status-update", status="in-progress")

    async def ended(self, ended_by: str) -> None:
        if self._ended:
            return
        self._ended = True
        phone = self.facts.call.get("type") != "vapi.websocketCall"
        reason = self.reason or call_view.ended_reason(ended_by, "twilio" if phone else "")
        self.facts.call = {**self.facts.call, "status": "ended", "endedReason": reason}
        await self.emit("status-update", status="ended", endedReason=reason)
        self.spawn(self._finish())

    async def _finish(self) -> None:
        await self.flush()
        if self.on_finished is not None:
            self.on_finished(self.id)

    async def on_event(self, event: ev.EngineEvent) -> None:
        match event:
            case ev.UserStartedSpeaking():
                await self._speech("started", "user")
            case ev.UserFinishedSpeaking():
                await self._speech("stopped", "user")
                self.turn["user"] += 1
            case ev.AssistantStartedSpeaking():
                self.assistant_speaking = True
                await self._speech("started", "assistant")
            case ev.AssistantFinishedSpeaking():
                self.assistant_speaking = False
                self._spoke.set()
                await self._speech("stopped", "assistant")
                self.turn["assistant"] += 1
            case ev.InputText(text=text):
                await self.emit("transcript", role="user", transcriptType="final",
                                transcript=text, isFiltered=False, detectedThreats=[],
                                originalTranscript=text)

    async def _speech(self, status: str, role: str) -> None:
        await self.emit("speech-update", status=status, role=role, turn=self.turn[role])

    async def on_item(self, record: ItemRecord) -> None:
        """A stored turn: the assistant's heard words, and the conversation so far."""
        seconds = max(0.0, record.started_at.timestamp() - self.facts.started_at)
        time_ms = int(record.started_at.timestamp() * 1000)
        role = "user" if record.role == "user" else "bot"
        for call in record.tool_calls:
            self._tool_messages(call, time_ms, seconds)
        if record.text:
            self.history.append({"role": role, "message": record.text, "time": time_ms,
                                 "endTime": time_ms + int(record.duration_ms),
                                 "secondsFromStart": round(seconds, 3),
                                 "duration": int(record.duration_ms)})
            self.openai.append({"role": "user" if role == "user" else "assistant",
                                "content": record.text})
        if role == "bot" and record.text:
            await self.emit("transcript", role="assistant", transcriptType="final",
                            transcript=record.text)
        await self.emit("conversation-update", messages=list(self.history),
                        messagesOpenAIFormatted=list(self.openai))

    def _tool_messages(self, call: ToolCallRecord, time_ms: int, seconds: float) -> None:
        stored = call.to_stored()
        name = str((stored.get("tool") or {}).get("name", ""))
        call_id = str(stored.get("tool_call_id") or "")
        arguments = stored.get("arguments")
        args = arguments if isinstance(arguments, str) else json.dumps(arguments or {})
        self.history.append({"role": "tool_calls", "time": time_ms, "message": "",
                             "secondsFromStart": round(seconds, 3), "toolCalls": [{
                                 "id": call_id, "type": "function",
                                 "function": {"name": name, "arguments": args}}]})
        result = stored.get("error_message") or _result_text(stored.get("response_body"))
        self.history.append({"role": "tool_call_result", "toolCallId": call_id, "name": name,
                             "result": result, "time": time_ms,
                             "secondsFromStart": round(seconds, 3)})

    # ----- control messages from the socket or the control URL ----------------------------
    async def run_command(self, command: Command, call: tb.CallInput) -> None:
        """Apply a control message; ``say`` with ``endCallAfterSpoken`` ends the call once
        the text has been heard (``assistant-ended-call-after-message-spoken``)."""
        if not isinstance(command, SayThenEnd):
            await apply_command(command, call)
            return
        self._spoke.clear()
        await call.control(command.say)
        self.spawn(self._end_after_speech())

    async def _end_after_speech(self) -> None:
        while True:
            await self._spoke.wait()
            self._spoke.clear()
            await asyncio.sleep(0.05)  # a queued utterance starts right after the last one
            if not self.assistant_speaking:
                break
        self.end_call(self.id, "assistant", "assistant-ended-call-after-message-spoken")


def _result_text(value: Any) -> str:
    if isinstance(value, dict) and isinstance(value.get("results"), list) and value["results"]:
        first = value["results"][0]
        value = first.get("result", first.get("error")) if isinstance(first, dict) else first
    return value if isinstance(value, str) else json.dumps(value, default=str)


class TappedTransport:
    """The call's transport, with the live call told of everything that goes through it."""

    def __init__(self, inner: tb.CallTransport, live: VapiLiveCall) -> None:
        self.inner, self.live = inner, live

    async def send_event(self, event: ev.EngineEvent) -> None:
        await self.inner.send_event(event)
        await self.live.on_event(event)

    async def clear(self) -> None:
        await self.inner.clear()
        await self.live.emit("user-interrupted")

    async def send_dtmf(self, digits: str) -> None:
        await self.inner.send_dtmf(digits)

    async def transfer(self, destination: PhoneTransfer) -> bool:
        return await self.inner.transfer(destination)

    async def hangup(self, ended_by: str) -> None:
        try:
            await self.live.ended(ended_by)
        finally:
            await self.inner.hangup(ended_by)

    async def serve_input(self, call: tb.CallInput) -> None:
        await self.live.started()
        await self.inner.serve_input(call)

    async def resumed(self) -> None:
        await self.inner.resumed()

    def audio_sink(self, output_format: AudioFormat) -> AudioSink | None:
        return self.inner.audio_sink(output_format)


class TappedObserver:
    """The item writer, with the live call told of each stored turn."""

    def __init__(self, inner: ConversationObserver, live: VapiLiveCall) -> None:
        self.inner, self.live = inner, live

    async def item(self, record: ItemRecord) -> None:
        await self.inner.item(record)
        try:
            await self.live.on_item(record)
        except Exception:  # messages are best effort; the stored turn is what counts
            log.exception("could not report a turn of %s", self.live.id)

    async def tool_result(self, record: ToolCallRecord) -> None:
        await self.inner.tool_result(record)

    async def transferred(self, agent_id: str, agent_name: str) -> None:
        await self.inner.transferred(agent_id, agent_name)


class VapiToolCaller:
    """Runs a call's Vapi function tools as Vapi does: ``tool-calls`` to the tool's server
    (else the assistant's), the reply's ``result`` (or ``error``) for the model. Openline
    webhook tools (an ``apiRequest`` tool is one) are plain HTTP requests: ``default``."""

    def __init__(self, live: VapiLiveCall, default: WebhookCaller) -> None:
        self.live, self.default = live, default

    def _target(self, tool: RuntimeTool) -> ServerTarget | None:
        if isinstance(tool.config.get("vapi_target"), dict):  # the tool's own server
            return ServerTarget.from_json(tool.config["vapi_target"])
        return self.live.facts.server

    async def call(self, tool: RuntimeTool, arguments: dict[str, Any]) -> WebhookResult:
        if tool.config.get("vapi_transfer"):
            return await self._transfer(tool)
        if "vapi_tool" not in tool.config:
            return await self.default.call(tool, arguments)
        target = self._target(tool)
        now = datetime.now(UTC)
        if target is None:
            return WebhookResult("POST", "", now, error="the tool has no server URL "
                                 "(set the tool's or the assistant's server.url)")
        legacy = bool((tool.config.get("vapi_tool") or {}).get("legacy"))
        message = self._function_call(tool, arguments) if legacy \
            else self._tool_calls(tool, arguments)
        result = WebhookResult("POST", target.url, now, request_body=message,
                               headers={k: "***" for k in target.headers})
        hang = asyncio.get_running_loop().call_later(
            self.live.hang_after_s, lambda: self.live.spawn(self.live.emit("hang")))
        try:
            reply = await self.live.messages.request(target, message)
        except ServerError as exc:
            result.timed_out, result.error = exc.timed_out, str(exc)
            return result
        finally:
            hang.cancel()
        result.status_code, result.body = 200, reply
        result.error = _reply_error(reply, legacy)
        if result.error is None:
            result.body = _reply_result(reply, legacy)
        return result

    async def _transfer(self, tool: RuntimeTool) -> WebhookResult:
        """``transferCall`` with no destination: ``transfer-destination-request`` asks the
        server where to; a ``number`` destination is dialled (``{"error"}`` refuses)."""
        target = self.live.facts.server
        result = WebhookResult("POST", target.url if target else "", datetime.now(UTC))
        if target is None:
            result.error = "no server URL to ask for the transfer destination"
            return result
        message = self.live.common("transfer-destination-request")
        try:
            reply = await self.live.messages.request(target, message)
        except ServerError as exc:
            result.timed_out, result.error = exc.timed_out, str(exc)
            return result
        destination = reply.get("destination")
        if reply.get("error") is not None or not isinstance(destination, dict):
            result.error = str(reply.get("error") or "the server named no destination")
            return result
        number = destination.get("number")
        if destination.get("type") != "number" or not isinstance(number, str):
            result.error = "only number destinations can be dialled on this call"
            return result
        tapped = self.live.tapped
        try:
            placed = tapped is not None and await tapped.transfer(
                PhoneTransfer(number, tool_name=tool.name))
        except TransferRefused as refused:  # e.g. a SIP trunk answering REFER with 603
            result.error = f"the transfer to {number} was refused by the far end " \
                           f"(SIP {refused})"
            return result
        result.status_code, result.body = 200, {"transferring_to": number} if placed else None
        if not placed:
            result.error = "this call has no phone line to transfer"
        return result

    def _tool_calls(self, tool: RuntimeTool, arguments: dict[str, Any]) -> dict[str, Any]:
        call_id = f"call_{uuid.uuid4().hex[:24]}"
        encoded = json.dumps(arguments)
        tool_call = {"id": call_id, "type": "function",
                     "function": {"name": tool.name, "arguments": encoded},
                     # flattened keys help handlers written against the docs' examples
                     "name": tool.name, "arguments": arguments}
        definition = dict(tool.config.get("vapi_tool") or {
            "type": "function", "function": {"name": tool.name,
                                             "description": tool.description,
                                             "parameters": tool.parameters}})
        message = self.live.common("tool-calls")
        message.update(toolCallList=[tool_call],
                       toolWithToolCallList=[{**definition, "toolCall": tool_call}])
        return message

    def _function_call(self, tool: RuntimeTool, arguments: dict[str, Any]) -> dict[str, Any]:
        message = self.live.common("function-call")
        message["functionCall"] = {"name": tool.name, "parameters": arguments}
        return message


def _reply_error(reply: dict[str, Any], legacy: bool) -> str | None:
    if isinstance(reply.get("error"), str):
        return reply["error"]
    if legacy:
        return None if "result" in reply else "the reply has no 'result'"
    results = reply.get("results")
    if not isinstance(results, list) or not results or not isinstance(results[0], dict):
        return "the reply has no 'results'"
    first = results[0]
    if first.get("error") is not None:
        return _result_text(first["error"])
    return None if "result" in first else "the reply's result has no 'result'"


def _reply_result(reply: dict[str, Any], legacy: bool) -> Any:
    """What the model is told: the result (objects stay structured)."""
    if legacy:
        return reply["result"]
    return reply["results"][0]["result"]
