"""``/assistant`` through the official ``vapi-server-sdk`` 3.0.0 (sync and async), on both
databases: assistants are agents; unknown and legacy keys come back; bad input changes
nothing."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta, timezone

import httpx
import pytest
from vapi.core.api_error import ApiError

from vapi import AsyncVapi, Vapi

SYSTEM = {"role": "system", "content": "You are a concise helper."}


def test_create_get_update_delete_with_the_sync_sdk(vapi: Vapi, raw: httpx.Client) -> None:
    made = vapi.assistants.create(
        name="Front Desk", first_message="Hello, front desk.",
        model={"provider": "openai", "model": "gpt-4o", "messages": [SYSTEM]},
        voice={"provider": "vapi", "voiceId": "ava", "speed": 1.2},
        transcriber={"provider": "deepgram", "model": "nova-3", "language": "en-US",
                     "keywords": ["openline:2"]},
        max_duration_seconds=300, end_call_phrases=["goodbye now"],
        analysis_plan={"summaryPlan": {"enabled": True}}, metadata={"team": "ops"},
        request_options={"additional_body_parameters": {
            "silenceTimeoutSeconds": 45, "customKey": {"kept": [1, 2]},
            "messagePlan": {"idleMessages": ["Still with me?"], "idleTimeoutSeconds": 12}}})
    assert made.id.startswith("agent_") and made.org_id and made.created_at is not None
    assert made.name == "Front Desk" and made.first_message == "Hello, front desk."
    assert made.first_message_mode == "assistant-speaks-first"
    assert made.model.provider == "openai" and made.model.messages[0].content == SYSTEM["content"]
    assert made.voice.voice_id == "ava" and made.max_duration_seconds == 300
    stored = raw.get(f"/assistant/{made.id}").json()
    assert stored["customKey"] == {"kept": [1, 2]} and stored["silenceTimeoutSeconds"] == 45
    assert stored["metadata"] == {"team": "ops"} and stored["endCallPhrases"] == ["goodbye now"]
    agent = raw.get(f"/v1/agents/{made.id}").json()["agent"]  # the same thing, as an agent
    assert (agent["name"], agent["welcome_message"], agent["system_prompt"]) == (
        "front-desk", "Hello, front desk.", SYSTEM["content"])
    assert (agent["voice_id"], agent["audio_speed"], agent["default_language"]) == (
        "ava", 1.2, "en")
    assert agent["boosted_keywords"] == ["openline"]
    assert agent["no_input_end_conversation_sec"] == 45 and agent["no_input_poke_sec"] == 12
    assert agent["no_input_poke_text"] == "Still with me?"
    assert agent["is_welcome_message_interruptible"] is False  # Vapi's default

    updated = vapi.assistants.update(made.id, first_message_mode="assistant-waits-for-user",
                                     voice={"provider": "vapi", "voiceId": "joe"})
    assert updated.first_message_mode == "assistant-waits-for-user"
    assert updated.voice.voice_id == "joe" and updated.updated_at >= made.updated_at
    agent = raw.get(f"/v1/agents/{made.id}").json()["agent"]
    assert agent["welcome_message"] == "" and agent["voice_id"] == "joe"
    assert agent["system_prompt"] == SYSTEM["content"]  # untouched keys stay
    assert raw.get(f"/assistant/{made.id}").json()["customKey"] == {"kept": [1, 2]}

    gone = vapi.assistants.delete(made.id)
    assert gone.id == made.id and gone.name == "Front Desk"  # the deleted object
    with pytest.raises(ApiError) as missing:
        vapi.assistants.get(made.id)
    assert missing.value.status_code == 404
    assert raw.get(f"/v1/agents/{made.id}").status_code == 404


async def test_the_async_sdk_and_model_generated_first_messages(avapi: AsyncVapi) -> None:
    made = await avapi.assistants.create(
        name="Async Helper",
        first_message_mode="assistant-speaks-first-with-model-generated-message")
    assert made.first_message_mode == "assistant-speaks-first-with-model-generated-message"
    got = await avapi.assistants.get(made.id)
    assert got.id == made.id and got.model.provider == "vapi"  # the platform's own model
    listed = await avapi.assistants.list(limit=1000.0)
    assert made.id in [a.id for a in listed]
    renamed = await avapi.assistants.update(made.id, name="Async Helper Two")
    assert renamed.name == "Async Helper Two"
    assert (await avapi.assistants.delete(made.id)).id == made.id


def test_names_are_free_form_and_may_repeat(vapi: Vapi, raw: httpx.Client) -> None:
    first = vapi.assistants.create(name="Same Name")
    second = vapi.assistants.create(name="Same Name")
    nameless = vapi.assistants.create()
    names = {raw.get(f"/v1/agents/{a.id}").json()["agent"]["name"]
             for a in (first, second, nameless)}
    assert len(names) == 3 and all(n.startswith(("same-name", "assistant")) for n in names)
    assert vapi.assistants.get(second.id).name == "Same Name"
    for a in (first, second, nameless):
        vapi.assistants.delete(a.id)


def test_bad_input_is_a_400_and_changes_nothing(vapi: Vapi, raw: httpx.Client) -> None:
    before = [a["id"] for a in raw.get("/assistant", params={"limit": 1000}).json()]
    bad = [{"firstMessageMode": "shout-first"}, {"maxDurationSeconds": 5},
           {"voice": {"provider": "vapi", "voiceId": "joe", "speed": 9}},
           {"model": {"provider": "openai", "model": "gpt-4o", "toolIds": ["nope"]}},
           {"model": "gpt-4o"}, {"name": "x" * 41}, {"endCallPhrases": ["x"]},
           {"stopSpeakingPlan": {"voiceSeconds": 2}},
           {"startSpeakingPlan": {"smartEndpointingEnabled": "always"}},
           {"startSpeakingPlan": {"transcriptionEndpointingPlan": {"onNumberSeconds": -1}}},
           {"startSpeakingPlan": {"customEndpointingRules": [
               {"type": "customer", "regex": "[0-9", "timeoutSeconds": 2}]}}]
    for body in bad:
        r = raw.post("/assistant", json=body)
        assert r.status_code == 400, (body, r.text)
        assert r.json()["statusCode"] == 400 and r.json()["error"] == "Bad Request"
        assert r.json()["message"]
    assert [a["id"] for a in raw.get("/assistant", params={"limit": 1000}).json()] == before
    made = vapi.assistants.create(name="Stable", first_message="One")
    r = raw.patch(f"/assistant/{made.id}", json={"voice": {"provider": "vapi", "speed": 0.1},
                                                 "firstMessage": "Two"})
    assert r.status_code == 400 and "voice.speed" in r.json()["message"]
    assert vapi.assistants.get(made.id).first_message == "One"
    vapi.assistants.delete(made.id)


def test_list_filters_float_limit_and_time_zones(vapi: Vapi, raw: httpx.Client) -> None:
    tag = uuid.uuid4().hex[:6]
    made = []
    for i in range(3):
        made.append(vapi.assistants.create(name=f"Filter {tag} {i}"))
        time.sleep(0.01)
    ids = [a.id for a in made]
    listed = vapi.assistants.list(limit=2.0, created_at_ge=made[0].created_at)
    assert [a.id for a in listed] == [ids[2], ids[1]]  # newest first, at most 2
    r = raw.get("/assistant", params={"limit": "5.0", "createdAtGe": made[0].created_at
                                      .isoformat().replace("+00:00", "Z")})
    assert r.status_code == 200 and [a["id"] for a in r.json()] == ids[::-1]
    # the same instant written in another zone selects the same assistants
    plus_two = made[1].created_at.astimezone(timezone(timedelta(hours=2)))
    after = vapi.assistants.list(created_at_gt=made[0].created_at, created_at_le=plus_two)
    assert [a.id for a in after] == [ids[1]]
    assert raw.get("/assistant", params={"createdAtGt": plus_two.isoformat()}).json()[0][
        "id"] == ids[2]
    assert vapi.assistants.list(updated_at_lt=datetime(2000, 1, 1, tzinfo=UTC)) == []
    for bad in ({"limit": "abc"}, {"limit": "2.5"}, {"limit": "5000"},
                {"createdAtGt": "yesterday"}):
        r = raw.get("/assistant", params=bad)
        assert r.status_code == 400 and r.json()["statusCode"] == 400, bad
    for a in made:
        vapi.assistants.delete(a.id)


def test_agents_made_through_phonic_are_assistants(vapi: Vapi, raw: httpx.Client) -> None:
    name = "phonic-made-" + uuid.uuid4().hex[:6]
    agent = raw.post("/v1/agents", json={
        "name": name, "welcome_message": "Hi from Phonic", "system_prompt": "Be kind.",
        "voice_id": "joe"}).json()
    assistant = vapi.assistants.get(agent["id"])
    assert assistant.name == name and assistant.first_message == "Hi from Phonic"
    assert assistant.model.messages[0].content == "Be kind."
    assert assistant.voice.voice_id == "joe"
    assert agent["id"] in [a.id for a in vapi.assistants.list(limit=1000)]
    vapi.assistants.update(agent["id"], first_message="Changed through Vapi")
    assert raw.get(f"/v1/agents/{name}").json()["agent"]["welcome_message"] == \
        "Changed through Vapi"
    vapi.assistants.delete(agent["id"])
    assert raw.get(f"/v1/agents/{name}").status_code == 404


def test_renames_show_in_both_dialects(vapi: Vapi, raw: httpx.Client) -> None:
    tag = uuid.uuid4().hex[:6]
    made = vapi.assistants.create(name=f"Old {tag}")
    assert vapi.assistants.update(made.id, name=f"New Name {tag}").name == f"New Name {tag}"
    assert raw.get(f"/v1/agents/{made.id}").json()["agent"]["name"] == f"new-name-{tag}"
    r = raw.patch(f"/v1/agents/{made.id}", json={"name": f"phonic-{tag}"})
    assert r.status_code == 200
    assert vapi.assistants.get(made.id).name == f"phonic-{tag}"
    vapi.assistants.delete(made.id)
