"""Extraction and evaluation through the official SDK, with a scripted OpenAI-compatible LLM."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from phonic import Phonic, PhonicEnvironment
from phonic.core.api_error import ApiError
from phonic.errors import NotFoundError

from tests.conftest import LiveServer
from tests.postcall.conftest import ServerFactory, scripted_providers
from tests.postcall.seeding import seed
from tests.support.llm_server import ScriptedLLMServer

NO_RETRY: Any = {"max_retries": 0}
FIELDS = [{"name": "name", "type": "string", "description": "caller's full name"},
          {"name": "party_size", "type": "int", "description": None},
          {"name": "deposit", "type": "float", "description": "deposit in dollars"},
          {"name": "vip", "type": "bool", "description": None},
          {"name": "phones", "type": "string[]", "description": None},
          {"name": "seats", "type": "int[]", "description": None}]


def sdk(server: LiveServer) -> Phonic:
    return Phonic(api_key=server.api_key,
                  environment=PhonicEnvironment(base=f"{server.url}/v1", production=server.ws_url))


@pytest.fixture
def server(make_server: ServerFactory, llm_server: ScriptedLLMServer) -> LiveServer:
    return make_server(scripted_providers(llm_server))


def test_extraction_prompts_coerces_and_lists(server: LiveServer,
                                              llm_server: ScriptedLLMServer) -> None:
    client = sdk(server)
    schema = client.extraction_schemas.create(name="booking", prompt="Pull the booking details.",
                                              fields=FIELDS)
    conv_id = seed(server.database_url)
    llm_server.script(json.dumps({
        "name": "Dana Smith", "party_size": "2", "deposit": "$25.50", "vip": "maybe",
        "phones": "555 0199", "seats": [4, "two", 5.0], "extra": "ignored"}))
    result = client.conversations.extract_data(conv_id, schema_id=schema.id).result
    assert result == {"name": "Dana Smith", "party_size": 2, "deposit": 25.5, "vip": None,
                      "phones": ["555 0199"], "seats": [4, 5]}

    request = llm_server.requests[-1]
    prompt = "\n".join(m["content"] for m in request["messages"])
    assert "Pull the booking details." in prompt and "- party_size (int)" in prompt
    assert "User: It's Dana Smith, and my number is 555 0199." in prompt
    assert request["temperature"] == 0.0
    rf = request["response_format"]
    assert rf["type"] == "json_schema" and rf["json_schema"]["strict"] is True
    props = rf["json_schema"]["schema"]["properties"]
    assert props["party_size"]["type"] == ["integer", "null"]
    assert props["seats"] == {"type": ["array", "null"], "items": {"type": "integer"}}
    assert rf["json_schema"]["schema"]["required"] == [f["name"] for f in FIELDS]

    with httpx.Client(base_url=f"{server.url}/v1",
                      headers={"Authorization": f"Bearer {server.api_key}"}) as http:
        listed = http.get(f"/conversations/{conv_id}/extractions").json()["extractions"]
        assert len(listed) == 1 and listed[0]["id"].startswith("conv_extract_")
        assert listed[0]["schema"] == {"id": schema.id, "name": "booking", "isDeleted": False}
        assert listed[0]["result"] == result and listed[0]["created_at"].endswith("Z")
        assert "vip" in listed[0]["notes"] and "seats" in listed[0]["notes"]
        client.extraction_schemas.delete(schema.id)
        again = http.get(f"/conversations/{conv_id}/extractions").json()["extractions"]
        assert again[0]["schema"]["isDeleted"] is True
    sdk_listed = client.conversations.list_extractions(conv_id).extractions
    assert sdk_listed[0].result == result


def test_extraction_errors(server: LiveServer, llm_server: ScriptedLLMServer) -> None:
    client = sdk(server)
    schema = client.extraction_schemas.create(name="x", prompt="p", fields=FIELDS[:2])
    done = seed(server.database_url)
    live = seed(server.database_url, live=True)
    with pytest.raises(NotFoundError):
        client.conversations.extract_data(done, schema_id="conv_extract_schema_nope",
                                          request_options=NO_RETRY)
    with pytest.raises(ApiError) as conflict:  # the SDK has no typed error for this 409
        client.conversations.extract_data(live, schema_id=schema.id, request_options=NO_RETRY)
    assert conflict.value.status_code == 409
    with pytest.raises(NotFoundError):
        client.conversations.extract_data("conv_missing", schema_id=schema.id,
                                          request_options=NO_RETRY)
    llm_server.script("Sorry, I cannot help with that.")  # not JSON at all
    result = client.conversations.extract_data(done, schema_id=schema.id).result
    assert result == {"name": None, "party_size": None}
    assert len(llm_server.requests) == 1  # the refusals never reached the model


def test_evaluation_and_listings(server: LiveServer, llm_server: ScriptedLLMServer) -> None:
    client = sdk(server)
    project = client.projects.get("main").project
    prompt = client.projects.create_eval_prompt(project.id, name="booked",
                                                prompt="Did the caller get a booking?")
    conv_id = seed(server.database_url)
    llm_server.script(
        json.dumps({"reasoning": "The assistant confirmed the booking.", "result": "successful"}),
        json.dumps({"reasoning": "Hard to say.", "result": "perhaps"}))
    first = client.conversations.evaluate(conv_id, prompt_id=prompt.id).evaluation
    assert first.result == "successful"
    request = llm_server.requests[-1]
    text = "\n".join(m["content"] for m in request["messages"])
    assert "Did the caller get a booking?" in text and "you're booked for two" in text
    schema = request["response_format"]["json_schema"]["schema"]
    assert schema["properties"]["result"]["enum"] == ["successful", "unsuccessful", "undecided"]
    second = client.conversations.evaluate(conv_id, prompt_id=prompt.id).evaluation
    assert second.result == "error"  # an answer outside the enum is reported, not guessed

    evals = client.conversations.list_evaluations(conv_id).evals
    assert [e.result for e in evals] == ["successful", "error"]
    assert evals[0].prompt.id == prompt.id and evals[0].prompt.name == "booked"
    assert evals[0].id.startswith("conv_eval_")
    with httpx.Client(base_url=f"{server.url}/v1",
                      headers={"Authorization": f"Bearer {server.api_key}"}) as http:
        per_conv = http.get(f"/conversations/{conv_id}/evals").json()["evals"]
        assert per_conv[0]["reasoning"] == "The assistant confirmed the booking."
        per_project = http.get(f"/projects/{project.id}/conversation_evals").json()["evals"]
        assert {e["conversation_id"] for e in per_project} == {conv_id}
        assert http.get("/projects/proj_missing/conversation_evals").status_code == 404
        unknown = http.post(f"/conversations/{conv_id}/evals",
                            json={"prompt_id": "conv_eval_prompt_nope"})
        assert unknown.status_code == 404
        live = seed(server.database_url, live=True)
        assert http.post(f"/conversations/{live}/evals",
                         json={"prompt_id": prompt.id}).status_code == 409
