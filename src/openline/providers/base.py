"""What every provider shares: lifecycle, a bounded worker pool for blocking inference,
call statistics, and translation of vendor exceptions into ``openline.domain.errors``.

A concrete provider implements ``_load``/``_close`` plus the per-kind hook its kind's base
defines (``providers/<kind>/base.py``). It never reads environment variables or settings:
everything arrives as an options dataclass in the constructor.

Blocking work (ONNX, CTranslate2, llama.cpp) runs on the provider's own
``BlockingRunner``: a thread pool whose size is the provider's concurrency limit (default 1),
because the target machine has two cores and model runtimes already use several threads
each. Cancelling an ``await`` on the runner stops queued work from starting, but work
already running in a thread cannot be interrupted; it finishes in the background and its
result is dropped. Providers stay consistent because their hooks never leave shared state
half-updated.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from types import TracebackType
from typing import ParamSpec, Self, TypeVar

from openline.domain.errors import ProviderError, ProviderUnavailable

P = ParamSpec("P")
T = TypeVar("T")


class BlockingRunner:
    """A named, bounded thread pool for one provider's blocking calls."""

    def __init__(self, name: str, max_concurrency: int = 1) -> None:
        if max_concurrency < 1:
            raise ValueError("max_concurrency must be >= 1")
        self.name = name
        self.max_concurrency = max_concurrency
        self._pool: ThreadPoolExecutor | None = None

    async def run(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run ``fn`` in the pool; at most ``max_concurrency`` calls run at once."""
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.max_concurrency, thread_name_prefix=self.name)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, functools.partial(fn, *args, **kwargs))

    def submit_nowait(self, fn: Callable[[], object]) -> None:
        """Queue ``fn`` without waiting for it; its errors are ignored (cleanup work)."""
        if self._pool is None:
            return
        with contextlib.suppress(RuntimeError):  # pool already shut down
            self._pool.submit(_quietly, fn)

    def shutdown(self) -> None:
        """Stop accepting work; running calls finish in the background."""
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None


def _quietly(fn: Callable[[], object]) -> None:
    with contextlib.suppress(Exception):  # cleanup must never raise into the pool
        fn()


@dataclass
class CallStats:
    """Running totals for one provider operation (e.g. ``transcribe``)."""

    calls: int = 0
    failures: int = 0
    total_s: float = 0.0
    last_s: float = 0.0
    max_s: float = 0.0

    def record(self, seconds: float, *, failed: bool = False) -> None:
        """Add one call that took ``seconds``."""
        self.calls += 1
        self.failures += int(failed)
        self.total_s += seconds
        self.last_s = seconds
        self.max_s = max(self.max_s, seconds)

    @property
    def mean_s(self) -> float:
        """Mean seconds per call (0.0 before the first call)."""
        return self.total_s / self.calls if self.calls else 0.0


@dataclass
class ProviderMetrics:
    """Per-provider metrics: load time and one ``CallStats`` per operation name."""

    load_s: float | None = None
    ops: dict[str, CallStats] = field(default_factory=dict)

    def op(self, name: str) -> CallStats:
        """The stats for operation ``name`` (created on first use)."""
        return self.ops.setdefault(name, CallStats())


def wrap_error(provider: str, exc: BaseException) -> ProviderError:
    """Turn any exception into a ``ProviderError`` (typed errors pass through)."""
    if isinstance(exc, ProviderError):
        return exc
    return ProviderError(f"{provider}: {type(exc).__name__}: {exc}")


class Provider:
    """Base of all providers: idempotent ``load()``, ``aclose()``, metrics, runner.

    Subclasses override ``_load`` (blocking or async setup; use ``self.runner`` for heavy
    work) and ``_close``. Public calls invoke ``ensure_loaded()`` first, so an explicit
    ``load()`` at startup only moves the cost earlier (recommended: first greetings
    should not pay for model loading).
    """

    #: Short stable identifier used in errors and metrics, e.g. ``"faster-whisper"``.
    name: str = "provider"

    def __init__(self, *, max_concurrency: int = 1) -> None:
        self.runner = BlockingRunner(f"openline-{self.name}", max_concurrency)
        self.metrics = ProviderMetrics()
        self._load_lock = asyncio.Lock()
        self._loaded = False
        self._closed = False

    @property
    def loaded(self) -> bool:
        """Whether ``load()`` has completed."""
        return self._loaded

    async def load(self) -> None:
        """Load models/clients once; later calls return immediately.

        Raises ``ProviderUnavailable`` when the provider cannot be set up.
        """
        if self._loaded:
            return
        if self._closed:
            raise ProviderUnavailable(f"{self.name}: provider is closed")
        async with self._load_lock:
            if self._loaded:
                return
            start = time.perf_counter()
            try:
                await self._load()
            except ProviderError:
                raise
            except Exception as exc:
                raise ProviderUnavailable(f"{self.name}: failed to load: {exc}") from exc
            self.metrics.load_s = time.perf_counter() - start
            self._loaded = True

    async def ensure_loaded(self) -> None:
        """``load()`` if needed (cheap once loaded)."""
        if not self._loaded:
            await self.load()

    async def _measured(self, op: str, fn: Callable[P, T], *args: P.args,
                        **kwargs: P.kwargs) -> T:
        """Load if needed, then run ``fn`` on the runner as operation ``op``: its time goes
        to the metrics, a failure comes out as ``ProviderError``."""
        await self.ensure_loaded()
        stats = self.metrics.op(op)
        start = time.perf_counter()
        try:
            result = await self.runner.run(fn, *args, **kwargs)
        except Exception as exc:
            stats.record(time.perf_counter() - start, failed=True)
            raise wrap_error(self.name, exc) from exc
        stats.record(time.perf_counter() - start)
        return result

    async def aclose(self) -> None:
        """Release models, clients and threads. Idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            await self._close()
        finally:
            self._loaded = False
            self.runner.shutdown()

    async def _load(self) -> None:
        """Hook: set up the provider (default: nothing)."""

    async def _close(self) -> None:
        """Hook: release resources (default: nothing)."""

    async def __aenter__(self) -> Self:
        await self.load()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
