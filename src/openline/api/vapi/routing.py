"""The route class of the Vapi dialect: its errors are Vapi's, whatever the app's default."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute

from openline.api.vapi import errors


class VapiRoute(APIRoute):
    """Every exception of a Vapi route (its dependencies included: authentication,
    scopes, body parsing) becomes Vapi's error body, not the Phonic dialect's."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def vapi_handler(request: Request) -> Response:
            try:
                return await handler(request)
            except Exception as exc:  # translated at the edge, as DESIGN.md says
                return errors.response_for(exc)

        return vapi_handler
