"""Agents through the official SDK: seed examples, defaults, versions, validation."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from phonic import AsyncPhonic, Phonic
from phonic.core.api_error import ApiError
from phonic.errors import BadRequestError, ConflictError, NotFoundError

SEED_EXAMPLE: dict[str, Any] = dict(
    phone_number="assign-automatically",
    timezone="America/Los_Angeles",
    voice_id="sabrina",
    audio_speed=1.0,
    background_noise_level=0.0,
    generate_welcome_message=False,
    welcome_message="Hi {{customer_name}}. How can I help you today?",
    system_prompt="You are an expert in {{subject}}. Be friendly, helpful and concise.",
    template_variables={
        "customer_name": {"default_value": "David"},
        "subject": {"default_value": "Chess"},
    },
    tools=[],
    no_input_poke_sec=30,
    no_input_poke_text="Are you still there?",
    languages=["en", "es"],
    boosted_keywords=["Load ID", "dispatch"],
    configuration_endpoint={
        "url": "https://api.example.com/config",
        "headers": {"Authorization": "Bearer token123"},
        "timeout_ms": 7000,
    },
)
NO_RETRY: Any = {"max_retries": 0}


def test_seed_create_example(client: Phonic, project: str) -> None:
    created = client.agents.create(project=project, name="support-agent", **SEED_EXAMPLE)
    assert created.id.startswith("agent_") and created.name == "support-agent"
    agent = client.agents.get("support-agent", project=project).agent
    assert agent.id == created.id
    assert agent.project.name == project
    assert agent.voice_id == "sabrina" and agent.languages == ["en", "es"]
    assert agent.template_variables["customer_name"].default_value == "David"
    assert agent.configuration_endpoint.timeout_ms == 7000
    assert agent.phone_number is not None and agent.phone_numbers == [agent.phone_number]
    assert agent.phone_number.startswith("+155555501")
    assert agent.is_disabled is False


def test_documented_defaults(client: Phonic, http: httpx.Client, project: str) -> None:
    client.agents.create(project=project, name="plain")
    raw = http.get("/agents/plain", params={"project": project}).json()["agent"]
    expected = {
        "voice_id": "grant", "audio_format": "pcm_44100", "audio_speed": 1.0,
        "background_noise_level": 0.0, "background_noise": None,
        "generate_welcome_message": False, "is_welcome_message_interruptible": True,
        "welcome_message": "", "system_prompt": "Respond in 1-2 sentences.",
        "template_variables": {}, "tools": [], "tasks": [], "timezone": "America/Los_Angeles",
        "no_input_poke_sec": 180, "no_input_poke_text": "Are you still there?",
        "generate_no_input_poke_text": False, "no_input_end_conversation_sec": 180,
        "languages": ["en"], "default_language": "en", "additional_languages": [],
        "multilingual_mode": "request", "intelligence_level": "standard",
        "boosted_keywords": [], "configuration_endpoint": None, "inbound_rollout": 1.0,
        "inbound_rollout_forward_phone_number": None, "websocket_timeout_sec": 60,
        "min_words_to_interrupt": 1, "push_to_talk": False, "vad_prebuffer_duration_ms": 500,
        "vad_min_speech_duration_ms": 50, "vad_min_silence_duration_ms": 800,
        "vad_threshold": 0.38, "enable_redaction": False, "enable_assistant_backchannel": False,
        "assistant_backchannel_aggressiveness": 0.1, "mcp_server_ids": [],
        "observability_integrations": [], "phone_number": None, "phone_numbers": [],
        "is_disabled": False, "built_in_tool_configs": {}, "additional_voice_ids": [],
        "pronunciation_dictionary": [],
    }
    for key, value in expected.items():
        assert raw[key] == value, key


def test_update_keeps_versions_and_returns_agent(client: Phonic, project: str) -> None:
    client.agents.create(project=project, name="versioned", system_prompt="v1")
    resp = client.agents.update("versioned", project=project, system_prompt="v2",
                                name="versioned-two", audio_speed=1.2)
    assert resp.success and resp.version_number == 2
    assert resp.agent.system_prompt == "v2" and resp.agent.name == "versioned-two"
    again = client.agents.update("versioned-two", project=project, welcome_message="hello")
    assert again.version_number == 3 and again.agent.system_prompt == "v2"
    with pytest.raises(NotFoundError):
        client.agents.get("versioned", project=project)


def test_seed_upsert_example_inserts_then_updates(client: Phonic, project: str) -> None:
    first = client.agents.upsert(project=project, name="support-agent", **SEED_EXAMPLE)
    assert first.inserted is True and first.updated is False
    same = client.agents.upsert(project=project, name="support-agent", **SEED_EXAMPLE)
    assert same.inserted is False and same.updated is False
    assert same.agent.phone_number == first.agent.phone_number
    changed = client.agents.upsert(project=project, name="support-agent",
                                   **{**SEED_EXAMPLE, "voice_id": "joe"})
    assert changed.inserted is False and changed.updated is True
    assert changed.agent.voice_id == "joe" and changed.agent.id == first.agent.id


def test_enable_disable_delete(client: Phonic, project: str) -> None:
    agent_id = client.agents.create(project=project, name="toggler").id
    assert client.agents.disable(agent_id).success
    assert client.agents.get(agent_id).agent.is_disabled is True
    assert client.agents.enable("toggler", project=project).success
    assert client.agents.get(agent_id).agent.is_disabled is False
    assert [a.name for a in client.agents.list(project=project).agents] == ["toggler"]
    assert client.agents.delete(agent_id).success
    with pytest.raises(NotFoundError):
        client.agents.get(agent_id)
    with pytest.raises(NotFoundError):
        client.agents.delete(agent_id)


def test_custom_phone_numbers(client: Phonic, http: httpx.Client, project: str) -> None:
    client.agents.create(project=project, name="caller", phone_number="custom",
                         custom_phone_numbers=["+15550001111"])
    client.agents.add_custom_phone_number(
        "caller", project=project, phone_number="+15550002222",
        sip_address="sip.example.com", sip_auth_username="u", sip_auth_password="p",
        configuration_endpoint={"url": "https://cfg.example.com/x", "timeout_ms": 2000},
    )
    agent = client.agents.get("caller", project=project).agent
    assert sorted(agent.phone_numbers) == ["+15550001111", "+15550002222"]
    client.agents.update_phone_number("caller", project=project, phone_number="+15550002222",
                                      configuration_endpoint={"url": "https://cfg.example.com/y"})
    client.agents.delete_custom_phone_number("caller", project=project,
                                             phone_number="+15550001111")
    assert client.agents.get("caller", project=project).agent.phone_numbers == ["+15550002222"]

    # The same number cannot belong to a second agent of the workspace.
    client.agents.create(project=project, name="other")
    r = http.post("/agents/other/custom-phone-numbers", params={"project": project},
                  json={"phone_number": "+15550002222"},
                  headers={"X-Sip-Address": "a", "X-Sip-Auth-Username": "b",
                           "X-Sip-Auth-Password": "c"})
    assert r.status_code == 400 and "phone_number" in r.json()["param_errors"]
    r = http.post("/agents", params={"project": project},
                  json={"name": "third", "phone_number": "custom",
                        "custom_phone_numbers": ["+15550002222"]})
    assert r.status_code == 409
    # SIP headers are all-or-nothing.
    r = http.post("/agents/other/custom-phone-numbers", params={"project": project},
                  json={"phone_number": "+15550003333"}, headers={"X-Sip-Address": "a"})
    assert r.status_code == 400
    # Not this agent's number / unknown number.
    r = http.request("DELETE", "/agents/other/custom-phone-numbers", params={"project": project},
                     json={"phone_number": "+15550002222"})
    assert r.status_code == 400
    r = http.request("DELETE", "/agents/other/custom-phone-numbers", params={"project": project},
                     json={"phone_number": "+15559999999"})
    assert r.status_code == 404


def test_phone_modes_switch(client: Phonic, project: str) -> None:
    client.agents.create(project=project, name="switcher", phone_number="assign-automatically")
    pooled = client.agents.get("switcher", project=project).agent.phone_number
    client.agents.update("switcher", project=project, phone_number="custom",
                         custom_phone_numbers=["+15550004444"])
    assert client.agents.get("switcher", project=project).agent.phone_numbers == ["+15550004444"]
    client.agents.update("switcher", project=project, phone_number=None)
    assert client.agents.get("switcher", project=project).agent.phone_numbers == []
    client.agents.create(project=project, name="pool-two", phone_number="assign-automatically")
    # The freed pool number is handed out again.
    assert client.agents.get("pool-two", project=project).agent.phone_number == pooled


@pytest.mark.parametrize(("body", "field"), [
    ({"name": "Has Caps"}, "name"),
    ({"name": "ok", "audio_speed": 1.6}, "audio_speed"),
    ({"name": "ok", "audio_speed": 0.4}, "audio_speed"),
    ({"name": "ok", "background_noise_level": 0.3}, "background_noise_level"),
    ({"name": "ok", "background_noise": "jungle"}, "background_noise"),
    ({"name": "ok", "audio_format": "mp3"}, "audio_format"),
    ({"name": "ok", "inbound_rollout": 1.5}, "inbound_rollout"),
    ({"name": "ok", "inbound_rollout": 0.5}, "inbound_rollout_forward_phone_number"),
    ({"name": "ok", "inbound_rollout_forward_phone_number": "+15550001111"},
     "inbound_rollout_forward_phone_number"),
    ({"name": "ok", "phone_number": "custom"}, "custom_phone_numbers"),
    ({"name": "ok", "phone_number": "custom", "custom_phone_numbers": ["555-1234"]},
     "custom_phone_numbers"),
    ({"name": "ok", "languages": ["xx"]}, "languages"),
    ({"name": "ok", "tools": ["no_such_tool"]}, "tools"),
    ({"name": "ok", "timezone": "Mars/Olympus"}, "timezone"),
    ({"name": "ok", "min_words_to_interrupt": 11}, "min_words_to_interrupt"),
    ({"name": "ok", "vad_threshold": 0.9}, "vad_threshold"),
    ({"name": "ok", "configuration_endpoint": {"url": "ftp://x"}}, "configuration_endpoint.url"),
    ({"name": "ok", "multilingual_mode": "auto", "additional_languages": ["es", "fr", "de"]},
     "additional_languages"),
])
def test_agent_validation(http: httpx.Client, project: str, body: dict[str, Any],
                          field: str) -> None:
    r = http.post("/agents", params={"project": project}, json=body)
    assert r.status_code == 400, r.text
    data = r.json()
    assert data["error"]["message"] and field in data["param_errors"], data
    # Nothing was created.
    assert http.get("/agents", params={"project": project}).json()["agents"] == []


def test_agent_conflicts_and_unknowns(client: Phonic, http: httpx.Client, project: str) -> None:
    client.agents.create(project=project, name="taken")
    # agents.create lists no typed 409 in the SDK, so it arrives as a plain ApiError.
    with pytest.raises(ApiError) as err:
        client.agents.create(project=project, name="taken", request_options=NO_RETRY)
    assert err.value.status_code == 409
    client.agents.create(project=project, name="taken-too")
    with pytest.raises(ConflictError):  # agents.update does have a typed 409
        client.agents.update("taken-too", project=project, name="taken", request_options=NO_RETRY)
    client.agents.create(project=project, name="second")
    r = http.patch("/agents/second", params={"project": project}, json={"name": "taken"})
    assert r.status_code == 409
    r = http.patch("/agents/second", params={"project": project}, json={"audio_speed": 9})
    assert r.status_code == 400
    assert client.agents.get("second", project=project).agent.audio_speed == 1.0
    with pytest.raises(NotFoundError):
        client.agents.list(project="no-such-project")
    with pytest.raises(BadRequestError):
        client.agents.create(project=project, name="x", audio_speed=1.55)
    # Unknown keys are ignored, malformed JSON is a 400.
    r = http.post("/agents", params={"project": project},
                  json={"name": "extra-keys", "not_a_field": 1})
    assert r.status_code == 201
    r = http.post("/agents", params={"project": project}, content=b"{not json",
                  headers={"content-type": "application/json"})
    assert r.status_code == 400 and r.json()["error"]["message"].startswith("Malformed JSON")


async def test_agents_async(aclient: AsyncPhonic, project: str) -> None:
    created = await aclient.agents.create(project=project, name="async-agent",
                                          welcome_message="Hi")
    got = await aclient.agents.get(created.id)
    assert got.agent.welcome_message == "Hi"
    upd = await aclient.agents.update(created.id, voice_id="joe")
    assert upd.version_number == 2
    assert [a.id for a in (await aclient.agents.list(project=project)).agents] == [created.id]
    assert (await aclient.agents.delete(created.id)).success
