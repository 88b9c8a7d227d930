"""Field limits, the stored-text rule and bounded lists, through the real REST API and the
STS socket (both storage backends). Each refusal is a 400 in Phonic's ValidationError
shape whose ``param_errors`` names the field; values at the limit are accepted."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import websockets

from openline.domain import limits as L
from tests.api.conftest import unique
from tests.conftest import LiveServer

TOOL = {"name": "faq", "description": "Answers", "type": "custom_context",
        "execution_mode": "sync", "context": "We open at nine."}
PARAM = {"type": "string", "name": "q", "description": "the question", "is_required": True}


def _var(default: str) -> dict[str, Any]:
    """A template variable as the API answers it."""
    return {"default_value": default, "is_boosted_keyword": False}


@pytest.fixture
def http(live_server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"{live_server.url}/v1", timeout=30,
                      headers={"Authorization": f"Bearer {live_server.api_key}"}) as client:
        yield client


@pytest.fixture
def project(http: httpx.Client) -> Iterator[str]:
    """A fresh project, so tests never see each other's resources."""
    name = unique("lim")
    assert http.post("/projects", json={"name": name}).status_code == 201
    yield name
    http.delete(f"/projects/{name}")


def assert_refused(response: httpx.Response, field: str) -> str:
    assert response.status_code == 400, response.text[:300]
    body = response.json()
    assert set(body) == {"error", "param_errors"} and body["error"]["message"]
    assert field in body["param_errors"], body["param_errors"]
    return str(body["param_errors"][field])


# --- lengths and counts ------------------------------------------------------------------------

AGENT_LIMITS: list[tuple[str, Any, Any, str]] = [
    # (field, the largest value accepted, the smallest refused, the param_errors key)
    ("system_prompt", "p" * L.MAX_PROMPT_CHARS, "p" * (L.MAX_PROMPT_CHARS + 1), "system_prompt"),
    ("welcome_message", "w" * L.MAX_MESSAGE_CHARS, "w" * (L.MAX_MESSAGE_CHARS + 1),
     "welcome_message"),
    ("no_input_poke_text", "x" * L.MAX_MESSAGE_CHARS, "x" * (L.MAX_MESSAGE_CHARS + 1),
     "no_input_poke_text"),
    ("boosted_keywords", ["k"] * L.MAX_KEYWORDS, ["k"] * (L.MAX_KEYWORDS + 1),
     "boosted_keywords"),
    ("boosted_keywords", ["k" * L.MAX_KEYWORD_CHARS], ["k" * (L.MAX_KEYWORD_CHARS + 1)],
     "boosted_keywords.0"),
    ("template_variables", {f"v{i}": _var("x") for i in range(100)},
     {f"v{i}": _var("x") for i in range(101)}, "template_variables"),
    ("template_variables", {"k" * 64: _var("x")},
     {"k" * 65: _var("x")}, "template_variables"),
    ("template_variables", {"v": _var("d" * L.MAX_TEMPLATE_VALUE_CHARS)},
     {"v": {"default_value": "d" * (L.MAX_TEMPLATE_VALUE_CHARS + 1)}},
     "template_variables.v.default_value"),
    ("tasks", [{"name": f"t{i}", "description": "d"} for i in range(L.MAX_TASKS)],
     [{"name": f"t{i}", "description": "d"} for i in range(L.MAX_TASKS + 1)], "tasks"),
    ("tasks", [{"name": "t", "description": "d" * L.MAX_DESCRIPTION_CHARS}],
     [{"name": "t", "description": "d" * (L.MAX_DESCRIPTION_CHARS + 1)}],
     "tasks.0.description"),
    ("voice_id", "v" * L.MAX_SHORT_CHARS, "v" * (L.MAX_SHORT_CHARS + 1), "voice_id"),
    ("no_input_poke_sec", 86_400, 86_401, "no_input_poke_sec"),
]


@pytest.mark.parametrize(("field", "largest", "refused", "key"), AGENT_LIMITS,
                         ids=[f"{c[0]}-{c[3]}" for c in AGENT_LIMITS])
def test_agent_field_limits(http: httpx.Client, project: str, field: str, largest: Any,
                            refused: Any, key: str) -> None:
    q = {"project": project}
    name = unique("limits")
    assert http.post("/agents", params=q, json={"name": name, field: largest}
                     ).status_code == 201
    assert_refused(http.post("/agents", params=q, json={"name": unique("over"), field: refused}),
             key)
    assert_refused(http.patch(f"/agents/{name}", params=q, json={field: refused}), key)
    assert http.get(f"/agents/{name}", params=q).json()["agent"][field] == largest


def test_names_are_bounded(http: httpx.Client, project: str) -> None:
    q = {"project": project}
    assert http.post("/agents", params=q, json={"name": "a" * 128}).status_code == 201
    assert_refused(http.post("/agents", params=q, json={"name": "a" * 129}), "name")
    assert_refused(http.post("/projects", json={"name": "p" * 129}), "name")
    assert_refused(http.post("/tools", params=q, json={**TOOL, "name": "t" * 65}), "name")
    assert_refused(http.post("/api_keys", json={"name": "k" * 129}), "name")
    assert_refused(http.post("/extraction_schemas", params=q, json={"name": "s" * 129}), "name")


def test_tool_limits(http: httpx.Client, project: str) -> None:
    q = {"project": project}
    params = [{**PARAM, "name": f"p{i}"} for i in range(L.MAX_TOOL_PARAMETERS)]
    assert http.post("/tools", params=q, json={**TOOL, "parameters": params}
                     ).status_code == 201
    assert_refused(http.post("/tools", params=q, json={
        **TOOL, "name": "more", "parameters": [*params, {**PARAM, "name": "one_more"}]}),
        "parameters")
    assert_refused(http.post("/tools", params=q, json={
        **TOOL, "name": "wordy", "description": "d" * (L.MAX_DESCRIPTION_CHARS + 1)}),
        "description")
    assert_refused(http.post("/tools", params=q, json={
        **TOOL, "name": "deep", "parameters": {"type": "object", "properties": {
            f"p{i}": {"type": "string"} for i in range(L.MAX_TOOL_PARAMETERS + 1)}}}),
        "parameters")
    assert_refused(http.patch("/tools/faq", params=q,
                              json={"context": "c" * (L.MAX_PROMPT_CHARS + 1)}), "context")


def test_extraction_schema_and_eval_prompt_limits(http: httpx.Client, project: str) -> None:
    q = {"project": project}
    fields = [{"name": f"f{i}", "type": "string"} for i in range(L.MAX_EXTRACTION_FIELDS + 1)]
    assert_refused(http.post("/extraction_schemas", params=q, json={"name": "s", "fields": fields}),
             "fields")
    assert_refused(http.post("/extraction_schemas", params=q, json={
        "name": "s", "prompt": "p" * (L.MAX_PROMPT_CHARS + 1)}), "prompt")
    assert_refused(http.post(f"/projects/{project}/conversation_eval_prompts", json={
        "name": "e", "prompt": "p" * (L.MAX_PROMPT_CHARS + 1)}), "prompt")


def test_many_edits_cannot_grow_an_agent_past_the_document_cap(http: httpx.Client,
                                                               project: str) -> None:
    q = {"project": project}
    name = unique("grow")
    big = "p" * L.MAX_PROMPT_CHARS
    assert http.post("/agents", params=q, json={"name": name, "system_prompt": big}
                     ).status_code == 201
    variables = {f"v{i}": {"default_value": "d" * L.MAX_TEMPLATE_VALUE_CHARS}
                 for i in range(10)}
    assert http.patch(f"/agents/{name}", params=q, json={"template_variables": variables}
                      ).status_code == 200
    more = {f"v{i}": {"default_value": "d" * L.MAX_TEMPLATE_VALUE_CHARS} for i in range(20)}
    message = assert_refused(http.patch(f"/agents/{name}", params=q,
                                  json={"template_variables": more}), "body")
    assert str(L.MAX_DOCUMENT_BYTES) in message


def test_a_project_holds_a_bounded_number_of_agents(http: httpx.Client, project: str) -> None:
    q = {"project": project}
    for i in range(L.MAX_AGENTS_PER_PROJECT):
        assert http.post("/agents", params=q, json={"name": f"a{i}"}).status_code == 201
    refused = http.post("/agents", params=q, json={"name": "one-too-many"})
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "limit_reached"
    assert "project" in refused.json()["param_errors"]
    assert len(http.get("/agents", params=q).json()["agents"]) == L.MAX_AGENTS_PER_PROJECT


def test_list_pages_are_bounded(http: httpx.Client, project: str) -> None:
    assert_refused(http.get("/conversations", params={"project": project, "limit": 101}), "limit")
    assert_refused(http.get("/webhook_endpoints/whep_x/deliveries", params={"limit": 1001}),
                   "limit")


# --- control characters ------------------------------------------------------------------------

HOSTILE = ["nul\x00here", "escape \x1b[31mred", "bell\x07", "del\x7f", "c1\x85"]


@pytest.mark.parametrize("text", HOSTILE, ids=["nul", "escape", "bell", "del", "c1"])
@pytest.mark.parametrize(("field", "wrap", "key"), [
    ("system_prompt", lambda t: t, "system_prompt"),
    ("welcome_message", lambda t: t, "welcome_message"),
    ("no_input_poke_text", lambda t: t, "no_input_poke_text"),
    ("boosted_keywords", lambda t: ["ok", t], "boosted_keywords.1"),
    ("template_variables", lambda t: {"v": {"default_value": t}},
     "template_variables.v.default_value"),
    ("tasks", lambda t: [{"name": "t", "description": t}], "tasks.0.description"),
    ("pronunciation_dictionary", lambda t: [{"word": t[:10], "pronunciation": "x"}],
     "pronunciation_dictionary.0.word"),
])
def test_agent_text_with_control_characters_is_refused(
        http: httpx.Client, project: str, field: str, wrap: Any, key: str, text: str) -> None:
    q = {"project": project}
    message = assert_refused(http.post("/agents", params=q,
                                 json={"name": unique("ctl"), field: wrap(text)}), key)
    assert "control characters" in message
    name = unique("ok")
    assert http.post("/agents", params=q, json={"name": name}).status_code == 201
    assert_refused(http.patch(f"/agents/{name}", params=q, json={field: wrap(text)}), key)


def test_newlines_tabs_and_crlf_are_kept(http: httpx.Client, project: str) -> None:
    q = {"project": project}
    prompt = "Line one\r\nLine two\n\tindented — ünïcode 🙂"
    name = unique("multi")
    assert http.post("/agents", params=q, json={"name": name, "system_prompt": prompt}
                     ).status_code == 201
    assert http.get(f"/agents/{name}", params=q).json()["agent"]["system_prompt"] == prompt


def test_lone_surrogates_are_refused(http: httpx.Client, project: str) -> None:
    raw = b'{"name": "surrogate", "system_prompt": "half \\ud800 a pair"}'
    assert_refused(http.post("/agents", params={"project": project}, content=raw,
                       headers={"content-type": "application/json"}), "system_prompt")


@pytest.mark.parametrize(("path", "body", "key"), [
    ("/tools", {**TOOL, "description": "a\x00b"}, "description"),
    ("/tools", {**TOOL, "context": "a\x00b"}, "context"),
    ("/tools", {**TOOL, "parameters": [{**PARAM, "description": "a\x1bb"}]},
     "parameters.0.description"),
    ("/tools", {**TOOL, "parameters": {"type": "object", "properties": {
        "q": {"type": "string", "description": "a\x00b"}}}}, "parameters"),
    ("/extraction_schemas", {"name": "s", "prompt": "a\x00b"}, "prompt"),
    ("/extraction_schemas", {"name": "s", "fields": [
        {"name": "f", "type": "string", "description": "a\x00b"}]}, "fields.0.description"),
    ("/api_keys", {"name": "key\x00"}, "name"),
    ("/webhook_endpoints", {"url": "https://example.com/hook", "description": "a\x00b"},
     "description"),
    ("/auth/conversation_token", {"agent_id": "agent_\x00"}, "agent_id"),
    ("/auth/session_token", {"conversation_ids": ["conv_\x00"]}, "conversation_ids"),
])
def test_other_stored_text_with_control_characters_is_refused(
        http: httpx.Client, project: str, path: str, body: dict[str, Any], key: str) -> None:
    assert_refused(http.post(path, params={"project": project}, json=body), key)


def test_updates_and_references_with_control_characters_are_refused(
        http: httpx.Client, project: str) -> None:
    q = {"project": project}
    assert http.post("/tools", params=q, json=TOOL).status_code == 201
    assert_refused(http.patch("/tools/faq", params=q, json={"description": "x\x00"}), "description")
    assert_refused(http.patch(f"/projects/{project}", json={"default_agent": "a\x00"}),
             "default_agent")
    assert_refused(http.patch("/workspace", json={"ip_allowlist": ["10.0.0.0/8\x00"]}),
             "ip_allowlist")
    assert_refused(http.post("/conversations/conv_x/extractions", json={"schema_id": "s\x00"}),
             "schema_id")


@pytest.mark.parametrize("path", [
    "/agents/a%00b", "/conversations/conv_%00", "/tools/t%1b", "/projects/p%00",
    "/agents?project=a%00b", "/conversations?external_id=%00", "/voices/v%00",
])
def test_parameters_with_control_characters_are_a_400(http: httpx.Client, path: str) -> None:
    """On PostgreSQL a NUL in a lookup was a 500 (it refuses NUL in text)."""
    response = http.get(path)
    assert response.status_code == 400, response.text[:300]
    assert "control characters" in next(iter(response.json()["param_errors"].values()))


# --- speech ------------------------------------------------------------------------------------

def test_tts_speaks_text_with_a_nul(http: httpx.Client) -> None:
    """Text to speak is not stored: control characters are removed and the rest is spoken."""
    whole = http.post("/tts", json={"text": "Hello\x00 world\x1b[0m", "output_format": "pcm_16000"})
    assert whole.status_code == 200 and len(base64.b64decode(whole.json()["audio"])) > 1000
    with http.stream("POST", "/tts/stream", json={"text": "Hi\x00 there"}) as streamed:
        assert streamed.status_code == 200
        assert streamed.headers["content-type"] == "audio/pcm"
        assert len(streamed.read()) > 1000


def test_tts_text_with_nothing_to_speak_is_a_400(http: httpx.Client) -> None:
    for path in ("/tts", "/tts/stream"):
        message = assert_refused(http.post(path, json={"text": "\x00\x01\u200b"}), "text")
        assert "at least 1 character" in message


@pytest.mark.parametrize(("field", "value"), [
    ("output_format", {}), ("output_format", 5), ("output_format", "pcm_1"),
    ("text", {}), ("text", ["a"]), ("text", None), ("speed", "fast"), ("speed", True),
    ("speed", {}), ("voice_id", {}), ("voice_id", []), ("voice_id", 3), ("model", {}),
    ("model", 1),
])
def test_tts_stream_wrong_types_are_a_400(http: httpx.Client, field: str, value: Any) -> None:
    assert_refused(http.post("/tts/stream", json={"text": "Hello", field: value}), field)


# --- per-call overrides on the STS socket ------------------------------------------------------

async def _config_error(server: LiveServer, config: dict[str, Any]) -> dict[str, Any]:
    async with websockets.connect(f"{server.ws_url}/v1/sts/ws", additional_headers={
            "Authorization": f"Bearer {server.api_key}"}) as ws:
        await ws.send(json.dumps({"type": "config", "input_format": "pcm_16000",
                                  "output_format": "pcm_16000", **config}))
        async with asyncio.timeout(10):
            while True:
                message = json.loads(await ws.recv())
                if message["type"] in ("error", "conversation_created"):
                    break
        with contextlib.suppress(websockets.ConnectionClosed):
            await ws.recv()
        assert ws.close_code == 1008
        return message


@pytest.mark.parametrize(("field", "value", "key"), [
    ("system_prompt", "be\x00nice", "system_prompt"),
    ("welcome_message", "hi\x1b[2J", "welcome_message"),
    ("boosted_keywords", ["k" * (L.MAX_KEYWORD_CHARS + 1)], "boosted_keywords.0"),
    ("system_prompt", "p" * (L.MAX_PROMPT_CHARS + 1), "system_prompt"),
])
async def test_sts_config_overrides_obey_the_same_rules(
        live_server: LiveServer, field: str, value: Any, key: str) -> None:
    message = await _config_error(live_server, {field: value})
    assert message["type"] == "error" and message["error"]["code"] == "invalid_config"
    assert key in message["param_errors"], message


# --- the rules as functions (for callers outside the domain models) ---------------------------

def test_per_call_template_values_rule() -> None:
    """``template_value_errors`` is what a per-call ``template_variables`` map must pass."""
    assert L.template_value_errors({"name": "Dana", "note": "line\nbreak"}) == {}
    assert L.template_value_errors({"name": "Da\x00na"}) == {
        "template_variables.name": "must not contain control characters (U+0000 at position 2)"}
    assert L.template_value_errors({"name": 3}) == {"template_variables.name": "must be a string"}
    assert L.template_value_errors({"v": "x" * (L.MAX_TEMPLATE_VALUE_CHARS + 1)}) == {
        "template_variables.v": f"at most {L.MAX_TEMPLATE_VALUE_CHARS} characters"}
    assert list(L.template_value_errors({"k" * 65: "x"})) == ["template_variables"]
    assert list(L.template_value_errors({f"v{i}": "x" for i in range(101)})) == [
        "template_variables"]
    assert L.template_value_errors("x") == {"template_variables": "must map names to strings"}


def test_free_form_json_rule() -> None:
    assert L.check_json({"a": [1, "two", {"three": None}]}) == {"a": [1, "two", {"three": None}]}
    deep: dict[str, Any] = {}
    node = deep
    for _ in range(L.MAX_JSON_DEPTH + 1):
        node["x"] = {}
        node = node["x"]
    for bad, message in ((deep, "levels of nesting"), ({"k\x00": 1}, "control characters"),
                         ({"n": float("nan")}, "NaN"),
                         ({"big": "x" * L.MAX_JSON_BYTES}, "bytes of JSON")):
        with pytest.raises(ValueError, match=message):
            L.check_json(bad)
