"""``POST /v1/conversations/{id}/replay`` and ``POST /v1/conversation_items/{id}/replay``.

Both translate to ``services.replay``; its refusals get Phonic's statuses here: 409 live,
422 not replayable (no audio, no agent, not an assistant item), 429 the concurrency limit,
503 no replay capacity on this node.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from openline.api.phonic.deps import Body, Svc, Who
from openline.api.phonic.errors import error_body
from openline.api.phonic.openapi_doc import error_responses
from openline.api.phonic.params import CLEAN_PARAMETERS
from openline.api.phonic.schemas import body_doc
from openline.domain.errors import Conflict, OpenlineError, ValidationFailed
from openline.services.hub import Services
from openline.services.replay import (
    NotReplayable,
    ReplayCapacity,
    ReplayResponse,
    ReplayService,
)

router = APIRouter(tags=["replay"], dependencies=[CLEAN_PARAMETERS])
_CONVERSATION = {"type": "object", "properties": {"agent": {
    "type": "string", "description": "Agent to replay with (default: the conversation's)"}}}
_ITEM = {"type": "object", "properties": {
    "system_prompt": {"type": "string", "description": "The system prompt to try"},
    "num_responses": {"type": "integer", "minimum": 1, "maximum": 10, "default": 1}}}


def _refusal(exc: OpenlineError) -> JSONResponse | None:
    """Phonic's answer for the replay refusals that have no general status."""
    if isinstance(exc, NotReplayable):
        return JSONResponse(error_body(exc.message, exc.code), status_code=422)
    if isinstance(exc, ReplayCapacity):
        return JSONResponse(error_body(exc.message, exc.code), status_code=503)
    if isinstance(exc, Conflict) and exc.code == "concurrency_limit_reached":
        return JSONResponse(error_body(exc.message, exc.code), status_code=429)
    return None


def _services(svc: Services) -> ReplayService:
    assert svc.replay is not None  # every built app has it
    return svc.replay


@router.post("/conversations/{conversation_id}/replay", response_model=None,
             openapi_extra=body_doc(_CONVERSATION, required=False),
             responses=error_responses(409, 422, 429, 503))
async def replay_conversation(conversation_id: str, svc: Svc, who: Who, body: Body
                              ) -> dict[str, Any] | JSONResponse:
    """Run the conversation's caller audio through an agent as a new conversation."""
    agent = body.get("agent")
    if agent is not None and not isinstance(agent, str):
        raise ValidationFailed("Invalid parameters: agent: must be a string",
                               {"agent": "must be a string"})
    try:
        new_id = await _services(svc).replay_conversation(who, conversation_id, agent or None)
    except OpenlineError as exc:
        answer = _refusal(exc)
        if answer is None:
            raise
        return answer
    return {"message": "Replay started", "conversation_id": new_id}


@router.post("/conversation_items/{item_id}/replay", response_model=None,
             openapi_extra=body_doc(_ITEM, required=False),
             responses=error_responses(409, 422))
async def replay_item(item_id: str, svc: Svc, who: Who, body: Body
                      ) -> dict[str, Any] | JSONResponse:
    """Alternative responses for one assistant turn (tools are not run)."""
    try:
        responses = await _services(svc).replay_item(
            who, item_id, body.get("system_prompt"), body.get("num_responses", 1))
    except OpenlineError as exc:
        answer = _refusal(exc)
        if answer is None:
            raise
        return answer
    return {"responses": [_response_json(r) for r in responses]}


def _response_json(response: ReplayResponse) -> dict[str, Any]:
    return {"text": response.text, "tool_calls": [
        {"tool": {"id": c.tool_id or c.tool_name, "name": c.tool_name},
         **c.endpoint, "request_body": c.request_body} for c in response.tool_calls]}
