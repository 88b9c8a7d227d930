"""Redis for tests: the machine's shared Redis, with a key prefix unique to each use."""

from __future__ import annotations

import os
import uuid

from redis.asyncio import Redis

REDIS_URL = os.environ.get("OPENLINE_TEST_REDIS", "redis://127.0.0.1:6379/0")


def unique_prefix(what: str) -> str:
    """Keys no other test run (or session sharing this Redis) uses."""
    return f"oltest-{what}-{uuid.uuid4().hex[:10]}"


async def drop_keys(redis: Redis, pattern: str) -> None:
    """Delete what a test wrote (its unique prefix)."""
    async for key in redis.scan_iter(pattern, count=500):
        await redis.delete(key)
