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
* ``--mode concurrency``: ``--calls`` simultaneous inbound calls with instant fake
  providers, started evenly over ``--ramp`` s, each three tone turns over ``--duration``
  s; the server's event-loop lag (``/bench/stats``) and the calls' voice-to-voice.

Usage::

    .venv/bin/python benchmarks/twilio_calls.py --mode v2v --turns 20 [--fake] [--write-docs]
    .venv/bin/python benchmarks/twilio_calls.py --mode concurrency --calls 100 [--write-docs]
"""

from __future__ import annotations

import argparse
import asyncio
import os
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
from _common import bench_server, bench_stats, log, sdk, summary, voiced_end, write_between

from openline.audio.codecs import WIRE_FORMATS
from openline.audio.resample import resample

NUMBER = "+15550001000"
CALLER = "+15557770101"
PROMPT = "You are a friendly restaurant host on the phone. Answer in one short sentence."
SECTION = "Phone calls over Twilio"
MULAW = WIRE_FORMATS["mulaw_8000"]


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


async def _turn(stream: Any, audio: bytes, within: float = 60.0) -> float:
    """Say ``audio``; voice-to-voice in ms at the fake's playback clock."""
    before = len(stream.played)
    await stream.say(audio)
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
            call, _ = await fake.inbound(f"{server.url}/twilio/voice", CALLER, NUMBER)
            stream = await call.stream()
            await _turn(stream, audio[0], 120)  # warm-up (model caches, first allocation)
            latencies = []
            for i, utterance in enumerate(audio[1:]):
                latencies.append(await _turn(stream, utterance))
                log(f"turn {i + 1}: {latencies[-1]:.0f} ms")
            await fake.hang_up(call)
            server_ms = await _server_latencies(server, stream.parameters["conversation_id"])
    await fake.close()
    return {"mode": "v2v", "stack": "fake" if args.fake else "embedded",
            "turns": len(latencies), "v2v_ms": summary(latencies),
            "server_ms": summary(server_ms[1:]), "bad_frames": stream.bad_frames}


async def _server_latencies(server: Any, conversation_id: str) -> list[float]:
    """The stored conversation's own measure (first frame sent - last voiced frame)."""
    client = sdk(server)
    for _ in range(100):
        conv = (await client.conversations.get(conversation_id)).conversation
        if conv.ended_at is not None:
            return list(conv.analysis.latencies_ms)
        await asyncio.sleep(0.1)
    return []


async def _one_call(fake: Any, server: Any, number: str, delay: float, duration: float,
                    latencies: list[float]) -> bool:
    await asyncio.sleep(delay)
    call, reply = await fake.inbound(f"{server.url}/twilio/voice", CALLER, number)
    if reply.status_code != 200:
        return False
    stream = await call.stream(within=30)
    started = time.monotonic()
    for turn_at in (0.6, duration / 3, 2 * duration / 3):
        await asyncio.sleep(max(0.0, started + turn_at - time.monotonic()))
        latencies.append(await _turn(stream, _tone(1120), 30))
    await asyncio.sleep(max(0.0, started + duration - time.monotonic()))
    await fake.hang_up(call)
    return True


async def concurrency(args: argparse.Namespace) -> dict[str, Any]:
    from tests.telephony.fake_twilio import FakeTwilio

    fake = FakeTwilio()
    await fake.start()
    _twilio_env(fake.url)
    numbers = [f"+1555100{i:04d}" for i in range(args.calls)]
    latencies: list[float] = []
    with tempfile.TemporaryDirectory() as tmp, bench_server(Path(tmp), "fake") as server:
        await _agent(server, numbers, 300)
        bench_stats(server, reset=True)
        t0 = time.monotonic()
        done = await asyncio.gather(*(
            _one_call(fake, server, n, args.ramp * i / args.calls, args.duration, latencies)
            for i, n in enumerate(numbers)), return_exceptions=True)
        stats = bench_stats(server)
        window = time.monotonic() - t0
    await fake.close()
    ok = sum(1 for d in done if d is True)
    return {"mode": "concurrency", "calls": args.calls, "completed": ok,
            "errors": [repr(d) for d in done if isinstance(d, BaseException)][:5],
            "lag_ms": stats["lag_ms"], "server_cpu_s": round(stats["cpu_s"], 1),
            "window_s": round(window, 1), "v2v_ms": summary(latencies)}


def _docs(result: dict[str, Any]) -> None:
    today = date.today().isoformat()
    if result["mode"] == "v2v":
        rows = [(name, result[key]) for name, key in (
            ("voice-to-voice at the fake's playback clock", "v2v_ms"),
            ("server `latencies_ms` (same turns)", "server_ms"))]
        body = (f"Run {today}, {result['stack']} stack, {result['turns']} turns "
                f"(`benchmarks/twilio_calls.py --mode v2v --turns {result['turns']}"
                f"{' --fake' if result['stack'] == 'fake' else ''}`).\n\n"
                "| measure (ms) | p50 | p95 | min | max |\n|---|---:|---:|---:|---:|\n" + "".join(
                    f"| {name} | {v['p50']:.0f} | {v['p95']:.0f} | {v['min']:.0f} | "
                    f"{v['max']:.0f} |\n" for name, v in rows))
        write_between(f"twilio-v2v-{result['stack']}", body, SECTION)
        return
    lag, v = result["lag_ms"], result["v2v_ms"]
    body = (f"Run {today}: `benchmarks/twilio_calls.py --mode concurrency "
            f"--calls {result['calls']}`."
            "\n\n| measure | value |\n|---|---|\n"
            f"| calls completed / started | {result['completed']} / {result['calls']} |\n"
            f"| event-loop lag p50 / p99 / max (ms) | {lag['p50']:.1f} / {lag['p99']:.1f} / "
            f"{lag['max']:.1f} |\n"
            f"| voice-to-voice p50 / p95 (ms) | {v['p50']:.0f} / {v['p95']:.0f} |\n"
            f"| server CPU over the window (s) | {result['server_cpu_s']} in "
            f"{result['window_s']} s |\n")
    write_between("twilio-concurrency", body, SECTION)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mode", choices=("v2v", "concurrency"), default="v2v")
    parser.add_argument("--turns", type=int, default=20)
    parser.add_argument("--fake", action="store_true")
    parser.add_argument("--silence-ms", type=int, default=300)
    parser.add_argument("--calls", type=int, default=100)
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--ramp", type=float, default=2.0)
    parser.add_argument("--write-docs", action="store_true")
    args = parser.parse_args()
    if not 1 <= args.turns <= 200 or not 1 <= args.calls <= 500:
        parser.error("--turns 1..200, --calls 1..500")
    result = asyncio.run(v2v(args) if args.mode == "v2v" else concurrency(args))
    print(result)
    if args.write_docs:
        _docs(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
