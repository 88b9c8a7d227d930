"""``/tool``, ``/squad``, ``/phone-number`` and ``/block`` through the Vapi SDK on both
databases: what maps onto Openline tools, transfers and numbers does; the rest is kept."""

from __future__ import annotations

import json
import uuid

import httpx
import pytest
from sqlalchemy import text
from vapi.core.api_error import ApiError
from vapi.phone_numbers import CreatePhoneNumbersRequest_Vapi

from openline.store.db import Database
from vapi import AsyncVapi, SquadMemberDto, Vapi


def _openline_tool(raw: httpx.Client, tool_id: str) -> dict[str, object]:
    linked = raw.get(f"/tool/{tool_id}").json()
    assert "_openline" not in linked
    return linked


def test_tools_map_onto_openline_tools(vapi: Vapi, raw: httpx.Client) -> None:
    api = raw.post("/tool", json={
        "type": "apiRequest", "name": "Lookup Order", "method": "POST",
        "url": "http://127.0.0.1:9/orders", "description": "Find an order",
        "body": {"type": "object", "properties": {"order": {"type": "string"}},
                 "required": ["order"]}, "timeoutSeconds": 7, "extraKey": 1})
    assert api.status_code == 201, api.text
    tool = api.json()
    assert tool["extraKey"] == 1 and tool["orgId"] and tool["createdAt"]
    mapped = [t for t in raw.get("/v1/tools").json()["tools"] if t["name"] == "lookup_order"]
    assert len(mapped) == 1 and mapped[0]["type"] == "custom_webhook"
    assert mapped[0]["endpoint_url"] == "http://127.0.0.1:9/orders"
    assert mapped[0]["endpoint_timeout_ms"] == 7000
    assert mapped[0]["parameters"]["properties"] == {"order": {"type": "string"}}

    got = vapi.tools.get(tool["id"])
    assert got.type == "apiRequest" and got.url == "http://127.0.0.1:9/orders"
    updated = vapi.tools.update(tool["id"], request={"type": "apiRequest",
                                                     "url": "http://127.0.0.1:9/v2"})
    assert updated.url == "http://127.0.0.1:9/v2"
    assert raw.get(f"/v1/tools/{mapped[0]['id']}").json()["tool"]["endpoint_url"] == \
        "http://127.0.0.1:9/v2"
    r = raw.patch(f"/tool/{tool['id']}", json={"type": "function"})
    assert r.status_code == 400 and vapi.tools.get(tool["id"]).type == "apiRequest"

    assistant = vapi.assistants.create(name="Tool User", model={
        "provider": "openai", "model": "gpt-4o", "toolIds": [tool["id"]],
        "tools": [{"type": "endCall"}]})
    agent = raw.get(f"/v1/agents/{assistant.id}").json()["agent"]
    assert agent["tools"] == ["lookup_order", "natural_conversation_ending"]
    assert vapi.tools.delete(tool["id"]).id == tool["id"]
    assert raw.get(f"/v1/tools/{mapped[0]['id']}").status_code == 404
    assert raw.get(f"/v1/agents/{assistant.id}").json()["agent"]["tools"] == [
        "natural_conversation_ending"]
    vapi.assistants.delete(assistant.id)


def test_transfer_function_dtmf_and_legacy_tools(vapi: Vapi, raw: httpx.Client) -> None:
    transfer = vapi.tools.create(request={
        "type": "transferCall", "destinations": [
            {"type": "number", "number": "+15550009999", "message": "Connecting you"}]})
    linked = raw.get("/v1/tools").json()["tools"]
    phone = [t for t in linked if t.get("phone_number") == "+15550009999"]
    assert phone and phone[0]["type"] == "built_in_transfer_to_phone_number"
    assert phone[0]["post_transfer_message"] == "Connecting you"
    function = vapi.tools.create(request={
        "type": "function", "async": True,
        "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {}}},
        "server": {"url": "http://127.0.0.1:9/hook"}})
    assert function.type == "function" and function.function.name == "get_weather"
    dtmf = vapi.tools.create(request={"type": "dtmf", "sipInfoDtmfEnabled": True})
    assert dtmf.type == "dtmf"
    # the seed reference's ToolsCreateRequest_Output(async_=False) (SDK 0.x; gone from 3.0.0)
    legacy = raw.post("/tool", json={"type": "output", "async": False})
    assert legacy.status_code == 201 and legacy.json()["type"] == "output"
    assert legacy.json()["async"] is False
    make = raw.post("/tool", json={"type": "make", "metadata": {"scenarioId": 1}})
    assert make.status_code == 201
    listed = {t.id for t in vapi.tools.list(limit=1000) if t is not None}
    assert {transfer.id, function.id, dtmf.id} <= listed  # 3.0.0 parses "output" as None
    assert legacy.json()["id"] in [t["id"] for t in raw.get("/tool", params={"limit": 1000})
                                   .json()]
    for bad in ({"type": "teleport"}, {"type": "apiRequest", "url": "http://x"},
                {"type": "function", "function": {"name": "has spaces"}},
                {"type": "transferCall", "destinations": [{"type": "number",
                                                           "number": "12"}]},
                {"type": "transferCall", "destinations": [{"type": "assistant",
                                                           "assistantName": "Nobody"}]}):
        r = raw.post("/tool", json=bad)
        assert r.status_code == 400 and r.json()["statusCode"] == 400, (bad, r.text)
    for tool_id in (transfer.id, function.id, dtmf.id, legacy.json()["id"], make.json()["id"]):
        vapi.tools.delete(tool_id)
    assert all(t.get("phone_number") != "+15550009999"
               for t in raw.get("/v1/tools").json()["tools"])


def test_squad_members_transfer_between_assistants(vapi: Vapi, raw: httpx.Client) -> None:
    tag = uuid.uuid4().hex[:6]
    sales = vapi.assistants.create(name=f"Sales {tag}")
    squad = vapi.squads.create(name="Desk", members=[
        {"assistantId": sales.id, "assistantDestinations": [
            {"type": "assistant", "assistantName": f"Support {tag}", "message": "One moment"}]},
        {"assistant": {"name": f"Support {tag}", "firstMessage": "Support here"},
         "assistantDestinations": [{"type": "assistant", "assistantName": f"Sales {tag}"}]},
    ])
    assert squad.name == "Desk" and len(squad.members) == 2
    body = raw.get(f"/squad/{squad.id}").json()
    assert "_openline" not in body and body["members"][0]["assistantId"] == sales.id
    sales_agent = raw.get(f"/v1/agents/{sales.id}").json()["agent"]
    support = [a for a in raw.get("/v1/agents").json()["agents"]
               if a["welcome_message"] == "Support here"]
    assert len(support) == 1
    transfer = raw.get(f"/v1/tools/{sales_agent['tools'][0]}").json()["tool"]
    assert transfer["type"] == "built_in_transfer_to_agent"
    assert transfer["agents_to_transfer_to"] == [support[0]["name"]]
    back = raw.get(f"/v1/tools/{support[0]['tools'][0]}").json()["tool"]
    assert back["agents_to_transfer_to"] == [sales_agent["name"]]
    other = vapi.squads.create(members=[  # an assistant may be in several squads
        {"assistantId": sales.id, "assistantDestinations": [
            {"type": "assistant", "assistantName": f"Support {tag}"}]}])
    assert len(raw.get(f"/v1/agents/{sales.id}").json()["agent"]["tools"]) == 2
    vapi.squads.delete(other.id)
    assert raw.get(f"/v1/agents/{sales.id}").json()["agent"]["tools"] == sales_agent["tools"]
    assert squad.id in [s.id for s in vapi.squads.list(limit=100.0)]
    assert [s["id"] for s in raw.get("/squad", params={"idAny": squad.id}).json()] == [squad.id]

    renamed = vapi.squads.update(squad.id, name="Desk 2", members=[{"assistantId": sales.id}])
    assert renamed.name == "Desk 2" and len(renamed.members) == 1
    assert raw.get(f"/v1/agents/{sales.id}").json()["agent"]["tools"] == []
    assert raw.get(f"/v1/agents/{support[0]['id']}").status_code == 404  # made by the squad
    assert vapi.squads.delete(squad.id).id == squad.id
    r = raw.post("/squad", json={"members": [{"assistantId": "agent_missing"}]})
    assert r.status_code == 400
    agents_before = len(raw.get("/v1/agents").json()["agents"])
    tools_before = len(raw.get("/v1/tools").json()["tools"])
    r = raw.post("/squad", json={"members": [  # refused: nothing it made is left behind
        {"assistant": {"name": "Half made"}, "assistantDestinations": [
            {"type": "assistant", "assistantName": f"Sales {tag}"}]},
        {"assistantId": sales.id, "assistantDestinations": [
            {"type": "assistant", "assistantName": "Nobody at all"}]}]})
    assert r.status_code == 400 and "Nobody at all" in r.json()["message"]
    assert len(raw.get("/v1/agents").json()["agents"]) == agents_before
    assert len(raw.get("/v1/tools").json()["tools"]) == tools_before
    assert raw.post("/squad", json={"name": "no members"}).status_code == 400
    empty = vapi.squads.create(members=[SquadMemberDto()])  # the seed reference's example
    assert len(empty.members) == 1
    vapi.squads.delete(empty.id)
    vapi.assistants.delete(sales.id)


async def test_phone_numbers(avapi: AsyncVapi, live_server: object) -> None:
    assistant = await avapi.assistants.create(name="Receptionist")
    twilio = await avapi.phone_numbers.create(request={
        "provider": "twilio", "number": "+15557654321", "twilioAccountSid": "AC123",
        "twilioAuthToken": "secret-token", "assistantId": assistant.id, "name": "Main line"})
    assert twilio.provider == "twilio" and twilio.number == "+15557654321"
    assert getattr(twilio, "twilio_auth_token", None) is None  # never echoed
    stored = await _stored_doc(live_server, twilio.id)
    assert "secret-token" not in stored and "sealed:v1:" in stored  # sealed at rest
    # the seed reference's example (PhoneNumbersCreateRequest_Vapi, renamed in 3.0.0)
    pool = await avapi.phone_numbers.create(request=CreatePhoneNumbersRequest_Vapi(
        sip_uri="string"))
    assert pool.provider == "vapi" and pool.number.startswith("+1555555")
    byo = await avapi.phone_numbers.create(request={
        "provider": "byo-phone-number", "number": "+15551112222", "credentialId": "cred-1",
        "assistantId": assistant.id, "sipUri": "sip:trunk.example.com",
        "authentication": {"realm": "r", "username": "u", "password": "p"}})
    assert byo.credential_id == "cred-1"
    numbers = {n.id for n in await avapi.phone_numbers.list(limit=100.0) if n is not None}
    assert {twilio.id, pool.id, byo.id} <= numbers
    async with _http(live_server) as http:
        agent = (await http.get(f"/v1/agents/{assistant.id}")).json()["agent"]
        assert sorted(agent["custom_phone_numbers"]) == ["+15551112222", "+15557654321"]
        moved = await avapi.phone_numbers.update(twilio.id, request={
            "provider": "twilio", "number": "+15557654000"})
        assert moved.number == "+15557654000"
        agent = (await http.get(f"/v1/agents/{assistant.id}")).json()["agent"]
        assert sorted(agent["custom_phone_numbers"]) == ["+15551112222", "+15557654000"]
        for bad in ({"provider": "twilio", "number": "+15550000001"},
                    {"provider": "twilio", "number": "555", "twilioAccountSid": "AC",
                     "twilioAuthToken": "x"},
                    {"provider": "byo-phone-number", "number": "+15550000002"},
                    {"provider": "carrier-pigeon"},
                    {"provider": "twilio", "number": "+15557654000", "twilioAccountSid": "AC",
                     "twilioAuthToken": "x", "assistantId": "agent_missing"}):
            r = await http.post("/phone-number", json=bad)
            assert r.status_code == 400 and r.json()["statusCode"] == 400, (bad, r.text)
        r = await http.patch(f"/phone-number/{twilio.id}", json={"provider": "vapi"})
        assert r.status_code == 400
    assert (await avapi.phone_numbers.delete(twilio.id)).id == twilio.id
    for number in (pool, byo):
        await avapi.phone_numbers.delete(number.id)
    with pytest.raises(ApiError) as missing:
        await avapi.phone_numbers.get(twilio.id)
    assert missing.value.status_code == 404
    await avapi.assistants.delete(assistant.id)


async def _stored_doc(server: object, doc_id: str) -> str:
    """The document column as the database holds it (no key: sealed values stay sealed)."""
    db = Database(server.database_url)  # type: ignore[attr-defined]
    try:
        async with db.engine.connect() as conn:
            raw = await conn.scalar(text("SELECT doc FROM vapi_resources WHERE id = :id"),
                                    {"id": doc_id})
    finally:
        await db.dispose()
    return raw if isinstance(raw, str) else json.dumps(raw)


def _http(server: object) -> httpx.AsyncClient:
    url, key = server.url, server.api_key  # type: ignore[attr-defined]
    return httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {key}"})


def test_blocks_of_older_sdks(raw: httpx.Client) -> None:
    """``/block`` (SDK 0.1.0-0.4.x) over raw HTTP: 3.0.0 has no client for it."""
    workflow = raw.post("/block", json={"type": "workflow"})  # the seed reference's example
    assert workflow.status_code == 201 and workflow.json()["type"] == "workflow"
    talk = raw.post("/block", json={"type": "conversation", "instruction": "Ask for a name",
                                    "outputSchema": {"type": "object"}}).json()
    assert raw.get(f"/block/{talk['id']}").json()["instruction"] == "Ask for a name"
    assert raw.patch(f"/block/{talk['id']}", json={"name": "ask"}).json()["name"] == "ask"
    assert raw.patch(f"/block/{talk['id']}", json={"type": "workflow"}).status_code == 400
    for bad in ({"type": "conversation"}, {"type": "tool-call"}, {"type": "nope"}):
        assert raw.post("/block", json=bad).status_code == 400
    ids = [b["id"] for b in raw.get("/block", params={"limit": "100.0"}).json()]
    assert workflow.json()["id"] in ids and talk["id"] in ids
    assert raw.delete(f"/block/{talk['id']}").json()["id"] == talk["id"]
    assert raw.get(f"/block/{talk['id']}").status_code == 404
    raw.delete(f"/block/{workflow.json()['id']}")
