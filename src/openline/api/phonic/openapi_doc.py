"""The published OpenAPI of the Phonic dialect, as the server really answers.

FastAPI documents a 422 that this API never sends (request errors are Phonic's 400) and
knows nothing of the error bodies, the bearer scheme or the answer shapes. ``finish``
rewrites its document:

- every operation lists the errors it can answer, with Phonic's bodies (``BasicError``,
  ``ValidationError``, ``Error``): 400 (every router checks its parameters), 401 and 403
  (authenticated routes; signed links answer 403), 404 (a path parameter or ``?project=``
  names something), 413 (a request body over the cap); routes add their own 409/504 with
  :func:`error_responses`;
- each operation's 200/201 body has a schema (``ANSWERS``), binary answers their media types;
- authenticated operations require ``bearerAuth``; signed links require nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import fastapi.routing
from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from openline.api.phonic.deps import get_principal, json_body
from openline.api.phonic.params import clean_parameters
from openline.domain.agent import AgentSpec
from openline.domain.tool import ToolSpec

_REF = "#/components/schemas/"
_ERROR_OBJECT = {"type": "object", "required": ["message"], "properties": {
    "message": {"type": "string", "description": "What went wrong"},
    "code": {"type": "string", "description": "A machine-readable code"}}}
ERROR_SCHEMAS: dict[str, Any] = {
    "BasicError": {"type": "object", "required": ["error"],
                   "properties": {"error": _ERROR_OBJECT}},
    "ValidationError": {"type": "object", "required": ["error", "param_errors"], "properties": {
        "error": _ERROR_OBJECT,
        "param_errors": {"type": "object", "additionalProperties": {"type": "string"},
                         "description": "A message per offending field"}}},
    # ``anyOf``: a ValidationError body is also a BasicError, so ``oneOf`` would never match.
    "Error": {"anyOf": [{"$ref": _REF + "BasicError"}, {"$ref": _REF + "ValidationError"}]},
}
_ERRORS: dict[int, tuple[str, str]] = {
    400: ("Invalid parameters or body", "Error"),
    401: ("Missing or invalid credentials", "BasicError"),
    403: ("These credentials may not do this (or the signed link is invalid)", "BasicError"),
    404: ("Not found", "BasicError"),
    409: ("Conflicts with the current state", "BasicError"),
    413: ("Request body larger than the cap", "BasicError"),
    422: ("Cannot be replayed (no audio, no agent, or not an assistant item)", "BasicError"),
    429: ("Concurrency limit reached", "BasicError"),
    503: ("Insufficient capacity", "BasicError"),
    504: ("Not acknowledged in time", "BasicError"),
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a route decorator: the given error statuses with Phonic's bodies."""
    out: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        description, schema = _ERRORS[status]
        out[status] = {"description": description,
                       "content": {"application/json": {"schema": {"$ref": _REF + schema}}}}
    return out


def binary_response(*media_types: str, description: str) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a route whose 200 answer is bytes of one of ``media_types``."""
    schema = {"type": "string", "format": "binary"}
    return {200: {"description": description,
                  "content": {media: {"schema": schema} for media in media_types}}}


# --- answer shapes ---------------------------------------------------------------------------

def _obj(required: list[str] | None = None, **properties: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        out["required"] = required
    return out


def _ref(name: str) -> dict[str, str]:
    return {"$ref": _REF + name}


def _list_of(key: str, item: dict[str, Any]) -> dict[str, Any]:
    return _obj([key], **{key: {"type": "array", "items": item}})


_STR = {"type": "string"}
_STR_OR_NULL = {"type": ["string", "null"]}
_BOOL = {"type": "boolean"}
_INT = {"type": "integer"}
_ANY_OBJECT = {"type": "object"}


def answer_schemas() -> dict[str, Any]:
    """Component schemas of the answers, built on the domain models (whose own component
    schemas, ``ConfigurationEndpoint`` and the rest, ``app`` publishes with ``defs_of``)."""
    agent = AgentSpec.model_json_schema(ref_template=_REF + "{model}")
    tool = ToolSpec.model_json_schema(ref_template=_REF + "{model}")
    return {
        "Ref": _obj(["id", "name"], id=_STR, name=_STR),
        "Success": _obj(["success"], success={"const": True}),
        "Created": _obj(["id", "name"], id=_STR, name=_STR),
        "Agent": {"type": "object",
                  "required": ["id", "name", "project", "phone_number", "phone_numbers",
                               "is_disabled", "version_number", "custom_phone_numbers"],
                  "properties": {**agent["properties"], "id": _STR, "project": _ref("Ref"),
                                 "phone_number": _STR_OR_NULL,
                                 "phone_numbers": {"type": "array", "items": _STR},
                                 "is_disabled": _BOOL, "version_number": _INT,
                                 "custom_phone_numbers": {"type": "array", "items": _STR},
                                 "slug": _STR}},
        "Tool": {"type": "object", "required": ["id", "name", "project", "type"],
                 "properties": {**tool["properties"], "id": _STR, "project": _ref("Ref")}},
        "ExtractionSchema": _obj(["id", "name", "prompt", "fields"], id=_STR, name=_STR,
                                 prompt=_STR, fields={"type": "array",
                                                      "items": _ref("ExtractionField")}),
        "Project": _obj(["id", "name", "default_agent", "active_conversations",
                         "max_active_conversations"], id=_STR, name=_STR,
                        default_agent={"anyOf": [_ref("Ref"), {"type": "null"}]},
                        active_conversations=_INT,
                        max_active_conversations={"type": ["integer", "null"]}),
        "Voice": _obj(["id", "name", "description", "audio_url"], id=_STR, name=_STR,
                      description=_STR_OR_NULL, audio_url=_STR_OR_NULL),
        "Conversation": _obj(["id", "project", "items", "started_at"], id=_STR,
                             project=_ref("Ref"), items={"type": "array", "items": _ANY_OBJECT},
                             started_at=_STR_OR_NULL),
        "EvalPrompt": _obj(["id", "name", "prompt"], id=_STR, name=_STR, prompt=_STR),
        "Evaluation": _obj(["id", "result", "prompt", "created_at"], id=_STR,
                           result=_STR_OR_NULL, prompt=_ref("Ref"), created_at=_STR_OR_NULL),
        "Extraction": _obj(["id", "schema", "result", "created_at"], id=_STR,
                           schema=_ANY_OBJECT, result=_ANY_OBJECT, created_at=_STR_OR_NULL),
        "WebhookEndpoint": _obj(["id", "url", "events", "created_at"], id=_STR, url=_STR,
                                description=_STR_OR_NULL,
                                events={"type": "array", "items": _STR},
                                created_at=_STR_OR_NULL),
        "ApiKeyWithSecret": _obj(["id", "name", "api_key"], id=_STR, name=_STR, api_key=_STR),
    }


#: The 200/201 body of each JSON operation (``method path`` as FastAPI lists it).
ANSWERS: dict[str, dict[str, Any]] = {
    "get /v1/agents": _list_of("agents", _ref("Agent")),
    "post /v1/agents": _ref("Created"),
    "put /v1/agents/upsert": _obj(["agent", "inserted", "updated"], agent=_ref("Agent"),
                                  inserted=_BOOL, updated=_BOOL),
    "get /v1/agents/{name_or_id}": _obj(["agent"], agent=_ref("Agent")),
    "patch /v1/agents/{name_or_id}": _obj(["success", "version_number", "agent"],
                                          success={"const": True}, version_number=_INT,
                                          agent=_ref("Agent")),
    "get /v1/tools": _list_of("tools", _ref("Tool")),
    "post /v1/tools": _ref("Created"),
    "get /v1/tools/{name_or_id}": _obj(["tool"], tool=_ref("Tool")),
    "get /v1/extraction_schemas": _list_of("extraction_schemas", _ref("ExtractionSchema")),
    "post /v1/extraction_schemas": _ref("Created"),
    "get /v1/extraction_schemas/{name_or_id}": _obj(
        ["extraction_schema"], extraction_schema=_ref("ExtractionSchema")),
    "get /v1/projects": _list_of("projects", _ref("Project")),
    "post /v1/projects": _ref("Created"),
    "get /v1/projects/{name_or_id}": _obj(["project"], project=_ref("Project")),
    "get /v1/projects/{name_or_id}/conversation_eval_prompts": _list_of(
        "conversation_eval_prompts", _ref("EvalPrompt")),
    "post /v1/projects/{name_or_id}/conversation_eval_prompts": _ref("Created"),
    "get /v1/projects/{name_or_id}/conversation_evals": _list_of("evals", _ref("Evaluation")),
    "get /v1/conversations": {"anyOf": [
        _obj(["conversations", "pagination"],
             conversations={"type": "array", "items": _ref("Conversation")},
             pagination=_obj(["prev_cursor", "next_cursor"], prev_cursor=_STR_OR_NULL,
                             next_cursor=_STR_OR_NULL)),
        _obj(["conversation"], conversation=_ref("Conversation"))]},
    "get /v1/conversations/{conversation_id}": _obj(["conversation"],
                                                    conversation=_ref("Conversation")),
    "get /v1/conversations/{conversation_id}/analysis": _obj(["analysis"],
                                                             analysis=_ANY_OBJECT),
    "get /v1/conversations/{conversation_id}/extractions": _list_of("extractions",
                                                                    _ref("Extraction")),
    "post /v1/conversations/{conversation_id}/extractions": _obj(["result"],
                                                                 result=_ANY_OBJECT),
    "get /v1/conversations/{conversation_id}/evals": _list_of("evals", _ref("Evaluation")),
    "post /v1/conversations/{conversation_id}/evals": _obj(
        ["evaluation"], evaluation=_obj(["result"], result=_STR_OR_NULL)),
    "post /v1/auth/session_token": _obj(["session_token", "expires_at"],
                                        session_token=_STR, expires_at=_STR),
    "post /v1/auth/conversation_token": _obj(["conversation_token", "expires_at"],
                                             conversation_token=_STR, expires_at=_STR),
    "post /v1/api_keys": _ref("ApiKeyWithSecret"),
    "post /v1/api_keys/{key_id}/rotate": _ref("ApiKeyWithSecret"),
    "get /v1/workspace": _ANY_OBJECT,
    "get /v1/voices": _list_of("voices", _ref("Voice")),
    "get /v1/voices/{voice_id}": _obj(["voice"], voice=_ref("Voice")),
    "get /v1/webhook_endpoints": _list_of("webhook_endpoints", _ref("WebhookEndpoint")),
    "post /v1/webhook_endpoints": {"allOf": [_ref("WebhookEndpoint"),
                                             _obj(["secret"], secret=_STR)]},
    "get /v1/webhook_endpoints/{endpoint_id}": _obj(["webhook_endpoint"],
                                                    webhook_endpoint=_ref("WebhookEndpoint")),
    "get /v1/webhook_endpoints/{endpoint_id}/deliveries": _list_of("deliveries", _ANY_OBJECT),
    "post /v1/tts": _obj(["audio"], audio={"type": "string", "contentEncoding": "base64"}),
    # replay and external storage policies (issue 14)
    "post /v1/conversations/{conversation_id}/replay": _obj(
        ["message"], message=_STR, conversation_id=_STR),
    "post /v1/conversation_items/{item_id}/replay": _obj(
        ["responses"], responses={"type": "array", "items": _obj(
            ["text", "tool_calls"], text=_STR,
            tool_calls={"type": "array", "items": _ANY_OBJECT})}),
    "get /v1/external_storage_policies": _list_of("external_storage_policies", _ANY_OBJECT),
    "post /v1/external_storage_policies": _ref("Created"),
    "get /v1/external_storage_policies/{name_or_id}": _obj(
        ["external_storage_policy"], external_storage_policy=_ANY_OBJECT),
    "get /v1/socket_jwt_keys": _list_of("socket_jwt_keys", _ANY_OBJECT),
    "post /v1/socket_jwt_keys": _obj(["id"], id=_STR),
}
_BEARER = {"type": "http", "scheme": "bearer",
           "description": "`Authorization: Bearer <API key, session token or conversation token>`"}


# --- the rewrite -----------------------------------------------------------------------------

def _calls(dependant: Dependant) -> Iterator[Callable[..., Any]]:
    if dependant.call is not None:
        yield dependant.call
    for sub in dependant.dependencies:
        yield from _calls(sub)


def _api_routes(app: FastAPI) -> Iterator[Any]:
    """Every API route with its full path and dependencies (routers' included)."""
    contexts = getattr(fastapi.routing, "iter_route_contexts", None)
    if contexts is None:  # FastAPI before 0.165 copies included routes into app.routes
        yield from (r for r in app.routes if isinstance(r, APIRoute))
        return
    yield from (c for c in contexts(app.routes) if isinstance(c.original_route, APIRoute))


def _operations(app: FastAPI, schema: dict[str, Any]) -> Iterator[tuple[str, Any, dict[str, Any]]]:
    for route in _api_routes(app):
        if route.include_in_schema:
            for method in sorted(route.methods or ()):
                key = f"{method.lower()} {route.path_format}"
                yield key, route, schema["paths"][route.path_format][method.lower()]


def finish(app: FastAPI, schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` (FastAPI's document of ``app``) rewritten as described above."""
    components = schema.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    schemas.pop("HTTPValidationError", None)
    schemas.update(answer_schemas())
    schemas.update(ERROR_SCHEMAS)  # replaces FastAPI's own "ValidationError"
    components["securitySchemes"] = {"bearerAuth": _BEARER}
    unused = set(ANSWERS)
    for key, route, operation in _operations(app, schema):
        calls = set(_calls(route.dependant))
        operation["security"] = [{"bearerAuth": []}] if get_principal in calls else []
        status = str(route.status_code or 200)
        content = operation["responses"].get(status, {}).get("content", {})
        if key in ANSWERS:
            unused.discard(key)
            answer = ANSWERS[key]
        elif "application/json" in content:
            answer = _ref("Success")  # every other JSON route answers {"success": true}
        else:
            answer = None  # bytes, documented by the route (``binary_response``)
        if answer is not None:
            operation["responses"][status] = {
                "description": "Success", "content": {"application/json": {"schema": answer}}}
        _document_errors(operation, route, calls)
    if unused:  # a renamed route would otherwise lose its documented answer silently
        raise RuntimeError(f"ANSWERS names operations that do not exist: {sorted(unused)}")
    return schema


def _document_errors(operation: dict[str, Any], route: Any,
                     calls: set[Callable[..., Any]]) -> None:
    responses: dict[str, Any] = operation.setdefault("responses", {})
    responses.pop("422", None)  # FastAPI's; request errors are answered 400 here
    statuses: list[int] = []
    has_body = json_body in calls
    if clean_parameters in calls or has_body:
        statuses.append(400)
    statuses += [401, 403] if get_principal in calls else [403]
    names = {p.get("name") for p in operation.get("parameters", [])}
    if "{" in route.path_format or "project" in names:
        statuses.append(404)
    if has_body:
        statuses.append(413)
    for status, response in error_responses(*statuses).items():
        responses.setdefault(str(status), response)
    operation["responses"] = dict(sorted(responses.items()))
