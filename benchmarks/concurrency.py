"""Many simultaneous conversations against one Openline server with instant fake providers.

A script, not a timed test. It starts Openline in a subprocess (its own process, GIL and
event loop, so the numbers are the server's alone) through ``benchmarks/_common.py
serve --providers fake``: ``create_app`` with an energy VAD, a scripted STT and LLM and a
tone TTS (the CLI cannot choose fakes), plus in-server instrumentation read from
``GET /bench/stats``:

* **event-loop lag**: a task sleeps 10 ms in a loop and records how late it wakes up;
* **underruns**: the sum of ``ConversationResult.underruns`` (``LocalPacer.underruns``: a
  sentence arrived after everything sent had been played) over the finished conversations;
* **CPU**: ``getrusage(RUSAGE_SELF)`` user+system seconds of the server process over the
  window (all its threads).

One client process (asyncio, the ``websockets`` library directly, uvloop when installed)
opens ``--conversations`` sockets (default 100), started evenly over ``--ramp`` seconds.
Each conversation streams ``pcm_16000`` in 20 ms chunks in real time on an absolute clock
for ``--duration`` seconds (default 20): three turns of a 1.12 s tone, each followed by
silence; the reply (two sentences of tone, 2.3 s) is paced in real time
(``stream_ahead_of_real_time`` false). The client also checks the output it receives: per
assistant utterance it keeps a virtual playhead started at the first chunk's arrival and
counts chunks that arrive after the playhead ran dry (client-side underruns), and the
smallest margin seen; it measures voice-to-voice per turn as ``latency.py`` does.

Usage::

    .venv/bin/python benchmarks/concurrency.py --conversations 100 --write-docs

Counts, durations and every wait are bounded; everything stays on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import websockets

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (
    CHUNK_SAMPLES,
    RATE,
    ServerHandle,
    Ticker,
    bench_server,
    bench_stats,
    cpu_busy_s,
    log,
    ms,
    percentile,
    summary,
    wait_until_quiet,
    write_between,
)

SECTION = "Concurrency"
TONE_MS = 1120  # a multiple of 160 ms: ends on a chunk and VAD-frame boundary
TURN_STARTS_S = (0.64, 7.04, 13.44)
SILENCE_MS = 300
MAX_CONVERSATIONS = 500
FINISH_WAIT_S = 15.0
#: the playout sends its first 120 ms at once (``LEAD_S``), then paces: the margin counts
#: from the fourth 40 ms chunk of an utterance
LEAD_CHUNKS = 3


# --------------------------------------------------------------------------- caller script


@dataclass(frozen=True)
class Script:
    """The caller's audio as ready-to-send JSON messages, and where each turn's voice ends."""

    messages: list[str]
    voiced_end_chunks: frozenset[int]  # index of the chunk holding a turn's last voiced sample


def build_script(duration_s: float) -> Script:
    samples = np.zeros(int(duration_s * RATE), dtype=np.int16)
    t = np.arange(RATE * TONE_MS // 1000) / RATE
    tone = (np.sin(2 * np.pi * 300 * t) * 9000).astype(np.int16)
    ends = set()
    for start_s in TURN_STARTS_S:
        start = int(start_s * RATE)
        if start + tone.size > samples.size:
            break
        samples[start:start + tone.size] = tone
        ends.add((start + tone.size) // CHUNK_SAMPLES - 1)
    messages = [json.dumps({"type": "audio_chunk", "audio": base64.b64encode(
        samples[i:i + CHUNK_SAMPLES].tobytes()).decode()})
        for i in range(0, samples.size, CHUNK_SAMPLES)]
    return Script(messages, frozenset(ends))


def session_config() -> str:
    return json.dumps({
        "type": "config", "input_format": "pcm_16000", "output_format": "pcm_16000",
        "stream_ahead_of_real_time": False, "voice_id": "joe", "welcome_message": "",
        "vad_min_silence_duration_ms": SILENCE_MS, "no_input_poke_sec": 300,
        "no_input_end_conversation_sec": 300})


# --------------------------------------------------------------------------- one conversation


@dataclass
class Stats:
    """What one client saw."""

    ok: bool = False
    error: str = ""
    turns_answered: int = 0
    v2v_ms: list[float] = field(default_factory=list)
    overhead_ms: list[float] = field(default_factory=list)
    chunks: int = 0
    late_chunks: int = 0
    late_ms: list[float] = field(default_factory=list)
    slack_ms: list[float] = field(default_factory=list)  # playhead margin once the lead is built
    speaking: bool = False
    utt_chunks: int = 0
    playhead: float | None = None
    voiced_end_at: float | None = None
    finished: asyncio.Event = field(default_factory=asyncio.Event)


def on_audio(stats: Stats, msg: dict[str, Any], at: float) -> None:
    """Client-side playout model: each chunk must arrive before the playhead runs dry."""
    b64 = msg.get("audio") or ""
    seconds = (len(b64) * 3 // 4 - b64.count("=")) / 2 / RATE
    stats.chunks += 1
    stats.utt_chunks += 1
    if stats.voiced_end_at is not None:
        stats.v2v_ms.append((at - stats.voiced_end_at) * 1000)
        endpointing = (msg.get("timings") or {}).get("endpointing_ms")
        if endpointing is not None:
            stats.overhead_ms.append(stats.v2v_ms[-1] - float(endpointing))
        stats.voiced_end_at = None
    if stats.playhead is None:
        stats.playhead = at + seconds
        return
    slack = stats.playhead - at
    if stats.utt_chunks > LEAD_CHUNKS:
        stats.slack_ms.append(slack * 1000)
    if slack < 0:
        stats.late_chunks += 1
        stats.late_ms.append(-slack * 1000)
        stats.playhead = at + seconds
    else:
        stats.playhead += seconds


async def receive(ws: Any, stats: Stats) -> None:
    async for raw in ws:
        at = time.perf_counter()
        msg = json.loads(raw)
        kind = msg.get("type")
        if kind == "audio_chunk":
            on_audio(stats, msg, at)
        elif kind == "assistant_started_speaking":
            stats.speaking, stats.playhead, stats.utt_chunks = True, None, 0
        elif kind == "assistant_finished_speaking":
            stats.speaking = False
            stats.turns_answered += 1
            stats.finished.set()
        elif kind == "error":
            stats.error = str(msg.get("error"))


async def stream(ws: Any, script: Script, stats: Stats) -> None:
    ticker = Ticker()
    for i, message in enumerate(script.messages):
        await ticker.tick()
        if i in script.voiced_end_chunks:
            stats.voiced_end_at = time.perf_counter()
        await ws.send(message)


async def conversation(server: ServerHandle, script: Script, delay_s: float) -> Stats:
    """One caller: connect, configure, stream the script, wait for the last reply."""
    stats = Stats()
    await asyncio.sleep(delay_s)
    headers = {"Authorization": f"Bearer {server.api_key}"}
    try:
        async with websockets.connect(f"{server.ws_url}/v1/sts/ws", additional_headers=headers,
                                      open_timeout=30, max_queue=None) as ws:
            await ws.send(session_config())
            async with asyncio.timeout(30):
                while json.loads(await ws.recv()).get("type") != "ready_to_start_conversation":
                    pass
            reader = asyncio.create_task(receive(ws, stats))
            await stream(ws, script, stats)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(FINISH_WAIT_S):
                    while stats.speaking or stats.voiced_end_at is not None:
                        stats.finished.clear()
                        await stats.finished.wait()
            reader.cancel()
            stats.ok = not stats.error
    except (OSError, websockets.WebSocketException, TimeoutError) as exc:
        stats.error = f"{type(exc).__name__}: {exc}"
    return stats


# --------------------------------------------------------------------------- the run


async def raise_limit(server: ServerHandle, conversations: int) -> None:
    """Let the project run ``conversations`` at once (the workspace default is 100)."""
    async with httpx.AsyncClient(timeout=30) as http:
        r = await http.patch(f"{server.url}/v1/projects/main",
                             headers={"Authorization": f"Bearer {server.api_key}"},
                             json={"max_active_conversations": conversations + 10})
        r.raise_for_status()


async def wait_drained(server: ServerHandle, expected: int) -> dict[str, Any]:
    """Server stats once every conversation has been finalised (bounded wait)."""
    deadline = time.monotonic() + 60
    while True:
        stats = await asyncio.to_thread(bench_stats, server)
        done = stats["live"] == 0 and len(stats["results"]) >= expected
        if done or time.monotonic() > deadline:
            return stats
        await asyncio.sleep(0.5)


async def drive(server: ServerHandle, args: argparse.Namespace) -> dict[str, Any]:
    """All conversations at once; returns client and server measurements."""
    script = build_script(args.duration)
    await raise_limit(server, args.conversations)
    await asyncio.to_thread(wait_until_quiet)
    await asyncio.to_thread(bench_stats, server, reset=True)
    wall, cpu, machine = time.perf_counter(), time.process_time(), cpu_busy_s()
    delays = [args.ramp * i / args.conversations for i in range(args.conversations)]
    clients = await asyncio.gather(*(conversation(server, script, d) for d in delays))
    client_wall, client_cpu = time.perf_counter() - wall, time.process_time() - cpu
    server_stats = await wait_drained(server, sum(c.ok for c in clients))
    machine = cpu_busy_s() - machine
    steady = (args.ramp + 1.0, args.duration - 1.0)  # every conversation streaming
    steady_lags = [lag for t, lag in server_stats["lag_samples"] if steady[0] <= t <= steady[1]]
    return {"conversations": args.conversations, "duration_s": args.duration,
            "ramp_s": args.ramp, "clients": clients, "server": server_stats,
            "steady_lag": summary(steady_lags), "client_wall_s": client_wall,
            "client_cpu_s": client_cpu,
            "other_cpu_s": max(0.0, machine - client_cpu - server_stats["cpu_s"])}


def report(run: dict[str, Any]) -> dict[str, Any]:
    """The numbers that go into the table."""
    clients: list[Stats] = run["clients"]
    server = run["server"]
    n, dur = run["conversations"], run["duration_s"]

    def flat(attr: str) -> list[float]:
        return [v for c in clients for v in getattr(c, attr)]

    return {
        "conversations": n, "ok": sum(c.ok for c in clients),
        "errors": sorted({c.error for c in clients if c.error})[:5],
        "turns": sum(c.turns_answered for c in clients),
        "lag": server["lag_ms"], "steady_lag": run["steady_lag"],
        "underruns": server["underruns"], "results": len(server["results"]),
        "server_cpu_s": server["cpu_s"], "window_s": server["window_s"],
        "cpu_per_conv_s": server["cpu_s"] / n, "cpu_per_conv_second": server["cpu_s"] / (n * dur),
        "client_cpu_s": run["client_cpu_s"], "other_cpu_s": run["other_cpu_s"],
        "chunks": sum(c.chunks for c in clients),
        "late_chunks": sum(c.late_chunks for c in clients), "late_ms": summary(flat("late_ms")),
        "slack_p1_ms": percentile(flat("slack_ms"), 1),
        "slack_min_ms": min(flat("slack_ms"), default=float("nan")),
        "v2v": summary(flat("v2v_ms")), "overhead": summary(flat("overhead_ms")),
        "worst_lags": sorted(server["lag_samples"], key=lambda s: -s[1])[:20],
        "lag_by_second": lag_by_second(server["lag_samples"]),
    }


def lag_by_second(samples: list[list[float]]) -> list[float]:
    """The worst loop lag (ms) in each second of the window: where the stalls are."""
    worst: dict[int, float] = {}
    for at, lag in samples:
        worst[int(at)] = max(worst.get(int(at), 0.0), lag)
    return [round(worst.get(i, 0.0), 1) for i in range(max(worst, default=-1) + 1)]


def table(r: dict[str, Any]) -> str:
    lag, steady = r["lag"], r["steady_lag"]
    rows = [
        ("conversations completed / started", f"{r['ok']} / {r['conversations']}"),
        ("assistant turns played", str(r["turns"])),
        ("event-loop lag p50 / p99 / max, whole run (ms)",
         f"{ms(lag['p50'])} / {ms(lag['p99'])} / {ms(lag['max'])}"),
        ("event-loop lag p50 / p99 / max, all streaming (ms)",
         f"{ms(steady['p50'])} / {ms(steady['p99'])} / {ms(steady['max'])}"),
        ("underruns, server (`LocalPacer.underruns` summed)", str(r["underruns"])),
        ("late chunks, client playhead (of chunks received)",
         f"{r['late_chunks']} of {r['chunks']}"),
        ("playout margin at arrival p1 / min (ms; ideal 120)",
         f"{ms(r['slack_p1_ms'])} / {ms(r['slack_min_ms'])}"),
        ("voice-to-voice p50 / p95 / max (ms)",
         f"{ms(r['v2v']['p50'])} / {ms(r['v2v']['p95'])} / {ms(r['v2v']['max'])}"),
        ("engine overhead (v2v - `endpointing_ms`) p50 / p95 (ms)",
         f"{ms(r['overhead']['p50'])} / {ms(r['overhead']['p95'])}"),
        ("server CPU, total over the window (s)",
         f"{r['server_cpu_s']:.1f} in {r['window_s']:.1f} s"),
        ("server CPU per conversation (s)", f"{r['cpu_per_conv_s']:.3f}"),
        ("server CPU per conversation-second (ms/s)", f"{r['cpu_per_conv_second'] * 1000:.1f}"),
        ("client CPU, total (s)", f"{r['client_cpu_s']:.1f}"),
        ("other processes' CPU during the run (s; ~0 = quiet machine)",
         f"{r['other_cpu_s']:.1f}"),
    ]
    return "\n".join(["| measure | value |", "|---|---|",
                      *(f"| {name} | {value} |" for name, value in rows)])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--conversations", type=int, default=100)
    parser.add_argument("--duration", type=float, default=20.0,
                        help="seconds of caller audio per conversation (default 20)")
    parser.add_argument("--ramp", type=float, default=2.0,
                        help="conversations start evenly over this many seconds")
    parser.add_argument("--write-docs", action="store_true")
    parser.add_argument("--json", type=Path, help="also write the raw report to this file")
    args = parser.parse_args(argv)
    if not 1 <= args.conversations <= MAX_CONVERSATIONS:
        parser.error(f"--conversations must be within 1..{MAX_CONVERSATIONS}")
    if not 15 <= args.duration <= 120 or not 0 <= args.ramp <= 30:
        parser.error("--duration must be within 15..120 s and --ramp within 0..30 s")
    with (tempfile.TemporaryDirectory(prefix="openline-concurrency-") as tmp,
          bench_server(Path(tmp), "fake") as server):
        log(f"{args.conversations} conversations x {args.duration:.0f} s, real time")
        result = report(_run(drive(server, args)))
    print(table(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1, default=str))
    if result["errors"]:
        print("errors:", *result["errors"], sep="\n  ")
    if args.write_docs:
        command = (f"`.venv/bin/python benchmarks/concurrency.py --conversations "
                   f"{args.conversations} --duration {args.duration:g} --ramp {args.ramp:g} "
                   f"--write-docs`")
        write_between("concurrency", f"Run {date.today().isoformat()}, reproduce: {command}."
                      f"\n\n{table(result)}\n", SECTION)
    return 0


def _run(coro: Any) -> Any:
    try:
        import uvloop
    except ModuleNotFoundError:
        return asyncio.run(coro)
    return uvloop.run(coro)


if __name__ == "__main__":
    sys.exit(main())
