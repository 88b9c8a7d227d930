"""Turn an agent's tool names and a socket's inline tool definitions into runtime tools."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from openline.domain.errors import ValidationFailed
from openline.domain.tool import Tool, ToolSpec
from openline.services import mapping
from openline.store import tables as t
from openline.voice.tools import RuntimeTool

#: Built-ins the engine runs itself (not through the tool runtime).
ENGINE_BUILT_INS = ("natural_conversation_ending", "choose_not_to_respond")
KEYPAD = RuntimeTool(
    "keypad_input", "Press telephone keypad keys (DTMF), e.g. to navigate a phone menu.",
    "keypad", {"type": "object", "properties": {"digits": {
        "type": "string", "pattern": "^[0-9*#]+$", "description": "Keys to press"}},
        "required": ["digits"]}, id="tool_keypad_input")
_KINDS = {"custom_context": "context", "custom_webhook": "webhook",
          "custom_websocket": "websocket", "built_in_transfer_to_agent": "transfer_agent",
          "built_in_transfer_to_phone_number": "transfer_phone"}
_FLAG_KEYS = {"require_speech_before": "require_speech_before_tool_call",
              "wait_for_speech_before": "wait_for_speech_before_tool_call",
              "forbid_speech_after": "forbid_speech_after_tool_call",
              "allow_chaining": "allow_tool_chaining", "wait_for_response": "wait_for_response",
              "uninterruptible": "uninterruptible"}


def from_tool(tool: Tool) -> RuntimeTool:
    """A stored tool as the runtime runs it (the typed form of :func:`from_spec`)."""
    return from_spec(mapping.dump_spec(tool.spec), tool.id)


def from_spec(spec: dict[str, Any], tool_id: str | None) -> RuntimeTool:
    """A stored (or inline, already validated) tool definition as the runtime runs it."""
    kind = _KINDS[spec["type"]]
    parameters = ToolSpec.model_validate(spec).json_schema()
    if kind == "transfer_agent":
        parameters = {"type": "object", "required": ["agent"], "properties": {"agent": {
            "type": "string", "enum": list(spec.get("agents_to_transfer_to") or []),
            "description": "The agent to hand the caller to"}}}
    if kind == "transfer_phone" and not spec.get("phone_number"):
        parameters = {"type": "object", "required": ["phone_number"], "properties": {
            "phone_number": {"type": "string", "description": "E.164 number"}}}
    flags = {k: bool(spec.get(v)) for k, v in _FLAG_KEYS.items() if spec.get(v) is not None}
    if kind == "transfer_phone" and spec.get("uninterruptible") is None:
        flags["uninterruptible"] = True  # documented default for phone transfers
    timeout = spec.get("tool_call_output_timeout_ms" if kind == "websocket"
                       else "endpoint_timeout_ms") or 5000
    return RuntimeTool(spec["name"], spec.get("description", ""), kind,  # type: ignore[arg-type]
                       parameters, tool_id, spec.get("execution_mode", "sync"), int(timeout),
                       config=spec, **flags)


async def load(s: AsyncSession, project_id: str, definitions: Sequence[Any]
               ) -> tuple[list[RuntimeTool], tuple[str, ...]]:
    """Runtime tools plus the engine-run built-ins, from names and inline definitions."""
    names = [d for d in definitions if isinstance(d, str)]
    stored = {row.name: row for row in await s.scalars(
        select(t.Tool).where(t.Tool.project_id == project_id, t.Tool.name.in_(names)))}
    tools: list[RuntimeTool] = []
    built_ins: list[str] = []
    errors: dict[str, str] = {}
    for i, d in enumerate(definitions):
        name = d if isinstance(d, str) else (d.get("name") if isinstance(d, dict) else None)
        if isinstance(d, dict) and d.get("type") == "built_in":
            d = name
        if isinstance(d, str):
            if d in ENGINE_BUILT_INS:
                built_ins.append(d)
            elif d == "keypad_input":
                tools.append(KEYPAD)
            elif d in stored:
                tools.append(from_spec(stored[d].spec, stored[d].id))
            else:
                errors[f"tools.{i}"] = f"unknown tool {d!r}"
        elif isinstance(d, dict) and d.get("type") == "custom_websocket":
            tools.append(_inline(d, i, errors))
        else:
            errors[f"tools.{i}"] = "expected a tool name or a tool definition"
    seen = [t.name for t in tools] + built_ins
    if len(set(seen)) != len(seen):
        errors["tools"] = "tool names must be unique"
    if errors:
        raise ValidationFailed(f"Invalid tools: {next(iter(errors.values()))}", errors)
    return tools, tuple(built_ins)


def _inline(d: dict[str, Any], i: int, errors: dict[str, str]) -> RuntimeTool:
    """An inline ``custom_websocket`` tool (``tool_schema.function`` as in OpenAI's format)."""
    fn = (d.get("tool_schema") or {}).get("function") or {}
    name = fn.get("name")
    if not isinstance(name, str) or not name:
        errors[f"tools.{i}.tool_schema.function.name"] = "required"
        return KEYPAD
    params = fn.get("parameters") or {"type": "object", "properties": {}}
    if not isinstance(params, dict) or params.get("type", "object") != "object":
        errors[f"tools.{i}.tool_schema.function.parameters"] = "must be a JSON Schema object"
    flags = {k: bool(d[v]) for k, v in _FLAG_KEYS.items() if d.get(v) is not None}
    return RuntimeTool(name, str(fn.get("description", "")), "websocket",
                       params if isinstance(params, dict) else {}, None,
                       str(d.get("execution_mode", "sync")),
                       int(d.get("tool_call_output_timeout_ms") or 5000), config=d, **flags)
