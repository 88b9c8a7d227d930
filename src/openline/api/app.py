"""The composition root: builds the FastAPI application and its services."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from openline import __version__
from openline.api.phonic import (
    errors,
    routes_agents,
    routes_auth,
    routes_conversations,
    routes_projects,
    routes_tools,
    routes_voices,
)
from openline.api.phonic.schemas import defs_of
from openline.domain.agent import AgentSpec
from openline.domain.extraction import EvalPromptSpec, ExtractionSchemaSpec
from openline.domain.tool import ToolSpec
from openline.services.hub import Services
from openline.services.phone_numbers import DEFAULT_POOL, parse_pool
from openline.services.voices import VoiceSource
from openline.settings import Settings
from openline.store.db import Database, sqlite_url

log = logging.getLogger("openline")


def database_for(settings: Settings) -> Database:
    return Database(settings.database_url or sqlite_url(settings.ensure_data_dir()))


def create_app(settings: Settings, voices: VoiceSource, *, announce_key: bool = True) -> FastAPI:
    """A ready-to-serve app; the database is migrated and bootstrapped at start-up."""
    db = database_for(settings)
    pool = parse_pool(settings.phone_number_pool) if settings.phone_number_pool else DEFAULT_POOL
    services = Services.build(
        db, voices, static_keys=(settings.api_key,) if settings.api_key else (), phone_pool=pool
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await db.migrate()
        key = await services.auth.bootstrap()
        if key is not None and announce_key:
            print(f"\nOpenline created workspace 'default' and project 'main'.\n"
                  f"API key (shown once, keep it safe): {key.secret}\n", flush=True)
        yield
        await db.dispose()

    app = FastAPI(title="Openline", version=__version__, lifespan=lifespan,
                  description="Self-hosted voice agents with a Phonic-compatible API.")
    app.state.services = services
    app.state.settings = settings
    errors.install(app)
    for module in (routes_projects, routes_agents, routes_tools, routes_conversations,
                   routes_auth, routes_voices):
        app.include_router(module.router, prefix="/v1")

    @app.get("/health", include_in_schema=False)
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    _add_component_schemas(app)
    return app


def _add_component_schemas(app: FastAPI) -> None:
    original = app.openapi

    def openapi() -> dict[str, object]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = original()
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        components.update(defs_of(AgentSpec, ToolSpec, ExtractionSchemaSpec, EvalPromptSpec))
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
