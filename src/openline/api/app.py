"""The HTTP application: routes, error translation and OpenAPI over built services.

The process itself (database, providers, services, background work) is composed in
``openline.boot``; this module only puts the edge in front of it.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

from fastapi import FastAPI

from openline import __version__
from openline.api.dashboard import router as dashboard_router
from openline.api.limits import DEFAULT_MAX_BODY_BYTES, BodyLimit
from openline.api.phonic import (
    errors,
    openapi_doc,
    routes_agents,
    routes_auth,
    routes_conversations,
    routes_outbound_call,
    routes_postcall,
    routes_projects,
    routes_recordings,
    routes_replay,
    routes_socket_jwt,
    routes_storage,
    routes_tools,
    routes_tts,
    routes_voices,
    ws,
)
from openline.api.phonic.schemas import defs_of
from openline.api.twilio import routes as twilio_routes
from openline.api.vapi import app as vapi_app
from openline.api.vapi import calls_create as vapi_calls_create
from openline.api.vapi import control as vapi_control
from openline.api.vapi import ws as vapi_ws
from openline.domain.agent import AgentSpec
from openline.domain.extraction import EvalPromptSpec, ExtractionSchemaSpec
from openline.domain.tool import ToolSpec
from openline.services.hub import Services

Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]


def build_api(services: Services, lifespan: Lifespan | None = None, *,
              max_body_bytes: int = DEFAULT_MAX_BODY_BYTES) -> FastAPI:
    """The HTTP edge over built services: the Phonic dialect's routes and socket, and
    the URLs Twilio calls."""
    app = FastAPI(title="Openline", version=__version__, lifespan=lifespan,
                  description="Self-hosted voice agents with a Phonic-compatible API.")
    app.state.services = services
    app.add_middleware(BodyLimit, max_bytes=max_body_bytes)
    errors.install(app)
    for module in (routes_projects, routes_agents, routes_tools, routes_outbound_call,
                   routes_conversations, routes_auth, routes_voices, routes_recordings,
                   routes_postcall, routes_tts, ws,
                   routes_replay, routes_storage, routes_socket_jwt):  # issue 14
        app.include_router(module.router, prefix="/v1")
    app.include_router(twilio_routes.router)
    vapi_app.install(app, services)  # the Vapi dialect, at the root (/assistant, /call...)
    for vapi_module in (vapi_calls_create, vapi_control, vapi_ws):  # Vapi live calls
        app.include_router(vapi_module.router, include_in_schema=False)
    app.include_router(dashboard_router)  # the web dashboard at / (api/dashboard)

    @app.get("/health", include_in_schema=False)
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    _add_component_schemas(app)
    return app


def _add_component_schemas(app: FastAPI) -> None:
    """Publish the domain models' schemas, then the real errors, answers and media types."""
    original = app.openapi

    def openapi() -> dict[str, object]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = original()
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        components.update(defs_of(AgentSpec, ToolSpec, ExtractionSchemaSpec, EvalPromptSpec))
        app.openapi_schema = openapi_doc.finish(app, schema)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
