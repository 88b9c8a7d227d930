"""The route class of the Vapi dialect: Vapi's error bodies, and the ``/logs`` record."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute
from starlette.background import BackgroundTask

from openline.api.vapi import errors
from openline.services.principal import Principal
from openline.services.vapi.logs import ID_FILTERS, api_log

log = logging.getLogger(__name__)
_LOGGED = ("POST", "PATCH", "PUT", "DELETE")
#: path parameter -> the Log key naming it
_PATH_IDS = {"assistant_id": "assistantId", "call_id": "callId", "squad_id": "squadId",
             "number_id": "phoneNumberId"}


class VapiRoute(APIRoute):
    """Every exception of a Vapi route (its dependencies included: authentication,
    scopes, body parsing) becomes Vapi's error body, not the Phonic dialect's; every
    write is logged (``services/vapi/logs``) after its response went out."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def vapi_handler(request: Request) -> Response:
            started = datetime.now(UTC)
            try:
                response = await handler(request)
            except Exception as exc:  # translated at the edge, as DESIGN.md says
                response = errors.response_for(exc)
            if request.method in _LOGGED and response.background is None:
                who = getattr(request.state, "vapi_principal", None)
                if isinstance(who, Principal):
                    body = await _body(request)
                    response.background = BackgroundTask(
                        _record, request, who, response.status_code, started, body)
            return response

        return vapi_handler


async def _body(request: Request) -> Any:
    if "json" not in request.headers.get("content-type", ""):
        return None
    try:
        return json.loads(await request.body() or b"null")
    except ValueError:
        return None


async def _record(request: Request, who: Principal, status: int, started: datetime,
                  body: Any) -> None:
    ids = {_PATH_IDS[k]: str(v) for k, v in request.path_params.items() if k in _PATH_IDS}
    if isinstance(body, dict):
        ids.update({k: body[k] for k in ID_FILTERS if isinstance(body.get(k), str)})
    entry = api_log(request.method, request.url.path, request.url.query, status, started,
                    datetime.now(UTC), body, ids)
    try:
        await request.app.state.vapi.logs.record(who, entry)
    except Exception:  # a log that cannot be written never fails the request it describes
        log.exception("could not record a Vapi API log")
