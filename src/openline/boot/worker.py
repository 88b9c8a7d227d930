"""``openline worker``: a process that runs post-call work and takes no calls.

It boots from the same composition root as ``serve``, so it shares the queue, the
database and the lease rules with the serving nodes: it closes conversations whose
owner's lease expired and runs the post-call and webhook jobs. SIGTERM stops claiming,
lets running jobs finish for a few seconds and hands the rest back to the queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal

from openline.boot.root import build_runtime
from openline.settings import Settings
from openline.voice.session import Providers


async def run_worker(settings: Settings, providers: Providers | None = None, *,
                     stop: asyncio.Event | None = None, verbose: bool = True,
                     handle_signals: bool = False) -> None:
    """Run until ``stop`` is set (or, with ``handle_signals``, SIGTERM/SIGINT)."""
    stop = stop or asyncio.Event()
    if handle_signals:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError):  # not on every platform
                loop.add_signal_handler(sig, stop.set)
    runtime = build_runtime(settings, providers, role="worker")
    await runtime.start(verbose=verbose)
    if verbose:
        print("Openline worker running (post-call jobs and webhooks).", flush=True)
    try:
        await stop.wait()
    finally:
        await runtime.stop()
