"""The Phonic dialect as a pure translation: body -> command -> domain -> body, and domain
errors -> Phonic error bodies. No server: these are the functions the routes call."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from openline.api.phonic import errors, schemas
from openline.api.phonic.views import (
    CONVERSATION_CONFIG_KEYS,
    PhonicEvents,
    agent_json,
    conversation_json,
    tool_json,
)
from openline.domain.agent import Agent
from openline.domain.agent_changes import apply_changes
from openline.domain.conversation import Conversation, ConversationAgent, ConversationItem
from openline.domain.errors import Conflict, NotFound, OpenlineError, ValidationFailed
from openline.domain.events import ConversationEnded, ConversationTransferred
from openline.domain.phone_number import PhoneAssignment, PhoneNumber
from openline.domain.project import Ref
from openline.domain.tool import Tool, validated
from openline.domain.unset import UNSET
from openline.services.commands import Key
from openline.services.masking import keep_agent_secrets

PROJECT = Ref("proj_1", "main")
AGENT_BODY: dict[str, Any] = {
    "name": "support", "voice_id": "sabrina", "audio_speed": 1.2, "welcome_message": "Hi",
    "template_variables": {"customer": {"default_value": "David", "is_boosted_keyword": True}},
    "languages": ["en", "es"], "tasks": [{"name": "book", "description": "Book it"}],
    "configuration_endpoint": {"url": "https://c.example.com/", "headers": {"A": "b"},
                               "timeout_ms": 7000},
    "tools": ["keypad_input"], "no_input_poke_sec": None, "background_noise": "office",
}
PHONE_KEYS = ("phone_number", "phone_numbers", "custom_phone_numbers")


def stored_agent(config: Any, numbers: tuple[PhoneNumber, ...] = ()) -> Agent:
    return Agent("agent_1", PROJECT, config, 3, False, numbers)


def test_agent_body_round_trips_through_the_domain() -> None:
    cmd = schemas.agent_create(AGENT_BODY, "main")
    assert cmd.project == "main" and cmd.phone is None
    wire = agent_json(stored_agent(cmd.spec))
    # Header values are secrets, never shown in full (issue 9); the rest is as it was sent.
    endpoint = {**AGENT_BODY["configuration_endpoint"], "headers": {"A": "****"}}
    assert {k: wire[k] for k in AGENT_BODY} == {**AGENT_BODY, "configuration_endpoint": endpoint}
    assert list(wire)[:7] == ["id", "name", "project", "phone_number", "phone_numbers",
                              "is_disabled", "version_number"]
    assert wire["project"] == {"id": "proj_1", "name": "main"} and wire["version_number"] == 3
    # What GET returns, sent back to the same agent (PATCH, upsert), gives back the same
    # configuration: the masked header values mean "unchanged".
    again = schemas.agent_create({k: v for k, v in wire.items() if k not in PHONE_KEYS}, None)
    assert keep_agent_secrets(again.spec, cmd.spec) == cmd.spec


def test_agent_phone_modes_translate_to_assignments() -> None:
    def phone(body: dict[str, Any]) -> PhoneAssignment | None:
        return schemas.agent_create({"name": "a", **body}, None).phone

    assert phone({"phone_number": "assign-automatically"}) == PhoneAssignment("pool")
    assert phone({"phone_number": None}) == PhoneAssignment("none")
    assert phone({"custom_phone_number": "+15550001111"}) == PhoneAssignment(
        "custom", ("+15550001111",))
    assert phone({"phone_number": "custom", "custom_phone_numbers": ["+15550002222"],
                  "custom_phone_number": "+15550001111"}) == PhoneAssignment(
        "custom", ("+15550002222", "+15550001111"))
    with pytest.raises(ValidationFailed) as bad:
        phone({"phone_number": "custom"})
    assert bad.value.param_errors == {
        "custom_phone_numbers": 'required when phone_number is "custom"'}


def test_agent_numbers_render_pool_first_and_custom_listed() -> None:
    numbers = (PhoneNumber("+15555550100", "pool"), PhoneNumber("+15550001111", "custom"))
    wire = agent_json(stored_agent(schemas.agent_create({"name": "a"}, None).spec, numbers))
    assert wire["phone_number"] == "+15555550100"
    assert wire["phone_numbers"] == ["+15555550100", "+15550001111"]
    assert wire["custom_phone_numbers"] == ["+15550001111"]


def test_agent_patch_distinguishes_absent_null_and_value() -> None:
    key = Key("support", "main")
    cmd = schemas.agent_update({"welcome_message": None, "audio_speed": 1.0}, key)
    assert cmd.key == key and cmd.phone is UNSET
    assert cmd.changes.given() == {"welcome_message": None, "audio_speed": 1.0}
    before = schemas.agent_create(AGENT_BODY, None).spec
    wire = agent_json(stored_agent(apply_changes(before, cmd.changes)))
    assert wire["welcome_message"] is None and wire["audio_speed"] == 1.0
    assert wire["voice_id"] == "sabrina" and wire["tasks"] == AGENT_BODY["tasks"]
    # custom_phone_numbers alone means "custom"; no phone key leaves the numbers alone.
    numbers = schemas.agent_update({"custom_phone_numbers": ["+15550003333"]}, key)
    assert numbers.phone == PhoneAssignment("custom", ("+15550003333",))
    assert schemas.agent_update({}, key).changes.is_empty()


def test_agent_errors_are_collected_in_phonic_order() -> None:
    with pytest.raises(ValidationFailed) as bad:
        schemas.agent_create({"name": "Bad", "audio_speed": 3, "phone_number": "custom",
                              "custom_phone_numbers": ["1"]}, None)
    assert list(bad.value.param_errors) == ["name", "audio_speed", "custom_phone_numbers"]
    assert bad.value.message.startswith("Invalid parameters: name: ")


def test_custom_number_headers_become_sip_settings() -> None:
    key = Key("a")
    cmd = schemas.custom_number({"phone_number": "+15550004444", "sip": {"transport": "tcp"}},
                                key, "sip.example.com", "u", "p")
    assert cmd.sip is not None and cmd.sip.transport == "tcp"
    assert cmd.sip.media_encryption == "disabled" and cmd.sip.password == "p"
    with pytest.raises(ValidationFailed) as partial:
        schemas.custom_number({"phone_number": "+15550004444"}, key, "sip.example.com",
                              None, None)
    assert "X-Sip-Address" in partial.value.param_errors
    bare = schemas.custom_number({"phone_number": "+15550004444"}, key, None, None, None)
    assert bare.sip is None and bare.configuration_endpoint is None


def test_tool_body_round_trips_and_context_shows_only_for_context_tools() -> None:
    body = {"name": "hook", "description": "d", "type": "custom_webhook",
            "execution_mode": "sync", "endpoint_method": "GET",
            "endpoint_url": "https://w.example.com/", "endpoint_headers": None,
            "parameters": [{"type": "string", "name": "city", "description": "c",
                            "is_required": True}]}
    cmd = schemas.tool_create(body, "main")
    wire = tool_json(Tool("tool_1", PROJECT, validated(cmd.spec)))
    assert wire["parameters"][0]["location"] == "query_string"  # GET's default, stored
    assert {k: wire[k] for k in body if k != "parameters"} == {
        k: v for k, v in body.items() if k != "parameters"}
    assert "context" not in wire and list(wire)[:3] == ["id", "name", "project"]
    ctx = schemas.tool_create({"name": "c", "description": "d", "type": "custom_context",
                               "execution_mode": "sync", "context": "Open 9-5"}, None)
    assert tool_json(Tool("tool_2", PROJECT, ctx.spec))["context"] == "Open 9-5"


def test_project_update_keeps_unset_apart_from_null() -> None:
    cmd = schemas.project_update({"default_agent": None}, "main")
    assert cmd.default_agent is None and cmd.name is UNSET
    assert cmd.max_active_conversations is UNSET
    with pytest.raises(ValidationFailed) as bad:
        schemas.project_update({"max_active_conversations": True}, "main")
    assert bad.value.param_errors == {"max_active_conversations": "must be a positive integer"}


STARTED = datetime(2025, 4, 17, 12, 0, 0, 123000, tzinfo=UTC)
CONVERSATION = Conversation(
    id="conv_1", workspace=Ref("ws_1", "default"), project=PROJECT,
    agent=ConversationAgent("agent_1", "support", True), external_id="ext", origin="sdk-py",
    settings={"system_prompt": "S", "template_variables": None, "vad_threshold": 0.5},
    started_at=STARTED, ended_at=STARTED, duration_ms=20000.0, ended_by="user",
    latencies_ms=(500.0,), interruptions_count=2, call_info={"from_phone_number": "+1555"},
    items=(ConversationItem("conv_item_1", 0, "user", "hi", "hi there", 900.0, STARTED),))


def test_conversation_renders_every_documented_key() -> None:
    wire = conversation_json(CONVERSATION, "https://x/rec")
    assert wire["agent"] == {"id": "agent_1", "name": "support", "is_deleted": True}
    assert wire["workspace"] == "default" and wire["is_live"] is False
    assert set(CONVERSATION_CONFIG_KEYS) <= set(wire)
    assert wire["system_prompt"] == "S" and wire["default_language"] is None
    assert wire["template_variables"] == {} and wire["pronunciation_dictionary"] == []
    assert wire["started_at"] == "2025-04-17T12:00:00.123Z" and wire["audio_url"] == "https://x/rec"
    assert wire["analysis"] == {"id": "conv_1", "latencies_ms": [500.0],
                                "interruptions_count": 2}
    assert wire["items"][0]["post_call_transcript"] == "hi there"
    assert wire["items"][0]["redacted_transcript"] is None


def test_webhook_events_render_in_the_phonic_envelope() -> None:
    events = PhonicEvents(lambda c: f"https://x/{c.id}")
    at = datetime(2025, 4, 17, 12, 0, 1, 5000, tzinfo=UTC)
    ended = events.render(ConversationEnded(CONVERSATION), at)
    assert ended is not None and ended.event_type == "conversation.ended"
    body = json.loads(ended.body)
    assert list(body) == ["event_type", "created_at", "data"]
    assert body["created_at"] == "2025-04-17T12:00:01.005Z"
    assert body["data"]["conversation"] == json.loads(json.dumps(
        conversation_json(CONVERSATION, "https://x/conv_1")))
    assert body["data"]["call_info"] == {"from_phone_number": "+1555"}
    assert ended.body == json.dumps(body, separators=(",", ":"))  # compact, in this order
    moved = events.render(ConversationTransferred(CONVERSATION, "+15550001111"), at)
    assert moved is not None and json.loads(moved.body)["data"] == {
        "conversation": {"id": "conv_1", "items": [{"role": "user", "text": "hi there"}]},
        "transferred_to": "+15550001111", "call_info": {"from_phone_number": "+1555"}}


def _raising(exc: Exception) -> TestClient:
    app = FastAPI()
    errors.install(app)

    @app.get("/boom")
    async def boom() -> None:
        raise exc

    return TestClient(app, raise_server_exceptions=False)


@pytest.mark.parametrize(("exc", "status", "body"), [
    (ValidationFailed("Invalid parameters: a: b", {"a": "b"}), 400,
     {"error": {"message": "Invalid parameters: a: b"}, "param_errors": {"a": "b"}}),
    (ValidationFailed("Invalid url", {"url": "x"}, code="unsafe_url"), 400,
     {"error": {"message": "Invalid url", "code": "unsafe_url"}, "param_errors": {"url": "x"}}),
    (NotFound("Agent not found"), 404, {"error": {"message": "Agent not found",
                                                  "code": "not_found"}}),
    (Conflict("Taken", code="name_taken"), 409, {"error": {"message": "Taken",
                                                           "code": "name_taken"}}),
    (OpenlineError("odd"), 500, {"error": {"message": "odd"}}),
    (RuntimeError("bug"), 500, {"error": {"message": "Internal server error",
                                          "code": "internal_error"}}),
])
def test_domain_errors_become_phonic_error_bodies(exc: Exception, status: int,
                                                  body: dict[str, Any]) -> None:
    response = _raising(exc).get("/boom")
    assert response.status_code == status and response.json() == body
