"""FastAPI dependencies of the Vapi dialect: its services, the caller, bodies, list filters."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Depends, Query, Request

from openline.api.phonic.deps import get_principal
from openline.domain.errors import ValidationFailed
from openline.services.principal import Principal
from openline.services.vapi.docs import MAX_LIMIT, ListQuery, TimeFilter
from openline.services.vapi.hub import VapiServices

__all__ = ["Body", "Filters", "Vapi", "Who"]


async def vapi_principal(
    request: Request, who: Annotated[Principal, Depends(get_principal)]
) -> Principal:
    """The caller (same keys and scopes as the Phonic dialect), kept on the request so the
    route class can log the request under the caller's workspace."""
    request.state.vapi_principal = who
    return who


def get_vapi(request: Request) -> VapiServices:
    vapi: VapiServices = request.app.state.vapi
    return vapi


async def json_body(request: Request) -> dict[str, Any]:
    """The JSON object sent (``{}`` for none: ``DELETE /call`` always sends a body)."""
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise ValidationFailed(f"Malformed JSON body: {exc}", {"body": "malformed"}) from exc
    if not isinstance(data, dict):
        raise ValidationFailed("The JSON body must be an object", {"body": "not an object"})
    return data


def parse_time(value: str | None, name: str) -> datetime | None:
    """An ISO-8601 time with ``Z`` or an offset (a naive one is taken as UTC)."""
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00").replace(" ", "+"))
    except ValueError as exc:
        raise ValidationFailed(f"{name} must be an ISO 8601 date string",
                               {name: "must be an ISO 8601 date string"}) from exc
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).astimezone(UTC)


def parse_limit(value: str | None, default: int = 100) -> int:
    """``limit`` as Vapi's SDK sends it: a number, possibly a float (``5.0``)."""
    if value is None:
        return default
    try:
        number = float(value)
    except ValueError as exc:
        raise ValidationFailed("limit must be a number", {"limit": "must be a number"}) from exc
    if not 0 <= number <= MAX_LIMIT or number != int(number):
        raise ValidationFailed(f"limit must be a whole number from 0 to {MAX_LIMIT}",
                               {"limit": f"0 to {MAX_LIMIT}"})
    return int(number)


def _bounds(prefix: str, gt: str | None, lt: str | None, ge: str | None,
            le: str | None) -> TimeFilter:
    return TimeFilter(parse_time(gt, f"{prefix}Gt"), parse_time(lt, f"{prefix}Lt"),
                      parse_time(ge, f"{prefix}Ge"), parse_time(le, f"{prefix}Le"))


_Q = Annotated[str | None, Query()]


def list_filters(
    limit: _Q = None,
    created_gt: Annotated[str | None, Query(alias="createdAtGt")] = None,
    created_lt: Annotated[str | None, Query(alias="createdAtLt")] = None,
    created_ge: Annotated[str | None, Query(alias="createdAtGe")] = None,
    created_le: Annotated[str | None, Query(alias="createdAtLe")] = None,
    updated_gt: Annotated[str | None, Query(alias="updatedAtGt")] = None,
    updated_lt: Annotated[str | None, Query(alias="updatedAtLt")] = None,
    updated_ge: Annotated[str | None, Query(alias="updatedAtGe")] = None,
    updated_le: Annotated[str | None, Query(alias="updatedAtLe")] = None,
) -> ListQuery:
    """Vapi's plain-list filters: ``limit`` (float accepted) and the date bounds."""
    return ListQuery(parse_limit(limit),
                     _bounds("createdAt", created_gt, created_lt, created_ge, created_le),
                     _bounds("updatedAt", updated_gt, updated_lt, updated_ge, updated_le))


Vapi = Annotated[VapiServices, Depends(get_vapi)]
Who = Annotated[Principal, Depends(vapi_principal)]
Body = Annotated[dict[str, Any], Depends(json_body)]
Filters = Annotated[ListQuery, Depends(list_filters)]
