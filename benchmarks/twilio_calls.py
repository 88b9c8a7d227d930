"""Phone calls over Twilio Media Streams on loopback, against the in-repo fake Twilio.

A script, not a timed test. Openline runs in a subprocess (``_common.py serve``, i.e.
``create_app`` under uvicorn, with ``OPENLINE_TWILIO_*`` pointing at the fake's REST API);
the fake Twilio (``tests/telephony/fake_twilio.py``) runs in this process: it sends the
signed voice webhook, opens the signed Media Streams connection, streams the caller's
μ-law in real time (20 ms frames, silence between utterances, as a phone line does) and
plays the agent's audio on its playback clock (8000 bytes/s, marks echoed).

* ``--mode v2v``: one inbound call of ``--turns`` turns (after a warm-up turn).
  **Voice-to-voice** = the moment the fake's playback clock plays the turn's first reply
  frame minus the moment the frame holding the utterance's last voiced sample was sent.
  Caller speech: espeak-ng (embedded stack, the same lines as ``latency.py``) resampled to
  8 kHz μ-law; with ``--fake`` a 960 ms tone and instant fake providers.
  Each utterance is padded in front so that its last voiced sample ends a 20 ms frame and
  a 32 ms VAD frame of the stream, as ``latency.py`` aligns the STS socket's utterances.
* ``--mode concurrency``: ``--calls`` simultaneous inbound calls with instant fake
  providers, started evenly over ``--ramp`` s, each three tone turns over ``--duration``
  s; the server's event-loop lag (``/bench/stats``, whole run and while every call
  streams), the calls' voice-to-voice, and the CPU of the server, of this client process
  and of everything else on the machine, separately. ``--calls 40,80,100,120`` sweeps
  (a fresh server per count). ``--client lean`` (default) drives the calls with
  ``twilio_load.LeanStream`` (one task for every call's line and playback clock);
  ``--client full`` with the test suite's client (three tasks per call).

Usage::

    .venv/bin/python benchmarks/twilio_calls.py --mode v2v --turns 20 [--fake] [--write-docs]
    .venv/bin/python benchmarks/twilio_calls.py --mode concurrency --calls 60,100,140 \\
        [--client lean|full] [--profile /tmp/spy] [--write-docs]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests.telephony.fake_twilio
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
from _common import (
    bench_server,
    bench_stats,
    cpu_busy_s,
    log,
    sdk,
    summary,
    voiced_end,
    wait_until_quiet,
    write_between,
)

from openline.audio.codecs import WIRE_FORMATS
from openline.audio.resample import resample

NUMBER = "+15550001000"
CALLER = "+15557770101"
PROMPT = "You are a friendly restaurant host on the phone. Answer in one short sentence."
SECTION = "Phone calls over Twilio"
MULAW = WIRE_FORMATS["mulaw_8000"]
FRAME = 160  # 20 ms of μ-law
#: 20 ms line frames and the engine's 32 ms VAD frames (256 samples at 8 kHz) coincide
#: every 8 frames (160 ms)
ALIGN_FRAMES = 8
#: when each call's three turns start (s into a 20 s call; scaled to ``--duration``)
TURN_STARTS_S = (0.6, 20 / 3, 40 / 3)


def _mulaw(samples_16k: Any) -> bytes:
    """16 kHz speech -> 8 kHz μ-law, cut at its voiced end."""
    cut = samples_16k[: voiced_end(samples_16k)]
    return MULAW.encode(np.asarray(resample(cut, 16000, 8000), dtype=np.int16))


def _tone(ms: int) -> bytes:
    t = np.arange(8 * ms) / 8000
    return MULAW.encode((np.sin(2 * np.pi * 300 * t) * 9000).astype(np.int16))


def _utterances(turns: int, fake: bool, workdir: Path) -> list[bytes]:
    if fake:
        return [_tone(960)] * (turns + 1)
    from latency import CALLER_LINES, WARMUP_LINE, espeak

    lines = [WARMUP_LINE] + [CALLER_LINES[i % len(CALLER_LINES)] for i in range(turns)]
    return [_mulaw(espeak(line, workdir)) for line in lines]


def _twilio_env(fake_url: str) -> None:
    from tests.telephony.fake_twilio import ACCOUNT_SID, AUTH_TOKEN

    os.environ.update(OPENLINE_TWILIO_ACCOUNT_SID=ACCOUNT_SID,
                      OPENLINE_TWILIO_AUTH_TOKEN=AUTH_TOKEN, OPENLINE_TWILIO_API_BASE=fake_url)


async def _agent(server: Any, numbers: list[str], silence_ms: int) -> None:
    client = sdk(server)
    await client.agents.create(name="twilio-bench", phone_number="custom",
                               custom_phone_numbers=numbers, voice_id="joe",
                               system_prompt=PROMPT, vad_min_silence_duration_ms=silence_ms)


def _aligned(stream: Any, audio: bytes) -> bytes:
    """``audio`` with silence in front so that its last (voiced) sample ends a 20 ms frame
    *and* one of the engine's 32 ms VAD frames, counted from the stream's first frame:
    the STS benchmark aligns its utterances the same way (``_common.aligned``)."""
    audio = b"\xff" * (-len(audio) % FRAME) + audio
    queued = stream._chunk + stream._outgoing.qsize()  # frames sent or queued before it
    pad = -(queued + len(audio) // FRAME) % ALIGN_FRAMES
    return b"\xff" * (pad * FRAME) + audio


async def _turn(stream: Any, audio: bytes, within: float = 60.0) -> float:
    """Say ``audio``; voice-to-voice in ms at the fake's playback clock."""
    before = len(stream.played)
    await stream.say(_aligned(stream, audio))
    voiced_end_at = stream.last_voiced_sent_at
    from tests.telephony.fake_twilio import until

    await until(lambda: len(stream.played) > before, within, 0.005)
    first = stream.played[before].at
    await stream.wait_quiet(0.8, within)
    return (first - voiced_end_at) * 1000


async def v2v(args: argparse.Namespace) -> dict[str, Any]:
    from tests.telephony.fake_twilio import FakeTwilio

    fake = FakeTwilio()
    await fake.start()
    _twilio_env(fake.url)
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        audio = _utterances(args.turns, args.fake, workdir)
        with bench_server(workdir, "fake" if args.fake else "embedded") as server:
            await _agent(server, [NUMBER], args.silence_ms)
            await asyncio.to_thread(wait_until_quiet)
            call, _ = await fake.inbound(f"{server.url}/twilio/voice", CALLER, NUMBER)
            stream = await call.stream()
            await _turn(stream, audio[0], 120)  # warm-up (model caches, first allocation)
            latencies, others = [], []
            for i, utterance in enumerate(audio[1:]):
                before = await _cpu(server)
                latencies.append(await _turn(stream, utterance))
                others.append(_other_cpu(before, await _cpu(server)))
                log(f"turn {i + 1}: {latencies[-1]:.0f} ms "
                    f"(other processes' CPU during the turn: {others[-1]:.1f} s)")
            await fake.hang_up(call)
            server_ms, items = await _stored(server, stream.parameters["conversation_id"])
    await fake.close()
    for role, text in items:
        log(f"  {role}: {text}")
    return {"mode": "v2v", "stack": "fake" if args.fake else "embedded",
            "turns": len(latencies), "v2v_ms": summary(latencies),
            "server_ms": summary(server_ms[1:]), "bad_frames": stream.bad_frames,
            "other_cpu_s": round(sum(others), 1)}


async def _cpu(server: Any) -> tuple[float, float, float]:
    """(machine busy, this process, the server) CPU seconds so far."""
    stats = await asyncio.to_thread(bench_stats, server)
    return cpu_busy_s(), time.process_time(), float(stats["cpu_s"])


def _other_cpu(before: tuple[float, float, float], after: tuple[float, float, float]) -> float:
    """CPU seconds neither the server nor this client used (other work on the machine)."""
    machine, client, server = (b - a for a, b in zip(before, after, strict=True))
    return max(0.0, machine - client - server)


async def _stored(server: Any, conversation_id: str) -> tuple[list[float], list[Any]]:
    """The stored conversation's own measure (first frame sent - last voiced frame), and
    its items as (role, text): what was recognised and answered."""
    client = sdk(server)
    for _ in range(100):
        conv = (await client.conversations.get(conversation_id)).conversation
        if conv.ended_at is not None:
            return (list(conv.analysis.latencies_ms),
                    [(i.role, i.live_transcript) for i in conv.items])
        await asyncio.sleep(0.1)
    return [], []


async def _one_call(fake: Any, server: Any, number: str, delay: float, duration: float,
                    latencies: list[float], lean: bool) -> bool:
    await asyncio.sleep(delay)
    call, reply = await fake.inbound(f"{server.url}/twilio/voice", CALLER, number)
    if reply.status_code != 200:
        return False
    stream = await call.stream(within=30)
    started = time.monotonic()
    for turn_at in TURN_STARTS_S:
        await asyncio.sleep(max(0.0, started + turn_at * duration / 20 - time.monotonic()))
        if lean:
            from twilio_load import lean_turn

            latencies.append(await lean_turn(stream, _tone(1120), 30))
        else:
            latencies.append(await _turn(stream, _tone(1120), 30))
    await asyncio.sleep(max(0.0, started + duration - time.monotonic()))
    await fake.hang_up(call)
    return True


async def _concurrent(fake: Any, server: Any, args: argparse.Namespace,
                      calls: int) -> dict[str, Any]:
    """``calls`` calls at once against a fresh server; client and server measures."""
    numbers = [f"+1555100{i:04d}" for i in range(calls)]
    latencies: list[float] = []
    await _agent(server, numbers, 300)
    await asyncio.to_thread(wait_until_quiet)
    from twilio_load import HUB

    HUB.late_ticks = HUB.ticks = 0  # this run's ticks only
    bench_stats(server, reset=True)
    t0, cpu, machine = time.monotonic(), time.process_time(), cpu_busy_s()
    done = await asyncio.gather(*(
        _one_call(fake, server, n, args.ramp * i / calls, args.duration, latencies,
                  args.client == "lean")
        for i, n in enumerate(numbers)), return_exceptions=True)
    stats = bench_stats(server)
    window, client_cpu = time.monotonic() - t0, time.process_time() - cpu
    machine = cpu_busy_s() - machine
    steady = (args.ramp + 1.0, args.duration - 1.0)  # every call streaming
    steady_lags = [lag for t, lag in stats["lag_samples"] if steady[0] <= t <= steady[1]]
    return {"mode": "concurrency", "client": args.client, "calls": calls,
            "completed": sum(1 for d in done if d is True),
            "errors": [repr(d) for d in done if isinstance(d, BaseException)][:5],
            "lag_ms": stats["lag_ms"], "steady_lag_ms": summary(steady_lags),
            "server_cpu_s": round(stats["cpu_s"], 1), "client_cpu_s": round(client_cpu, 1),
            "other_cpu_s": round(max(0.0, machine - client_cpu - stats["cpu_s"]), 1),
            "client_late_ticks": HUB.late_ticks, "client_ticks": HUB.ticks,
            "window_s": round(window, 1), "v2v_ms": summary(latencies)}


async def concurrency(args: argparse.Namespace) -> list[dict[str, Any]]:
    """One fresh server per call count in ``--calls`` (a sweep: 40,60,80,100,...)."""
    from tests.telephony.fake_twilio import FakeTwilio
    from twilio_load import LeanStream

    results = []
    for calls in args.calls:
        fake = FakeTwilio()
        if args.client == "lean":
            fake.stream_class = LeanStream
        await fake.start()
        _twilio_env(fake.url)
        with tempfile.TemporaryDirectory() as tmp, bench_server(Path(tmp), "fake") as server:
            if args.profile:
                profiler = _profile(server.pid, args.profile.with_suffix(f".{calls}.txt"),
                                    args.ramp + args.duration)
            results.append(await _concurrent(fake, server, args, calls))
            if args.profile:
                profiler.wait(timeout=60)
        await fake.close()
        log(str(results[-1]))
    return results


def _profile(pid: int, path: Path, seconds: float) -> subprocess.Popen[bytes]:
    """py-spy on the server process for the run (``--profile``)."""
    return subprocess.Popen([str(Path(sys.executable).with_name("py-spy")), "record",
                             "-p", str(pid), "-o", str(path), "-d", str(int(seconds)),
                             "-r", "200", "-f", "raw", "--nonblocking"])


def _docs(result: dict[str, Any]) -> None:
    today = date.today().isoformat()
    if result["mode"] == "v2v":
        rows = [(name, result[key]) for name, key in (
            ("voice-to-voice at the fake's playback clock", "v2v_ms"),
            ("server `latencies_ms` (same turns)", "server_ms"))]
        body = (f"Run {today}, {result['stack']} stack, {result['turns']} turns, other "
                f"processes' CPU during the turns {result['other_cpu_s']} s "
                f"(`benchmarks/twilio_calls.py --mode v2v --turns {result['turns']}"
                f"{' --fake' if result['stack'] == 'fake' else ''}`).\n\n"
                "| measure (ms) | p50 | p95 | min | max |\n|---|---:|---:|---:|---:|\n" + "".join(
                    f"| {name} | {v['p50']:.0f} | {v['p95']:.0f} | {v['min']:.0f} | "
                    f"{v['max']:.0f} |\n" for name, v in rows))
        write_between(f"twilio-v2v-{result['stack']}", body, SECTION)
        return
    write_between("twilio-concurrency", _concurrency_table(result["runs"]), SECTION)


def _concurrency_table(runs: list[dict[str, Any]]) -> str:
    first = runs[0]
    head = (f"Run {date.today().isoformat()}: `benchmarks/twilio_calls.py --mode concurrency "
            f"--calls {','.join(str(r['calls']) for r in runs)} --client {first['client']}` "
            f"({first['window_s']:.0f} s windows, a fresh server per count).\n\n"
            "| calls | completed | loop lag p50 / p99 / max, whole run (ms) | "
            "loop lag p99, all streaming (ms) | v2v p50 / p95 (ms) | server CPU (s) | "
            "client CPU (s) | other CPU (s) | client ticks late |\n"
            "|---:|---:|---|---:|---|---:|---:|---:|---:|\n")
    rows = "".join(
        f"| {r['calls']} | {r['completed']} | {r['lag_ms']['p50']:.1f} / "
        f"{r['lag_ms']['p99']:.1f} / {r['lag_ms']['max']:.1f} | "
        f"{r['steady_lag_ms']['p99']:.1f} | {r['v2v_ms']['p50']:.0f} / "
        f"{r['v2v_ms']['p95']:.0f} | {r['server_cpu_s']} | {r['client_cpu_s']} | "
        f"{r['other_cpu_s']} | {r['client_late_ticks']} of {r['client_ticks']} |\n"
        for r in runs)
    return head + rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mode", choices=("v2v", "concurrency"), default="v2v")
    parser.add_argument("--turns", type=int, default=20)
    parser.add_argument("--fake", action="store_true")
    parser.add_argument("--silence-ms", type=int, default=300)
    parser.add_argument("--calls", type=lambda v: [int(c) for c in v.split(",")],
                        default=[100], help="call counts to run, e.g. 40,60,80,100,120")
    parser.add_argument("--client", choices=("lean", "full"), default="lean",
                        help="lean: one task drives every call (twilio_load.py); full: "
                        "the test suite's fake client, three tasks per call")
    parser.add_argument("--profile", type=Path,
                        help="py-spy the server during each run into PATH.<calls>.txt "
                        "(collapsed stacks)")
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--ramp", type=float, default=2.0)
    parser.add_argument("--write-docs", action="store_true")
    args = parser.parse_args()
    if not 1 <= args.turns <= 200 or not all(1 <= c <= 500 for c in args.calls):
        parser.error("--turns 1..200, --calls 1..500")
    if not 3 <= args.duration <= 120 or not 0 <= args.ramp <= 30:
        parser.error("--duration 3..120 s, --ramp 0..30 s")
    if args.mode == "v2v":
        result = _run(v2v(args))
    else:
        result = {"mode": "concurrency", "runs": _run(concurrency(args))}
        print(_concurrency_table(result["runs"]))
    print(result)
    if args.write_docs:
        _docs(result)
    return 0


def _run(coro: Any) -> Any:
    try:
        import uvloop
    except ModuleNotFoundError:
        return asyncio.run(coro)
    return uvloop.run(coro)


if __name__ == "__main__":
    sys.exit(main())
