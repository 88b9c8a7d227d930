"""The tool runtime on its own (one recorded outcome per call), and the tool-call record."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest

from openline.domain.tool_call import ToolCallRecord
from openline.providers.llm.base import ToolCall
from openline.voice.reply import ToolOutcome
from openline.voice.tools import RuntimeTool, ToolRuntime, WebhookResult
from tests.voice.harness import virtual

ORDER = {"type": "object", "properties": {"order_id": {"type": "string"},
                                          "express": {"type": "boolean"}},
         "required": ["order_id"]}
CALLED_AT = datetime(2025, 5, 1, 12, 0, tzinfo=UTC)


@dataclass
class Hooks:
    """Scripted webhook answers and a recording client channel."""

    webhook: WebhookResult | None = None
    webhook_delay_s: float = 0.0
    client_answer: Any = None
    client_delay_s: float = 0.0
    webhook_calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    client_calls: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    interrupted: list[tuple[str, str]] = field(default_factory=list)
    dtmf: list[str] = field(default_factory=list)
    background: list[asyncio.Task[None]] = field(default_factory=list)
    async_results: list[ToolOutcome] = field(default_factory=list)

    async def call(self, tool: RuntimeTool, arguments: dict[str, Any]) -> WebhookResult:
        self.webhook_calls.append((tool.name, arguments))
        await asyncio.sleep(self.webhook_delay_s)
        assert self.webhook is not None
        return self.webhook

    async def request(self, call_id: str, name: str, arguments: dict[str, Any]) -> Any:
        self.client_calls.append((call_id, name, arguments))
        await asyncio.sleep(self.client_delay_s)
        return self.client_answer

    def interrupted_call(self, call_id: str, name: str) -> None:
        self.interrupted.append((call_id, name))

    async def press(self, digits: str) -> None:
        self.dtmf.append(digits)

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        self.background.append(asyncio.ensure_future(coro))

    async def on_async(self, outcome: ToolOutcome) -> None:
        self.async_results.append(outcome)


class _Client:
    def __init__(self, hooks: Hooks) -> None:
        self.hooks = hooks

    async def request(self, call_id: str, name: str, arguments: dict[str, Any]) -> Any:
        return await self.hooks.request(call_id, name, arguments)

    def interrupted(self, call_id: str, name: str) -> None:
        self.hooks.interrupted_call(call_id, name)


def _runtime(hooks: Hooks, *tools: RuntimeTool) -> ToolRuntime:
    return ToolRuntime(list(tools), webhooks=hooks, client=_Client(hooks), on_dtmf=hooks.press,
                       background=hooks.spawn, on_async_result=hooks.on_async)


def _roundtrip(record: ToolCallRecord) -> dict[str, Any]:
    stored = record.to_stored()
    assert ToolCallRecord.from_stored(stored) == record
    assert ToolCallRecord.from_stored(stored).to_stored() == stored
    return stored


def _stable(stored: dict[str, Any]) -> dict[str, Any]:
    """The stored dict without the values that change per run."""
    assert stored.pop("id").startswith("tool_call_")
    assert isinstance(stored.pop("duration_ms"), float)
    assert datetime.fromisoformat(stored.pop("completed_at")).tzinfo is not None
    return stored


WEBHOOK = RuntimeTool("lookup_order", "Find an order", "webhook", ORDER, id="tool_9",
                      timeout_ms=1000)
OK = WebhookResult("POST", "https://shop.test/orders/A1", CALLED_AT, {"express": True},
                   {"lines": [1]}, {"Authorization": "***"}, 200, {"status": "shipped"})


@virtual
async def test_webhook_success_is_recorded_in_the_stored_shape() -> None:
    hooks = Hooks(webhook=OK)
    outcome = await _runtime(hooks, WEBHOOK).execute(
        ToolCall("c1", "lookup_order", '{"order_id": "A1", "express": "true"}'))
    assert hooks.webhook_calls == [("lookup_order", {"order_id": "A1", "express": True})]
    assert outcome.content == '{"status": "shipped"}' and outcome.speak_after
    assert _stable(_roundtrip(outcome.record)) == {
        "tool_call_id": "c1", "tool": {"id": "tool_9", "name": "lookup_order"},
        "arguments": '{"order_id": "A1", "express": "true"}',
        "parameters": {"order_id": "A1", "express": True},
        "endpoint_method": "POST", "endpoint_url": "https://shop.test/orders/A1",
        "endpoint_headers": {"Authorization": "***"}, "endpoint_timeout_ms": 1000,
        "endpoint_called_at": "2025-05-01T12:00:00+00:00", "query_params": {"express": True},
        "request_body": {"lines": [1]}, "response_status_code": 200,
        "response_body": {"status": "shipped"}, "status": "success", "timed_out": False}


@pytest.mark.parametrize(("result", "status", "message"), [
    (WebhookResult("POST", "u", CALLED_AT, timed_out=True, error="no reply within 1000 ms"),
     "timeout", "no reply within 1000 ms"),
    (WebhookResult("POST", "u", CALLED_AT, status_code=500, error="HTTP 500"), "error",
     "HTTP 500"),
])
@virtual
async def test_webhook_failures_are_tool_errors(result: WebhookResult, status: str,
                                                message: str) -> None:
    outcome = await _runtime(Hooks(webhook=result), WEBHOOK).execute(
        ToolCall("c1", "lookup_order", '{"order_id": "A1"}'))
    stored = _roundtrip(outcome.record)
    assert (stored["status"], stored["error_message"]) == (status, message)
    assert stored["timed_out"] is (status == "timeout")
    assert outcome.content == f'{{"error": "{message}"}}'


@virtual
async def test_unknown_tools_and_invalid_arguments_never_run() -> None:
    hooks = Hooks(webhook=OK)
    runtime = _runtime(hooks, WEBHOOK)
    unknown = await runtime.execute(ToolCall("c1", "nope", "{}"))
    invalid = await runtime.execute(ToolCall("c2", "lookup_order", '{"express": 1}'))
    assert hooks.webhook_calls == []
    assert _stable(_roundtrip(unknown.record)) == {
        "tool_call_id": "c1", "tool": {"id": None, "name": "nope"}, "arguments": "{}",
        "status": "error", "timed_out": False, "error_message": "unknown tool 'nope'"}
    stored = _roundtrip(invalid.record)
    assert stored["status"] == "error" and "order_id" in stored["error_message"]
    assert "parameters" not in stored


@virtual
async def test_client_tool_success_timeout_and_interruption() -> None:
    tool = RuntimeTool("lookup", "d", "websocket", timeout_ms=500)
    hooks = Hooks(client_answer={"found": True})
    runtime = _runtime(hooks, tool)
    ok = await runtime.execute(ToolCall("c1", "lookup", "{}"))
    assert hooks.client_calls == [("c1", "lookup", {})]
    stored = _stable(_roundtrip(ok.record))
    assert stored == {"tool_call_id": "c1", "tool": {"id": None, "name": "lookup"},
                      "arguments": "{}", "parameters": {}, "tool_call_output_timeout_ms": 500,
                      "output": {"found": True}, "status": "success", "timed_out": False}
    hooks.client_delay_s = 1.0
    late = await runtime.execute(ToolCall("c2", "lookup", "{}"))
    stored = _roundtrip(late.record)
    assert (stored["status"], stored["timed_out"]) == ("timeout", True)
    assert "output" not in stored
    cut = asyncio.create_task(runtime.execute(ToolCall("c3", "lookup", "{}")))
    await asyncio.sleep(0.1)
    cut.cancel()
    await asyncio.gather(cut, return_exceptions=True)
    assert hooks.interrupted == [("c3", "lookup")]


@virtual
async def test_context_keypad_and_transfer_tools() -> None:
    hooks = Hooks()
    runtime = _runtime(
        hooks, RuntimeTool("hours", "d", "context", config={"context": "9 to 5"}),
        RuntimeTool("press", "d", "keypad",
                    {"type": "object", "properties": {"digits": {"type": "string"}}}),
        RuntimeTool("transfer", "d", "transfer_agent",
                    {"type": "object", "properties": {"agent": {"type": "string"}}},
                    config={"agents_to_transfer_to": ["billing"]}),
        RuntimeTool("call_out", "d", "transfer_phone"))
    assert (await runtime.execute(ToolCall("c1", "hours", "{}"))).content == "9 to 5"
    pressed = await runtime.execute(ToolCall("c2", "press", '{"digits": "42"}'))
    assert hooks.dtmf == ["42"] and pressed.content == '{"pressed": "42"}'
    moved = await runtime.execute(ToolCall("c3", "transfer", '{"agent": "billing"}'))
    assert (moved.transfer_to, moved.speak_after, moved.record.status) == (
        "billing", False, "success")
    refused = await runtime.execute(ToolCall("c4", "transfer", '{"agent": "sales"}'))
    assert refused.transfer_to is None and refused.record.status == "error"
    phone = await runtime.execute(ToolCall("c5", "call_out", "{}"))
    assert phone.record.status == "error" and "no telephony" in (phone.record.error_message or "")


@virtual
async def test_an_async_webhook_runs_in_the_background_and_ends_exactly_once() -> None:
    tool = RuntimeTool("slow_job", "d", "webhook", ORDER, execution_mode="async")
    hooks = Hooks(webhook=OK, webhook_delay_s=3)
    runtime = _runtime(hooks, tool)
    started = await runtime.execute(ToolCall("c1", "slow_job", '{"order_id": "7"}'))
    assert started.record.status == "running" and not started.record.final
    assert "started" in started.content and hooks.async_results == []
    await asyncio.sleep(3.1)
    [done] = hooks.async_results
    assert done.record.status == "success" and done.record.id == started.record.id
    # The conversation ends before a second one finishes: it still ends, as cancelled.
    await runtime.execute(ToolCall("c2", "slow_job", '{"order_id": "8"}'))
    await asyncio.sleep(1)
    hooks.background[-1].cancel()
    await asyncio.gather(hooks.background[-1], return_exceptions=True)
    assert [r.record.status for r in hooks.async_results] == ["success", "cancelled"]


def test_stored_shapes_of_the_old_engine_read_back_unchanged() -> None:
    """Dicts as the engine stored them before records were typed (REST views and rows)."""
    shapes: list[dict[str, Any]] = [
        {"id": "tool_call_1", "tool_call_id": "c1", "tool": {"id": None, "name": "lookup"},
         "arguments": "{}", "parameters": {}, "tool_call_output_timeout_ms": 5000,
         "timed_out": True, "status": "timeout", "duration_ms": 5000.2,
         "completed_at": "2025-05-01T12:00:05.000200+00:00",
         "error_message": "no tool_call_output within 5000 ms"},
        {"tool": {"id": "tool_natural_conversation_ending",
                  "name": "natural_conversation_ending"},
         "tool_call_id": "c2", "arguments": "{}", "status": "success"},
        {"tool": {"name": "lookup"}, "tool_call_id": "c3", "arguments": "{}",
         "status": "cancelled", "error_message": "interrupted by the caller"},
        {"id": "tool_call_4", "tool_call_id": "c4", "tool": {"id": "tool_9", "name": "job"},
         "arguments": "{}", "parameters": {}, "status": "running"},
    ]
    for shape in shapes:
        assert ToolCallRecord.from_stored(shape).to_stored() == shape
