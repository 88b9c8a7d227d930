"""Any OpenAI-compatible chat-completions server (vLLM, llama.cpp server, Ollama, OpenAI...).

Streams ``POST {base_url}/chat/completions`` with ``stream: true`` over httpx and parses
the server-sent events. Text deltas are forwarded as they arrive; tool calls arrive as
fragments keyed by ``index`` (id and name first, then argument pieces) and are emitted as
``ToolCallEvent`` once complete, i.e. when the choice finishes or the stream ends.

Errors: timeouts -> ``ProviderTimeout``; connection failures -> ``ProviderUnavailable``
(retryable); HTTP 429/5xx -> retryable ``ProviderError``; other HTTP errors and malformed
streams -> ``ProviderError``.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from typing import Any

import httpx

from openline.domain.errors import ProviderError, ProviderTimeout, ProviderUnavailable
from openline.providers.llm.base import (
    LLM,
    ChatMessage,
    Finish,
    GenerationOptions,
    HookEvent,
    LLMCapabilities,
    TextDelta,
    ToolCall,
    ToolCallEvent,
    ToolSpec,
)


@dataclass(frozen=True)
class OpenAICompatOptions:
    """Connection and default generation settings. ``timeout_s`` bounds connecting and
    each read (so a stalled stream fails instead of hanging a turn)."""

    base_url: str
    model: str
    api_key: str | None = None
    timeout_s: float = 30.0
    max_tokens: int = 256
    temperature: float = 0.7
    max_retries: int = 1
    extra_headers: dict[str, str] = field(default_factory=dict)


def to_openai_messages(messages: list[ChatMessage]) -> list[dict[str, Any]]:
    """Typed messages -> OpenAI chat ``messages`` (pure function)."""
    out: list[dict[str, Any]] = []
    for m in messages:
        item: dict[str, Any] = {"role": m.role, "content": m.content}
        if m.role == "assistant" and m.tool_calls:
            item["content"] = m.content or None
            item["tool_calls"] = [
                {"id": c.id, "type": "function",
                 "function": {"name": c.name, "arguments": c.arguments}}
                for c in m.tool_calls
            ]  # fmt: skip
        if m.role == "tool":
            item["tool_call_id"] = m.tool_call_id
            if m.name:
                item["name"] = m.name
        out.append(item)
    return out


def to_openai_tools(tools: list[ToolSpec]) -> list[dict[str, Any]]:
    """Tool specs -> OpenAI ``tools`` (pure function)."""
    return [
        {"type": "function",
         "function": {"name": t.name, "description": t.description, "parameters": t.parameters}}
        for t in tools
    ]  # fmt: skip


class _ToolCallAccumulator:
    """Joins streamed tool-call fragments by index."""

    def __init__(self) -> None:
        self._calls: dict[int, dict[str, str]] = {}

    def add(self, fragments: list[dict[str, Any]]) -> None:
        for frag in fragments:
            slot = self._calls.setdefault(
                int(frag.get("index", 0)), {"id": "", "name": "", "args": ""}
            )
            if frag.get("id"):
                slot["id"] = frag["id"]
            function = frag.get("function") or {}
            if function.get("name"):
                slot["name"] += function["name"]
            if function.get("arguments"):
                slot["args"] += function["arguments"]

    def drain(self) -> list[ToolCall]:
        calls = [
            ToolCall(id=s["id"] or f"call_{i}", name=s["name"], arguments=s["args"] or "{}")
            for i, s in sorted(self._calls.items())
        ]
        self._calls.clear()
        return calls


class OpenAICompatLLM(LLM):
    """Chat completions over HTTP with streaming and native tool calls."""

    name = "openai-compat"
    capabilities = LLMCapabilities(native_tools=True)

    def __init__(self, options: OpenAICompatOptions) -> None:
        super().__init__()
        self.options = options
        self.max_retries = options.max_retries
        self._client: httpx.AsyncClient | None = None

    async def _load(self) -> None:
        headers = {"Accept": "text/event-stream", **self.options.extra_headers}
        if self.options.api_key:
            headers["Authorization"] = f"Bearer {self.options.api_key}"
        self._client = httpx.AsyncClient(
            base_url=self.options.base_url.rstrip("/"),
            headers=headers,
            timeout=httpx.Timeout(self.options.timeout_s),
        )

    async def _close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def _payload(
        self, messages: list[ChatMessage], tools: list[ToolSpec], options: GenerationOptions
    ) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "model": self.options.model,
            "messages": to_openai_messages(messages),
            "stream": True,
            "max_tokens": options.max_tokens or self.options.max_tokens,
            "temperature": (
                self.options.temperature if options.temperature is None else options.temperature
            ),
        }
        if options.stop:
            payload["stop"] = list(options.stop)
        if options.seed is not None:
            payload["seed"] = options.seed
        if options.json_schema is not None:
            payload["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "result", "schema": options.json_schema, "strict": True},
            }
        if tools and options.tool_choice != "none":
            payload["tools"] = to_openai_tools(tools)
            payload["tool_choice"] = options.tool_choice
        return payload

    async def _stream(
        self, messages: list[ChatMessage], tools: list[ToolSpec], options: GenerationOptions
    ) -> AsyncIterator[HookEvent]:
        assert self._client is not None
        payload = self._payload(messages, tools, options)
        try:
            async with self._client.stream("POST", "/chat/completions", json=payload) as resp:
                if resp.status_code >= 400:
                    body = (await resp.aread()).decode("utf-8", "replace")[:500]
                    raise ProviderError(
                        f"{self.name}: HTTP {resp.status_code}: {body}",
                        retryable=resp.status_code == 429 or resp.status_code >= 500,
                    )
                async for event in self._parse(resp):
                    yield event
        except httpx.TimeoutException as exc:
            raise ProviderTimeout(
                f"{self.name}: timed out after {self.options.timeout_s}s"
            ) from exc
        except httpx.TransportError as exc:
            raise ProviderUnavailable(f"{self.name}: {exc}", retryable=True) from exc

    async def _parse(self, resp: httpx.Response) -> AsyncIterator[HookEvent]:
        calls = _ToolCallAccumulator()
        finish = Finish()
        async for line in resp.aiter_lines():
            if not line.startswith("data:"):
                continue  # comments, event names, keep-alives
            data = line[5:].strip()
            if data == "[DONE]":
                break
            try:
                chunk = json.loads(data)
            except json.JSONDecodeError as exc:
                raise ProviderError(f"{self.name}: malformed stream chunk {data[:100]!r}") from exc
            if chunk.get("error"):
                raise ProviderError(f"{self.name}: {chunk['error']}")
            usage = chunk.get("usage") or {}
            if usage:
                finish = Finish.from_usage(finish.reason, usage)
            for choice in chunk.get("choices") or []:
                delta = choice.get("delta") or {}
                if delta.get("content"):
                    yield TextDelta(delta["content"])
                if delta.get("tool_calls"):
                    calls.add(delta["tool_calls"])
                if choice.get("finish_reason"):
                    finish = replace(finish, reason=choice["finish_reason"])
                    for call in calls.drain():
                        yield ToolCallEvent(call)
        for call in calls.drain():
            yield ToolCallEvent(call)
        yield finish
