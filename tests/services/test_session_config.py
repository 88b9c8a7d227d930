"""Config resolution: agent defaults + per-call overrides + template variables + the voice
fallback, and invalid overrides reported all at once (``session_config.resolve``), and the
typed path (``resolve_overrides``) giving the same result."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from openline.domain.agent import AgentSpec
from openline.domain.agent_changes import AgentChanges
from openline.domain.errors import ValidationFailed
from openline.services.session_config import (
    DEFAULT_AGENT_NAME,
    SessionOverrides,
    overrides_from_config,
    resolve,
    resolve_overrides,
)

VOICES = {"joe", "ava"}
NOW = datetime(2025, 4, 17, 19, 5, tzinfo=UTC)  # 12:05 PM in Los Angeles
AGENT: dict[str, Any] = AgentSpec.model_validate({
    "name": "support", "voice_id": "ava", "audio_format": "pcm_16000",
    "system_prompt": "You help {{customer}} with {{topic}}. It is {{system_time}}.",
    "welcome_message": "Hi {{customer}}!", "audio_speed": 1.1, "vad_threshold": 0.5,
    "boosted_keywords": ["Openline"],
    "template_variables": {"customer": {"default_value": "there"},
                           "topic": {"default_value": None, "is_boosted_keyword": True}},
    "tools": ["natural_conversation_ending", "keypad_input"],
}).model_dump(mode="json")


def run(config: dict[str, Any], agent: dict[str, Any] | None = AGENT) -> Any:
    return resolve("conv_1", agent, config, installed_voices=VOICES, default_voice="joe",
                   now=NOW)


def test_agent_defaults_fill_what_the_config_leaves_out() -> None:
    r = run({"type": "config"})
    s = r.session
    assert s.conversation_id == "conv_1" and s.voice_id == "ava" and s.audio_speed == 1.1
    assert s.input_format.name == s.output_format.name == "pcm_16000"
    assert s.turn.threshold == 0.5
    assert s.built_in_tools == ("natural_conversation_ending", "keypad_input")
    # Template defaults (None -> ""), and system variables in the agent's time zone.
    assert s.system_prompt == "You help there with . It is 12:05 PM."
    assert s.welcome_message == "Hi there!" and r.warnings == [] and r.template_variables == {}
    assert r.snapshot["voice_id"] == "ava" and r.snapshot["listen_only"] is False
    assert r.snapshot["template_variables"] == {"customer": "there", "topic": ""}
    assert r.snapshot["system_prompt"] == s.system_prompt and r.spec.name == "support"


def test_no_agent_means_the_default_agent() -> None:
    r = run({}, agent=None)
    assert r.spec.name == DEFAULT_AGENT_NAME and r.session.system_prompt == (
        "Respond in 1-2 sentences.")
    assert r.session.input_format.name == "pcm_44100"  # the documented default format


def test_overrides_and_template_variables_win() -> None:
    r = run({"system_prompt": "Talk about {{topic}} to {{customer}}.", "audio_speed": 1.3,
             "template_variables": {"topic": "billing", "customer": "Ann"},
             "input_format": "mulaw_8000", "stream_ahead_of_real_time": True,
             "agent": "ignored-here", "external_id": "x", "tools": []})
    s = r.session
    assert s.system_prompt == "Talk about billing to Ann." and s.welcome_message == "Hi Ann!"
    assert s.audio_speed == 1.3 and s.stream_ahead_of_real_time is True
    assert s.input_format.name == "mulaw_8000" and s.output_format.name == "pcm_16000"
    # A boosted template variable's value joins the agent's boosted keywords.
    assert s.boosted_keywords == ("Openline", "billing")
    assert r.template_variables == {"topic": "billing", "customer": "Ann"}
    assert r.snapshot["audio_speed"] == 1.3 and r.snapshot["input_format"] == "mulaw_8000"
    # The agent's stored document is not changed by a call's overrides.
    assert AGENT["audio_speed"] == 1.1


def test_voice_falls_back_to_the_default_with_a_warning() -> None:
    r = run({"voice_id": "sabrina"})
    assert r.session.voice_id == "joe" and r.snapshot["voice_id"] == "joe"
    assert r.warnings == ["voice 'sabrina' is not installed; using 'joe'"]
    assert r.spec.voice_id == "sabrina"  # what was asked for stays in the configuration


def test_invalid_overrides_are_reported_together() -> None:
    with pytest.raises(ValidationFailed) as bad:
        run({"audio_speed": 3, "output_format": "mp3", "template_variables": {"a": 1}})
    assert set(bad.value.param_errors) == {"audio_speed", "output_format", "template_variables.a"}
    assert bad.value.message.startswith("Invalid config: audio_speed:")
    with pytest.raises(ValidationFailed) as rule:
        run({"inbound_rollout": 0.5})
    assert "inbound_rollout_forward_phone_number" in rule.value.param_errors


def test_a_format_that_is_not_a_string_is_a_validation_error() -> None:
    # Before, an unhashable value reached ``in WIRE_FORMATS`` and raised TypeError.
    with pytest.raises(ValidationFailed) as bad:
        run({"input_format": ["pcm_16000"]})
    assert "input_format" in bad.value.param_errors


@pytest.mark.parametrize("config", [
    {},
    {"system_prompt": "Hi {{customer}}", "template_variables": {"customer": "Bo"}},
    {"voice_id": "sabrina", "input_format": "pcm_8000", "output_format": "mulaw_8000"},
    {"welcome_message": None, "no_input_poke_sec": None, "audio_speed": 0.9,
     "stream_ahead_of_real_time": True, "boosted_keywords": ["x"]},
])
def test_the_typed_path_resolves_the_same(config: dict[str, Any]) -> None:
    legacy = run(config)
    typed = resolve_overrides("conv_1", AgentSpec.model_validate(AGENT),
                              overrides_from_config(config), installed_voices=VOICES,
                              default_voice="joe", now=NOW)
    assert typed.session == legacy.session and typed.snapshot == legacy.snapshot
    assert typed.warnings == legacy.warnings and typed.spec == legacy.spec


def test_typed_overrides_check_the_merged_rules() -> None:
    spec = AgentSpec.model_validate(AGENT)
    with pytest.raises(ValidationFailed) as bad:
        resolve_overrides("c", spec, SessionOverrides(AgentChanges(inbound_rollout=0.5)),
                          installed_voices=VOICES, default_voice="joe")
    assert bad.value.message.startswith("Invalid config: inbound_rollout_forward_phone_number")
    with pytest.raises(ValidationFailed) as parsed:
        overrides_from_config({"vad_threshold": 2, "input_format": "flac"})
    assert set(parsed.value.param_errors) == {"vad_threshold", "input_format"}
