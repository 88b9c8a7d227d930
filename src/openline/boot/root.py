"""The composition root: settings -> database, providers, services, queues, live calls.

``build_runtime`` wires one process; ``Runtime.start``/``stop`` run its background parts
(migrations, bootstrap, lease keeper, post-call worker). ``openline serve`` puts the HTTP
API in front of it (``boot.server``); a worker-only process (``openline worker``) runs the
same runtime without HTTP and without taking calls.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from openline.boot.postcall import PostCallRuntime, build_postcall
from openline.boot.providers import ProviderVoices, build_providers, load_all
from openline.boot.vapi_live import build_vapi_calls
from openline.services.auth import NewKey
from openline.services.external_storage import ArtifactKeeper, ExternalStorageService
from openline.services.hub import Services
from openline.services.live import LiveService
from openline.services.live_registry import InProcessRegistry
from openline.services.phone_numbers import DEFAULT_POOL, parse_pool
from openline.services.recordings import RecordingLinks
from openline.services.replay import ReplayService
from openline.services.socket_jwt import SocketJwtService
from openline.services.speech import SpeechService
from openline.services.telephony.service import TwilioOptions, TwilioService
from openline.settings import Settings
from openline.store.db import Database, sqlite_url
from openline.voice.session import Providers

log = logging.getLogger("openline")


def quiet_garbage_collector() -> None:
    """Keep the cyclic garbage collector from pausing live calls.

    A full collection walks every tracked object; with a hundred live calls one took
    ~170 ms here, long enough for audio underruns (benchmarks/concurrency.py). Objects that
    exist once start-up is done (modules, models, services) live for the whole process:
    ``gc.freeze()`` moves them out of the collector's sight, and a larger first-generation
    threshold makes collections rarer. Cycles are still collected.
    """
    gc.collect()
    gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(GC_GEN0_THRESHOLD, gen1, gen2)


#: allocations between young-generation collections (CPython's default is 700 / 2,000)
GC_GEN0_THRESHOLD = 20000


def database_for(settings: Settings) -> Database:
    """The configured database, or SQLite in the data directory."""
    return Database(settings.database_url or sqlite_url(settings.ensure_data_dir()),
                    secret_key=settings.effective_secret_key())


@dataclass
class Runtime:
    """Everything one Openline process runs."""

    settings: Settings
    db: Database
    providers: Providers
    services: Services
    postcall: PostCallRuntime

    async def start(self, *, verbose: bool = True) -> NewKey | None:
        """Migrate, bootstrap, recover, load models, start background work (leases and
        their reaper, the post-call worker).

        Returns the first API key when this start created the default workspace.
        """
        await self.db.migrate()
        key = await self.services.auth.bootstrap()
        await self.services.live.start_background()
        if verbose:
            print("Loading models:", flush=True)
        await load_all(self.providers, verbose=verbose)
        await self.postcall.start()
        quiet_garbage_collector()
        return key

    async def stop(self) -> None:
        """End live calls (stored as ``error``), stop the worker, close the database."""
        await self.services.live.shutdown()
        if self.services.twilio is not None:
            await self.services.twilio.close()
        if self.services.vapi_calls is not None:
            await self.services.vapi_calls.close()
        await self.postcall.stop()
        await self.db.dispose()


def build_runtime(settings: Settings, providers: Providers | None = None) -> Runtime:
    """Wire one process; ``providers`` defaults to the embedded models (tests pass fakes)."""
    db = database_for(settings)
    pool = parse_pool(settings.phone_number_pool) if settings.phone_number_pool else DEFAULT_POOL
    providers = providers or build_providers(settings)
    voices = ProviderVoices(providers, settings.default_voice)
    live = LiveService(db, providers, settings.recordings_dir(), voices.installed,
                       allow_private_urls=settings.allow_private_urls,
                       registry=InProcessRegistry(settings.node_id),
                       lease_s=settings.conversation_lease_s)
    links = RecordingLinks(settings.effective_public_url(), settings.effective_secret_key())
    postcall = build_postcall(settings, db, providers, links, wait_idle=live.wait_idle)
    live.on_ended = postcall.postcall.conversation_ended
    services = Services.build(
        db, voices, live, links, static_keys=(settings.api_key,) if settings.api_key else (),
        phone_pool=pool, webhooks=postcall.webhooks, postcall=postcall.postcall,
        speech=SpeechService(providers.tts, voices.installed),
        allow_private_urls=settings.allow_private_urls,
    )
    services.twilio = build_twilio(settings, live, postcall.postcall.conversation_transferred)
    build_phonic_complete(settings, services, providers)
    services.vapi_calls = build_vapi_calls(settings, services, postcall)
    return Runtime(settings, db, providers, services, postcall)


def build_phonic_complete(settings: Settings, services: Services, providers: Providers) -> None:
    """Replay, external storage (with the end-of-call data protection) and socket JWTs."""
    services.storage = ExternalStorageService(services.db,
                                              allow_private_urls=settings.allow_private_urls)
    services.live.artifacts = ArtifactKeeper(services.db, services.storage)
    services.replay = ReplayService(services.db, services.live, providers.llm,
                                    max_concurrent=settings.max_concurrent_replays)
    services.socket_jwt = SocketJwtService(services.db,
                                           default_audience=settings.socket_jwt_audience)


def build_twilio(settings: Settings, live: LiveService,
                 transferred: Callable[[str, str], Awaitable[int]]) -> TwilioService | None:
    """Phone calls through Twilio, when its account SID and auth token are set."""
    if not (settings.twilio_account_sid and settings.twilio_auth_token):
        return None
    return TwilioService(TwilioOptions(
        settings.twilio_account_sid, settings.twilio_auth_token,
        settings.effective_public_url(), api_base=settings.twilio_api_base,
        api_key_sid=settings.twilio_api_key_sid,
        api_key_secret=settings.twilio_api_key_secret), live, transferred=transferred)
