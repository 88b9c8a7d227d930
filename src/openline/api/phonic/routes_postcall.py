"""``/v1/webhook_endpoints``: Openline's own API (Phonic configures them in its dashboard).

The conversation-scoped post-call routes live in ``routes_conversations`` and
``routes_projects`` (their paths belong there); every wire shape is in ``views``.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from openline.api.phonic import schemas
from openline.api.phonic.deps import Body, Svc, Who
from openline.api.phonic.params import CLEAN_PARAMETERS
from openline.api.phonic.schemas import body_doc
from openline.api.phonic.views import delivery_json, endpoint_json
from openline.services.webhooks import EVENTS

router = APIRouter(tags=["webhooks"], dependencies=[CLEAN_PARAMETERS])
_CREATE = {"type": "object", "required": ["url"], "properties": {
    "url": {"type": "string", "description": "https URL that receives signed POSTs"},
    "events": {"type": "array", "items": {"type": "string", "enum": list(EVENTS)},
               "description": "event types to receive (default: all)"},
    "description": {"type": "string"}}}


@router.post("/webhook_endpoints", status_code=201, openapi_extra=body_doc(_CREATE))
async def create_endpoint(svc: Svc, who: Who, body: Body) -> dict[str, Any]:
    """Create an endpoint; the signing secret is in this response only."""
    endpoint, secret = await svc.webhooks.create(who, schemas.webhook_endpoint_create(body))
    return {**endpoint_json(endpoint), "secret": secret}


@router.get("/webhook_endpoints")
async def list_endpoints(svc: Svc, who: Who) -> dict[str, Any]:
    return {"webhook_endpoints": [endpoint_json(e) for e in await svc.webhooks.list_all(who)]}


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
    deliveries = await svc.webhooks.deliveries(who, endpoint_id, limit)
    return {"deliveries": [delivery_json(d) for d in deliveries]}
