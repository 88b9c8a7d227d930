"""The route class of the Vapi dialect: Vapi's error bodies, and the ``/logs`` record."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute

from openline.api.vapi import errors
from openline.services.principal import Principal
from openline.services.vapi.logs import ID_FILTERS, api_log

log = logging.getLogger(__name__)
_LOGGED = ("POST", "PATCH", "PUT", "DELETE")
#: path parameter -> the Log key naming it
_PATH_IDS = {"assistant_id": "assistantId", "call_id": "callId", "squad_id": "squadId",
             "number_id": "phoneNumberId"}
#: first path segment -> the Log key naming the resource a create made
_RESOURCE_IDS = {"assistant": "assistantId", "call": "callId", "squad": "squadId",
                 "phone-number": "phoneNumberId"}


class VapiRoute(APIRoute):
    """Every exception of a Vapi route (its dependencies included: authentication,
    scopes, body parsing) becomes Vapi's error body, not the Phonic dialect's; every
    write is logged (``services/vapi/logs``)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def vapi_handler(request: Request) -> Response:
            started = datetime.now(UTC)
            try:
                response = await handler(request)
            except Exception as exc:  # translated at the edge, as DESIGN.md says
                response = errors.response_for(exc)
            if request.method in _LOGGED:
                who = getattr(request.state, "vapi_principal", None)
                if isinstance(who, Principal):
                    await _record(request, who, response, started)
            return response

        return vapi_handler


async def _body(request: Request) -> Any:
    if "json" not in request.headers.get("content-type", ""):
        return None
    return _json(await request.body())


async def _record(request: Request, who: Principal, response: Response,
                  started: datetime) -> None:
    """Log the request (written before the answer goes out, so a client that reads
    ``/logs`` next sees it)."""
    body = await _body(request)
    ids = {_PATH_IDS[k]: str(v) for k, v in request.path_params.items() if k in _PATH_IDS}
    if isinstance(body, dict):
        ids.update({k: body[k] for k in ID_FILTERS if isinstance(body.get(k), str)})
    key = _RESOURCE_IDS.get(request.url.path.strip("/").split("/")[0])
    if key and key not in ids and response.status_code < 300:
        created = _json(bytes(response.body))
        if isinstance(created, dict) and isinstance(created.get("id"), str):
            ids[key] = created["id"]
    entry = api_log(request.method, request.url.path, request.url.query,
                    response.status_code, started, datetime.now(UTC), body, ids)
    try:
        await request.app.state.vapi.logs.record(who, entry)
    except Exception:  # a log that cannot be written never fails the request it describes
        log.exception("could not record a Vapi API log")


def _json(raw: bytes) -> Any:
    try:
        return json.loads(raw or b"null")
    except ValueError:
        return None
