"""Tools at run time: lookup, argument validation, dispatch by kind, one result per call.

Every call ends in exactly one recorded outcome: ``success``, ``error``, ``timeout`` or
``cancelled`` (barge-in). Webhooks are run by a ``WebhookCaller`` the service layer
provides (it owns URL safety and HTTP); client-side tools go to the connected client
through a ``ClientChannel`` (the STS socket) and wait for its ``tool_call_output``.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

from openline.domain import ids
from openline.domain.tool_call import ClientExchange, ToolCallRecord, ToolRef, WebhookExchange
from openline.providers.llm.base import ToolCall, ToolSpec
from openline.voice.arguments import InvalidArguments, parse_arguments
from openline.voice.reply import ToolOutcome

ToolKind = Literal["context", "webhook", "websocket", "transfer_agent", "transfer_phone",
                   "keypad", "end", "silent"]
Status = Literal["success", "error", "timeout", "cancelled"]
#: an async tool's result, delivered later: (the final record, what the model is told)
AsyncResult = Callable[["ToolOutcome"], Awaitable[None]]
MAX_RESULT_CHARS = 4000  # what the model sees of a tool result


@dataclass(frozen=True)
class RuntimeTool:
    """A tool as the engine runs it (from a stored tool, an inline one or a built-in)."""

    name: str
    description: str
    kind: ToolKind
    parameters: dict[str, Any] = field(
        default_factory=lambda: {"type": "object", "properties": {}})
    id: str | None = None
    execution_mode: str = "sync"
    timeout_ms: int = 5000
    require_speech_before: bool = False
    wait_for_speech_before: bool = False
    forbid_speech_after: bool = False
    allow_chaining: bool = True
    wait_for_response: bool = False
    uninterruptible: bool = False
    config: dict[str, Any] = field(default_factory=dict)

    def spec(self) -> ToolSpec:
        return ToolSpec(self.name, self.description, self.parameters)


@dataclass
class WebhookResult:
    """What one webhook request did (recorded on the tool call)."""

    method: str
    url: str
    called_at: datetime
    query_params: dict[str, Any] | None = None
    request_body: Any = None
    headers: dict[str, str] | None = None  # secrets redacted
    status_code: int | None = None
    body: Any = None
    timed_out: bool = False
    error: str | None = None


@dataclass(frozen=True)
class PhoneTransfer:
    """``built_in_transfer_to_phone_number``: hand the call to a number (the transport's
    ``transfer`` carries it out, e.g. a Twilio ``<Dial>``)."""

    phone_number: str
    #: keys to press once the far end answers (``w`` = half a second's pause)
    dtmf: str | None = None
    detect_voicemail: bool = False
    #: the agent's number as the caller id (else the caller's own number)
    use_agent_phone_number: bool = True
    #: ``return_to_assistant`` | ``keep_retrying`` (None: the call ends unanswered)
    on_transfer_no_answer: str | None = None
    tool_name: str = ""


#: carries out a phone transfer; False where the connection has no phone line
PhoneTransferer = Callable[[PhoneTransfer], Awaitable[bool]]


class TransferRefused(Exception):
    """The far end refused the transfer (e.g. a SIP trunk answering REFER with 603): the
    line exists, so the tool result names the refusal rather than "unavailable"."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"{status} {reason}".strip())
        self.status, self.reason = status, reason


def phone_transfer(tool: RuntimeTool, args: dict[str, Any]) -> PhoneTransfer | None:
    """The transfer a tool call asks for (None: no number to call)."""
    cfg = tool.config
    number = cfg.get("phone_number") or args.get("phone_number")
    if not isinstance(number, str) or not number.strip():
        return None
    dtmf = args.get("dtmf") if cfg.get("dynamic_dtmf") and args.get("dtmf") else cfg.get("dtmf")
    return PhoneTransfer(number.strip(), str(dtmf) if dtmf else None,
                         bool(cfg.get("detect_voicemail")),
                         cfg.get("use_agent_phone_number") is not False,
                         cfg.get("on_transfer_no_answer"), tool.name)


class WebhookCaller(Protocol):
    async def call(self, tool: RuntimeTool, arguments: dict[str, Any]) -> WebhookResult: ...


class ClientChannel(Protocol):
    """Sends ``tool_call`` to the client and waits for its ``tool_call_output``."""

    async def request(self, call_id: str, name: str, arguments: dict[str, Any]) -> Any: ...

    def interrupted(self, call_id: str, name: str) -> None: ...


class ToolRuntime:
    """The ``ToolExecutor`` of a live conversation."""

    def __init__(self, tools: list[RuntimeTool], *, webhooks: WebhookCaller | None,
                 client: ClientChannel | None,
                 on_dtmf: Callable[[str], Awaitable[None]] | None = None,
                 background: Callable[[Coroutine[Any, Any, None]], None] | None = None,
                 on_async_result: AsyncResult | None = None,
                 on_transfer: PhoneTransferer | None = None,
                 ) -> None:
        self.tools = {t.name: t for t in tools}
        self.webhooks, self.client, self.on_dtmf = webhooks, client, on_dtmf
        self.background, self.on_async_result = background, on_async_result
        self.on_transfer = on_transfer

    def specs(self) -> list[ToolSpec]:
        return [t.spec() for t in self.tools.values() if t.kind not in ("end", "silent")] + [
            t.spec() for t in self.tools.values() if t.kind in ("end", "silent")]

    def describe(self, name: str) -> RuntimeTool | None:
        return self.tools.get(name)

    def replace(self, tools: list[RuntimeTool]) -> None:
        """``update_tools_subset``: the model sees only these from now on."""
        self.tools = {t.name: t for t in tools}

    async def execute(self, call: ToolCall) -> ToolOutcome:
        tool = self.tools.get(call.name)
        start = time.perf_counter()
        record = ToolCallRecord(ToolRef(call.name, tool.id if tool else None), "running",
                                id=ids.new_id(ids.TOOL_CALL), tool_call_id=call.id,
                                arguments=call.arguments)
        if tool is None:
            return _finish(record, start, "error", f"unknown tool {call.name!r}")
        try:
            args = parse_arguments(call.arguments, tool.parameters)
        except InvalidArguments as exc:
            return _finish(record, start, "error", f"invalid arguments: {exc}")
        record = replace(record, parameters=args)
        if (tool.execution_mode == "async" and not tool.wait_for_response
                and tool.kind in ("webhook", "websocket") and self.background is not None
                and self.on_async_result is not None):
            self.background(self._run_async(tool, call, args, record, start))
            # ``running``: replaced by the final record when the result arrives
            return ToolOutcome(json.dumps({"status": "started; the result will follow"}),
                               record, speak_after=True)
        try:
            return await self._dispatch(tool, call, args, record, start)
        except asyncio.CancelledError:
            if tool.kind == "websocket" and self.client is not None:
                self.client.interrupted(call.id, tool.name)
            raise

    async def _run_async(self, tool: RuntimeTool, call: ToolCall, args: dict[str, Any],
                         record: ToolCallRecord, start: float) -> None:
        """An async tool: the conversation goes on; the result is delivered when it comes."""
        assert self.on_async_result is not None
        try:
            outcome = await self._dispatch(tool, call, args, record, start)
        except asyncio.CancelledError:
            # The conversation ended first: the stored ``running`` record still gets its end.
            cancelled = _finish(record, start, "cancelled", "the conversation ended first")
            await asyncio.shield(self.on_async_result(cancelled))
            raise
        await self.on_async_result(outcome)

    async def _dispatch(self, tool: RuntimeTool, call: ToolCall, args: dict[str, Any],
                        record: ToolCallRecord, start: float) -> ToolOutcome:
        if tool.kind == "context":
            return _finish(record, start, "success", None, tool.config.get("context", ""))
        if tool.kind == "webhook":
            return await self._webhook(tool, args, record, start)
        if tool.kind == "websocket":
            return await self._client_tool(tool, call, args, record, start)
        if tool.kind == "transfer_agent":
            target = args.get("agent")
            allowed = tool.config.get("agents_to_transfer_to") or []
            if target not in allowed:
                return _finish(record, start, "error", f"agent must be one of {allowed}")
            outcome = _finish(record, start, "success", None, {"transferred_to": target})
            outcome.transfer_to, outcome.speak_after = str(target), False
            return outcome
        if tool.kind == "keypad":
            digits = str(args.get("digits", ""))
            if self.on_dtmf is not None:
                await self.on_dtmf(digits)
            return _finish(record, start, "success", None, {"pressed": digits})
        return await self._transfer_phone(tool, args, record, start)

    async def _transfer_phone(self, tool: RuntimeTool, args: dict[str, Any],
                              record: ToolCallRecord, start: float) -> ToolOutcome:
        unavailable = ("transfers to phone numbers are unavailable on this connection "
                       "(no telephony); tell the caller you cannot transfer them")
        if self.on_transfer is None:
            return _finish(record, start, "error", unavailable)
        request = phone_transfer(tool, args)
        if request is None:
            return _finish(record, start, "error", "no phone number to transfer to")
        try:
            placed = await self.on_transfer(request)
        except TransferRefused as refused:
            return _finish(record, start, "error", (
                f"the transfer to {request.phone_number} was refused by the far end "
                f"(SIP {refused}); tell the caller you cannot transfer them"))
        if not placed:
            return _finish(record, start, "error", unavailable)
        outcome = _finish(record, start, "success", None,
                          {"transferring_to": request.phone_number})
        outcome.speak_after = False  # the caller is on their way to the other number
        return outcome

    async def _webhook(self, tool: RuntimeTool, args: dict[str, Any], record: ToolCallRecord,
                       start: float) -> ToolOutcome:
        if self.webhooks is None:
            return _finish(record, start, "error", "webhooks are not available")
        res = await self.webhooks.call(tool, args)
        record = replace(record, timed_out=res.timed_out, webhook=WebhookExchange(
            res.method, res.url, res.headers, tool.timeout_ms, res.called_at,
            res.query_params, res.request_body, res.status_code, res.body))
        if res.timed_out:
            return _finish(record, start, "timeout", res.error or "the webhook timed out")
        if res.error:
            return _finish(record, start, "error", res.error)
        return _finish(record, start, "success", None, res.body)

    async def _client_tool(self, tool: RuntimeTool, call: ToolCall, args: dict[str, Any],
                           record: ToolCallRecord, start: float) -> ToolOutcome:
        if self.client is None:
            return _finish(record, start, "error", "no client is connected to run this tool")
        record = replace(record, client=ClientExchange(tool.timeout_ms))
        try:
            async with asyncio.timeout(tool.timeout_ms / 1000):
                output = await self.client.request(call.id, tool.name, args)
        except TimeoutError:
            return _finish(replace(record, timed_out=True), start, "timeout",
                           f"no tool_call_output within {tool.timeout_ms} ms")
        record = replace(record, client=ClientExchange(tool.timeout_ms, True, output))
        return _finish(record, start, "success", None, output)


def _finish(record: ToolCallRecord, start: float, status: Status, error: str | None,
            result: Any = None) -> ToolOutcome:
    """Close a call's record (exactly once) and say what the model is told."""
    final = replace(record, status=status,
                    duration_ms=round((time.perf_counter() - start) * 1000, 1),
                    completed_at=datetime.now(UTC), error_message=error,
                    timed_out=record.timed_out if record.timed_out is not None
                    else status == "timeout")
    if error is not None:
        content = json.dumps({"error": error})
    else:
        content = result if isinstance(result, str) else json.dumps(result, default=str)
    return ToolOutcome(content[:MAX_RESULT_CHARS], final)
