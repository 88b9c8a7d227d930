"""Every tool type, flag and failure path, with real local servers and a scripted LLM."""

from __future__ import annotations

import json
from typing import Any

import pytest

from openline.providers.llm.openai_compat import OpenAICompatLLM, OpenAICompatOptions
from openline.providers.testing import EnergyVAD, FakeSTT, FakeTTS
from openline.voice.session import Providers
from tests.conftest import LiveServer, start_server
from tests.support.llm_server import Reply, ScriptedLLMServer
from tests.tools.conftest import Target, client_for
from tests.tools.session import stored, talk_to

PARAMS = [
    {"type": "string", "name": "order_id", "description": "Order", "is_required": True,
     "location": "url_path"},
    {"type": "array", "item_type": "integer", "name": "lines", "description": "Lines",
     "is_required": False, "location": "request_body"},
    {"type": "boolean", "name": "express", "description": "Express", "is_required": False,
     "location": "query_string"},
]


async def _webhook_agent(server: LiveServer, target: Target, path: str = "/orders/{order_id}",
                         **tool: Any) -> None:
    client = client_for(server)
    await client.tools.create(name="lookup_order", description="Find an order",
                              type="custom_webhook", execution_mode="sync",
                              endpoint_method="POST", endpoint_url=target.base_url + path,
                              endpoint_headers={"Authorization": "Bearer s3cret"},
                              endpoint_timeout_ms=1000, parameters=PARAMS, **tool)
    await client.agents.create(name="shop", tools=["lookup_order"], voice_id="joe",
                               system_prompt="You are a shop assistant.")


def _tool_messages(llm: ScriptedLLMServer, index: int) -> list[dict[str, Any]]:
    return [m for m in llm.requests[index]["messages"] if m["role"] == "tool"]


async def _one_call(server: LiveServer) -> tuple[Any, Any]:
    client = client_for(server)
    async with talk_to(client, agent="shop") as talk:
        await talk.say_as_user("Where is my order?")
        processed = talk.of("tool_call_output_processed")
    conv = await stored(server, talk.conversation_id)
    return processed, conv


async def test_webhook_success(openline: LiveServer, llm: ScriptedLLMServer,
                               target: Target) -> None:
    await _webhook_agent(openline, target)
    llm.script(Reply(tool_calls=[("lookup_order", {"order_id": "A 1", "lines": ["1", 2],
                                                   "express": "true"})]),
               "Your order has shipped.")
    processed, conv = await _one_call(openline)
    [hit] = target.requests
    assert hit["raw_path"] == "/orders/A%201"  # the path parameter is percent-encoded
    assert hit["query"] == {"express": "true"}  # booleans as JSON spells them
    assert json.loads(hit["body"]) == {"lines": [1, 2], "call_info": None}
    assert hit["headers"]["authorization"] == "Bearer s3cret"
    record = conv["items"][-1]["tool_calls"][0]
    assert record["status"] == "success" and record["response_status_code"] == 200
    assert record["response_body"] == {"order": "A 1", "status": "shipped"}
    assert record["endpoint_headers"] == {"Authorization": "***"}  # secrets never stored
    assert processed[0].tool.name == "lookup_order"
    assert processed[0].conversation_item_role == "assistant"
    assert "shipped" in _tool_messages(llm, 1)[0]["content"]
    assert conv["items"][-1]["live_transcript"] == "Your order has shipped."
    tools_offered = [t["function"]["name"] for t in llm.requests[0]["tools"]]
    assert tools_offered == ["lookup_order"]


@pytest.mark.parametrize(("path", "status", "needle"), [
    ("/slow/{order_id}", "timeout", "no reply within 1000 ms"),
    ("/fail/{order_id}", "error", "HTTP 500"),
    ("/text/{order_id}", "error", "non-JSON"),
])
async def test_webhook_failures_become_tool_errors(openline: LiveServer, llm: ScriptedLLMServer,
                                                   target: Target, path: str, status: str,
                                                   needle: str) -> None:
    await _webhook_agent(openline, target, path=path)
    llm.script(Reply(tool_calls=[("lookup_order", {"order_id": "B2"})]),
               "Sorry, I could not look that up.")
    _, conv = await _one_call(openline)
    record = conv["items"][-1]["tool_calls"][0]
    assert record["status"] == status and needle in record["error_message"]
    assert needle in _tool_messages(llm, 1)[0]["content"]  # the model can talk about it
    assert conv["items"][-1]["live_transcript"] == "Sorry, I could not look that up."


async def test_invalid_arguments_and_unknown_tool_are_not_executed(
        openline: LiveServer, llm: ScriptedLLMServer, target: Target) -> None:
    await _webhook_agent(openline, target)
    llm.script(Reply(tool_calls=[("lookup_order", {"lines": [1]}),
                                 ("no_such_tool", {})]), "Which order?")
    _, conv = await _one_call(openline)
    assert target.requests == []
    first, second = conv["items"][-1]["tool_calls"]
    assert first["status"] == "error" and "order_id" in first["error_message"]
    assert second["status"] == "error" and "unknown tool" in second["error_message"]


async def test_private_url_refused_by_default(llm: ScriptedLLMServer, target: Target,
                                              tmp_path: Any) -> None:
    providers = Providers(EnergyVAD(), FakeSTT(), OpenAICompatLLM(OpenAICompatOptions(
        base_url=llm.base_url, model="m")), FakeTTS())
    url = f"sqlite+aiosqlite:///{tmp_path / 'strict.db'}"
    # Stored while private targets were allowed (creation now refuses them up front);
    # the server then restarts strict: the call-time check must still refuse.
    permissive = start_server(url, tmp_path, providers)
    try:
        await _webhook_agent(permissive, target)
    finally:
        permissive.stop()
    server = start_server(url, tmp_path, providers, allow_private_urls=False)
    try:
        llm.script(Reply(tool_calls=[("lookup_order", {"order_id": "C3"})]), "Hmm.")
        _, conv = await _one_call(server)
    finally:
        server.stop()
    assert target.requests == []
    record = conv["items"][-1]["tool_calls"][0]
    assert record["status"] == "error" and "internal address" in record["error_message"]


async def test_context_tool(openline: LiveServer, llm: ScriptedLLMServer) -> None:
    client = client_for(openline)
    await client.tools.create(name="hours", description="Opening hours", type="custom_context",
                              execution_mode="sync", context="We open 9am to 5pm.")
    await client.agents.create(name="shop", tools=["hours"], voice_id="joe")
    llm.script(Reply(tool_calls=[("hours", {})]), "We open at nine.")
    _, conv = await _one_call(openline)
    assert _tool_messages(llm, 1)[0]["content"] == "We open 9am to 5pm."
    assert conv["items"][-1]["tool_calls"][0]["status"] == "success"


async def test_flags_forbid_speech_and_no_chaining(openline: LiveServer, llm: ScriptedLLMServer,
                                                   target: Target) -> None:
    client = client_for(openline)
    await client.tools.create(name="silent_hook", description="d", type="custom_webhook",
                              execution_mode="sync", endpoint_method="POST",
                              endpoint_url=target.base_url + "/orders/{order_id}",
                              parameters=PARAMS[:1], forbid_speech_after_tool_call=True)
    await client.tools.create(name="single_hook", description="d", type="custom_webhook",
                              execution_mode="sync", endpoint_method="POST",
                              endpoint_url=target.base_url + "/orders/{order_id}",
                              parameters=PARAMS[:1], allow_tool_chaining=False)
    await client.agents.create(name="shop", tools=["silent_hook", "single_hook"],
                               voice_id="joe")
    llm.script(Reply("Checking.", tool_calls=[("silent_hook", {"order_id": "1"})]))
    async with talk_to(client, agent="shop") as talk:
        await talk.say_as_user("first")
        assert len(llm.requests) == 1  # no LLM round after a forbid_speech_after tool
        llm.script(Reply(tool_calls=[("single_hook", {"order_id": "2"})]), "Done.")
        await talk.say_as_user("second")
    assert "tools" in llm.requests[1]  # the first round may call tools...
    assert "tools" not in llm.requests[2]  # ... the one after a no-chaining tool may not


async def test_require_and_wait_for_speech_before(openline: LiveServer, llm: ScriptedLLMServer,
                                                  target: Target) -> None:
    client = client_for(openline)
    await client.tools.create(name="polite_hook", description="d", type="custom_webhook",
                              execution_mode="sync", endpoint_method="POST",
                              endpoint_url=target.base_url + "/orders/{order_id}",
                              parameters=PARAMS[:1], require_speech_before_tool_call=True,
                              wait_for_speech_before_tool_call=True)
    await client.agents.create(name="shop", tools=["polite_hook"], voice_id="joe")
    llm.script(Reply(tool_calls=[("polite_hook", {"order_id": "9"})]), "It shipped.")
    async with talk_to(client, agent="shop") as talk:
        await talk.say_as_user("where is order nine")
    assert talk.spoken() == "One moment. It shipped."
    assert target.paths() == ["/orders/9"]


async def test_async_webhook_runs_in_the_background(openline: LiveServer,
                                                    llm: ScriptedLLMServer,
                                                    target: Target) -> None:
    client = client_for(openline)
    await client.tools.create(name="slow_job", description="Start a long job",
                              type="custom_webhook", execution_mode="async",
                              endpoint_method="POST",
                              endpoint_url=target.base_url + "/slow/{order_id}",
                              endpoint_timeout_ms=5000, parameters=PARAMS[:1])
    await client.agents.create(name="shop", tools=["slow_job"], voice_id="joe")
    llm.script(Reply(tool_calls=[("slow_job", {"order_id": "7"})]), "I started it for you.")
    async with talk_to(client, agent="shop") as talk:
        await talk.say_as_user("start the job")
        # The reply did not wait for the 3 s webhook: so far the call is only running.
        assert [m.status for m in talk.of("tool_call_output_processed")] == ["running"]
        done = await talk.until("tool_call_output_processed", within=10)
    assert done.status == "success" and done.response_body == {"late": True}
    assert done.tool_call_id == talk.of("tool_call_output_processed")[0].tool_call_id
    assert "started" in next(m for m in llm.requests[1]["messages"]
                             if m["role"] == "tool")["content"]
    conv = await stored(openline, talk.conversation_id)
    assert conv["items"][-1]["tool_calls"][0]["status"] == "success"  # updated in place
