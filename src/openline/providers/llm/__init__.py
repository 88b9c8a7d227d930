"""Chat LLMs: typed messages and tools in, a stream of text deltas and tool calls out."""

from openline.providers.llm.base import (
    LLM,
    ChatMessage,
    GenerationOptions,
    LLMCapabilities,
    LLMDone,
    LLMEvent,
    TextDelta,
    ToolCall,
    ToolCallEvent,
    ToolSpec,
)

__all__ = [
    "LLM",
    "ChatMessage",
    "GenerationOptions",
    "LLMCapabilities",
    "LLMDone",
    "LLMEvent",
    "TextDelta",
    "ToolCall",
    "ToolCallEvent",
    "ToolSpec",
]
