"""``openline worker``: a process that runs post-call work and takes no calls.

It boots from the same composition root as ``serve``, so it shares the queue, the
database and the lease rules with the serving nodes: it closes conversations whose
owner's lease expired and runs the post-call and webhook jobs.
"""

from __future__ import annotations

import asyncio

from openline.boot.root import build_runtime
from openline.settings import Settings
from openline.voice.session import Providers


async def run_worker(settings: Settings, providers: Providers | None = None, *,
                     stop: asyncio.Event | None = None, verbose: bool = True) -> None:
    """Run until ``stop`` is set (or the process is interrupted)."""
    runtime = build_runtime(settings, providers)
    await runtime.start(verbose=verbose)
    if verbose:
        print("Openline worker running (post-call jobs and webhooks).", flush=True)
    try:
        await (stop or asyncio.Event()).wait()
    finally:
        await runtime.stop()
