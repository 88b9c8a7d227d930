"""``openline serve``: the runtime with the HTTP API (REST dialects and sockets) in front."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from openline.api.app import build_api
from openline.boot.logs import install_redaction
from openline.boot.root import build_runtime
from openline.boot.sip import start_sip, stop_sip
from openline.settings import Settings
from openline.voice.session import Providers


def create_app(settings: Settings, providers: Providers | None = None, *,
               announce_key: bool = True, verbose: bool = True) -> FastAPI:
    """A ready-to-serve app: migrations, bootstrap and model loading happen at start-up.

    ``providers`` defaults to the embedded local models (or those the settings name);
    tests pass fakes.
    """
    install_redaction()
    runtime = build_runtime(settings, providers)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        key = await runtime.start(verbose=verbose)
        await start_sip(runtime, verbose=verbose)
        if key is not None and announce_key:
            print(f"\nOpenline created workspace 'default' and project 'main'.\n"
                  f"API key (shown once, keep it safe): {key.secret}\n", flush=True)
        yield
        await stop_sip(runtime)
        await runtime.stop()

    app = build_api(runtime.services, lifespan, max_body_bytes=settings.max_body_bytes)
    app.state.runtime = runtime
    return app
