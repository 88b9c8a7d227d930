"""Partial updates of an agent's configuration (PATCH, upsert and per-call overrides).

``AgentChanges`` has one field per ``AgentSpec`` field, each defaulting to ``UNSET``:
``AgentChanges(welcome_message=None)`` clears the welcome message and leaves everything
else as it is. ``apply_changes`` merges and re-checks the cross-field rules.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import ValidationError

from openline.domain.agent import (
    AgentSpec,
    AudioFormat,
    BackgroundNoise,
    ConfigurationEndpoint,
    DataRetentionPolicy,
    Integration,
    OutboundNumberPool,
    PronunciationEntry,
    Task,
    TemplateVariable,
)
from openline.domain.errors import ValidationFailed
from openline.domain.unset import UNSET, Changes, Unset
from openline.domain.validation import first_error_message, param_errors_from, validate_partial

#: A name that passes the name rule, standing in for "name not given" while validating.
_PLACEHOLDERS = {"name": "x"}


@dataclass(frozen=True)
class AgentChanges(Changes):
    """Some fields of an ``AgentSpec``; the others are ``UNSET`` (left as they are)."""

    name: str | Unset = UNSET
    slug: str | Unset | None = UNSET
    timezone: str | Unset = UNSET
    voice_id: str | Unset = UNSET
    additional_voice_ids: list[str] | Unset = UNSET
    audio_format: AudioFormat | Unset = UNSET
    audio_speed: float | Unset = UNSET
    background_noise_level: float | Unset = UNSET
    background_noise: BackgroundNoise | Unset | None = UNSET
    generate_welcome_message: bool | Unset = UNSET
    is_welcome_message_interruptible: bool | Unset = UNSET
    welcome_message: str | Unset | None = UNSET
    system_prompt: str | Unset = UNSET
    template_variables: dict[str, TemplateVariable] | Unset = UNSET
    websocket_timeout_sec: int | Unset = UNSET
    listen_only_inbound_enabled: bool | Unset = UNSET
    listen_only_inbound_message: str | Unset | None = UNSET
    push_to_talk: bool | Unset = UNSET
    min_words_to_interrupt: int | Unset = UNSET
    tools: list[str] | Unset = UNSET
    built_in_tool_configs: dict[str, dict[str, Any]] | Unset = UNSET
    tasks: list[Task] | Unset = UNSET
    integrations: list[Integration] | Unset | None = UNSET
    generate_no_input_poke_text: bool | Unset = UNSET
    no_input_poke_sec: int | Unset | None = UNSET
    no_input_poke_text: str | Unset = UNSET
    no_input_end_conversation_sec: int | Unset = UNSET
    default_language: str | Unset = UNSET
    additional_languages: list[str] | Unset = UNSET
    languages: list[str] | Unset = UNSET
    multilingual_mode: Literal["auto", "request", "initial"] | Unset = UNSET
    intelligence_level: Literal["standard", "high"] | Unset = UNSET
    phonic_model: Literal["phonic-0.5", "phonic-1", "phonic-1.1"] | Unset | None = UNSET
    boosted_keywords: list[str] | Unset = UNSET
    pronunciation_dictionary: list[PronunciationEntry] | Unset = UNSET
    vad_prebuffer_duration_ms: int | Unset = UNSET
    vad_min_speech_duration_ms: int | Unset = UNSET
    vad_min_silence_duration_ms: int | Unset = UNSET
    vad_threshold: float | Unset = UNSET
    enable_assistant_backchannel: bool | Unset = UNSET
    assistant_backchannel_aggressiveness: float | Unset = UNSET
    observability_integrations: list[Literal["braintrust"]] | Unset = UNSET
    external_storage_policy: str | Unset | None = UNSET
    enable_redaction: bool | Unset = UNSET
    enable_watermarking: bool | Unset = UNSET
    data_retention_policy: DataRetentionPolicy | Unset | None = UNSET
    mcp_server_ids: list[str] | Unset = UNSET
    configuration_endpoint: ConfigurationEndpoint | Unset | None = UNSET
    inbound_rollout: float | Unset = UNSET
    inbound_rollout_forward_phone_number: str | Unset | None = UNSET
    outbound_number_pool: OutboundNumberPool | Unset | None = UNSET
    procedure_ids: list[str] | Unset = UNSET


def agent_changes_from(fields: Mapping[str, Any]) -> tuple[AgentChanges | None, dict[str, str]]:
    """Validate ``{agent field: value}`` one field at a time into ``AgentChanges``.

    Keys that are not agent fields are ignored. Returns ``(changes, {})`` or
    ``(None, param_errors)``; cross-field rules wait for :func:`apply_changes`.
    """
    known = {k: v for k, v in fields.items() if k in AgentSpec.model_fields}
    model, errors = validate_partial(AgentSpec, known, _PLACEHOLDERS)
    if model is None:
        return None, errors
    return AgentChanges.of({k: getattr(model, k) for k in known}), {}


def parse_agent_changes(fields: Mapping[str, Any],
                        message: str = "Invalid parameters") -> AgentChanges:
    """:func:`agent_changes_from`, raising ``ValidationFailed`` on bad values."""
    changes, errors = agent_changes_from(fields)
    if changes is None:
        raise ValidationFailed(first_error_message(errors, message), errors)
    return changes


def merge(spec: AgentSpec, changes: AgentChanges) -> AgentSpec:
    """``spec`` with ``changes`` applied, every per-field rule re-checked (no cross-field)."""
    if changes.is_empty():
        return spec
    # Validate the merged document so that field validators (rounding, names) run again.
    try:
        return AgentSpec.model_validate({**spec.model_dump(), **changes.given()})
    except ValidationError as exc:  # only when ``spec`` itself broke a rule (an old document)
        errors = param_errors_from(exc)
        raise ValidationFailed(first_error_message(errors), errors) from exc


def apply_changes(spec: AgentSpec, changes: AgentChanges,
                  message: str = "Invalid parameters") -> AgentSpec:
    """:func:`merge`, then the cross-field rules; ``ValidationFailed`` when they break."""
    merged = merge(spec, changes)
    errors = merged.rule_errors()
    if errors:
        raise ValidationFailed(first_error_message(errors, message), errors)
    return merged
