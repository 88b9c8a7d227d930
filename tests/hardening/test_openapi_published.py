"""The live server's ``/openapi.json`` documents what it really answers.

(The schemathesis run in ``test_openapi_fuzz.py`` checks real answers against this
document; these tests pin what the document must say at all.)"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import start_server

PHONIC_ERRORS = {"#/components/schemas/BasicError", "#/components/schemas/ValidationError",
                 "#/components/schemas/Error"}


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    data_dir: Path = tmp_path_factory.mktemp("openapi")
    server = start_server(f"sqlite+aiosqlite:///{data_dir / 'openline.db'}", data_dir)
    try:
        yield httpx.get(f"{server.url}/openapi.json").json()
    finally:
        server.stop()


def _operations(doc: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            yield f"{method.upper()} {path}", op


def test_no_422_and_phonic_error_bodies_everywhere(published: dict[str, Any]) -> None:
    assert "HTTPValidationError" not in published["components"]["schemas"]
    for name, op in _operations(published):
        responses = op["responses"]
        assert "422" not in responses, name
        assert "400" in responses and "403" in responses, name
        for status, response in responses.items():
            if status.startswith(("4", "5")):
                schema = response["content"]["application/json"]["schema"]
                assert schema["$ref"] in PHONIC_ERRORS, (name, status)


def test_credentials_and_bodies_are_documented(published: dict[str, Any]) -> None:
    assert published["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    signed = {"GET /v1/recordings/{conversation_id}", "GET /v1/voices/{voice_id}/preview"}
    for name, op in _operations(published):
        if name in signed:
            assert op["security"] == [] and "401" not in op["responses"], name
        else:
            assert op["security"] == [{"bearerAuth": []}], name
            assert "401" in op["responses"], name
        if "requestBody" in op:
            assert "413" in op["responses"], name
        if "{" in name or any(p["name"] == "project" for p in op.get("parameters", [])):
            assert "404" in op["responses"], name
    for name in ("PATCH /v1/workspace", "POST /v1/conversations/{conversation_id}/extractions",
                 "POST /v1/conversations/{conversation_id}/evals"):
        assert "requestBody" in dict(_operations(published))[name], name


def test_conflicts_are_documented_where_they_happen(published: dict[str, Any]) -> None:
    ops = dict(_operations(published))
    for name in ("POST /v1/agents", "PUT /v1/agents/upsert", "POST /v1/tools",
                 "PATCH /v1/tools/{name_or_id}", "POST /v1/projects",
                 "DELETE /v1/projects/{name_or_id}",
                 "DELETE /v1/conversations/{conversation_id}",
                 "POST /v1/conversations/{conversation_id}/cancel"):
        assert "409" in ops[name]["responses"], name
    assert "504" in ops["POST /v1/conversations/{conversation_id}/cancel"]["responses"]


def test_binary_answers_have_their_media_types(published: dict[str, Any]) -> None:
    ops = dict(_operations(published))
    stream = ops["POST /v1/tts/stream"]["responses"]["200"]["content"]
    assert set(stream) == {"audio/pcm", "audio/ulaw"}
    assert stream["audio/pcm"]["schema"] == {"type": "string", "format": "binary"}
    assert set(ops["GET /v1/recordings/{conversation_id}"]["responses"]["200"]["content"]) \
        == {"audio/wav", "application/gzip"}
    assert set(ops["GET /v1/voices/{voice_id}/preview"]["responses"]["200"]["content"]) \
        == {"audio/wav"}


def test_answers_have_schemas(published: dict[str, Any]) -> None:
    schemas = published["components"]["schemas"]
    for name, op in _operations(published):
        for status, response in op["responses"].items():
            if status.startswith("2") and "application/json" in response["content"]:
                schema = response["content"]["application/json"]["schema"]
                assert schema.get("properties") or schema.get("$ref") or schema.get(
                    "anyOf") or schema.get("allOf") or name == "GET /v1/workspace", name
    agent = schemas["Agent"]["properties"]
    assert agent["integrations"]["type"] == "array" and agent["slug"] == {"type": "string"}
    listed = dict(_operations(published))["GET /v1/agents"]["responses"]["200"]
    assert listed["content"]["application/json"]["schema"]["properties"]["agents"][
        "items"] == {"$ref": "#/components/schemas/Agent"}
