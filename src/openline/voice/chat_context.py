"""The conversation as the model sees it: a typed list of items and the system prompt.

One ``ChatContext`` per conversation owns the history; every reply path reads it through
``messages()`` and writes it through the ``add_*`` methods, so they cannot drift apart.
Items are small frozen dataclasses; the LLM contract's ``ChatMessage`` list is produced by
the pure functions ``to_message`` / ``to_messages`` (each provider renders its own vendor
format from those). Model: LiveKit Agents ``llm/chat_context.py``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from openline.providers.llm.base import ChatMessage, ToolCall

UserSource = Literal["speech", "text", "dtmf"]


@dataclass(frozen=True)
class SystemNote:
    """An instruction added during the call (``add_system_message``, a transfer, a poke)."""

    text: str


@dataclass(frozen=True)
class UserMessage:
    text: str
    source: UserSource = "speech"


@dataclass(frozen=True)
class AssistantMessage:
    """What the assistant said (only the heard part when ``interrupted``), and its calls."""

    text: str
    interrupted: bool = False
    tool_calls: tuple[ToolCall, ...] = ()


@dataclass(frozen=True)
class ToolResult:
    call_id: str
    name: str | None
    content: str


ChatItem = SystemNote | UserMessage | AssistantMessage | ToolResult


def to_message(item: ChatItem) -> ChatMessage:
    """One item in the LLM contract's format."""
    match item:
        case SystemNote(text=text):
            return ChatMessage.system(text)
        case UserMessage(text=text):
            return ChatMessage.user(text)
        case AssistantMessage(text=text, tool_calls=calls):
            return ChatMessage.assistant(text, calls)
        case ToolResult(call_id=call_id, name=name, content=content):
            return ChatMessage.tool(call_id, content, name)
    raise TypeError(f"not a chat item: {item!r}")


def from_message(message: ChatMessage) -> ChatItem:
    """The item for a message the reply loop produced (tool rounds)."""
    if message.role == "tool":
        return ToolResult(message.tool_call_id or "", message.name, message.content)
    if message.role == "assistant":
        return AssistantMessage(message.content, tool_calls=message.tool_calls)
    if message.role == "user":
        return UserMessage(message.content, "text")
    return SystemNote(message.content)


def to_messages(system_prompt: str, items: Iterable[ChatItem]) -> list[ChatMessage]:
    """The system prompt, then every item, as the LLM is given them."""
    return [ChatMessage.system(system_prompt), *(to_message(i) for i in items)]


class ChatContext:
    """The history of one conversation (see the module docstring)."""

    def __init__(self, system_prompt: str) -> None:
        self.system_prompt = system_prompt
        self.items: list[ChatItem] = []

    def add(self, item: ChatItem) -> None:
        self.items.append(item)

    def add_system(self, text: str) -> None:
        self.add(SystemNote(text))

    def add_user(self, text: str, source: UserSource = "speech") -> None:
        self.add(UserMessage(text, source))

    def add_assistant(self, text: str, *, interrupted: bool = False) -> None:
        if text:
            self.add(AssistantMessage(text, interrupted))

    def add_messages(self, messages: Sequence[ChatMessage]) -> None:
        """Tool rounds from a reply: the assistant's calls and their results."""
        self.items.extend(from_message(m) for m in messages)

    def last_assistant_text(self) -> str:
        """What the assistant last said ("" before it spoke)."""
        for item in reversed(self.items):
            if isinstance(item, AssistantMessage) and item.text:
                return item.text
        return ""

    def clear(self) -> None:
        self.items.clear()

    def messages(self, *extra: ChatItem) -> list[ChatMessage]:
        """What the LLM is given now, with ``extra`` items after the history."""
        return to_messages(self.system_prompt, [*self.items, *extra])
