"""The Phonic STS WebSocket protocol: JSON frames <-> engine events and controls.

The bridge is socket-agnostic (``WireSocket``): the HTTP edge adapts Starlette's WebSocket.
Bad input gets an ``error`` message and the conversation goes on where it can.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from openline.audio.codecs import AudioFormat
from openline.domain.errors import ValidationFailed
from openline.voice import events as ev
from openline.voice.session import Conversation
from openline.voice.tools import RuntimeTool

log = logging.getLogger(__name__)
MAX_CHUNK_MS = 40

#: How the server closes, by ``ended_by`` (codes from the Phonic protocol).
CLOSE_CODES = {
    "assistant": 4600,
    "assistant_silence_limit_reached": 4500,
    "user_canceled": 4200,
    "error": 1011,
}


#: how long a conversation waits for a client whose connection dropped (SDK reconnects)
RECONNECT_GRACE_S = 30.0


class Disconnected(Exception):
    """The client went away; ``abnormal`` when the SDK will try to reconnect."""

    def __init__(self, code: int | None = None, reason: str = "") -> None:
        super().__init__(f"disconnected ({code})")
        self.code, self.reason = code, reason

    @property
    def abnormal(self) -> bool:
        """Closes after which the official SDK reconnects (protocol section 6.11). A lost
        connection reaches the server as 1006 or, through uvicorn, 1005 (no status)."""
        return self.code in (1005, 1006, 1012) or (
            self.code == 1001 and self.reason == "restarting")


class WireSocket(Protocol):
    async def receive_text(self) -> str: ...

    async def send_text(self, data: str) -> None: ...

    async def close(self, code: int = 1000, reason: str = "") -> None: ...


def error_message(message: str, code: str | None = None,
                  param_errors: dict[str, str] | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"message": message}
    if code:
        error["code"] = code
    out: dict[str, Any] = {"type": "error", "error": error}
    if param_errors:
        out["param_errors"] = param_errors
    return out


def encode(event: ev.EngineEvent) -> dict[str, Any] | None:
    """One engine event as a Phonic server->client message (None: the dialect has none)."""
    match event:
        case ev.AudioOut(audio=audio, text=text, timings=timings):
            out: dict[str, Any] = {"type": "audio_chunk",
                                   "audio": base64.b64encode(audio).decode(), "text": text}
            if timings:
                out["timings"] = timings
            return out
        case ev.InputText(text=text, language=language):
            return {"type": "input_text", "text": text, "language": language}
        case ev.InterruptedResponse(text=text):
            return {"type": "interrupted_response", "text": text}
        case ev.EngineError(message=message, code=code):
            return error_message(message, code)
        case ev.EngineWarning(message=message, code=code):
            return {"type": "warning", "warning": {"message": message, "code": code}}
        case ev.ToolCallRequest(tool_call_id=cid, tool_name=name, parameters=params):
            return {"type": "tool_call", "tool_call_id": cid, "tool_name": name,
                    "parameters": params}
        case ev.ToolCallFinished(record=record, conversation_item_role=role):
            return {"type": "tool_call_output_processed", **record.to_stored(),
                    "conversation_item_role": role}
        case ev.ToolCallInterrupted(tool_call_id=cid, tool_name=name):
            return {"type": "tool_call_interrupted", "tool_call_id": cid, "tool_name": name}
        case ev.Dtmf(digits=digits):
            return {"type": "dtmf", "digits": digits}
        case ev.ClearAudio() | ev.DtmfReceived():
            # No Phonic message: the client stops playback on user_started_speaking, and
            # its ``dtmf`` message means the assistant pressed keys, not the caller.
            return None
    return {"type": _SIMPLE[type(event)]}


_SIMPLE: dict[type, str] = {
    ev.UserStartedSpeaking: "user_started_speaking",
    ev.UserFinishedSpeaking: "user_finished_speaking",
    ev.InputCancelled: "input_cancelled",
    ev.AssistantStartedSpeaking: "assistant_started_speaking",
    ev.AssistantFinishedSpeaking: "assistant_finished_speaking",
    ev.AssistantChoseNotToRespond: "assistant_chose_not_to_respond",
    ev.AssistantEndedConversation: "assistant_ended_conversation",
}


@dataclass
class Hooks:
    """Side effects outside the engine that some client messages have."""

    set_external_id: Callable[[str], Awaitable[None]]
    #: tool definitions (names / inline) -> runtime tools; raises ValidationFailed
    load_tools: Callable[[list[Any]], Awaitable[list[RuntimeTool]]]


class StsBridge:
    """Serves one configured conversation over one socket."""

    def __init__(self, socket: WireSocket, input_format: AudioFormat,
                 reconnect: Callable[[], Awaitable[WireSocket | None]] | None = None) -> None:
        """``reconnect`` waits for the same client on a new socket after a dropped one."""
        self.socket = socket
        self.reconnect = reconnect
        self.fmt = input_format
        self._lock = asyncio.Lock()
        self.closed = False
        self.max_chunk_bytes = input_format.bytes_for_ms(MAX_CHUNK_MS)

    async def send(self, message: dict[str, Any]) -> None:
        """Send one message; after the client is gone, messages are dropped."""
        if self.closed:
            return
        async with self._lock:
            try:
                await self.socket.send_text(json.dumps(message, separators=(",", ":")))
            except Disconnected:
                self.closed = True

    async def send_event(self, event: ev.EngineEvent) -> None:
        message = encode(event)
        if message is not None:
            await self.send(message)

    async def receive_loop(self, conv: Conversation, hooks: Hooks) -> None:
        """Feed client messages to the engine until the client disconnects."""
        while True:
            try:
                raw = await self.socket.receive_text()
            except Disconnected as gone:
                self.closed = True
                dropped_at = datetime.now(UTC)
                socket = (await self.reconnect()
                          if gone.abnormal and self.reconnect is not None else None)
                if socket is None:
                    conv.end("user", at=dropped_at)  # it ended when the client went away
                    return
                # The engine kept running; what it said meanwhile was not heard.
                self.socket, self.closed = socket, False
                await self.send({"type": "conversation_reconnected"})
                continue
            await self.handle(raw, conv, hooks)

    async def handle(self, raw: str, conv: Conversation, hooks: Hooks) -> None:
        try:
            msg = json.loads(raw)
        except json.JSONDecodeError:
            await self.send(error_message("Messages must be JSON objects", "invalid_json"))
            return
        if not isinstance(msg, dict) or not isinstance(msg.get("type"), str):
            await self.send(error_message("Messages need a string 'type'", "invalid_message"))
            return
        handler = _HANDLERS.get(msg["type"])
        if handler is None:
            await self.send(error_message(f"Unknown message type {msg['type']!r}",
                                          "unknown_message_type"))
            return
        problem = await handler(self, msg, conv, hooks)
        if problem is not None:
            await self.send(problem)

    def decode_audio(self, msg: dict[str, Any]) -> bytes | dict[str, Any]:
        data = msg.get("audio")
        if not isinstance(data, str):
            return error_message("audio_chunk needs base64 'audio'", "invalid_audio",
                                 {"audio": "required base64 string"})
        try:
            pcm = base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError):
            return error_message("audio is not valid base64", "invalid_audio",
                                 {"audio": "invalid base64"})
        if len(pcm) > self.max_chunk_bytes:
            return error_message(
                f"audio chunks may hold at most {MAX_CHUNK_MS} ms "
                f"({self.max_chunk_bytes} bytes of {self.fmt.name}); got {len(pcm)} bytes",
                "audio_chunk_too_large", {"audio": f"at most {MAX_CHUNK_MS} ms per chunk"})
        return pcm


Handler = Callable[[StsBridge, dict[str, Any], Conversation, Hooks],
                   Awaitable[dict[str, Any] | None]]


async def _audio(b: StsBridge, m: dict[str, Any], c: Conversation, h: Hooks
                 ) -> dict[str, Any] | None:
    pcm = b.decode_audio(m)
    if isinstance(pcm, dict):
        return pcm
    c.push_audio(pcm)
    return None


def _text_field(m: dict[str, Any], key: str) -> str | None:
    value = m.get(key)
    return value if isinstance(value, str) and value.strip() else None


def _missing(key: str) -> dict[str, Any]:
    return error_message(f"'{key}' is required", "invalid_message", {key: "required"})


async def _update_prompt(b: StsBridge, m: dict[str, Any], c: Conversation, h: Hooks
                         ) -> dict[str, Any] | None:
    text = _text_field(m, "system_prompt")
    if text is None:
        return _missing("system_prompt")
    c.update_system_prompt(text)
    return None


async def _add_system(b: StsBridge, m: dict[str, Any], c: Conversation, h: Hooks
                      ) -> dict[str, Any] | None:
    text = _text_field(m, "system_message")
    if text is None:
        return _missing("system_message")
    c.add_system_message(text)
    return None


async def _external(b: StsBridge, m: dict[str, Any], c: Conversation, h: Hooks
                    ) -> dict[str, Any] | None:
    text = _text_field(m, "external_id")
    if text is None:
        return _missing("external_id")
    await h.set_external_id(text.strip())
    return None


async def _generate(b: StsBridge, m: dict[str, Any], c: Conversation, h: Hooks
                    ) -> dict[str, Any] | None:
    c.generate_reply(_text_field(m, "system_message"), _text_field(m, "user_message"))
    return None


async def _say(b: StsBridge, m: dict[str, Any], c: Conversation, h: Hooks
               ) -> dict[str, Any] | None:
    text = _text_field(m, "text")
    if text is None:
        return _missing("text")
    c.say(text, m.get("interruptible") is not False)
    return None


async def _mute(b: StsBridge, m: dict[str, Any], c: Conversation, h: Hooks
                ) -> dict[str, Any] | None:
    c.mute()
    return None


async def _unmute(b: StsBridge, m: dict[str, Any], c: Conversation, h: Hooks
                  ) -> dict[str, Any] | None:
    c.unmute()
    return None


async def _config_again(b: StsBridge, m: dict[str, Any], c: Conversation, h: Hooks
                        ) -> dict[str, Any] | None:
    return error_message("The conversation is already configured; use 'reset'",
                         "already_configured")


async def _reset(b: StsBridge, m: dict[str, Any], c: Conversation, h: Hooks
                 ) -> dict[str, Any] | None:
    config = m.get("config")
    if not isinstance(config, dict):
        return _missing("config")
    c.reset(config.get("system_prompt") if isinstance(config.get("system_prompt"), str)
            else None)
    return None


async def _tool_output(b: StsBridge, m: dict[str, Any], c: Conversation, h: Hooks
                       ) -> dict[str, Any] | None:
    call_id = m.get("tool_call_id")
    if not isinstance(call_id, str):
        return _missing("tool_call_id")
    if not c.tool_call_output(call_id, m.get("output")):
        return error_message(f"No tool call {call_id!r} is waiting for output (unknown, "
                             "timed out or interrupted)", "unknown_tool_call",
                             {"tool_call_id": "not waiting"})
    return None


async def _tools_subset(b: StsBridge, m: dict[str, Any], c: Conversation, h: Hooks
                        ) -> dict[str, Any] | None:
    tools = m.get("tools")
    if not isinstance(tools, list):
        return _missing("tools")
    try:
        c.update_tools(await h.load_tools(tools))
    except ValidationFailed as exc:
        return error_message(exc.message, "invalid_tools", exc.param_errors)
    return None


_HANDLERS: dict[str, Handler] = {
    "audio_chunk": _audio,
    "update_system_prompt": _update_prompt,
    "add_system_message": _add_system,
    "set_external_id": _external,
    "generate_reply": _generate,
    "say": _say,
    "mute": _mute,
    "unmute": _unmute,
    "config": _config_again,
    "reset": _reset,
    "tool_call_output": _tool_output,
    "update_tools_subset": _tools_subset,
}
