"""The scale-out parts of a process, from its settings: Redis, the live registry, the
recordings store, the operations view, and what each role runs.

Without ``OPENLINE_REDIS_URL`` a process is the single-node embedded mode: in-process
registry, database job queue, worker inside ``serve``. With it, every cross-node feature
goes through Redis and post-call jobs run in ``openline worker`` processes.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from pathlib import Path

from redis.asyncio import Redis

from openline.services.live_registry import InProcessRegistry, LiveRegistry, default_node_id
from openline.services.live_registry_redis import RedisLiveRegistry
from openline.services.recordings import RecordingStore
from openline.settings import Settings
from openline.store.blobs import S3Options, blob_store

ROLES = ("all", "api", "media", "worker")


@dataclass(frozen=True)
class Role:
    """What a process of one role does."""

    name: str
    #: it takes conversations (sockets, phone media)
    takes_calls: bool
    #: it runs post-call jobs in-process
    runs_jobs: bool
    #: it loads the live-call models (VAD, recogniser, LLM); TTS is always loaded
    loads_call_models: bool


def role_of(name: str, settings: Settings) -> Role:
    """``all`` (default), ``api`` (REST only), ``media`` (calls), ``worker`` (jobs only).

    With Redis, jobs run only in workers; without it, ``all`` keeps the embedded worker.
    """
    if name not in ROLES:
        raise ValueError(f"unknown role {name!r}; one of {', '.join(ROLES)}")
    embedded = settings.redis_url is None
    return Role(name, takes_calls=name in ("all", "media"),
                runs_jobs=name == "worker" or (name == "all" and embedded),
                loads_call_models=name != "api")


def redis_for(settings: Settings) -> Redis | None:
    return Redis.from_url(settings.redis_url) if settings.redis_url else None


def node_id_for(settings: Settings) -> str:
    return settings.node_id or default_node_id()


def build_registry(settings: Settings, redis: Redis | None, node_id: str,
                   serves_http: bool = True) -> LiveRegistry:
    if redis is None:
        return InProcessRegistry(node_id)
    host = socket.gethostname() if settings.host in ("0.0.0.0", "::") else settings.host
    url = (settings.node_url or f"http://{host}:{settings.port}") if serves_http else None
    return RedisLiveRegistry(redis, node_id, prefix=settings.redis_prefix, url=url)


def spool_dir(settings: Settings) -> Path:
    """Where calls record while they run (see ``Settings.recordings_spool``)."""
    if settings.recordings_spool is not None:
        return settings.recordings_spool
    url = settings.recordings_url
    if url and not url.startswith("s3://"):
        return Path(url.removeprefix("file://")).expanduser()
    return settings.recordings_dir()


def build_recordings(settings: Settings) -> RecordingStore:
    spool = spool_dir(settings)
    spool.mkdir(parents=True, exist_ok=True, mode=0o700)
    blobs = blob_store(settings.recordings_url, spool, S3Options(
        endpoint_url=settings.s3_endpoint_url, region=settings.s3_region,
        access_key_id=settings.s3_access_key_id,
        secret_access_key=settings.s3_secret_access_key))
    return RecordingStore(blobs, spool)
