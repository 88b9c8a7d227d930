"""Resolve an STS ``config`` message + the agent's stored spec into a ``SessionConfig``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from openline.audio.codecs import WIRE_FORMATS
from openline.domain.agent import BUILT_IN_TOOL_NAMES, AgentSpec
from openline.domain.errors import ValidationFailed
from openline.domain.templating import render, system_variables
from openline.domain.validation import param_errors_from
from openline.voice.config import SessionConfig
from openline.voice.turns import TurnSettings

#: ``config`` keys that are not agent fields (or mean something else on the socket).
SESSION_ONLY_KEYS = frozenset({
    "type", "agent", "project", "model", "input_format", "output_format",
    "stream_ahead_of_real_time", "template_variables", "external_id", "tools",
    "mcp_servers", "additional_params",
})
DEFAULT_AGENT_NAME = "openline-default"


@dataclass(frozen=True)
class ResolvedConfig:
    session: SessionConfig
    spec: AgentSpec
    snapshot: dict[str, Any]
    template_variables: dict[str, str]
    warnings: list[str]


def resolve(
    conversation_id: str,
    agent_spec: dict[str, Any] | None,
    config: dict[str, Any],
    *,
    installed_voices: set[str],
    default_voice: str,
    now: datetime | None = None,
) -> ResolvedConfig:
    """Validate overrides against the agent's rules and build the engine's settings."""
    base = dict(agent_spec or {"name": DEFAULT_AGENT_NAME})
    overrides = {k: v for k, v in config.items() if k not in SESSION_ONLY_KEYS}
    errors: dict[str, str] = {}
    spec: AgentSpec | None = None
    try:
        spec = AgentSpec.model_validate({**base, **overrides})
        errors.update(spec.rule_errors())
    except ValidationError as exc:
        errors.update(param_errors_from(exc))
    default_format = spec.audio_format if spec else base.get("audio_format", "pcm_44100")
    formats = {k: config.get(k, default_format) for k in ("input_format", "output_format")}
    for key, value in formats.items():
        if value not in WIRE_FORMATS:
            errors[key] = f"must be one of {', '.join(WIRE_FORMATS)}"
    variables = config.get("template_variables") or {}
    if not isinstance(variables, dict) or not all(isinstance(v, str) for v in variables.values()):
        errors["template_variables"] = "must map names to strings"
    if errors or spec is None:
        field, message = next(iter(errors.items()))
        raise ValidationFailed(f"Invalid config: {field}: {message}", errors)
    user_values = {**spec.template_defaults(), **variables}
    values = {**user_values, **system_variables(spec.timezone, now)}
    warnings: list[str] = []
    voice = spec.voice_id
    if voice not in installed_voices:
        warnings.append(f"voice {voice!r} is not installed; using {default_voice!r}")
        voice = default_voice
    session = _session(conversation_id, spec, config, values, formats, voice)
    snapshot = {**spec.model_dump(mode="json"), "input_format": formats["input_format"],
                "output_format": formats["output_format"], "template_variables": user_values,
                "listen_only": False, "voice_id": voice,
                "system_prompt": session.system_prompt,
                "welcome_message": session.welcome_message}
    return ResolvedConfig(session, spec, snapshot, dict(variables), warnings)


def _session(conversation_id: str, spec: AgentSpec, config: dict[str, Any],
             values: dict[str, str], formats: dict[str, str], voice: str) -> SessionConfig:
    """The engine's settings from a validated spec and the rendered template values."""
    return SessionConfig(
        conversation_id=conversation_id,
        system_prompt=render(spec.system_prompt, values),
        welcome_message=render(spec.welcome_message or "", values),
        generate_welcome_message=spec.generate_welcome_message,
        is_welcome_message_interruptible=spec.is_welcome_message_interruptible,
        voice_id=voice,
        audio_speed=spec.audio_speed,
        input_format=WIRE_FORMATS[formats["input_format"]],
        output_format=WIRE_FORMATS[formats["output_format"]],
        turn=TurnSettings(spec.vad_threshold, spec.vad_min_speech_duration_ms,
                          spec.vad_min_silence_duration_ms, spec.vad_prebuffer_duration_ms),
        min_words_to_interrupt=spec.min_words_to_interrupt,
        no_input_poke_sec=spec.no_input_poke_sec,
        no_input_poke_text=render(spec.no_input_poke_text, values),
        generate_no_input_poke_text=spec.generate_no_input_poke_text,
        no_input_end_conversation_sec=spec.no_input_end_conversation_sec,
        boosted_keywords=tuple(spec.boosted_keywords) + tuple(
            values[k] for k, v in spec.template_variables.items() if v.is_boosted_keyword
            and values.get(k)),
        language=spec.default_language,
        background_noise=spec.background_noise,
        background_noise_level=spec.background_noise_level,
        stream_ahead_of_real_time=bool(config.get("stream_ahead_of_real_time", False)),
        push_to_talk=spec.push_to_talk,
        built_in_tools=tuple(t for t in spec.tools if t in BUILT_IN_TOOL_NAMES),
    )
