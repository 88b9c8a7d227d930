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
    routes_postcall,
    routes_projects,
    routes_recordings,
    routes_tools,
    routes_tts,
    routes_voices,
    ws,
)
from openline.api.phonic.schemas import defs_of
from openline.api.postcall_runtime import build_postcall
from openline.api.runtime import ProviderVoices, build_providers, load_all
from openline.domain.agent import AgentSpec
from openline.domain.extraction import EvalPromptSpec, ExtractionSchemaSpec
from openline.domain.tool import ToolSpec
from openline.services.hub import Services
from openline.services.live import LiveService
from openline.services.phone_numbers import DEFAULT_POOL, parse_pool
from openline.services.recordings import RecordingLinks
from openline.services.speech import SpeechService
from openline.settings import Settings
from openline.store.db import Database, sqlite_url
from openline.voice.session import Providers

log = logging.getLogger("openline")


def database_for(settings: Settings) -> Database:
    return Database(settings.database_url or sqlite_url(settings.ensure_data_dir()))


def create_app(settings: Settings, providers: Providers | None = None, *,
               announce_key: bool = True, verbose: bool = True) -> FastAPI:
    """A ready-to-serve app: migrations, bootstrap and model loading happen at start-up.

    ``providers`` defaults to the embedded local models (or those the settings name);
    tests pass fakes.
    """
    db = database_for(settings)
    pool = parse_pool(settings.phone_number_pool) if settings.phone_number_pool else DEFAULT_POOL
    providers = providers or build_providers(settings)
    voices = ProviderVoices(providers, settings.default_voice)
    live = LiveService(db, providers, settings.recordings_dir(), voices.installed,
                       allow_private_urls=settings.allow_private_urls)
    links = RecordingLinks(settings.effective_public_url(), settings.effective_secret_key())
    postcall = build_postcall(settings, db, providers, links, wait_idle=live.wait_idle)
    live.on_ended = postcall.postcall.conversation_ended
    services = Services.build(
        db, voices, live, links, static_keys=(settings.api_key,) if settings.api_key else (),
        phone_pool=pool, webhooks=postcall.webhooks, postcall=postcall.postcall,
        speech=SpeechService(providers.tts, voices.installed),
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await db.migrate()
        key = await services.auth.bootstrap()
        closed = await live.close_orphans()
        if closed:
            log.warning("closed %d conversation(s) left open by a crash", closed)
        if verbose:
            print("Loading models:", flush=True)
        await load_all(providers, verbose=verbose)
        if key is not None and announce_key:
            print(f"\nOpenline created workspace 'default' and project 'main'.\n"
                  f"API key (shown once, keep it safe): {key.secret}\n", flush=True)
        await postcall.start()
        yield
        await live.shutdown()
        await postcall.stop()
        await db.dispose()

    app = FastAPI(title="Openline", version=__version__, lifespan=lifespan,
                  description="Self-hosted voice agents with a Phonic-compatible API.")
    app.state.services = services
    app.state.settings = settings
    errors.install(app)
    for module in (routes_projects, routes_agents, routes_tools, routes_conversations,
                   routes_auth, routes_voices, routes_recordings, routes_postcall, routes_tts,
                   ws):
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
