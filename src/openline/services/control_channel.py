"""The wire of the cross-node control channel: controls and engine events as JSON.

A control sent to a node that does not run the call travels to the owner as JSON
(``encode_control``/``decode_control``); a live watch stream carries the call's engine
events the same way (``event_dict``). Audio travels base64-encoded.
"""

from __future__ import annotations

import base64
import dataclasses
import json
from typing import Any

from openline.transports import base as tb
from openline.voice import events as ev

#: every control the dialects define, by its wire name
CONTROLS: dict[str, type[Any]] = {cls.__name__: cls for cls in (
    tb.UpdateSystemPrompt, tb.AddSystemMessage, tb.SetExternalId, tb.GenerateReply, tb.Say,
    tb.Mute, tb.Unmute, tb.Reset, tb.ToolCallOutput, tb.UpdateTools)}


class UnknownControl(ValueError):
    """A control message whose type this node does not know (a newer peer?)."""


def encode_control(command: tb.Control) -> dict[str, Any]:
    """``Say("hi")`` -> ``{"type": "Say", "text": "hi", "interruptible": true}``."""
    fields = {f.name: getattr(command, f.name) for f in dataclasses.fields(command)}
    if isinstance(command, tb.UpdateTools):
        fields["tools"] = list(command.tools)
    return {"type": type(command).__name__, **fields}


def decode_control(data: dict[str, Any]) -> tb.Control:
    """The inverse of ``encode_control``; ``UnknownControl`` for anything else."""
    values = dict(data)
    cls = CONTROLS.get(str(values.pop("type", "")))
    if cls is None:
        raise UnknownControl(f"unknown control {data.get('type')!r}")
    names = {f.name for f in dataclasses.fields(cls)}
    command: tb.Control = cls(**{k: v for k, v in values.items() if k in names})
    return command


def event_dict(event: ev.EngineEvent) -> dict[str, Any]:
    """An engine event as plain JSON data: ``{"type": "InputText", "text": ...}``."""
    out: dict[str, Any] = {"type": type(event).__name__}
    if dataclasses.is_dataclass(event):
        for f in dataclasses.fields(event):
            out[f.name] = _plain(getattr(event, f.name))
    return out


def _plain(value: Any) -> Any:
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def dumps(message: dict[str, Any]) -> str:
    return json.dumps(message, separators=(",", ":"), default=str)
