"""The Vapi dialect's routes, at the root of the API (``Vapi(base_url=OPENLINE_URL)``).

``install(app)`` builds the dialect's services over the app's and includes every router;
``api/app.py`` calls it with one line. A module of this package adds its router to
``ROUTERS``.
"""

from __future__ import annotations

from fastapi import APIRouter, FastAPI

from openline.api.vapi import (
    routes_assistants,
    routes_calls,
    routes_files,
    routes_insights,
    routes_resources,
)
from openline.services.hub import Services
from openline.services.vapi.hub import VapiServices

ROUTERS: list[APIRouter] = [routes_assistants.router, routes_calls.router,
                            routes_resources.router, routes_files.router,
                            routes_insights.router]


def install(app: FastAPI, services: Services) -> None:
    """Serve the Vapi dialect on ``app``."""
    app.state.vapi = VapiServices.build(services)
    for router in ROUTERS:
        # Not in Openline's OpenAPI document, which describes the Phonic dialect: the Vapi
        # dialect's reference is Vapi's own spec (``vapi-openapi.json``).
        app.include_router(router, include_in_schema=False)
