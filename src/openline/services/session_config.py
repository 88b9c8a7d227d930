"""Resolve an agent's configuration + one conversation's overrides into a ``SessionConfig``.

Two entry points build the same result:

- :func:`resolve_overrides` takes typed :class:`SessionOverrides` (what any dialect or the
  configuration endpoint asks to change for one call);
- :func:`resolve` takes the stored agent document and an STS ``config`` message as they
  come (its keys are the domain's field names plus the session keys), reporting every
  invalid value at once. :func:`overrides_from_config` is its typed half.
"""

from __future__ import annotations

from collections.abc import Mapping, Set
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from openline.audio.codecs import WIRE_FORMATS
from openline.domain.agent import BUILT_IN_TOOL_NAMES, AgentSpec, AudioFormat
from openline.domain.agent_changes import AgentChanges, agent_changes_from, apply_changes
from openline.domain.errors import ValidationFailed
from openline.domain.languages import LanguageSupport
from openline.domain.limits import template_value_errors
from openline.domain.templating import render, system_variables
from openline.domain.unset import UNSET, Unset, or_else
from openline.domain.validation import first_error_message, param_errors_from
from openline.services import agent_fields
from openline.voice.config import SessionConfig
from openline.voice.turns import TurnSettings

#: ``config`` keys that are not agent fields (or mean something else on the socket).
SESSION_ONLY_KEYS = frozenset({
    "type", "agent", "project", "model", "input_format", "output_format",
    "stream_ahead_of_real_time", "template_variables", "external_id", "tools",
    "mcp_servers", "additional_params",
})
DEFAULT_AGENT_NAME = "openline-default"
_MESSAGE = "Invalid config"


@dataclass(frozen=True)
class SessionOverrides:
    """What one conversation changes on top of its agent's configuration."""

    agent: AgentChanges = field(default_factory=AgentChanges)
    #: wire formats of the caller's audio and of ours (default: the agent's ``audio_format``)
    input_format: AudioFormat | Unset = UNSET
    output_format: AudioFormat | Unset = UNSET
    #: values for the agent's ``{{template_variables}}`` (over their defaults)
    template_variables: Mapping[str, str] = field(default_factory=dict)
    stream_ahead_of_real_time: bool = False


@dataclass(frozen=True)
class ResolvedConfig:
    """The engine's settings, the merged agent configuration and the stored snapshot."""

    session: SessionConfig
    spec: AgentSpec
    snapshot: dict[str, Any]
    template_variables: dict[str, str]
    warnings: list[str]
    #: languages the installed models cannot honour (sent with their own warning code)
    language_warnings: list[str] = field(default_factory=list)


def default_agent() -> AgentSpec:
    """The configuration of a conversation that names no agent (and has no default)."""
    return AgentSpec(name=DEFAULT_AGENT_NAME)


def resolve_overrides(
    conversation_id: str,
    spec: AgentSpec | None,
    overrides: SessionOverrides,
    *,
    installed_voices: Set[str],
    default_voice: str,
    now: datetime | None = None,
    support: LanguageSupport | None = None,
    inbound: bool = False,
) -> ResolvedConfig:
    """Apply typed overrides to ``spec`` (re-checking its rules) and build the settings.

    ``support``: what the installed models can do (languages; None: no limits known);
    ``inbound``: an incoming phone call (``listen_only_inbound_enabled`` applies)."""
    merged = apply_changes(spec or default_agent(), overrides.agent, _MESSAGE)
    formats: dict[str, str] = {
        "input_format": or_else(overrides.input_format, merged.audio_format),
        "output_format": or_else(overrides.output_format, merged.audio_format)}
    resolved = _build(conversation_id, merged, formats, dict(overrides.template_variables),
                      overrides.stream_ahead_of_real_time, installed_voices, default_voice, now)
    return agent_fields.apply(resolved, support or LanguageSupport(), inbound)


def resolve(
    conversation_id: str,
    agent_spec: dict[str, Any] | None,
    config: dict[str, Any],
    *,
    installed_voices: set[str],
    default_voice: str,
    now: datetime | None = None,
) -> ResolvedConfig:
    """Validate ``config`` overrides against the agent's rules and build the engine's settings.

    ``agent_spec`` is the agent's stored document (``None``: the default agent); every
    invalid value of ``config`` is reported at once in one ``ValidationFailed``."""
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
    errors.update(_format_errors(formats))
    variables = config.get("template_variables") or {}
    errors.update(template_value_errors(variables))
    if errors or spec is None:
        raise ValidationFailed(first_error_message(errors, _MESSAGE), errors)
    resolved = _build(conversation_id, spec, formats, dict(variables),
                      bool(config.get("stream_ahead_of_real_time", False)), installed_voices,
                      default_voice, now)
    return agent_fields.apply(resolved, LanguageSupport(), inbound=False)


def overrides_from_config(config: Mapping[str, Any]) -> SessionOverrides:
    """The typed overrides of an STS ``config`` message (``ValidationFailed`` if invalid).

    Only per-field rules are checked here; the cross-field ones need the agent's
    configuration and are checked by :func:`resolve_overrides`."""
    changes, errors = agent_changes_from(
        {k: v for k, v in config.items() if k not in SESSION_ONLY_KEYS})
    given = {k: config[k] for k in ("input_format", "output_format") if k in config}
    errors.update(_format_errors(given))
    variables = config.get("template_variables") or {}
    errors.update(template_value_errors(variables))
    if errors or changes is None:
        raise ValidationFailed(first_error_message(errors, _MESSAGE), errors)
    return SessionOverrides(
        changes, given.get("input_format", UNSET), given.get("output_format", UNSET),
        dict(variables), bool(config.get("stream_ahead_of_real_time", False)))


def _format_errors(formats: Mapping[str, Any]) -> dict[str, str]:
    return {key: f"must be one of {', '.join(WIRE_FORMATS)}" for key, value in formats.items()
            if not isinstance(value, str) or value not in WIRE_FORMATS}


def _build(conversation_id: str, spec: AgentSpec, formats: dict[str, str],
           variables: dict[str, str], stream_ahead: bool, installed_voices: Set[str],
           default_voice: str, now: datetime | None) -> ResolvedConfig:
    """Template values, the voice (or its fallback), the engine's settings and the snapshot."""
    user_values = {**spec.template_defaults(), **variables}
    values = {**user_values, **system_variables(spec.timezone, now)}
    warnings: list[str] = []
    voice = spec.voice_id
    if voice not in installed_voices:
        warnings.append(f"voice {voice!r} is not installed; using {default_voice!r}")
        voice = default_voice
    session = _session(conversation_id, spec, stream_ahead, values, formats, voice)
    snapshot = {**spec.model_dump(mode="json"), "input_format": formats["input_format"],
                "output_format": formats["output_format"], "template_variables": user_values,
                "listen_only": False, "voice_id": voice,
                "system_prompt": session.system_prompt,
                "welcome_message": session.welcome_message}
    return ResolvedConfig(session, spec, snapshot, variables, warnings)


def _session(conversation_id: str, spec: AgentSpec, stream_ahead: bool,
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
        stream_ahead_of_real_time=stream_ahead,
        push_to_talk=spec.push_to_talk,
        built_in_tools=tuple(t for t in spec.tools if t in BUILT_IN_TOOL_NAMES),
    )
