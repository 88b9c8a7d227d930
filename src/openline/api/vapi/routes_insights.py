"""``POST /analytics`` and the legacy ``/logs`` (SDK 0.1.0-0.8.1)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request

from openline.api.phonic.params import CLEAN_PARAMETERS
from openline.api.vapi.deps import Body, Filters, Vapi, Who, parse_limit
from openline.api.vapi.routing import VapiRoute
from openline.domain.errors import ValidationFailed
from openline.services.vapi.logs import ID_FILTERS, LOG_TYPES, LogQuery

router = APIRouter(tags=["vapi: analytics and logs"], route_class=VapiRoute,
                   dependencies=[CLEAN_PARAMETERS])


@router.post("/analytics", status_code=201)
async def analytics(vapi: Vapi, who: Who, body: Body) -> list[dict[str, Any]]:
    return await vapi.analytics.run(who, body)


def _log_query(request: Request, q: Any, page: str | None, sort_order: str | None,
               log_type: str | None, webhook_type: str | None) -> LogQuery:
    if log_type is not None and log_type not in LOG_TYPES:
        raise ValidationFailed("type must be one of " + ", ".join(LOG_TYPES),
                               {"type": "unknown log type"})
    number = parse_limit(page, 1)
    ids = {k: request.query_params[k] for k in ID_FILTERS if k in request.query_params}
    return LogQuery(number, (sort_order or "DESC") == "DESC", q, log_type, webhook_type, ids)


_Order = Annotated[Literal["ASC", "DESC"] | None, Query(alias="sortOrder")]
_Type = Annotated[str | None, Query(alias="type")]
_Hook = Annotated[str | None, Query(alias="webhookType")]


@router.get("/logs")
async def list_logs(request: Request, vapi: Vapi, who: Who, q: Filters,
                    page: Annotated[str | None, Query()] = None, sort_order: _Order = None,
                    log_type: _Type = None, webhook_type: _Hook = None) -> dict[str, Any]:
    """``{results, metadata}``, newest first unless ``sortOrder=ASC``."""
    return await vapi.logs.list_page(
        who, _log_query(request, q, page, sort_order, log_type, webhook_type))


@router.delete("/logs")
async def delete_logs(request: Request, vapi: Vapi, who: Who, q: Filters,
                      log_type: _Type = None) -> dict[str, Any]:
    deleted = await vapi.logs.delete_matching(
        who, _log_query(request, q, None, None, log_type, None))
    return {"deleted": deleted}
