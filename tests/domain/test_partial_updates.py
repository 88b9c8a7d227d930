"""The UNSET semantics of partial updates: absent leaves a field, null clears it, a value
sets it; per-field rules are checked when the change is parsed, cross-field rules after
the merge."""

from __future__ import annotations

from dataclasses import FrozenInstanceError

import pytest

from openline.domain.agent import AgentSpec, TemplateVariable
from openline.domain.agent_changes import (
    AgentChanges,
    apply_changes,
    merge,
    parse_agent_changes,
)
from openline.domain.errors import ValidationFailed
from openline.domain.extraction import (
    ExtractionField,
    ExtractionSchemaChanges,
    ExtractionSchemaSpec,
    apply_schema_changes,
    schema_changes_from,
)
from openline.domain.tool import ToolParameter, ToolSpec, validated
from openline.domain.tool_changes import ToolChanges, apply_tool_changes, parse_tool_changes
from openline.domain.unset import UNSET, is_set, or_else

BASE = AgentSpec(name="support", welcome_message="Hello {{name}}", background_noise="office",
                 audio_speed=1.1, template_variables={"name": TemplateVariable(
                     default_value="there")})


def test_unset_is_neither_none_nor_a_value() -> None:
    assert UNSET is not None and repr(UNSET) == "UNSET"
    assert is_set(None) and is_set(0) and is_set("") and not is_set(UNSET)
    assert or_else(UNSET, 5) == 5 and or_else(None, 5) is None and or_else(3, 5) == 3


def test_change_objects_cover_every_field_of_their_model() -> None:
    # A field added to a model but not to its change object could never be updated.
    assert AgentChanges.field_names() == set(AgentSpec.model_fields)
    assert ToolChanges.field_names() == set(ToolSpec.model_fields)
    assert ExtractionSchemaChanges.field_names() == set(ExtractionSchemaSpec.model_fields)


def test_given_lists_null_but_not_absent_fields() -> None:
    changes = AgentChanges(welcome_message=None, voice_id="ava")
    assert changes.given() == {"voice_id": "ava", "welcome_message": None}
    assert AgentChanges().is_empty() and not changes.is_empty()
    with pytest.raises(FrozenInstanceError):
        changes.voice_id = "joe"  # type: ignore[misc]


def test_absent_leaves_null_clears_value_sets() -> None:
    changes = parse_agent_changes({"welcome_message": None, "background_noise": None,
                                   "voice_id": "ava"})
    after = apply_changes(BASE, changes)
    assert after.welcome_message is None and after.background_noise is None
    assert after.voice_id == "ava"
    # Everything not named stays as it was, including nested values.
    assert after.audio_speed == 1.1 and after.name == "support"
    assert after.template_variables == BASE.template_variables
    # The original is untouched, and an empty change is the identity.
    assert BASE.welcome_message == "Hello {{name}}" and BASE.voice_id == "grant"
    assert merge(BASE, AgentChanges()) is BASE


def test_parse_keeps_only_given_fields_and_validates_each() -> None:
    changes = parse_agent_changes({"audio_speed": 1.2000000001, "not_a_field": 1})
    # The placeholder that lets a nameless change validate never leaks into it.
    assert changes.given() == {"audio_speed": 1.2}
    with pytest.raises(ValidationFailed) as bad:
        parse_agent_changes({"audio_speed": 9, "vad_threshold": 0.9, "voice_id": None})
    assert set(bad.value.param_errors) == {"audio_speed", "vad_threshold", "voice_id"}
    # Errors come in the model's field order, the first one in the message.
    assert bad.value.message.startswith("Invalid parameters: voice_id:")
    with pytest.raises(ValidationFailed) as named:
        parse_agent_changes({"name": "Not Valid"})
    assert "name" in named.value.param_errors


def test_cross_field_rules_apply_to_the_merged_configuration() -> None:
    with pytest.raises(ValidationFailed) as bad:
        apply_changes(BASE, AgentChanges(inbound_rollout=0.5))
    assert "inbound_rollout_forward_phone_number" in bad.value.param_errors
    both = AgentChanges(inbound_rollout=0.5, inbound_rollout_forward_phone_number="+15551234567")
    assert apply_changes(BASE, both).inbound_rollout == 0.5


WEBHOOK = ToolSpec.model_validate({
    "name": "lookup", "description": "d", "type": "custom_webhook", "execution_mode": "sync",
    "endpoint_method": "POST", "endpoint_url": "https://x.example.com/",
    "endpoint_headers": {"A": "b"},
    "parameters": [{"type": "string", "name": "q", "description": "d", "is_required": True,
                    "location": "request_body"}]})


def test_tool_changes_null_clears_and_absent_keeps() -> None:
    after = apply_tool_changes(WEBHOOK, parse_tool_changes({"endpoint_headers": None,
                                                            "description": "new"}))
    assert after.endpoint_headers is None and after.description == "new"
    assert after.endpoint_url == WEBHOOK.endpoint_url and after.parameters == WEBHOOK.parameters


def test_tool_flag_rules_count_only_the_fields_changed_on_purpose() -> None:
    # Moving a webhook to custom_context keeps its stored endpoint_url: not an error...
    moved = apply_tool_changes(WEBHOOK, ToolChanges(type="custom_context", context="c",
                                                    parameters=[]))
    assert moved.type == "custom_context" and moved.endpoint_url == WEBHOOK.endpoint_url
    # ...but sending a flag the type does not allow is.
    with pytest.raises(ValidationFailed) as bad:
        apply_tool_changes(moved, ToolChanges(wait_for_speech_before_tool_call=True))
    assert "wait_for_speech_before_tool_call" in bad.value.param_errors


def test_changing_the_method_needs_every_location_again() -> None:
    with pytest.raises(ValidationFailed) as bad:
        apply_tool_changes(WEBHOOK, ToolChanges(endpoint_method="GET"))
    assert bad.value.param_errors == {
        "parameters": "re-send every parameter with an explicit location"}
    resent = parse_tool_changes({"endpoint_method": "GET", "parameters": [
        {"type": "string", "name": "q", "description": "d", "location": "query_string"}]})
    assert apply_tool_changes(WEBHOOK, resent).endpoint_method == "GET"


def test_validated_fills_get_locations_and_uses_the_given_fields() -> None:
    spec = ToolSpec(name="w", description="d", type="custom_webhook", execution_mode="sync",
                    endpoint_method="GET", endpoint_url="https://w.example.com/",
                    parameters=[ToolParameter(type="string", name="city", description="c")])
    assert validated(spec).flat_parameters()[0].location == "query_string"
    flagged = ToolSpec(name="c", description="d", type="custom_context", execution_mode="sync",
                       context="x", detect_voicemail=True)
    with pytest.raises(ValidationFailed) as bad:
        validated(flagged)
    assert "detect_voicemail" in bad.value.param_errors


def test_schema_changes() -> None:
    spec = ExtractionSchemaSpec(name="booking", prompt="p",
                                fields=[ExtractionField(name="a", type="int")])
    changes = schema_changes_from({"prompt": "p2"})
    assert changes.given() == {"prompt": "p2"}
    after = apply_schema_changes(spec, changes)
    assert after.prompt == "p2" and after.fields == spec.fields and after.name == "booking"
    with pytest.raises(ValidationFailed) as bad:
        schema_changes_from({"fields": [{"name": "a", "type": "int"},
                                        {"name": "a", "type": "int"}]})
    assert bad.value.param_errors == {"fields": "field names must be unique"}
