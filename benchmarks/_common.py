"""Shared helpers of the voice benchmarks (``latency.py``, ``concurrency.py``).

Two roles:

* a library for the benchmark scripts: percentiles, a server subprocess on 127.0.0.1,
  the SDK client, real-time pacing, the docs-section writer;
* run as a script, a **server launcher**: ``python benchmarks/_common.py serve
  --providers embedded|fake`` builds ``create_app`` (what ``openline serve`` does) with the
  embedded stack or instant fake providers, and adds benchmark instrumentation *inside
  the server process*: an event-loop lag probe (a task sleeping 10 ms in a loop that
  records its overshoot), the ``Playout`` underruns and latencies of every finished
  conversation (by wrapping ``LiveService.run``), and the process CPU time. They are read
  from ``GET /bench/stats`` (``?reset=1`` starts a new window). Nothing in ``src/`` is
  changed; the fake providers cannot be chosen from the CLI, hence this launcher.

Everything binds to 127.0.0.1; every wait is bounded.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import re
import resource
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs" / "benchmarks.md"
RATE = 16_000
CHUNK_MS = 20
CHUNK_SAMPLES = RATE * CHUNK_MS // 1000  # 320
#: the engine's VAD frame (openline.voice.turns.FRAME_SAMPLES); chunk and frame boundaries
#: coincide every 2,560 samples (160 ms)
VAD_FRAME_SAMPLES = 512
ALIGN_SAMPLES = math.lcm(CHUNK_SAMPLES, VAD_FRAME_SAMPLES)
SERVER_START_S = 180.0
LAG_PERIOD_S = 0.010
#: what the fake LLM answers (two sentences, so the playout crosses a sentence boundary)
FAKE_REPLY = "Sure, I can help with that. Which day works best for you?"
FAKE_MS_PER_CHAR = 40.0


# --------------------------------------------------------------------------- statistics


def percentile(values: Sequence[float], q: float) -> float:
    """Linearly interpolated percentile (``q`` in 0..100); NaN for no values."""
    if not values:
        return float("nan")
    data = sorted(values)
    pos = (len(data) - 1) * q / 100
    lo, hi = math.floor(pos), math.ceil(pos)
    return data[lo] + (data[hi] - data[lo]) * (pos - lo)


def summary(values: Sequence[float]) -> dict[str, float]:
    """n, p50, p95, p99, min and max of ``values``."""
    return {"n": len(values), "p50": percentile(values, 50), "p95": percentile(values, 95),
            "p99": percentile(values, 99),
            "min": min(values) if values else float("nan"),
            "max": max(values) if values else float("nan")}


def ms(value: float) -> str:
    """A millisecond figure for tables."""
    return "n/a" if math.isnan(value) else f"{value:.1f}"


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- machine load


def cpu_busy_s() -> float:
    """CPU seconds the whole machine has been busy since boot (``/proc/stat``)."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def machine() -> str:
    """The CPU, as the results depend on it: int8 kernels differ by instruction set
    (Whisper's look took ~35 ms with AVX-512 VNNI, 86-137 ms on an AVX2 EPYC)."""
    model, flags = "unknown CPU", set()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                model = value.strip()
            elif key.strip() == "flags":
                flags = set(value.split())
    isa = "avx512_vnni" if "avx512_vnni" in flags else "avx2" if "avx2" in flags else "no avx2"
    return f"{os.cpu_count()}-core {model} ({isa})"


def wait_until_quiet(max_busy: float = 0.15, window_s: float = 3.0,
                     max_wait_s: float = 900.0) -> float:
    """Wait until the machine is idle (busy <= ``max_busy`` of all cores over ``window_s``).

    Benchmarks on a shared 2-core machine are meaningless while something else runs.
    Returns the busy fraction of the last window (proceeds anyway after ``max_wait_s``).
    """
    cores = os.cpu_count() or 1
    deadline = time.monotonic() + max_wait_s
    while True:
        before = cpu_busy_s()
        time.sleep(window_s)
        busy = (cpu_busy_s() - before) / (cores * window_s)
        if busy <= max_busy or time.monotonic() > deadline:
            return busy
        log(f"machine busy ({busy:.0%} of {cores} cores): waiting for it to be quiet...")


# --------------------------------------------------------------------------- server process


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class ServerHandle:
    url: str
    api_key: str
    pid: int

    @property
    def ws_url(self) -> str:
        return self.url.replace("http://", "ws://")


def _server_command(providers: str, use_cli: bool) -> list[str]:
    if use_cli:
        return [sys.executable, "-m", "openline.cli.main", "serve"]
    return [sys.executable, str(Path(__file__).resolve()), "serve", "--providers", providers]


@contextmanager
def bench_server(workdir: Path, providers: str = "embedded", *, use_cli: bool = False,
                 database_url: str | None = None, api_key: str | None = None,
                 env_extra: dict[str, str] | None = None) -> Iterator[ServerHandle]:
    """Openline in a subprocess (own GIL and event loop); yields once ``/health`` answers.

    ``use_cli`` runs ``openline serve`` itself (embedded stack, no ``/bench/stats``);
    otherwise this module's launcher runs the same ``create_app`` plus instrumentation.
    ``database_url`` defaults to SQLite in ``workdir``.
    """
    port, key = free_port(), api_key or "ol_bench_" + uuid.uuid4().hex
    env = {**os.environ, "OPENLINE_API_KEY": key, "OPENLINE_DATA_DIR": str(workdir / "data"),
           "OPENLINE_HOST": "127.0.0.1", "OPENLINE_PORT": str(port),
           "OPENLINE_LOG_LEVEL": "warning", "PYTHONPATH": str(ROOT / "src")}
    env.pop("OPENLINE_DATABASE_URL", None)
    env.update(env_extra or {})
    if database_url:
        env["OPENLINE_DATABASE_URL"] = database_url
    log_path = workdir / f"server-{port}.log"
    with log_path.open("wb") as out:
        proc = subprocess.Popen(_server_command(providers, use_cli), env=env, stdout=out,
                                stderr=subprocess.STDOUT, cwd=workdir)
        try:
            url = f"http://127.0.0.1:{port}"
            _wait_healthy(proc, url, log_path)
            yield ServerHandle(url, key, proc.pid)
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)


def _wait_healthy(proc: subprocess.Popen[bytes], url: str, log_path: Path) -> None:
    deadline = time.monotonic() + SERVER_START_S
    while time.monotonic() < deadline and proc.poll() is None:
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(f"{url}/health", timeout=1.0).status_code == 200:
                return
        time.sleep(0.2)
    tail = log_path.read_text(errors="replace")[-3000:]
    raise RuntimeError(f"the Openline server did not become healthy:\n{tail}")


def sdk(server: ServerHandle) -> Any:
    """The official async SDK pointed at ``server`` (REST and the STS socket)."""
    from phonic import AsyncPhonic, PhonicEnvironment

    return AsyncPhonic(api_key=server.api_key, environment=PhonicEnvironment(
        base=f"{server.url}/v1", production=server.ws_url))


def bench_stats(server: ServerHandle, *, reset: bool = False) -> dict[str, Any]:
    """The launcher's in-server measurements (``reset`` opens a new window)."""
    r = httpx.get(f"{server.url}/bench/stats", params={"reset": int(reset)}, timeout=30)
    r.raise_for_status()
    return dict(r.json())


# --------------------------------------------------------------------------- audio + pacing


def aligned(samples: Any) -> Any:
    """Prepend silence so the segment ends on a chunk *and* VAD-frame boundary."""
    import numpy as np

    pad = (-samples.size) % ALIGN_SAMPLES
    return np.concatenate([np.zeros(pad, dtype=np.int16), samples.astype(np.int16)])


def voiced_end(samples: Any, rate: int = RATE, floor_dbfs: float = -45.0) -> int:
    """Index just past the last voiced sample: the last 10 ms window above ``floor_dbfs``."""
    import numpy as np

    win = rate // 100
    n = samples.size // win
    frames = samples[: n * win].astype(np.float64).reshape(n, win) / 32768.0
    rms = np.sqrt(np.mean(frames**2, axis=1))
    loud = np.nonzero(rms >= 10 ** (floor_dbfs / 20))[0]
    return int((loud[-1] + 1) * win) if loud.size else 0


def espeak(text: str, voice: str, speed: int, workdir: Path) -> Any:
    """``text`` spoken by espeak-ng in ``voice`` at ``speed`` wpm, at ``RATE``, cut at its
    voiced end (a caller's line for the turn benchmarks)."""
    import numpy as np

    from openline.audio.resample import resample
    from openline.audio.wav import read_wav

    path = workdir / "caller.wav"
    subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-w", str(path), text],
                   check=True, timeout=30)
    samples, rate = read_wav(path)
    audio = np.asarray(resample(samples, rate, RATE), dtype=np.int16)
    return audio[: voiced_end(audio)]


class Ticker:
    """Absolute 20 ms schedule (no drift): ``await tick()`` returns at t0 + k * 20 ms."""

    def __init__(self, start: float | None = None) -> None:
        self.t0 = time.perf_counter() if start is None else start
        self.k = 0

    async def tick(self) -> float:
        due = self.t0 + self.k * CHUNK_MS / 1000
        self.k += 1
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        return due


# --------------------------------------------------------------------------- docs


def write_section(heading: str, body: str, path: Path = DOCS) -> None:
    """Replace (or append) the ``## heading`` section of ``path``; others are untouched.

    The file is re-read right before writing, since other benchmarks own other sections.
    """
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    block = f"## {heading}\n\n{body.strip()}\n"
    pattern = re.compile(rf"^## {re.escape(heading)}\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(text):
        text = pattern.sub(lambda _: block + "\n", text, count=1).rstrip() + "\n"
    else:
        text = text.rstrip() + "\n\n" + block
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def write_between(marker: str, content: str, heading: str, path: Path = DOCS) -> None:
    """Replace the text between ``<!-- marker:begin -->`` and ``<!-- marker:end -->``.

    If the markers are missing, they are appended to the ``## heading`` section (which is
    created if needed). The file is re-read right before writing.
    """
    begin, end = f"<!-- {marker}:begin -->", f"<!-- {marker}:end -->"
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    if begin not in text or end not in text:
        pattern = re.compile(rf"^## {re.escape(heading)}\n.*?(?=^## |\Z)", re.S | re.M)
        found = pattern.search(text)
        body = (found.group(0).split("\n", 1)[1] if found else "") + f"\n{begin}\n{end}\n"
        write_section(heading, body, path)
        text = path.read_text()
    head, rest = text.split(begin, 1)
    _, tail = rest.split(end, 1)
    path.write_text(f"{head}{begin}\n{content.strip()}\n{end}{tail}")


# --------------------------------------------------------------------------- the launcher


class Probe:
    """In-server measurements: loop lag, finished conversations, CPU time."""

    def __init__(self) -> None:
        self.lags: list[tuple[float, float]] = []  # (monotonic, lag ms)
        self.results: list[dict[str, Any]] = []
        self._since = time.monotonic()
        self._cpu = self._cpu_now()

    @staticmethod
    def _cpu_now() -> float:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime

    def reset(self) -> None:
        self.lags.clear()
        self.results.clear()
        self._since, self._cpu = time.monotonic(), self._cpu_now()

    async def run_lag_probe(self) -> None:
        while True:
            start = time.perf_counter()
            await asyncio.sleep(LAG_PERIOD_S)
            lag = (time.perf_counter() - start - LAG_PERIOD_S) * 1000
            self.lags.append((time.monotonic(), lag))

    def stats(self, live_count: int) -> dict[str, Any]:
        lags = [lag for _, lag in self.lags]
        return {"window_s": time.monotonic() - self._since,
                "cpu_s": self._cpu_now() - self._cpu, "lag_ms": summary(lags),
                "lag_samples": [[round(t - self._since, 3), round(v, 3)] for t, v in self.lags],
                "live": live_count, "results": self.results,
                "underruns": sum(r["underruns"] for r in self.results)}


def _instant_llm_providers(settings: Any) -> Any:
    """The embedded VAD, recogniser, end-of-turn model and voices with an instant LLM."""
    from openline.boot.providers import build_providers
    from openline.providers.testing import ScriptedLLM

    providers = build_providers(settings)
    providers.llm = ScriptedLLM(fallback=FAKE_REPLY)
    return providers


def _fake_providers() -> Any:
    from openline.providers.testing import EnergyVAD, FakeSTT, FakeTTS, ScriptedLLM
    from openline.voice.session import Providers

    return Providers(EnergyVAD(), FakeSTT(default="I would like to book an appointment"),
                     ScriptedLLM(fallback=FAKE_REPLY), FakeTTS(ms_per_char=FAKE_MS_PER_CHAR))


def provider_calls(providers: Any) -> dict[str, dict[str, int]]:
    """Operations each provider has run so far, by name (``transcribe``: recognitions,
    speculative ones included; a cached or coalesced result runs none)."""
    out: dict[str, dict[str, int]] = {}
    for role in ("vad", "stt", "llm", "tts", "turn", "turn_text"):
        metrics = getattr(getattr(providers, role, None), "metrics", None)
        if metrics is not None:
            out[role] = {op: stats.calls for op, stats in metrics.ops.items()}
    return out


def provider_work(before: dict[str, dict[str, int]], after: dict[str, dict[str, int]]
                  ) -> dict[str, int]:
    """What the providers ran between two ``provider_calls`` readings of ``/bench/stats``,
    as ``{"stt.transcribe": n, ...}``."""
    return {f"{role}.{op}": count - before.get(role, {}).get(op, 0)
            for role, ops in after.items() for op, count in ops.items()}


def work_text(work: dict[str, int]) -> str:
    """``provider_work`` for a log line: the operations that ran, by name."""
    return ", ".join(f"{k}={v}" for k, v in sorted(work.items()) if v)


def _instrument(app: Any, probe: Probe) -> None:
    """Wrap ``LiveService.run_session`` (every transport's calls end there) and the
    lifespan; add ``GET /bench/stats``."""
    live = app.state.services.live
    original_run = live.run_session

    async def run(*args: Any, **kwargs: Any) -> Any:
        result = await original_run(*args, **kwargs)
        probe.results.append({"underruns": result.underruns, "ended_by": result.ended_by,
                              "latencies_ms": result.latencies_ms,
                              "stage_timings": result.stage_timings})
        return result

    live.run_session = run
    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(a: Any) -> AsyncIterator[Any]:
        async with inner(a) as state:
            task = asyncio.create_task(probe.run_lag_probe(), name="bench-lag-probe")
            try:
                yield state
            finally:
                task.cancel()

    app.router.lifespan_context = lifespan

    async def stats(reset: int = 0) -> dict[str, Any]:
        out = probe.stats(len(live.registry.local_ids()))
        out["provider_calls"] = provider_calls(live.providers)
        if reset:
            probe.reset()
        return out

    app.add_api_route("/bench/stats", stats, methods=["GET"], include_in_schema=False)


def serve(argv: Sequence[str]) -> int:
    """Run Openline as ``openline serve`` does, with the chosen providers, instrumented."""
    import uvicorn

    from openline.boot.server import create_app
    from openline.settings import Settings

    parser = argparse.ArgumentParser(prog="_common.py serve")
    parser.add_argument("--providers", choices=("embedded", "fake", "instant-llm"),
                        default="embedded")
    args = parser.parse_args(argv)
    settings = Settings()
    providers = (_fake_providers() if args.providers == "fake"
                 else _instant_llm_providers(settings) if args.providers == "instant-llm"
                 else None)
    app = create_app(settings, providers, announce_key=False, verbose=True)
    _instrument(app, Probe())
    uvicorn.run(app, host="127.0.0.1", port=settings.port, log_level=settings.log_level)
    return 0


if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] != "serve":
        sys.exit("usage: _common.py serve [--providers embedded|fake|instant-llm]")
    sys.exit(serve(sys.argv[2:]))
