"""Partial updates of a tool definition: one ``UNSET``-defaulting field per ``ToolSpec`` field."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from openline.domain.errors import ValidationFailed
from openline.domain.tool import Location, ToolParameter, ToolSpec, ToolType, validated
from openline.domain.unset import UNSET, Changes, Unset
from openline.domain.validation import first_error_message, validate_partial

#: Valid stand-ins for the required fields while validating only the given ones.
_PLACEHOLDERS = {"name": "x", "description": "x", "type": "custom_context",
                 "execution_mode": "sync"}


@dataclass(frozen=True)
class ToolChanges(Changes):
    """Some fields of a ``ToolSpec``; the others are ``UNSET`` (left as they are)."""

    name: str | Unset = UNSET
    description: str | Unset = UNSET
    type: ToolType | Unset = UNSET
    execution_mode: Literal["sync", "async"] | Unset = UNSET
    parameters: list[ToolParameter] | dict[str, Any] | Unset = UNSET
    parameter_locations: dict[str, Location] | Unset | None = UNSET
    endpoint_method: Literal["GET", "POST"] | Unset | None = UNSET
    endpoint_url: str | Unset | None = UNSET
    endpoint_headers: dict[str, str] | Unset | None = UNSET
    endpoint_timeout_ms: int | Unset = UNSET
    tool_call_output_timeout_ms: int | Unset = UNSET
    phone_number: str | Unset | None = UNSET
    dtmf: str | Unset | None = UNSET
    dynamic_dtmf: bool | Unset = UNSET
    post_transfer_message: str | Unset | None = UNSET
    use_agent_phone_number: bool | Unset = UNSET
    detect_voicemail: bool | Unset = UNSET
    keep_listening: bool | Unset | None = UNSET
    on_transfer_no_answer: Literal["return_to_assistant", "keep_retrying"] | Unset | None = UNSET
    agents_to_transfer_to: list[str] | Unset | None = UNSET
    require_speech_before_tool_call: bool | Unset = UNSET
    speech_before_tool_call: Literal["required", "optional", "suppressed"] | Unset | None = UNSET
    respond_after_sec: float | Unset | None = UNSET
    wait_for_speech_before_tool_call: bool | Unset = UNSET
    forbid_speech_after_tool_call: bool | Unset = UNSET
    forbid_tool_call_after_speech: bool | Unset | None = UNSET
    allow_tool_chaining: bool | Unset = UNSET
    wait_for_response: bool | Unset = UNSET
    uninterruptible: bool | Unset | None = UNSET
    can_run_during_user_speech: bool | Unset | None = UNSET
    context: str | Unset | None = UNSET


def parse_tool_changes(fields: Mapping[str, Any]) -> ToolChanges:
    """Validate ``{tool field: value}`` one field at a time (unknown keys are ignored)."""
    known = {k: v for k, v in fields.items() if k in ToolSpec.model_fields}
    model, errors = validate_partial(ToolSpec, known, _PLACEHOLDERS)
    if model is None:
        raise ValidationFailed(first_error_message(errors), errors)
    return ToolChanges.of({k: getattr(model, k) for k in known})


def check_relocation(old: ToolSpec, changes: ToolChanges) -> None:
    """Changing ``type`` or ``endpoint_method`` needs every parameter's location re-sent."""
    moved = any(key in changes.given() and changes.given()[key] != getattr(old, key)
                for key in ("type", "endpoint_method"))
    merged_type = old.type if changes.type is UNSET else changes.type
    params = old.parameters if changes.parameters is UNSET else changes.parameters
    if not moved or merged_type != "custom_webhook" or not params:
        return
    given = changes.parameters
    if isinstance(given, list) and all(p.location for p in given):
        return
    if isinstance(given, dict) and isinstance(changes.parameter_locations, dict):
        return
    raise ValidationFailed(
        "When changing type or endpoint_method, all parameters must include explicit location",
        {"parameters": "re-send every parameter with an explicit location"},
    )


def apply_tool_changes(old: ToolSpec, changes: ToolChanges) -> ToolSpec:
    """``old`` with ``changes`` applied and every rule re-checked for the new type.

    Only the changed fields count as "set on purpose" for the type-specific flag rules, so
    a stored flag that the new type does not allow is not an error by itself.
    """
    check_relocation(old, changes)
    given = changes.given()
    merged = ToolSpec.model_validate({**old.model_dump(), **given})
    return validated(merged, set(given))
