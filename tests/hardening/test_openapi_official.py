"""Real responses against Phonic's official OpenAPI response schemas.

Every operation of ``phonic-openapi.json`` that Openline serves is called on a live server
(both storage backends), and each response is validated (jsonschema, Draft 2020-12)
against the official schema documented for its status code. The spec is read from
``shared/specs`` next to the repository (CI has ``shared/`` beside the clone); it is never
copied into the repository. A new route that the official spec documents fails
``test_every_official_operation_we_serve_is_checked`` until this file exercises it.
"""

from __future__ import annotations

import asyncio
import copy
import json
import os
import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from tests.conftest import LiveServer
from tests.seed import finish_conversation, seed_conversations

SPEC_NAME = "phonic-openapi.json"
SPEC_URI = "urn:phonic-openapi"
_PARAM = re.compile(r"\{[^}]+\}")


def find_specs_dir() -> Path:
    """``shared/specs`` beside the repository (or in it), nearest first.

    ``OPENLINE_SHARED_SPECS`` overrides the search. The checkout is ``<root>`` and the
    specs are looked for in ``<root>/shared/specs``, then ``<root>/../shared/specs`` and
    so on upwards, so a worktree nested deeper than a plain clone finds them too."""
    override = os.environ.get("OPENLINE_SHARED_SPECS")
    root = Path(__file__).resolve().parents[2]
    candidates = [Path(override)] if override else []
    candidates += [base / "shared" / "specs" for base in (root, *root.parents)]
    for candidate in candidates:
        if (candidate / SPEC_NAME).is_file():
            return candidate
    looked = ", ".join(str(c) for c in candidates)
    pytest.fail(f"{SPEC_NAME} not found (CI needs shared/ beside the clone); looked in {looked}")


def template(path: str) -> str:
    """``/v1/agents/{name_or_id}`` and ``/agents/{nameOrId}`` both become ``/agents/{}``."""
    return _PARAM.sub("{}", path.removeprefix("/v1"))


class OfficialSpec:
    """The official document with a validator per documented response."""

    def __init__(self, document: dict[str, Any]) -> None:
        doc = copy.deepcopy(document)
        schemas = doc["components"]["schemas"]
        # A defect of the official spec, not of Openline: ``Error`` is
        # ``oneOf: [BasicError, ValidationError]``, but BasicError requires nothing and
        # allows any extra key, so every ValidationError body matches both and ``oneOf``
        # can never accept one. Read as ``anyOf``, which is what the spec means.
        schemas["Error"] = {"anyOf": schemas["Error"]["oneOf"]}
        self.doc = doc
        resource = Resource.from_contents(doc, default_specification=DRAFT202012)
        self.registry: Registry[Any] = Registry().with_resource(SPEC_URI, resource)
        self.paths = {template(p): p for p in doc["paths"]}
        self._patterns = [(re.compile("^" + _PARAM.sub("[^/]+", p) + "$"), p)
                          for p in doc["paths"]]

    def resolve(self, method: str, path: str) -> str | None:
        """The official path template of a concrete call (literal segments win)."""
        hits = [p for pattern, p in self._patterns
                if pattern.match(path) and method in self.doc["paths"][p]]
        return min(hits, key=lambda p: p.count("{"), default=None)

    def operations(self) -> set[tuple[str, str]]:
        return {(method, template(path)) for path, ops in self.doc["paths"].items()
                for method in ops if method in ("get", "post", "put", "patch", "delete")}

    def problems(self, method: str, path: str, response: httpx.Response) -> list[str]:
        """What is wrong with ``response`` for the official operation ``method path``."""
        official = self.resolve(method, path)
        if official is None:
            return [f"{method.upper()} {path}: not an operation of the official spec"]
        responses = self.doc["paths"][official][method]["responses"]
        status = str(response.status_code)
        where = f"{method.upper()} {official} -> {status}"
        if status not in responses:
            return [f"{where}: status not documented by the official spec "
                    f"(documented: {', '.join(responses)})"]
        content = responses[status].get("content") or {}
        media = response.headers.get("content-type", "").split(";")[0].strip()
        if not content:
            return []
        if media not in content:
            return [f"{where}: content type {media!r} not in {sorted(content)}"]
        if media != "application/json":
            return []
        pointer = "/".join(["", "paths", official.replace("~", "~0").replace("/", "~1"),
                            method, "responses", status, "content", "application~1json",
                            "schema"])
        validator = Draft202012Validator({"$ref": f"{SPEC_URI}#{pointer}"},
                                         registry=self.registry)
        return [f"{where}: {_explain(error)}" for error in validator.iter_errors(response.json())]


def _explain(error: ValidationError) -> str:
    """The error, or for ``oneOf``/``anyOf`` the deepest reason inside it."""
    inner = best_match(error.context) if error.context else None
    error = inner if inner is not None and len(inner.absolute_path) else error
    return f"{error.json_path}: {error.message[:300]}"


@pytest.fixture(scope="module")
def official() -> OfficialSpec:
    return OfficialSpec(json.loads((find_specs_dir() / SPEC_NAME).read_text()))


@dataclass
class Exercise:
    """Calls the API and records ``(official method, official path, response)``."""

    http: httpx.Client
    calls: list[tuple[str, str, httpx.Response]] = field(default_factory=list)

    def call(self, method: str, path: str, expect: int | None = None,
             **kwargs: Any) -> httpx.Response:
        response = self.http.request(method.upper(), path, **kwargs)
        self.calls.append((method, path.split("?")[0], response))
        if expect is not None:
            assert response.status_code == expect, (method, path, response.text[:500])
        return response


@pytest.fixture
def exercise(live_server: LiveServer) -> Iterator[Exercise]:
    with httpx.Client(base_url=f"{live_server.url}/v1", timeout=30,
                      headers={"Authorization": f"Bearer {live_server.api_key}"}) as http:
        yield Exercise(http)


def _resources(ex: Exercise, project: str) -> dict[str, str]:
    """Projects, tools, extraction schemas and agents: create, read, change."""
    q = {"project": project}
    ex.call("post", "/projects", 201, json={"name": project})
    ex.call("get", "/projects", 200)
    ex.call("get", f"/projects/{project}", 200)
    ex.call("patch", f"/projects/{project}", 200, json={"max_active_conversations": 5})
    ex.call("post", "/tools", 201, params=q, json={
        "name": "lookup_order", "description": "Look up an order", "type": "custom_webhook",
        "execution_mode": "sync", "endpoint_method": "POST",
        "endpoint_url": "https://example.com/orders",
        "endpoint_headers": {"Authorization": "Bearer secret"},
        "parameters": [{"type": "string", "name": "order_id", "description": "the order",
                        "is_required": True, "location": "request_body"}]})
    tool = ex.call("post", "/tools", 201, params=q, json={
        "name": "faq", "description": "Answers", "type": "custom_context",
        "execution_mode": "sync", "context": "We open at nine."}).json()
    ex.call("get", "/tools", 200, params=q)
    ex.call("get", "/tools/lookup_order", 200, params=q)
    ex.call("patch", f"/tools/{tool['id']}", 200, json={"description": "FAQ answers"})
    schema = ex.call("post", "/extraction_schemas", 201, params=q, json={
        "name": "booking", "prompt": "Pull the booking.",
        "fields": [{"name": "date", "type": "string", "description": "the day"}]}).json()
    ex.call("get", "/extraction_schemas", 200, params=q)
    ex.call("get", f"/extraction_schemas/{schema['id']}", 200)
    ex.call("patch", f"/extraction_schemas/{schema['id']}", 200, json={"prompt": "Pull it."})
    agent = ex.call("post", "/agents", 201, params=q, json={
        "name": "front-desk", "system_prompt": "Be kind to {{customer_name}}.",
        "welcome_message": "Hello!", "tools": ["faq", "keypad_input"],
        "tasks": [{"name": "greet", "description": "Say hello"}],
        "template_variables": {"customer_name": {"default_value": "Sam"}},
        "boosted_keywords": ["Openline"],
        "pronunciation_dictionary": [{"word": "Phuket", "pronunciation": "Poo-ket"}]}).json()
    ex.call("post", "/agents", 201, params=q, json={
        "name": "minimal", "data_retention_policy": {"zero_data_retention": True}})
    ex.call("get", "/agents", 200, params=q)
    ex.call("get", "/agents/front-desk", 200, params=q)
    ex.call("patch", f"/agents/{agent['id']}", 200, json={"audio_speed": 1.1})
    ex.call("put", "/agents/upsert", 200, params=q, json={
        "name": "front-desk", "system_prompt": "Be brief.", "welcome_message": "Hello!",
        "tools": ["faq"]})
    number = {"phone_number": "+15551230001"}
    ex.call("post", "/agents/front-desk/custom-phone-numbers", 200, params=q, json=number)
    ex.call("patch", "/agents/front-desk/phone-numbers", 200, params=q, json={
        **number, "configuration_endpoint": {"url": "https://example.com/config"}})
    ex.call("delete", "/agents/front-desk/custom-phone-numbers", 200, params=q, json=number)
    return {"agent": agent["id"], "tool": tool["id"], "schema": schema["id"]}


def _workspace_and_credentials(ex: Exercise, agent_id: str) -> None:
    ex.call("get", "/voices", 200, params={"model": "merritt"})
    voice = ex.http.get("/voices").json()["voices"][0]["id"]
    ex.call("get", f"/voices/{voice}", 200)
    ex.call("get", "/workspace", 200)
    ex.call("patch", "/workspace", 200, json={"ip_allowlist": ["203.0.113.0/24"]})
    key = ex.call("post", "/api_keys", 201, json={"name": "ci"}).json()
    ex.call("patch", f"/api_keys/{key['id']}", 200, json={"name": "ci-renamed"})
    ex.call("post", f"/api_keys/{key['id']}/rotate", 200)
    ex.call("delete", f"/api_keys/{key['id']}", 200)
    ex.call("post", "/auth/session_token", 200, json={"ttl_seconds": 300})
    ex.call("post", "/auth/conversation_token", 200, json={"agent_id": agent_id})
    ex.call("post", "/tts/stream", 200, json={"text": "Hello there.",
                                               "output_format": "mulaw_8000"})
    ex.call("post", "/tts/stream", 200, json={"text": "Hello there."})


async def _call(server: LiveServer, config: dict[str, Any]) -> str:
    """One real conversation over the STS socket: the agent's welcome, then hang up."""
    async with websockets.connect(f"{server.ws_url}/v1/sts/ws", additional_headers={
            "Authorization": f"Bearer {server.api_key}"}) as socket:
        await socket.send(json.dumps({"type": "config", "input_format": "pcm_16000",
                                      "output_format": "pcm_16000", **config}))
        conversation_id = ""
        async with asyncio.timeout(20):
            async for raw in socket:
                message = json.loads(raw)
                conversation_id = message.get("conversation_id", conversation_id)
                if message["type"] == "assistant_finished_speaking":
                    return conversation_id
    raise AssertionError("the call ended before the welcome message")


def _ended(ex: Exercise, conversation_id: str) -> None:
    deadline = time.monotonic() + 10
    while ex.http.get(f"/conversations/{conversation_id}").json()["conversation"]["ended_at"] \
            is None:
        assert time.monotonic() < deadline, "the conversation did not end"
        time.sleep(0.05)


def _conversations(ex: Exercise, server: LiveServer, project: str, ids: dict[str, str]
                   ) -> None:
    done = asyncio.run(_call(server, {"agent": "front-desk", "project": project,
                                      "external_id": "ext-" + project}))
    _ended(ex, done)
    ex.call("get", "/conversations", 200, params={"project": project, "limit": 10})
    ex.call("get", "/conversations", 200, params={"project": project,
                                                  "external_id": "ext-" + project})
    ex.call("get", f"/conversations/{done}", 200)
    ex.call("get", f"/conversations/{done}/analysis", 200)
    ex.call("post", f"/conversations/{done}/extractions", 201, json={"schema_id": ids["schema"]})
    ex.call("get", f"/conversations/{done}/extractions", 200)
    prompt = ex.call("post", f"/projects/{project}/conversation_eval_prompts", 201,
                     json={"name": "polite", "prompt": "Was the agent polite?"}).json()
    ex.call("get", f"/projects/{project}/conversation_eval_prompts", 200)
    ex.call("post", f"/conversations/{done}/evals", 201, json={"prompt_id": prompt["id"]})
    ex.call("get", f"/conversations/{done}/evals", 200)
    ex.call("get", f"/projects/{project}/conversation_evals", 200)
    ex.call("post", f"/conversations/{done}/cancel", 409)
    _replays(ex, done)
    # A row that claims to be live (seeded: another node's lease, so no reaper closes it
    # mid-test, but no node runs it) for the live-only answers.
    (live,) = seed_conversations(server.database_url, project, [
        {"started_at": datetime(2025, 5, 1, 12, 0, tzinfo=UTC), "live": True, "leased": True}])
    ex.call("post", f"/conversations/{live}/cancel")  # 200 or 504: no node runs it
    ex.call("delete", f"/conversations/{live}", 409)
    ex.call("delete", f"/conversations/{done}", 200)
    ex.call("post", f"/conversations/{live}/replay", 409, json={})
    finish_conversation(server.database_url, live)
    ex.call("post", f"/conversations/{live}/replay", 422, json={})  # no agent, no audio
    ex.call("delete", f"/conversations/{live}", 200)


def _replays(ex: Exercise, done: str) -> None:
    """Both replays of a finished call, and their refusals."""
    items = ex.http.get(f"/conversations/{done}").json()["conversation"]["items"]
    assistant = next(i for i in items if i["role"] == "assistant")
    ex.call("post", f"/conversation_items/{assistant['id']}/replay", 200,
            json={"system_prompt": "Be brief.", "num_responses": 2})
    ex.call("post", f"/conversation_items/{assistant['id']}/replay", 400,
            json={"num_responses": 0})
    ex.call("post", "/conversation_items/item_missing/replay", 404, json={})
    started = ex.call("post", f"/conversations/{done}/replay", 200, json={}).json()
    _ended(ex, started["conversation_id"])
    ex.call("post", "/conversations/conv_missing/replay", 404, json={})


def _errors(ex: Exercise, project: str) -> None:
    """The documented error statuses, with their official bodies."""
    q = {"project": project}
    ex.call("get", "/agents/no-such-agent", 404, params=q)
    ex.call("post", "/agents", 400, params=q, json={"name": "Bad Name!"})
    ex.call("patch", "/agents/front-desk", 400, params=q, json={"audio_speed": 9})
    ex.call("post", "/tools", 409, params=q, json={
        "name": "faq", "description": "Again", "type": "custom_context",
        "execution_mode": "sync", "context": "x"})
    ex.call("get", "/tools/no_such_tool", 404, params=q)
    ex.call("get", "/extraction_schemas/nope", 404, params=q)
    ex.call("post", "/extraction_schemas", 400, params=q, json={"name": ""})
    ex.call("get", "/conversations", 400, params={"project": project, "limit": 0})
    ex.call("get", "/conversations/conv_missing", 404)
    ex.call("post", "/tts/stream", 400, json={"text": "hi", "output_format": {}})
    # the test server has no Twilio: a precise 400 (the 201 is checked in tests/telephony)
    ex.call("post", "/conversations/outbound_call", 400, json={
        "to_phone_number": "+15555550123", "config": {"agent": "x"}})
    ex.call("post", "/conversations/outbound_call", 400, json={})
    # no X-Sip-Address header: a precise 400 (calls over real trunks are in tests/sip)
    ex.call("post", "/conversations/sip/outbound_call", 400, json={
        "to_phone_number": "+15555550123", "config": {"agent": "x"}})
    ex.call("get", "/projects/no-such-project", 404)
    ex.call("post", "/projects", 400, json={"name": "UPPER"})
    ex.call("get", "/workspace", 401, headers={"Authorization": "Bearer ol_wrong"})
    ex.call("post", "/api_keys", 400, json={"name": ""})
    ex.call("post", "/auth/conversation_token", 404, json={"agent_id": "agent_missing"})


def _teardown(ex: Exercise, project: str, ids: dict[str, str]) -> None:
    q = {"project": project}
    ex.call("delete", f"/agents/{ids['agent']}", 200)
    ex.call("delete", "/agents/minimal", 200, params=q)
    ex.call("delete", f"/tools/{ids['tool']}", 200)
    ex.call("delete", "/tools/lookup_order", 200, params=q)
    ex.call("delete", f"/extraction_schemas/{ids['schema']}", 200)
    ex.call("delete", f"/projects/{project}", 200)


@pytest.fixture
def exercised(exercise: Exercise, live_server: LiveServer) -> Exercise:
    project = "spec-" + uuid.uuid4().hex[:8]
    ids = _resources(exercise, project)
    _workspace_and_credentials(exercise, ids["agent"])
    _conversations(exercise, live_server, project, ids)
    _errors(exercise, project)
    _teardown(exercise, project, ids)
    return exercise


def test_responses_match_the_official_schemas(exercised: Exercise,
                                              official: OfficialSpec) -> None:
    problems = [p for method, path, response in exercised.calls
                for p in official.problems(method, path, response)]
    assert not problems, "\n".join(problems)


def test_every_official_operation_we_serve_is_checked(exercised: Exercise,
                                                      official: OfficialSpec,
                                                      live_server: LiveServer) -> None:
    published = httpx.get(f"{live_server.url}/openapi.json").json()
    served = {(method, template(path)) for path, ops in published["paths"].items()
              for method in ops}
    checked = {(method, template(official.resolve(method, path) or path))
               for method, path, _ in exercised.calls}
    missing = sorted((served & official.operations()) - checked)
    assert not missing, f"served, documented by Phonic, but not checked here: {missing}"
