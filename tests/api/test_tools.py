"""Tools through the official SDK: every type, parameters, locations and type rules."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from phonic import AsyncPhonic, Phonic
from phonic.errors import BadRequestError, ConflictError, NotFoundError

NO_RETRY: Any = {"max_retries": 0}
WEBHOOK: dict[str, Any] = {
    "description": "Look up an order", "type": "custom_webhook", "execution_mode": "sync",
    "endpoint_method": "POST", "endpoint_url": "https://api.example.com/orders/{order_id}",
    "endpoint_headers": {"Authorization": "Bearer x"}, "endpoint_timeout_ms": 7000,
    "parameters": [
        {"type": "string", "name": "order_id", "description": "Order", "is_required": True,
         "location": "url_path"},
        {"type": "array", "item_type": "integer", "name": "lines", "description": "Lines",
         "is_required": False, "location": "request_body"},
        {"type": "enum", "enum_values": ["fast", "slow"], "name": "speed", "description": "S",
         "is_required": False, "location": "query_string"},
    ],
}


def test_seed_create_transfer_to_agent(client: Phonic, project: str) -> None:
    for name in ("sales-agent", "support-agent", "technical-agent"):
        client.agents.create(project=project, name=name)
    created = client.tools.create(
        project=project, name="transfer_to_specialist",
        description="Transfers the caller to a specialist agent",
        type="built_in_transfer_to_agent", execution_mode="sync",
        agents_to_transfer_to=["sales-agent", "support-agent", "technical-agent"],
        require_speech_before_tool_call=False,
    )
    assert created.id.startswith("tool_") and created.name == "transfer_to_specialist"
    tool = client.tools.get("transfer_to_specialist", project=project).tool
    assert tool.agents_to_transfer_to == ["sales-agent", "support-agent", "technical-agent"]
    assert tool.project.name == project and tool.type == "built_in_transfer_to_agent"


def test_all_five_types_and_defaults(client: Phonic, http: httpx.Client, project: str) -> None:
    client.agents.create(project=project, name="target")
    client.tools.create(project=project, name="ctx", description="Facts",
                        type="custom_context", execution_mode="sync", context="Open 9-5.")
    client.tools.create(project=project, name="hook", **WEBHOOK)
    client.tools.create(project=project, name="ws_tool", description="Client side",
                        type="custom_websocket", execution_mode="async", wait_for_response=True,
                        tool_call_output_timeout_ms=9000,
                        parameters=[{"type": "boolean", "name": "flag", "description": "f",
                                     "is_required": True}])
    client.tools.create(project=project, name="to_phone", description="Transfer",
                        type="built_in_transfer_to_phone_number", execution_mode="sync",
                        phone_number="+15557654321", dtmf="12#", detect_voicemail=True)
    client.tools.create(project=project, name="to_agent", description="Transfer",
                        type="built_in_transfer_to_agent", execution_mode="sync",
                        agents_to_transfer_to=["target"])
    tools = {t.name: t for t in client.tools.list(project=project).tools}
    assert set(tools) == {"ctx", "hook", "ws_tool", "to_phone", "to_agent"}
    assert tools["ctx"].context == "Open 9-5."
    raw = http.get("/tools/hook", params={"project": project}).json()["tool"]
    assert raw["endpoint_timeout_ms"] == 7000 and raw["parameters"][0]["location"] == "url_path"
    assert raw["tool_call_output_timeout_ms"] == 5000 and raw["allow_tool_chaining"] is True
    assert raw["parameters"][1]["item_type"] == "integer"
    assert tools["ws_tool"].wait_for_response is True
    assert tools["to_phone"].use_agent_phone_number is True


def test_get_webhook_defaults_to_query_string(client: Phonic, project: str) -> None:
    client.tools.create(
        project=project, name="weather", description="Weather", type="custom_webhook",
        execution_mode="sync", endpoint_method="GET", endpoint_url="https://w.example.com/",
        parameters=[{"type": "string", "name": "city", "description": "City",
                     "is_required": True}],
    )
    tool = client.tools.get("weather", project=project).tool
    assert tool.parameters[0].location == "query_string"


def test_json_schema_parameters_round_trip(client: Phonic, http: httpx.Client,
                                           project: str) -> None:
    schema = {"type": "object", "properties": {
        "address": {"type": "object", "properties": {"zip": {"type": "string"}}}},
        "required": ["address"], "additionalProperties": False}
    client.tools.create(project=project, name="schema_tool", description="d",
                        type="custom_websocket", execution_mode="sync", parameters=schema)
    raw = http.get("/tools/schema_tool", params={"project": project}).json()["tool"]
    assert raw["parameters"] == schema


def test_update_rename_delete(client: Phonic, project: str) -> None:
    client.tools.create(project=project, name="book", **WEBHOOK)
    client.agents.create(project=project, name="uses-tool", tools=["book", "keypad_input"])
    assert client.tools.update("book", project=project, description="New",
                               endpoint_headers={"Authorization": "Bearer y"},
                               endpoint_timeout_ms=9000).success
    tool = client.tools.get("book", project=project).tool
    assert tool.description == "New" and tool.endpoint_timeout_ms == 9000
    client.tools.update("book", project=project, endpoint_headers=None)
    assert client.tools.get("book", project=project).tool.endpoint_headers is None
    client.tools.update("book", project=project, name="book_v2")
    agent = client.agents.get("uses-tool", project=project).agent
    assert agent.tools == ["book_v2", "keypad_input"]
    assert client.tools.delete("book_v2", project=project).success
    assert client.agents.get("uses-tool", project=project).agent.tools == ["keypad_input"]
    with pytest.raises(NotFoundError):
        client.tools.get("book_v2", project=project)


def test_method_switch_needs_locations(http: httpx.Client, project: str) -> None:
    http.post("/tools", params={"project": project}, json={"name": "switch", **WEBHOOK})
    r = http.patch("/tools/switch", params={"project": project}, json={"endpoint_method": "GET"})
    assert r.status_code == 400 and "parameters" in r.json()["param_errors"]
    params = [dict(p, location="query_string") for p in WEBHOOK["parameters"]]
    params[0]["location"] = "url_path"
    r = http.patch("/tools/switch", params={"project": project},
                   json={"endpoint_method": "GET", "parameters": params})
    assert r.status_code == 200, r.text


def _tool(**over: Any) -> dict[str, Any]:
    """A valid webhook tool body, or a bare body of another type, with ``over`` applied."""
    body: dict[str, Any] = {"name": "t1", "description": "d", "type": "custom_webhook",
                            "execution_mode": "sync"}
    if over.get("type", "custom_webhook") == "custom_webhook":
        body.update(endpoint_method="POST", endpoint_url="https://x.example.com/")
    return {**body, **over}


def _param(**over: Any) -> dict[str, Any]:
    return {"type": "string", "name": "p", "description": "d", "is_required": True, **over}


@pytest.mark.parametrize(("body", "field"), [
    (_tool(name="BadName"), "name"),
    (_tool(type="nope"), "type"),
    (_tool(execution_mode="later"), "execution_mode"),
    (_tool(endpoint_url=None), "endpoint_url"),
    (_tool(endpoint_method=None), "endpoint_method"),
    (_tool(parameters=[_param()]), "parameters.0.location"),
    (_tool(endpoint_method="GET", parameters=[_param(location="request_body")]),
     "parameters.0.location"),
    (_tool(endpoint_url="https://x.example.com/{id}"), "endpoint_url"),
    (_tool(endpoint_url="https://x.example.com/{p}",
           parameters=[_param(is_required=False, location="url_path")]), "parameters.0.location"),
    (_tool(parameters=[_param(type="array", location="request_body")]),
     "parameters.0.item_type"),
    (_tool(parameters=[_param(type="enum", location="request_body")]),
     "parameters.0.enum_values"),
    (_tool(parameters=[_param(name="conversation_id", location="request_body")]),
     "parameters.0.name"),
    (_tool(endpoint_timeout_ms=500), "endpoint_timeout_ms"),
    (_tool(type="custom_websocket", parameters=[_param(location="query_string")]), "parameters"),
    (_tool(type="built_in_transfer_to_agent"), "agents_to_transfer_to"),
    (_tool(type="built_in_transfer_to_agent", agents_to_transfer_to=["ghost"]),
     "agents_to_transfer_to"),
    (_tool(type="built_in_transfer_to_phone_number", phone_number="12345"), "phone_number"),
    (_tool(type="built_in_transfer_to_phone_number", use_agent_phone_number=False,
           detect_voicemail=True), "detect_voicemail"),
    (_tool(type="custom_context"), "context"),
    (_tool(type="custom_context", context="c", wait_for_speech_before_tool_call=True),
     "wait_for_speech_before_tool_call"),
    (_tool(type="built_in_transfer_to_agent", agents_to_transfer_to=["a"],
           forbid_speech_after_tool_call=True), "forbid_speech_after_tool_call"),
    (_tool(type="custom_websocket", execution_mode="sync", wait_for_response=True),
     "wait_for_response"),
])
def test_tool_validation(http: httpx.Client, project: str, body: dict[str, Any],
                         field: str) -> None:
    body = {k: v for k, v in body.items() if v is not None}
    r = http.post("/tools", params={"project": project}, json=body)
    assert r.status_code == 400, r.text
    assert field in r.json()["param_errors"], r.json()
    assert http.get("/tools", params={"project": project}).json()["tools"] == []


def test_tool_conflicts(client: Phonic, project: str) -> None:
    client.tools.create(project=project, name="dup", description="d", type="custom_context",
                        execution_mode="sync", context="x")
    with pytest.raises(ConflictError):
        client.tools.create(project=project, name="dup", description="d",
                            type="custom_context", execution_mode="sync", context="x",
                            request_options=NO_RETRY)
    client.tools.create(project=project, name="dup2", description="d", type="custom_context",
                        execution_mode="sync", context="x")
    with pytest.raises(ConflictError):
        client.tools.update("dup2", project=project, name="dup", request_options=NO_RETRY)
    with pytest.raises(BadRequestError):
        client.tools.update("dup2", project=project, endpoint_timeout_ms=10)
    assert client.tools.get("dup2", project=project).tool.endpoint_timeout_ms == 5000


async def test_tools_async(aclient: AsyncPhonic, project: str) -> None:
    created = await aclient.tools.create(project=project, name="async_ctx", description="d",
                                         type="custom_context", execution_mode="sync",
                                         context="ctx")
    assert (await aclient.tools.get(created.id)).tool.context == "ctx"
    assert (await aclient.tools.update(created.id, context="new")).success
    assert (await aclient.tools.delete(created.id)).success
    with pytest.raises(NotFoundError):
        await aclient.tools.delete(created.id)
