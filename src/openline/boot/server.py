"""``openline serve``: the runtime with the HTTP API (REST dialects and sockets) in front."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from types import FrameType

import uvicorn
from fastapi import FastAPI

from openline.api.app import build_api
from openline.boot.logs import install_redaction
from openline.boot.root import Runtime, build_runtime
from openline.boot.sip import start_sip, stop_sip
from openline.settings import Settings
from openline.voice.session import Providers

log = logging.getLogger("openline")
#: after the drain, connections get this long to close before uvicorn cancels them
CLOSE_GRACE_S = 10.0


def create_app(settings: Settings, providers: Providers | None = None, *,
               announce_key: bool = True, verbose: bool = True, role: str = "all") -> FastAPI:
    """A ready-to-serve app: migrations, bootstrap and model loading happen at start-up.

    ``providers`` defaults to the embedded local models (or those the settings name);
    tests pass fakes. ``role``: ``all``, ``api`` or ``media`` (``boot.scale``).
    """
    install_redaction()
    runtime = build_runtime(settings, providers, role=role)

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


class DrainingServer(uvicorn.Server):
    """uvicorn, with a graceful drain on the first SIGTERM.

    SIGTERM: stop taking conversations (``/ready`` answers 503, so the balancer moves new
    ones elsewhere), let live calls finish for up to ``drain_timeout_s``, end the rest
    (``error``), then shut down. A second SIGTERM, or SIGINT, exits at once as uvicorn does.
    """

    def __init__(self, config: uvicorn.Config, runtime: Runtime, drain_timeout_s: float
                 ) -> None:
        super().__init__(config)
        self.runtime, self.drain_timeout_s = runtime, drain_timeout_s
        self._drain: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def serve(self, sockets: list[object] | None = None) -> None:  # type: ignore[override]
        self._loop = asyncio.get_running_loop()
        await super().serve(sockets)  # type: ignore[arg-type]

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if sig == signal.SIGTERM and self._drain is None and self._loop is not None:
            log.info("SIGTERM: draining (up to %.0f s)", self.drain_timeout_s)
            self._loop.call_soon_threadsafe(self._start_drain)
            return
        super().handle_exit(sig, frame)

    def _start_drain(self) -> None:
        self._drain = asyncio.create_task(self._drain_then_exit(), name="drain")

    async def _drain_then_exit(self) -> None:
        try:
            await self.runtime.drain(self.drain_timeout_s)
            await self.runtime.services.live.shutdown()  # what outlived the drain: error
        finally:
            self.should_exit = True


def serve(settings: Settings, providers: Providers | None = None, *, role: str = "all",
          verbose: bool = True) -> None:
    """Run a node until it is stopped (``openline serve``)."""
    app = create_app(settings, providers, role=role, verbose=verbose)
    config = uvicorn.Config(app, host=settings.host, port=settings.port,
                            log_level=settings.log_level,
                            # base64 audio barely compresses: per-message deflate only costs CPU
                            ws_per_message_deflate=False,
                            timeout_graceful_shutdown=int(CLOSE_GRACE_S))
    DrainingServer(config, app.state.runtime, settings.drain_timeout_s).run()
