"""The seam every transport plugs into: the STS socket, Twilio, SIP/RTP, the browser.

A transport is a wire codec plus call control. It never runs a conversation itself:
the call session (``services/call_session.py``) owns the lifecycle, and the transport

* feeds what arrives into a ``CallInput`` (audio frames, DTMF, control messages, hang-up)
  from ``serve_input``; playback acknowledgements (Twilio marks, browser acks) go to the
  transport's own audio sink, which tells the engine what the far end has heard, and
* carries out what the engine asks for: events (including paced audio), ``clear`` at the
  moment of barge-in, ``send_dtmf``, ``transfer`` and ``hangup``.

Control messages are typed here, so a dialect's socket parses its JSON once and every
layer below sees the same commands.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from openline.audio.codecs import AudioFormat
from openline.voice import events as ev
from openline.voice.io import AudioSink
from openline.voice.tools import PhoneTransfer

# ----- control messages (client -> conversation) -------------------------------------


@dataclass(frozen=True)
class UpdateSystemPrompt:
    system_prompt: str


@dataclass(frozen=True)
class AddSystemMessage:
    system_message: str


@dataclass(frozen=True)
class SetExternalId:
    external_id: str


@dataclass(frozen=True)
class GenerateReply:
    system_message: str | None = None
    user_message: str | None = None


@dataclass(frozen=True)
class Say:
    text: str
    interruptible: bool = True


@dataclass(frozen=True)
class Mute:
    pass


@dataclass(frozen=True)
class Unmute:
    pass


@dataclass(frozen=True)
class Reset:
    system_prompt: str | None = None


@dataclass(frozen=True)
class ToolCallOutput:
    tool_call_id: str
    output: Any


@dataclass(frozen=True)
class UpdateTools:
    """Tool definitions: names of stored tools or built-ins, or inline tool objects."""

    tools: Sequence[Any]


Control = (UpdateSystemPrompt | AddSystemMessage | SetExternalId | GenerateReply | Say | Mute
           | Unmute | Reset | ToolCallOutput | UpdateTools)


class ControlRejected(Exception):
    """A control message could not be applied; the conversation goes on."""

    def __init__(self, message: str, code: str, param_errors: dict[str, str] | None = None
                 ) -> None:
        super().__init__(message)
        self.message, self.code, self.param_errors = message, code, param_errors


# ----- the two directions -------------------------------------------------------------


class CallInput(Protocol):
    """What a transport feeds; implemented by the call session."""

    def push_audio(self, pcm: bytes, media_ms: float | None = None) -> None:
        """Caller audio in the session's input format; ``media_ms`` is the wire's media
        timestamp when it has one (RTP, Twilio), for gap detection."""

    def push_dtmf(self, digits: str) -> None:
        """Keypad digits pressed by the caller."""

    async def control(self, command: Control) -> None:
        """Apply a control message; raises ``ControlRejected`` when it cannot."""

    def hangup(self, at: datetime | None = None) -> None:
        """The caller hung up (``at``: when, if earlier than now)."""


class Dropped(Exception):
    """The transport lost its peer in a way that lets it come back (e.g. the SDK's
    reconnect after an abnormal close). Raised from ``serve_input``."""

    def __init__(self, at: datetime) -> None:
        super().__init__("transport dropped")
        self.at = at


class CallTransport(Protocol):
    """One attached peer of a call."""

    async def send_event(self, event: ev.EngineEvent) -> None:
        """An engine event, already in order (audio is paced by the engine's sink)."""

    async def clear(self) -> None:
        """Barge-in: drop audio buffered at the far end (Twilio ``clear``)."""

    async def send_dtmf(self, digits: str) -> None:
        """Play keypad tones to the far end."""

    async def transfer(self, destination: PhoneTransfer) -> bool:
        """Start handing the call to a phone number (or SIP URI); False where the wire
        cannot. True means the transfer was placed, not that anyone answered."""

    async def hangup(self, ended_by: str) -> None:
        """End the call on the wire (close code / BYE / Twilio hang-up)."""

    async def serve_input(self, call: CallInput) -> None:
        """Read the wire and feed ``call`` until the peer hangs up (return) or drops
        (raise ``Dropped``)."""

    async def resumed(self) -> None:
        """This transport took over a call whose previous peer dropped."""

    def audio_sink(self, output_format: AudioFormat) -> AudioSink | None:
        """The sink that plays this call's audio and reports what the far end heard
        (a Twilio sink acknowledged by marks), or None for the engine's local real-time
        pacer, which sends ``AudioOut`` events through ``send_event``. Asked once, when
        the call starts."""
