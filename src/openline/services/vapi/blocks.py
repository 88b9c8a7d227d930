"""Vapi blocks (SDK 0.1.0-0.4.x; replaced by squads and workflows): stored as sent."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from openline.domain.errors import ValidationFailed
from openline.domain.validation import first_error_message

KIND = "block"
BLOCK_TYPES = ("conversation", "tool-call", "workflow")


def check_block(body: Mapping[str, Any], *, current_type: str | None = None) -> None:
    """A block's ``type`` and the keys its type requires (spec §4.3)."""
    kind = body.get("type", current_type)
    errors: dict[str, str] = {}
    if kind not in BLOCK_TYPES:
        errors["type"] = "type must be one of " + ", ".join(BLOCK_TYPES)
    elif current_type is not None and kind != current_type:
        errors["type"] = f"a block's type cannot be changed (it is {current_type})"
    if kind == "conversation" and not isinstance(body.get("instruction"), str) \
            and current_type is None:
        errors["instruction"] = "instruction is required for conversation blocks"
    if kind == "tool-call" and current_type is None and not (
            isinstance(body.get("tool"), dict) or isinstance(body.get("toolId"), str)):
        errors["tool"] = "tool or toolId is required for tool-call blocks"
    if body.get("steps") is not None and not isinstance(body["steps"], list):
        errors["steps"] = "steps must be a list"
    messages = body.get("messages")
    if messages is not None and not (isinstance(messages, list) and all(
            isinstance(m, dict) and m.get("type") in ("block-start", "block-complete")
            for m in messages)):
        errors["messages"] = "messages must be block-start or block-complete objects"
    if errors:
        raise ValidationFailed(first_error_message(errors), errors)
