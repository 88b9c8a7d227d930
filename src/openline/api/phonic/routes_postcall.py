"""Post-call wire shapes (extractions, evaluations) and ``/v1/webhook_endpoints``.

The conversation-scoped post-call routes live in ``routes_conversations`` and
``routes_projects`` (their paths belong there); they render with the helpers below.
Webhook endpoints are Openline's own API (Phonic configures them in its dashboard).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from openline.api.phonic.deps import Body, Svc, Who
from openline.api.phonic.schemas import body_doc
from openline.api.phonic.views import iso
from openline.services.postcall import ExtractionView
from openline.services.webhooks import EVENTS
from openline.store.tables_postcall import ConversationEval, WebhookDelivery, WebhookEndpoint

router = APIRouter(tags=["webhooks"])
_CREATE = {"type": "object", "required": ["url"], "properties": {
    "url": {"type": "string", "description": "https URL that receives signed POSTs"},
    "events": {"type": "array", "items": {"type": "string", "enum": list(EVENTS)},
               "description": "event types to receive (default: all)"},
    "description": {"type": "string"}}}


def extraction_json(view: ExtractionView) -> dict[str, Any]:
    """ConversationExtraction (note Phonic's camelCase ``isDeleted``); ``notes`` is ours."""
    row = view.row
    return {"id": row.id,
            "schema": {"id": row.schema_id, "name": row.schema_name,
                       "isDeleted": view.schema_deleted},
            "result": row.result, "created_at": iso(row.created_at), "notes": row.notes or {}}


def eval_json(row: ConversationEval, *, with_conversation: bool = False) -> dict[str, Any]:
    """A conversation evaluation; the project-level listing adds ``conversation_id``."""
    out: dict[str, Any] = {"id": row.id, "result": row.result,
                           "prompt": {"id": row.prompt_id, "name": row.prompt_name},
                           "created_at": iso(row.created_at)}
    if with_conversation:
        out["conversation_id"] = row.conversation_id
    out["reasoning"] = row.reasoning
    return out


def endpoint_json(row: WebhookEndpoint) -> dict[str, Any]:
    return {"id": row.id, "url": row.url, "description": row.description,
            "events": list(row.events or EVENTS), "created_at": iso(row.created_at)}


def delivery_json(row: WebhookDelivery) -> dict[str, Any]:
    return {"id": row.id, "message_id": row.message_id, "event_type": row.event_type,
            "attempt": row.attempt, "status_code": row.status_code, "success": row.success,
            "error": row.error, "duration_ms": row.duration_ms,
            "created_at": iso(row.created_at)}


@router.post("/webhook_endpoints", status_code=201, openapi_extra=body_doc(_CREATE))
async def create_endpoint(svc: Svc, who: Who, body: Body) -> dict[str, Any]:
    """Create an endpoint; the signing secret is in this response only."""
    row, secret = await svc.webhooks.create(who, body)
    return {**endpoint_json(row), "secret": secret}


@router.get("/webhook_endpoints")
async def list_endpoints(svc: Svc, who: Who) -> dict[str, Any]:
    return {"webhook_endpoints": [endpoint_json(r) for r in await svc.webhooks.list_all(who)]}


@router.get("/webhook_endpoints/{endpoint_id}")
async def get_endpoint(endpoint_id: str, svc: Svc, who: Who) -> dict[str, Any]:
    return {"webhook_endpoint": endpoint_json(await svc.webhooks.get(who, endpoint_id))}


@router.delete("/webhook_endpoints/{endpoint_id}")
async def delete_endpoint(endpoint_id: str, svc: Svc, who: Who) -> dict[str, Any]:
    await svc.webhooks.delete(who, endpoint_id)
    return {"success": True}


@router.get("/webhook_endpoints/{endpoint_id}/deliveries")
async def list_deliveries(endpoint_id: str, svc: Svc, who: Who,
                          limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> dict[str, Any]:
    """Every delivery attempt (newest first), successful or not."""
    rows = await svc.webhooks.deliveries(who, endpoint_id, limit)
    return {"deliveries": [delivery_json(r) for r in rows]}
