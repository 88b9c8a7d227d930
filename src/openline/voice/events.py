"""What the engine tells its transport. Transports encode these for their wire."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from openline.domain.tool_call import ToolCallRecord


@dataclass(frozen=True)
class UserStartedSpeaking:
    pass


@dataclass(frozen=True)
class UserFinishedSpeaking:
    pass


@dataclass(frozen=True)
class InputText:
    text: str
    language: str | None


@dataclass(frozen=True)
class InputCancelled:
    """A detected user turn was discarded (no words, or too few to interrupt)."""


@dataclass(frozen=True)
class AssistantStartedSpeaking:
    pass


@dataclass(frozen=True)
class AssistantFinishedSpeaking:
    pass


@dataclass(frozen=True)
class AudioOut:
    """Assistant audio encoded in the output format, and the words it speaks."""

    audio: bytes
    text: str
    timings: dict[str, float] | None = None


@dataclass(frozen=True)
class ClearAudio:
    """Barge-in: drop every bit of assistant audio the far end has not played yet.

    Sent at the moment the caller interrupts (a Twilio transport sends ``clear``); the
    Phonic socket has no such message (its client stops playback on
    ``user_started_speaking``)."""


@dataclass(frozen=True)
class InterruptedResponse:
    """The part of the assistant turn actually sent before the user cut in."""

    text: str


@dataclass(frozen=True)
class AssistantChoseNotToRespond:
    pass


@dataclass(frozen=True)
class AssistantEndedConversation:
    pass


@dataclass(frozen=True)
class ToolCallRequest:
    """Ask the client to run a tool (custom_websocket tools)."""

    tool_call_id: str
    tool_name: str
    parameters: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ToolCallFinished:
    """A tool call ended (any outcome)."""

    record: ToolCallRecord
    conversation_item_role: str = "assistant"


@dataclass(frozen=True)
class ToolCallInterrupted:
    tool_call_id: str
    tool_name: str


@dataclass(frozen=True)
class Dtmf:
    """The assistant pressed keys (keypad_input); a telephony bridge plays them."""

    digits: str


@dataclass(frozen=True)
class DtmfReceived:
    """The caller pressed keys (telephony); committed as a user turn, reported here too."""

    digits: str


@dataclass(frozen=True)
class EngineError:
    message: str
    code: str | None = None


@dataclass(frozen=True)
class EngineWarning:
    message: str
    code: str | None = None


EngineEvent = (
    UserStartedSpeaking | UserFinishedSpeaking | InputText | InputCancelled
    | AssistantStartedSpeaking | AssistantFinishedSpeaking | AudioOut | InterruptedResponse
    | AssistantChoseNotToRespond | AssistantEndedConversation | ToolCallRequest
    | ToolCallFinished | ToolCallInterrupted | Dtmf | DtmfReceived | ClearAudio | EngineError
    | EngineWarning
)
