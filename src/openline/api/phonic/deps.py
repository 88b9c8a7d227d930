"""FastAPI dependencies: the services, the authenticated caller, the JSON body."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import Depends, Query, Request

from openline.api.phonic import scopes
from openline.domain.errors import ValidationFailed
from openline.services.hub import Services
from openline.services.principal import Principal


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


def bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return None


async def get_principal(
    request: Request, services: Annotated[Services, Depends(get_services)]
) -> Principal:
    """The caller (401 without valid credentials), allowed on this route by its scope
    (403 otherwise: ``scopes.ROUTE_SCOPES``)."""
    who = await services.auth.authenticate(bearer(request))
    scopes.authorize(request, who)
    return who


async def json_body(request: Request) -> dict[str, Any]:
    """The request's JSON object; malformed JSON or a non-object is a 400."""
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, huge ints, deep nesting
        raise ValidationFailed(f"Malformed JSON body: {exc}", {"body": "malformed JSON"}) from exc
    if not isinstance(data, dict):
        raise ValidationFailed("The JSON body must be an object", {"body": "must be an object"})
    return data


Svc = Annotated[Services, Depends(get_services)]
Who = Annotated[Principal, Depends(get_principal)]
Body = Annotated[dict[str, Any], Depends(json_body)]
ProjectParam = Annotated[
    str | None, Query(description="Project name (default `main`).")
]
