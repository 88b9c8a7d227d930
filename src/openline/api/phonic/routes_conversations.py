"""``/v1/conversations``: listing with filters and cursors, get, delete, post-call reads."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse

from openline.api.phonic import schemas
from openline.api.phonic.deps import Body, ProjectParam, Svc, Who
from openline.api.phonic.errors import error_body
from openline.api.phonic.openapi_doc import error_responses
from openline.api.phonic.params import CLEAN_PARAMETERS
from openline.api.phonic.schemas import body_doc
from openline.api.phonic.views import (
    analysis_json,
    conversation_json,
    eval_json,
    extraction_json,
)
from openline.domain.conversation import Conversation

router = APIRouter(tags=["conversations"], dependencies=[CLEAN_PARAMETERS])
AudioContainer = Annotated[Literal["wav.gz", "wav"], Query()]
_EXTRACT = {"type": "object", "required": ["schema_id"], "properties": {
    "schema_id": {"type": "string", "description": "ID of the extraction schema to run"}}}
_EVALUATE = {"type": "object", "required": ["prompt_id"], "properties": {
    "prompt_id": {"type": "string", "description": "ID of the eval prompt to ask"}}}


@router.get("/conversations")
async def list_conversations(
    svc: Svc, who: Who, project: ProjectParam = None,
    external_id: str | None = None,
    duration_min: Annotated[int | None, Query(ge=0)] = None,
    duration_max: Annotated[int | None, Query(ge=0)] = None,
    started_at_min: str | None = None,
    started_at_max: str | None = None,
    before: str | None = None,
    after: str | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    audio_container: AudioContainer = "wav.gz",
) -> dict[str, Any]:
    page = await svc.conversations.list_all(who, schemas.conversation_list(
        project, external_id, duration_min, duration_max, started_at_min, started_at_max,
        before, after, limit,
    ))
    if page.single is not None:
        return {"conversation": _json(svc, page.single, audio_container)}
    return {
        "conversations": [_json(svc, c, audio_container) for c in page.conversations],
        "pagination": {"prev_cursor": page.prev_cursor, "next_cursor": page.next_cursor},
    }


@router.get("/conversations/{conversation_id}")
async def get_conversation(conversation_id: str, svc: Svc, who: Who,
                           audio_container: AudioContainer = "wav.gz") -> dict[str, Any]:
    conversation = await svc.conversations.get(who, conversation_id)
    return {"conversation": _json(svc, conversation, audio_container)}


def _json(svc: Svc, conversation: Conversation, container: str) -> dict[str, Any]:
    url = svc.links.url(conversation.id, container) if conversation.has_recording else None
    return conversation_json(conversation, url)


@router.delete("/conversations/{conversation_id}", responses=error_responses(409))
async def delete_conversation(conversation_id: str, svc: Svc, who: Who) -> dict[str, Any]:
    await svc.conversations.delete(who, conversation_id)
    return {"success": True}


@router.get("/conversations/{conversation_id}/analysis")
async def get_analysis(conversation_id: str, svc: Svc, who: Who) -> dict[str, Any]:
    conversation = await svc.conversations.get(who, conversation_id)
    return {"analysis": analysis_json(conversation.analysis)}


@router.post("/conversations/{conversation_id}/cancel", response_model=None,
             responses=error_responses(409, 504))
async def cancel_conversation(conversation_id: str, svc: Svc, who: Who
                              ) -> dict[str, Any] | JSONResponse:
    try:
        await svc.live.cancel(who, conversation_id)
    except TimeoutError:
        return JSONResponse(error_body(
            "Cancellation requested but not acknowledged within the expected time",
            "cancellation_timeout"), status_code=504)
    return {"success": True}


@router.get("/conversations/{conversation_id}/extractions")
async def list_extractions(conversation_id: str, svc: Svc, who: Who) -> dict[str, Any]:
    extractions = await svc.postcall.list_extractions(who, conversation_id)
    return {"extractions": [extraction_json(e) for e in extractions]}


@router.post("/conversations/{conversation_id}/extractions", status_code=201,
             openapi_extra=body_doc(_EXTRACT), responses=error_responses(409))
async def extract(conversation_id: str, svc: Svc, who: Who, body: Body) -> dict[str, Any]:
    extraction = await svc.postcall.extract(who, schemas.extraction_run(body, conversation_id))
    return {"result": dict(extraction.result)}


@router.get("/conversations/{conversation_id}/evals")
async def list_evals(conversation_id: str, svc: Svc, who: Who) -> dict[str, Any]:
    return {"evals": [eval_json(e) for e in await svc.postcall.list_evals(who, conversation_id)]}


@router.post("/conversations/{conversation_id}/evals", status_code=201,
             openapi_extra=body_doc(_EVALUATE), responses=error_responses(409))
async def evaluate(conversation_id: str, svc: Svc, who: Who, body: Body) -> dict[str, Any]:
    evaluation = await svc.postcall.evaluate(who, schemas.evaluation_run(body, conversation_id))
    return {"evaluation": {"result": evaluation.result}}
