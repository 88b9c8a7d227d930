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

from redis.asyncio import Redis

from openline.boot.postcall import PostCallRuntime, build_postcall
from openline.boot.providers import (
    ProviderVoices,
    build_providers,
    language_support,
    load_all,
)
from openline.boot.scale import (
    Role,
    build_recordings,
    build_registry,
    node_id_for,
    redis_for,
    role_of,
)
from openline.boot.sip import build_sip
from openline.boot.vapi_live import build_vapi_calls
from openline.services.auth import NewKey
from openline.services.external_storage import ArtifactKeeper, ExternalStorageService
from openline.services.hub import Services
from openline.services.live import LiveService
from openline.services.live_registry_redis import RedisLiveRegistry
from openline.services.metrics import Check, Operations, QueueDepth
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
    role: Role
    redis: Redis | None = None

    async def start(self, *, verbose: bool = True) -> NewKey | None:
        """Migrate, bootstrap, recover, load models, start background work (leases and
        their reaper, the post-call worker).

        Returns the first API key when this start created the default workspace.
        """
        await self.db.migrate()
        key = await self.services.auth.bootstrap()
        if isinstance(self.services.live.registry, RedisLiveRegistry):
            await self.services.live.registry.start()
        await self.services.live.start_background()
        if verbose:
            print("Loading models:", flush=True)
        if self.role.loads_call_models:
            await load_all(self.providers, verbose=verbose)
        else:  # an API-only node needs only the voices (catalogue, /v1/tts)
            await self.providers.tts.load()
        if self.role.runs_jobs:
            await self.postcall.start()
        quiet_garbage_collector()
        return key

    async def drain(self, timeout_s: float) -> None:
        """SIGTERM: take no new calls (``/ready`` turns 503), let live ones finish."""
        await self.services.live.drain(timeout_s)

    async def stop(self) -> None:
        """End live calls (stored as ``error``), stop the worker, close the database."""
        await self.services.live.shutdown()
        if self.services.twilio is not None:
            await self.services.twilio.close()
        if self.services.vapi_calls is not None:
            await self.services.vapi_calls.close()
        await self.postcall.stop()
        if isinstance(self.services.live.registry, RedisLiveRegistry):
            await self.services.live.registry.stop()
        if self.redis is not None:
            await self.redis.aclose()
        await self.db.dispose()


def build_runtime(settings: Settings, providers: Providers | None = None,
                  role: str = "all") -> Runtime:
    """Wire one process; ``providers`` defaults to the embedded models (tests pass fakes).

    ``role``: ``all``, ``api``, ``media`` or ``worker`` (``boot.scale.role_of``)."""
    db = database_for(settings)
    pool = parse_pool(settings.phone_number_pool) if settings.phone_number_pool else DEFAULT_POOL
    providers = providers or build_providers(settings)
    voices = ProviderVoices(providers, settings.default_voice)
    the_role, redis = role_of(role, settings), redis_for(settings)
    recordings = build_recordings(settings)
    live = LiveService(db, providers, recordings.spool, voices.installed,
                       allow_private_urls=settings.allow_private_urls,
                       registry=build_registry(settings, redis, node_id_for(settings),
                                               serves_http=the_role.name != "worker"),
                       lease_s=settings.conversation_lease_s,
                       max_concurrent=settings.max_concurrent_conversations,
                       recordings=recordings)
    live.takes_calls = the_role.takes_calls
    links = RecordingLinks(settings.effective_public_url(), settings.effective_secret_key())
    postcall = build_postcall(settings, db, providers, links, wait_idle=live.wait_idle,
                              redis=redis, recordings=recordings)
    live.on_ended = postcall.postcall.conversation_ended
    services = Services.build(
        db, voices, live, links, static_keys=(settings.api_key,) if settings.api_key else (),
        phone_pool=pool, webhooks=postcall.webhooks, postcall=postcall.postcall,
        speech=SpeechService(providers.tts, voices.installed),
        allow_private_urls=settings.allow_private_urls,
        default_max_active=settings.max_concurrent_conversations,
    )
    services.twilio = build_twilio(settings, live, postcall.postcall.conversation_transferred)
    build_phonic_complete(settings, services, providers)
    services.sip = build_sip(settings, live, postcall.postcall.conversation_transferred)
    services.vapi_calls = build_vapi_calls(settings, services, postcall)
    live.setup.languages = services.agents.languages = lambda: language_support(providers)
    services.ops = live.ops = build_operations(db, live, providers, the_role, redis,
                                               postcall.depth)
    return Runtime(settings, db, providers, services, postcall, the_role, redis)


def build_operations(db: Database, live: LiveService, providers: Providers, role: Role,
                     redis: Redis | None, depth: QueueDepth) -> Operations:
    """``/ready`` and ``/metrics`` of this process."""
    needed = [providers.tts] + ([providers.vad, providers.stt, providers.llm]
                                if role.loads_call_models else [])
    checks: dict[str, Check] = {}
    if redis is not None:
        client = redis

        async def redis_ok() -> bool:
            return bool(await client.ping())

        checks["redis"] = redis_ok
    return Operations(db, live_calls=lambda: len(live.registry.local_ids()),
                      providers_loaded=lambda: all(p.loaded for p in needed),
                      queue_depth=depth, checks=checks,
                      draining=lambda: live.draining)


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
