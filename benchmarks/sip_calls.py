"""Phone calls over Openline's SIP endpoint on loopback.

A script, not a timed test. Openline runs in a subprocess (``_common.py serve``: what
``openline serve`` runs, instrumented with ``/bench/stats``) with ``OPENLINE_SIP_PORT`` on
127.0.0.1. The callers run in this process: SIP through aiosipua (Openline's own
``StrictUAC``), RTP on plain UDP sockets, every call's 20 ms packet sent from one ticker
on an absolute clock (silence between utterances, as a phone line does).

* ``--mode v2v``: one call of ``--turns`` turns (after a warm-up turn). **Voice-to-voice**
  = arrival of the first voiced RTP packet of the reply minus the moment the packet
  holding the utterance's last voiced sample was sent. Caller speech: espeak-ng (the
  lines of ``latency.py``) as 8 kHz μ-law, or with ``--fake`` a 960 ms tone and instant
  fake providers. Utterances are aligned so that their last voiced sample ends a 20 ms
  packet and a 32 ms VAD frame, as ``latency.py`` and ``twilio_calls.py`` do.
* ``--mode concurrency``: ``--calls`` simultaneous calls with instant fake providers,
  started over ``--ramp`` s, three tone turns each over ``--duration`` s; the server's
  event-loop lag (``/bench/stats``), the RTP pacing jitter seen by the callers
  (``|inter-arrival - 20 ms|`` of every packet), this client's own loop lag, and CPU per
  process.
  ``--calls 20,40,60`` sweeps (a fresh server per count).

Usage::

    .venv/bin/python benchmarks/sip_calls.py --mode v2v --turns 20 [--fake] [--write-docs]
    .venv/bin/python benchmarks/sip_calls.py --mode concurrency --calls 20,40,60 [--write-docs]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import random
import socket
import struct
import sys
import tempfile
import time
from collections import deque
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
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

from openline.audio.codecs import MULAW_8000
from openline.audio.resample import resample

NUMBER = "+15550001000"
CALLER = "+15557770101"
PROMPT = "You are a friendly restaurant host on the phone. Answer in one short sentence."
SECTION = "Phone calls over SIP"
FRAME = 160
SILENCE = b"\xff" * FRAME
ALIGN_FRAMES = 8  # 20 ms packets and 32 ms VAD frames coincide every 160 ms
TURN_STARTS_S = (0.6, 20 / 3, 40 / 3)
_DECODE = MULAW_8000.decode(bytes(range(256))).astype(np.int32)
VOICED = 600  # peak amplitude that counts as the agent speaking


def voiced(payload: bytes) -> bool:
    return bool(np.abs(_DECODE[np.frombuffer(payload, dtype=np.uint8)]).max() > VOICED)


class Line(asyncio.DatagramProtocol):
    """One call's RTP: what the caller sends, and what it hears."""

    def __init__(self) -> None:
        self.transport: asyncio.DatagramTransport | None = None
        self.remote: tuple[str, int] | None = None
        self.seq, self.ts = random.randrange(65536), random.randrange(2**32)
        self.ssrc = random.randrange(2**32)
        self.out: deque[bytes] = deque()
        self.last_voiced_index = -1  # index in ``out`` order of the utterance's last frame
        self.sent = 0
        self.voiced_end_at: float | None = None
        self.first_voiced_at: float | None = None
        self.last_voiced_at = 0.0
        self.arrivals: list[float] = []
        self.speaking_since: float | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: Any) -> None:
        now = time.perf_counter()
        if len(data) < 12 or data[1] & 0x7F not in (0, 8):
            return
        self.arrivals.append(now)
        if voiced(data[12:]):
            self.last_voiced_at = now
            if self.voiced_end_at is not None and self.first_voiced_at is None:
                self.first_voiced_at = now

    def say(self, audio: bytes) -> None:
        """Queue an utterance, aligned so its last voiced sample ends a VAD frame."""
        audio = b"\xff" * (-len(audio) % FRAME) + audio
        queued = self.sent + len(self.out)
        pad = -(queued + len(audio) // FRAME) % ALIGN_FRAMES
        audio = SILENCE * pad + audio
        frames = [audio[i:i + FRAME] for i in range(0, len(audio), FRAME)]
        self.out.extend(frames)
        self.last_voiced_index = self.sent + len(self.out) - 1
        self.voiced_end_at = self.first_voiced_at = None

    def tick(self) -> None:
        if self.transport is None or self.remote is None:
            return
        payload = self.out.popleft() if self.out else SILENCE
        header = struct.pack("!BBHII", 0x80, 0, self.seq, self.ts, self.ssrc)
        self.transport.sendto(header + payload, self.remote)
        if self.sent == self.last_voiced_index:
            self.voiced_end_at = time.perf_counter()
        self.sent += 1
        self.seq = (self.seq + 1) & 0xFFFF
        self.ts = (self.ts + FRAME) & 0xFFFFFFFF


class Callers:
    """Every caller of a run: one SIP socket, one RTP socket per call, one ticker."""

    def __init__(self, server_sip: tuple[str, int]) -> None:
        self.server_sip = server_sip
        self.lines: list[Line] = []
        self.lags: list[float] = []
        self._rtcp: list[asyncio.BaseTransport] = []

    async def start(self) -> None:
        from aiosipua import SipUAS

        from openline.transports.sip_ua import StrictUAC, UdpTransport

        self.sip = UdpTransport(local_addr=("127.0.0.1", 0))
        self.uac = StrictUAC(self.sip)
        self.uas = SipUAS(self.sip, uac=self.uac)
        self.uas.on_bye = lambda call, request: None
        await self.uas.start()
        self.uac.advertised_addr = self.sip.local_addr
        self._ticker = asyncio.create_task(self._tick_all())

    async def _tick_all(self) -> None:
        t0, k = time.perf_counter(), 0
        while True:
            due = t0 + k * 0.02
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            self.lags.append(max(0.0, time.perf_counter() - due) * 1000)
            for line in self.lines:
                line.tick()
            k += 1

    async def call(self) -> tuple[Line, Any]:
        from openline.transports.sip_media import offer_sdp

        line = Line()
        port = await self._rtp_pair(line)
        host, sip_port = self.server_sip
        outgoing = self.uac.invite(f"sip:{CALLER}@127.0.0.1:{self.sip.local_addr[1]}",
                                   f"sip:{NUMBER}@{host}:{sip_port}", self.server_sip,
                                   offer_sdp("127.0.0.1", port))
        await outgoing.wait_answered(timeout=30)
        assert outgoing.sdp_answer is not None
        line.remote = outgoing.sdp_answer.rtp_address
        self.lines.append(line)
        return line, outgoing

    async def _rtp_pair(self, line: Line) -> int:
        """Bind ``line`` on an even port and swallow RTCP on the next one (else the
        server's RTCP could land on whatever socket holds port + 1, the SIP one included)."""
        loop = asyncio.get_running_loop()
        for _ in range(64):
            port = _free_udp()
            if port % 2:
                continue
            try:
                await loop.create_datagram_endpoint(lambda: line, local_addr=("127.0.0.1", port))
                rtcp, _ = await loop.create_datagram_endpoint(
                    asyncio.DatagramProtocol, local_addr=("127.0.0.1", port + 1))
            except OSError:
                if line.transport is not None:
                    line.transport.close()
                    line.transport = None
                continue
            self._rtcp.append(rtcp)
            return port
        raise RuntimeError("no free RTP port pair")

    def hang_up(self, outgoing: Any) -> None:
        outgoing.hangup(self.uac)

    async def stop(self) -> None:
        self._ticker.cancel()
        for line in self.lines:
            if line.transport is not None:
                line.transport.close()
        for rtcp in self._rtcp:
            rtcp.close()
        await self.uas.stop()


def _tone(ms: int) -> bytes:
    t = np.arange(8 * ms) / 8000
    return MULAW_8000.encode((np.sin(2 * np.pi * 300 * t) * 9000).astype(np.int16))


def _utterances(turns: int, fake: bool, workdir: Path) -> list[bytes]:
    if fake:
        return [_tone(960)] * (turns + 1)
    from latency import CALLER_LINES, WARMUP_LINE, espeak

    lines = [WARMUP_LINE] + [CALLER_LINES[i % len(CALLER_LINES)] for i in range(turns)]
    out = []
    for text in lines:
        speech = espeak(text, workdir)
        cut = speech[: voiced_end(speech)]
        out.append(MULAW_8000.encode(np.asarray(resample(cut, 16000, 8000), dtype=np.int16)))
    return out


async def _turn(line: Line, audio: bytes, within: float = 60.0) -> float:
    """Say ``audio``; voice-to-voice in ms (first voiced packet heard - last one sent)."""
    line.say(audio)
    async with asyncio.timeout(within):
        while True:  # polled: the line's callbacks run in the protocol, not a task
            if line.first_voiced_at is not None and line.voiced_end_at is not None:
                break
            await asyncio.sleep(0.005)
        v2v = (line.first_voiced_at - line.voiced_end_at) * 1000
        while True:
            if time.perf_counter() - line.last_voiced_at >= 0.8:
                return v2v
            await asyncio.sleep(0.05)


def _free_udp() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _sip_env() -> tuple[str, int]:
    port = _free_udp()
    os.environ.update(OPENLINE_SIP_PORT=str(port), OPENLINE_SIP_HOST="127.0.0.1",
                      OPENLINE_SIP_ALLOW="127.0.0.1")
    return "127.0.0.1", port


async def _agent(server: Any, silence_ms: int) -> None:
    await sdk(server).agents.create(name="sip-bench", phone_number="custom",
                                    custom_phone_numbers=[NUMBER], voice_id="joe",
                                    system_prompt=PROMPT, welcome_message="",
                                    vad_min_silence_duration_ms=silence_ms,
                                    no_input_poke_sec=300, no_input_end_conversation_sec=300)


async def v2v(args: argparse.Namespace) -> dict[str, Any]:
    sip_addr = _sip_env()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        audio = _utterances(args.turns, args.fake, workdir)
        with bench_server(workdir, "fake" if args.fake else "embedded") as server:
            await _agent(server, args.silence_ms)
            await asyncio.to_thread(wait_until_quiet, max_wait_s=args.quiet_wait)
            callers = Callers(sip_addr)
            await callers.start()
            line, outgoing = await callers.call()
            await _turn(line, audio[0], 120)  # warm-up
            latencies: list[float] = []
            machine, client = cpu_busy_s(), time.process_time()
            await asyncio.to_thread(bench_stats, server, reset=True)
            for i, utterance in enumerate(audio[1:]):
                latencies.append(await _turn(line, utterance))
                log(f"turn {i + 1}: {latencies[-1]:.0f} ms")
            stats = await asyncio.to_thread(bench_stats, server)
            own = float(stats["cpu_s"]) + time.process_time() - client
            other = max(0.0, cpu_busy_s() - machine - own)
            callers.hang_up(outgoing)
            await asyncio.sleep(0.5)
            await callers.stop()
    return {"mode": "v2v", "stack": "fake" if args.fake else "embedded",
            "turns": len(latencies), "v2v_ms": summary(latencies),
            "other_cpu_s": round(other, 1)}


def _pacing_jitter(line: Line) -> list[float]:
    """|inter-arrival - 20 ms| per packet, in ms: how unevenly the server's pacer (and the
    loopback path, and this client's loop) delivered the call's 20 ms packets."""
    arrivals = line.arrivals
    return [abs((b - a) - 0.02) * 1000 for a, b in itertools.pairwise(arrivals)]


async def _one_call(callers: Callers, delay: float, duration: float, latencies: list[float],
                    lines: list[Line]) -> bool:
    await asyncio.sleep(delay)
    try:
        line, outgoing = await callers.call()
    except Exception as exc:
        log(f"call failed: {exc}")
        return False
    lines.append(line)
    start = time.perf_counter()
    for at in TURN_STARTS_S:
        wait = start + at * duration / 20 - time.perf_counter()
        if wait > 0:
            await asyncio.sleep(wait)
        with_reply = await asyncio.wait_for(_turn(line, _tone(960)), 60)
        latencies.append(with_reply)
    rest = start + duration - time.perf_counter()
    if rest > 0:
        await asyncio.sleep(rest)
    callers.hang_up(outgoing)
    return True


def _server_problems(workdir: Path) -> None:
    """Print the server log's errors (the log goes with the temporary directory)."""
    for path in workdir.glob("server-*.log"):
        for entry in path.read_text(errors="replace").split("\n"):
            if "Error" in entry or "failed" in entry or "refused" in entry:
                log(f"server: {entry[:300]}")


async def concurrency(calls: int, args: argparse.Namespace) -> dict[str, Any]:
    sip_addr = _sip_env()
    with tempfile.TemporaryDirectory() as tmp, bench_server(Path(tmp), "fake") as server:
        await _agent(server, args.silence_ms)
        await asyncio.to_thread(wait_until_quiet, max_wait_s=args.quiet_wait)
        callers = Callers(sip_addr)
        await callers.start()
        latencies: list[float] = []
        lines: list[Line] = []
        await asyncio.to_thread(bench_stats, server, reset=True)
        machine, client = cpu_busy_s(), time.process_time()
        oks = await asyncio.gather(*[
            _one_call(callers, i * args.ramp / calls, args.duration, latencies, lines)
            for i in range(calls)], return_exceptions=True)
        stats = await asyncio.to_thread(bench_stats, server)
        client_cpu = time.process_time() - client
        busy = cpu_busy_s() - machine
        await asyncio.sleep(1.0)
        await callers.stop()
        _server_problems(Path(tmp))
    jitter = [j for line in lines for j in _pacing_jitter(line)]
    return {"mode": "concurrency", "calls": calls,
            "answered": sum(1 for ok in oks if ok is True),
            "server_lag_ms": stats["lag_ms"], "rtp_jitter_ms": summary(jitter),
            "client_lag_ms": summary(callers.lags), "v2v_ms": summary(latencies),
            "server_cpu_s": round(float(stats["cpu_s"]), 1),
            "client_cpu_s": round(client_cpu, 1),
            "other_cpu_s": round(max(0.0, busy - client_cpu - float(stats["cpu_s"])), 1),
            "window_s": round(float(stats["window_s"]), 1)}


def _row(r: dict[str, Any]) -> str:
    lag, jit, cl = r["server_lag_ms"], r["rtp_jitter_ms"], r["client_lag_ms"]
    return (f"| {r['calls']} | {r['answered']} | {lag['p50']:.1f} / {lag['p99']:.1f} / "
            f"{lag['max']:.0f} | {jit['p50']:.1f} / {jit['p99']:.1f} | {cl['p99']:.1f} | "
            f"{r['v2v_ms']['p50']:.0f} / {r['v2v_ms']['p95']:.0f} | {r['server_cpu_s']} / "
            f"{r['client_cpu_s']} / {r['other_cpu_s']} in {r['window_s']} s |")


def _docs(results: list[dict[str, Any]], args: argparse.Namespace) -> tuple[str, str]:
    today = date.today().isoformat()
    if results[0]["mode"] == "v2v":
        r = results[0]
        s = r["v2v_ms"]
        marker = f"sip-v2v-{r['stack']}"
        text = (f"{'Instant fake providers' if r['stack'] == 'fake' else 'Embedded stack'}, "
                f"run {today} on this 2-core machine, measured while other sessions shared "
                f"the CPU ({r['other_cpu_s']} CPU-s of other processes during the run). "
                f"Reproduce: `.venv/bin/python benchmarks/sip_calls.py --mode v2v --turns "
                f"{args.turns}{' --fake' if args.fake else ''} --write-docs`.\n\n"
                "| measure (ms) | n | p50 | p95 | min | max |\n|---|---|---|---|---|---|\n"
                f"| voice-to-voice over SIP (caller's RTP) | {s['n']} | {s['p50']:.0f} | "
                f"{s['p95']:.0f} | {s['min']:.0f} | {s['max']:.0f} |\n")
        return marker, text
    head = (f"Run {today}, measured while other sessions shared the CPU. Reproduce: "
            f"`.venv/bin/python benchmarks/sip_calls.py --mode concurrency --calls "
            f"{','.join(str(r['calls']) for r in results)} --duration {args.duration} "
            f"--ramp {args.ramp} --write-docs`.\n\n"
            "| calls | answered | server loop lag p50 / p99 / max (ms) | RTP pacing jitter "
            "p50 / p99 (ms, at the callers) | callers' own loop lag p99 (ms) | v2v p50 / p95 "
            "(ms) | CPU-s server / callers / others |\n|---|---|---|---|---|---|---|\n")
    return "sip-concurrency", head + "\n".join(_row(r) for r in results) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mode", choices=("v2v", "concurrency"), default="v2v")
    parser.add_argument("--turns", type=int, default=20)
    parser.add_argument("--fake", action="store_true")
    parser.add_argument("--silence-ms", type=int, default=300)
    parser.add_argument("--calls", default="20,40")
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--ramp", type=float, default=5.0)
    parser.add_argument("--quiet-wait", type=float, default=900.0,
                        help="at most this long to wait for an idle machine (s)")
    parser.add_argument("--write-docs", action="store_true")
    args = parser.parse_args(argv)
    if args.mode == "v2v":
        results = [asyncio.run(v2v(args))]
    else:
        results = [asyncio.run(concurrency(int(n), args)) for n in args.calls.split(",")]
    for r in results:
        print(r)
    if args.write_docs:
        marker, text = _docs(results, args)
        write_between(marker, text, SECTION)
    return 0


if __name__ == "__main__":
    sys.exit(main())
