"""Chat LLM contract.

Input: a list of ``ChatMessage`` (system / user / assistant with optional ``tool_calls`` /
tool results), optional ``ToolSpec``s and ``GenerationOptions``. Output of
``LLM.stream(...)``: an async iterator of events

* ``TextDelta(text)``: the next piece of the reply, as soon as it exists;
* ``ToolCallEvent(call)``: a *completed* tool call (id, name, JSON arguments string);
* ``LLMDone``: exactly once, last, with finish reason, token counts and timings
  (``ttft_s`` = time to the first text delta or tool call, measured by the base).

Closing or cancelling the iterator stops generation promptly (implementations check for
it between tokens). Breaking out of ``async for`` does *not* close an async generator
right away, so consumers that may stop early should use
``async with contextlib.aclosing(llm.stream(...)) as events:``. ``complete()`` collects
a whole reply for non-streaming callers.

The base owns timing, error translation (anything -> ``ProviderError``) and retries: a
retryable failure *before the first event* is retried up to ``max_retries`` times; after
output has started, a failure is raised (the caller has already spoken part of it).
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from openline.domain.errors import ProviderError
from openline.providers.base import Provider, wrap_error

Role = Literal["system", "user", "assistant", "tool"]


@dataclass(frozen=True)
class ToolCall:
    """A tool invocation requested by the model. ``arguments`` is a JSON object string."""

    id: str
    name: str
    arguments: str


@dataclass(frozen=True)
class ChatMessage:
    """One conversation message. Use the ``system``/``user``/``assistant``/``tool``
    constructors; ``tool`` messages carry the result of the call ``tool_call_id``."""

    role: Role
    content: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None
    name: str | None = None

    @classmethod
    def system(cls, content: str) -> ChatMessage:
        """A system (instructions) message."""
        return cls("system", content)

    @classmethod
    def user(cls, content: str) -> ChatMessage:
        """What the caller said."""
        return cls("user", content)

    @classmethod
    def assistant(cls, content: str = "", tool_calls: Sequence[ToolCall] = ()) -> ChatMessage:
        """What the assistant said and/or the tools it called."""
        return cls("assistant", content, tuple(tool_calls))

    @classmethod
    def tool(cls, tool_call_id: str, content: str, name: str | None = None) -> ChatMessage:
        """The result of tool call ``tool_call_id`` (content usually JSON)."""
        return cls("tool", content, tool_call_id=tool_call_id, name=name)


@dataclass(frozen=True)
class ToolSpec:
    """A tool the model may call; ``parameters`` is a JSON Schema object."""

    name: str
    description: str
    parameters: dict[str, Any] = field(default_factory=lambda: {"type": "object", "properties": {}})


@dataclass(frozen=True)
class GenerationOptions:
    """Per-request generation settings (``None`` = the provider's configured default)."""

    max_tokens: int | None = None
    temperature: float | None = None
    stop: tuple[str, ...] = ()
    tool_choice: Literal["auto", "none", "required"] = "auto"
    seed: int | None = None
    #: When set, the reply is one JSON value valid for this JSON Schema (structured output:
    #: ``response_format`` on OpenAI-compatible servers, a grammar in llama.cpp). Used by
    #: post-call extraction and evaluation; the live engine leaves it ``None``.
    json_schema: dict[str, Any] | None = None
    #: Nobody waits for this reply in real time (post-call analysis). An embedded model
    #: with few slots serves live requests first and may stop this one for them (it then
    #: starts over; the caller still gets one whole reply). Remote servers schedule
    #: requests themselves and ignore it.
    background: bool = False
    #: The conversation this request belongs to (any stable key). An embedded model keeps
    #: each conversation's prompt cached in its own slot between requests; remote servers
    #: ignore it.
    session: str | None = None


@dataclass(frozen=True)
class LLMCapabilities:
    """``native_tools``: the model itself emits tool calls (vs. a constrained decision step)."""

    native_tools: bool = True
    streaming: bool = True


@dataclass(frozen=True)
class TextDelta:
    """The next piece of reply text."""

    text: str


@dataclass(frozen=True)
class ToolCallEvent:
    """A completed tool call."""

    call: ToolCall


@dataclass(frozen=True)
class Finish:
    """What an implementation reports at the end; the base turns it into ``LLMDone``."""

    reason: str = "stop"
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    #: of ``prompt_tokens``, those the server had cached (not processed again)
    cached_prompt_tokens: int | None = None

    @classmethod
    def from_usage(cls, reason: str, usage: dict[str, Any]) -> Finish:
        """From an OpenAI-style ``usage`` object (llama.cpp's server sends the same)."""
        details = usage.get("prompt_tokens_details") or {}
        return cls(reason, usage.get("prompt_tokens"), usage.get("completion_tokens"),
                   details.get("cached_tokens"))


@dataclass(frozen=True)
class LLMDone:
    """Last event of every stream."""

    finish_reason: str
    text: str
    tool_calls: tuple[ToolCall, ...]
    ttft_s: float | None
    duration_s: float
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cached_prompt_tokens: int | None = None


LLMEvent = TextDelta | ToolCallEvent | LLMDone
HookEvent = TextDelta | ToolCallEvent | Finish


class LLM(Provider, ABC):
    """Base of all chat LLM providers."""

    capabilities: LLMCapabilities = LLMCapabilities()
    max_retries: int = 0

    def end_session(self, session: str) -> None:
        """The conversation ``session`` (``GenerationOptions.session``) is over: a provider
        that keeps state per conversation (an embedded model's cached prompt) may give
        it to the next one. Default: nothing to do."""

    async def warm(self, messages: Sequence[ChatMessage], *, tools: Sequence[ToolSpec] = (),
                   options: GenerationOptions | None = None) -> None:
        """Before a conversation's first reply: a provider that keeps state per
        conversation (an embedded model's cached prompt) may process ``messages`` (and
        ``tools``) under ``options.session`` now, so the first reply finds them ready.
        Nothing is generated for anyone and nothing is returned; it yields to live
        requests. Default: nothing to do (a remote server's own prefix cache is its
        business, and a warm-up request would cost hosted users tokens)."""

    async def stream(
        self,
        messages: Sequence[ChatMessage],
        *,
        tools: Sequence[ToolSpec] = (),
        options: GenerationOptions | None = None,
    ) -> AsyncGenerator[LLMEvent, None]:
        """Stream a reply to ``messages``; see the module docstring for the events."""
        await self.ensure_loaded()
        opts = options or GenerationOptions()
        start = time.perf_counter()
        attempt = 0
        while True:
            state = _StreamState(start)
            try:
                async for event in self._stream(list(messages), list(tools), opts):
                    out = state.accept(event)
                    if out is not None:
                        yield out
                break
            except ProviderError as exc:
                if state.started or not exc.retryable or attempt >= self.max_retries:
                    self._record(state, failed=True)
                    raise
                attempt += 1
            except Exception as exc:
                self._record(state, failed=True)
                raise wrap_error(self.name, exc) from exc
        self._record(state, failed=False)
        yield state.done()

    async def complete(
        self,
        messages: Sequence[ChatMessage],
        *,
        tools: Sequence[ToolSpec] = (),
        options: GenerationOptions | None = None,
    ) -> LLMDone:
        """The whole reply at once (the final ``LLMDone``, which carries text and calls)."""
        async for event in self.stream(messages, tools=tools, options=options):
            if isinstance(event, LLMDone):
                return event
        raise ProviderError(f"{self.name}: stream ended without a result")  # pragma: no cover

    async def prepare(self, tools: Sequence[ToolSpec]) -> None:
        """Optional warm-up for a tool set (call at conversation start, off the hot path).

        Providers that compile something per tool set (grammars) do it here so the first
        turn does not pay for it. Default: just ``load()``.
        """
        await self.ensure_loaded()

    def _record(self, state: _StreamState, *, failed: bool) -> None:
        elapsed = time.perf_counter() - state.start
        self.metrics.op("stream").record(elapsed, failed=failed)
        if state.ttft_s is not None:
            self.metrics.op("ttft").record(state.ttft_s)

    @abstractmethod
    def _stream(
        self, messages: list[ChatMessage], tools: list[ToolSpec], options: GenerationOptions
    ) -> AsyncIterator[HookEvent]:
        """Hook: async generator of ``TextDelta``/``ToolCallEvent`` and optionally one
        trailing ``Finish``. Must stop generating when closed."""


class _StreamState:
    """Accumulates one attempt's output and timings."""

    def __init__(self, start: float) -> None:
        self.start = start
        self.ttft_s: float | None = None
        self.text: list[str] = []
        self.calls: list[ToolCall] = []
        self.finish = Finish()

    @property
    def started(self) -> bool:
        return self.ttft_s is not None

    def accept(self, event: HookEvent) -> TextDelta | ToolCallEvent | None:
        if isinstance(event, Finish):
            self.finish = event
            return None
        if isinstance(event, TextDelta):
            if not event.text:
                return None
            self.text.append(event.text)
        else:
            self.calls.append(event.call)
        if self.ttft_s is None:
            self.ttft_s = time.perf_counter() - self.start
        return event

    def done(self) -> LLMDone:
        reason = self.finish.reason
        if self.calls and reason == "stop":
            reason = "tool_calls"
        return LLMDone(
            finish_reason=reason,
            text="".join(self.text),
            tool_calls=tuple(self.calls),
            ttft_s=self.ttft_s,
            duration_s=time.perf_counter() - self.start,
            prompt_tokens=self.finish.prompt_tokens,
            completion_tokens=self.finish.completion_tokens,
            cached_prompt_tokens=self.finish.cached_prompt_tokens,
        )
