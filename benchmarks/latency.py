"""Voice-to-voice latency over the STS WebSocket, measured by the client.

A script, not a timed test. It starts Openline in a subprocess on 127.0.0.1 (a fresh data
directory, a static API key), creates an agent with a short system prompt, the endpointing
wait ``vad_min_silence_duration_ms`` (``--silence-ms``, default 300) and no welcome
message, and drives one conversation through the official ``phonic`` SDK:

* caller audio goes up as ``pcm_16000`` in 20 ms ``audio_chunk``s, 20 ms apart on an
  absolute clock (real time), and silence keeps flowing between utterances, as from a
  microphone;
* each turn is one utterance: speech synthesized by ``espeak-ng`` (resampled to 16 kHz
  with ``openline.audio.resample``) for the embedded stack, a 960 ms tone for ``--fake``.
  The utterance is cut at its voiced end (the last 10 ms window above -45 dBFS) and padded
  in front so that the voiced end falls on a chunk *and* a VAD-frame boundary;
* **voice-to-voice** = arrival of the turn's first assistant ``audio_chunk`` minus the
  moment the chunk holding the last voiced sample was handed to the socket
  (``time.perf_counter`` in the client); the next turn starts after
  ``assistant_finished_speaking``.

It reports p50/p95/min/max of voice-to-voice, the p50 of each stage of the ``timings``
dict the server attaches to a turn's first ``audio_chunk`` (``endpointing_ms`` is the
server's own wait from the last voiced frame to the end of turn; ``stt_ms``,
``llm_first_token_ms`` and ``tts_first_audio_ms`` run *speculatively* from the first pause,
i.e. partly inside the endpointing wait), the server-side ``latencies_ms`` of the stored
conversation, and the **engine overhead** = voice-to-voice minus ``endpointing_ms``.

Modes:

* default: the embedded stack (Silero VAD, faster-whisper tiny.en, Piper "joe",
  Gemma 3 270M via llama.cpp), in a subprocess running ``create_app(settings)`` - what
  ``openline serve`` runs (``--cli`` runs ``openline serve`` itself);
* ``--fake``: instant fake providers (energy VAD, scripted STT/LLM, tone TTS) in the same
  kind of subprocess: what remains is the engine's and the transport's own cost.

Usage::

    .venv/bin/python benchmarks/latency.py --turns 10 --write-docs
    .venv/bin/python benchmarks/latency.py --fake --turns 30 --write-docs
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import numpy.typing as npt

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (
    ALIGN_SAMPLES,
    CHUNK_SAMPLES,
    RATE,
    ServerHandle,
    Ticker,
    aligned,
    bench_server,
    bench_stats,
    cpu_busy_s,
    log,
    ms,
    sdk,
    summary,
    voiced_end,
    wait_until_quiet,
    write_between,
)

Int16 = npt.NDArray[np.int16]
AGENT = "latency-bench"
PROMPT = "You are a friendly restaurant host on the phone. Answer in one short sentence."
CALLER_LINES = (
    "Hi, I would like to book a table for two tonight.",
    "Do you have anything around seven thirty?",
    "Great, the name is Jordan.",
    "Can we sit outside if the weather is nice?",
    "Is there parking near the restaurant?",
    "Do you have vegetarian options on the menu?",
    "How late is the kitchen open on Fridays?",
    "Can I bring a birthday cake?",
    "Please send me a confirmation by text message.",
    "Thanks, that is all I needed.",
)
WARMUP_LINE = "Hello, can you hear me?"  # not among the measured lines (STT caches by audio)
GAP_MS = 640  # silence before each utterance (a multiple of 160 ms keeps the alignment)
TURN_TIMEOUT_S = 60.0
SECTION = "Voice-to-voice latency"
STAGES = ("endpointing_ms", "stt_ms", "llm_first_token_ms", "tts_first_audio_ms",
          "reply_started_ms", "first_audio_ready_ms")


# --------------------------------------------------------------------------- caller audio


def espeak(text: str, workdir: Path) -> Int16:
    """``text`` spoken by espeak-ng, at 16 kHz."""
    from openline.audio.resample import resample
    from openline.audio.wav import read_wav

    path = workdir / "caller.wav"
    subprocess.run(["espeak-ng", "-v", "en-us", "-s", "165", "-w", str(path), text],
                   check=True, timeout=30)
    samples, rate = read_wav(path)
    return np.asarray(resample(samples, rate, RATE), dtype=np.int16)


def tone(ms_: int) -> Int16:
    t = np.arange(RATE * ms_ // 1000) / RATE
    return (np.sin(2 * np.pi * 300 * t) * 9000).astype(np.int16)


@dataclass
class Utterance:
    text: str
    samples: Int16  # aligned: the last sample is the last voiced one


def caller_utterance(text: str, fake: bool, workdir: Path) -> Utterance:
    """One utterance, cut at its voiced end and aligned to chunk + VAD frame."""
    raw = tone(960) if fake else espeak(text, workdir)
    return Utterance(text, aligned(raw[: voiced_end(raw)]))


def caller_utterances(turns: int, fake: bool, workdir: Path) -> list[Utterance]:
    """``turns`` utterances cycling through ``CALLER_LINES``."""
    return [caller_utterance(CALLER_LINES[i % len(CALLER_LINES)], fake, workdir)
            for i in range(turns)]


# --------------------------------------------------------------------------- one conversation


@dataclass
class Turn:
    """What the client saw of one turn (perf_counter times)."""

    said: str
    voiced_end_at: float | None = None
    user_finished_at: float | None = None
    first_audio_at: float | None = None
    timings: dict[str, float] = field(default_factory=dict)
    heard: str = ""
    reply: list[str] = field(default_factory=list)
    outcome: str = "timeout"
    done: asyncio.Event = field(default_factory=asyncio.Event)
    #: a client that plays the reply from its first chunk on, without a pause: how long
    #: its buffer ran dry before the reply's last chunk (the reply stalled mid-way)
    stall_ms: float = 0.0
    #: when the audio received so far has been played out (perf_counter)
    played_until: float | None = None

    @property
    def v2v_ms(self) -> float | None:
        if self.first_audio_at is None or self.voiced_end_at is None:
            return None
        return (self.first_audio_at - self.voiced_end_at) * 1000


@dataclass
class Caller:
    """The microphone: silence, or the current utterance's next chunk."""

    turn: Turn | None = None
    pending: Int16 | None = None
    pos: int = 0
    chunks_sent: int = 0
    gap_left: int = 0

    def say(self, turn: Turn, samples: Int16) -> None:
        self.turn, self.pending, self.pos = turn, samples, 0
        self.gap_left = GAP_MS * RATE // 1000

    def next_chunk(self) -> tuple[Int16, bool]:
        """The next 20 ms and whether it holds the utterance's last (voiced) sample."""
        on_boundary = (self.chunks_sent * CHUNK_SAMPLES) % ALIGN_SAMPLES == 0
        self.chunks_sent += 1
        if self.pending is None or self.gap_left > 0 or (self.pos == 0 and not on_boundary):
            self.gap_left = max(0, self.gap_left - CHUNK_SAMPLES)
            return np.zeros(CHUNK_SAMPLES, dtype=np.int16), False
        chunk = self.pending[self.pos:self.pos + CHUNK_SAMPLES]
        self.pos += CHUNK_SAMPLES
        last = self.pos >= self.pending.size
        if last:
            self.pending = None
        return chunk, last


async def send_loop(socket: Any, caller: Caller) -> None:
    """Real-time 20 ms chunks forever (cancelled by the driver)."""
    from phonic.types import AudioChunkPayload

    ticker = Ticker()
    while True:
        await ticker.tick()
        chunk, last = caller.next_chunk()
        payload = AudioChunkPayload(type="audio_chunk",
                                    audio=base64.b64encode(chunk.tobytes()).decode())
        if last and caller.turn is not None:
            caller.turn.voiced_end_at = time.perf_counter()
        await socket.send_audio_chunk(payload)


def on_message(message: Any, turn: Turn | None, at: float) -> None:
    """Update the current turn from one server message."""
    kind = getattr(message, "type", None)
    if turn is None or turn.voiced_end_at is None:
        return
    if kind == "user_finished_speaking" and turn.user_finished_at is None:
        turn.user_finished_at = at
    elif kind == "input_text":  # a turn heard in two parts (a pause) keeps both
        turn.heard = f"{turn.heard} {message.text}".strip()
    elif kind == "audio_chunk":
        if turn.first_audio_at is None:
            turn.first_audio_at = at
            turn.timings = dict(message.timings or {})
        _play(turn, at, len(base64.b64decode(message.audio or "")) / 2 / 16_000)
        if message.text:
            turn.reply.append(message.text)
    elif kind == "assistant_finished_speaking" and turn.first_audio_at is not None:
        turn.outcome = "ok"
        turn.done.set()
    elif kind in ("input_cancelled", "error"):
        turn.outcome = str(kind)
        turn.done.set()


def _play(turn: Turn, at: float, seconds: float) -> None:
    """A chunk of ``seconds`` of reply audio arrived at ``at``: it plays after what the
    client has buffered, or at once after a stall (``Turn.stall_ms``)."""
    start = at if turn.played_until is None else turn.played_until
    if at > start:
        turn.stall_ms += (at - start) * 1000
        start = at
    turn.played_until = start + seconds


async def read_loop(socket: Any, caller: Caller) -> None:
    async for message in socket:
        on_message(message, caller.turn, time.perf_counter())


@contextlib.asynccontextmanager
async def sts_socket(server: ServerHandle, agent: str = AGENT
                     ) -> AsyncIterator[tuple[Any, str]]:
    """An STS socket of the official SDK, configured for ``agent`` (16 kHz PCM both ways)
    and ready: yields it with its conversation id."""
    from phonic.types import ConfigPayload

    async with sdk(server).conversations.connect() as socket:
        await socket.send_config(ConfigPayload(type="config", agent=agent,
                                               input_format="pcm_16000",
                                               output_format="pcm_16000"))
        yield socket, await _wait_ready(socket)


async def converse(server: ServerHandle, utterances: list[Utterance]) -> tuple[str, list[Turn]]:
    """One conversation of ``len(utterances)`` turns; returns its id and the turns."""
    turns: list[Turn] = []
    async with sts_socket(server) as (socket, conv_id):
        caller = Caller()
        tasks = [asyncio.create_task(read_loop(socket, caller)),
                 asyncio.create_task(send_loop(socket, caller))]
        try:
            for i, utt in enumerate(utterances):
                turn = Turn(utt.text)
                turns.append(turn)
                caller.say(turn, utt.samples)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(TURN_TIMEOUT_S):
                        await turn.done.wait()
                log(f"  turn {i + 1}: {turn.outcome} v2v={ms(turn.v2v_ms or float('nan'))} ms "
                    f"heard={turn.heard!r} reply={' '.join(turn.reply)[:60]!r}")
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    return conv_id, turns


async def _wait_ready(socket: Any) -> str:
    conv_id = ""
    async with asyncio.timeout(30):
        async for message in socket:
            kind = getattr(message, "type", None)
            if kind == "conversation_created":
                conv_id = message.conversation_id
            elif kind == "ready_to_start_conversation":
                return conv_id
            elif kind == "error":
                raise RuntimeError(f"server refused the config: {message}")
    raise RuntimeError("socket closed before ready_to_start_conversation")


# --------------------------------------------------------------------------- setup + report


async def create_agent(server: ServerHandle, silence_ms: int) -> None:
    await sdk(server).agents.create(
        name=AGENT, system_prompt=PROMPT, welcome_message="", voice_id="joe",
        audio_format="pcm_16000", vad_min_silence_duration_ms=silence_ms,
        no_input_poke_sec=300, no_input_end_conversation_sec=300)


async def server_latencies(server: ServerHandle, conv_id: str) -> list[float]:
    """``analysis.latencies_ms`` of the stored conversation (once it has ended)."""
    client = sdk(server)
    for _ in range(100):
        conv = (await client.conversations.get(conv_id)).conversation
        if conv.ended_at is not None:
            return list(conv.analysis.latencies_ms or [])
        await asyncio.sleep(0.1)
    return []


def report(turns: list[Turn], server_v2v: list[float], silence_ms: int) -> dict[str, Any]:
    """Percentiles of everything measured (turns without a reply are counted, not timed)."""
    ok = [t for t in turns if t.v2v_ms is not None and t.outcome == "ok"]
    stages = {s: summary([t.timings[s] for t in ok if s in t.timings]) for s in STAGES}
    return {
        "turns": len(turns), "answered": len(ok),
        "outcomes": sorted({t.outcome for t in turns}),
        "silence_ms": silence_ms,
        "v2v": summary([t.v2v_ms for t in ok if t.v2v_ms is not None]),
        "server_v2v": summary(server_v2v),
        "stages": stages,
        "client_endpointing": summary([(t.user_finished_at - t.voiced_end_at) * 1000
                                       for t in ok if t.user_finished_at and t.voiced_end_at]),
        "overhead": summary([(t.v2v_ms or 0) - t.timings["endpointing_ms"]
                             for t in ok if "endpointing_ms" in t.timings]),
        "transcripts": [(t.said, t.heard) for t in turns],
    }


def table(result: dict[str, Any]) -> str:
    """A markdown table of one run."""
    rows = [("voice-to-voice (client)", result["v2v"]),
            ("voice-to-voice (server `latencies_ms`)", result["server_v2v"]),
            ("engine overhead = v2v - `endpointing_ms`", result["overhead"]),
            ("end of turn seen by client (`user_finished_speaking`)",
             result["client_endpointing"])]
    rows += [(f"stage `{name}`", stats) for name, stats in result["stages"].items()]
    lines = ["| measure (ms) | n | p50 | p95 | min | max |", "|---|---|---|---|---|---|"]
    for name, s in rows:
        lines.append(f"| {name} | {s['n']} | {ms(s['p50'])} | {ms(s['p95'])} | "
                     f"{ms(s['min'])} | {ms(s['max'])} |")
    return "\n".join(lines)


def docs_block(result: dict[str, Any], args: argparse.Namespace, mode: str) -> str:
    command = "  ".join(["`.venv/bin/python benchmarks/latency.py",
                         *(["--fake"] if args.fake else []),
                         f"--turns {args.turns} --silence-ms {args.silence_ms}",
                         "--write-docs`"]).replace("  ", " ")
    return (f"{mode}, run {date.today().isoformat()}: {result['answered']} of "
            f"{result['turns']} turns answered, endpointing wait (`vad_min_silence_duration_ms`)"
            f" {result['silence_ms']} ms; other processes used {result['other_cpu_s']:.1f} CPU-s"
            f" during the run. Reproduce: {command}.\n\n{table(result)}\n")


async def run(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    utterances = caller_utterances(args.turns, args.fake, workdir)
    providers = "fake" if args.fake else "embedded"
    log(f"starting the server ({providers} providers)...")
    with bench_server(workdir, providers, use_cli=args.cli) as server:
        await create_agent(server, args.silence_ms)
        if args.warmup:
            log("warm-up turn (not counted)")
            await converse(server, [caller_utterance(WARMUP_LINE, args.fake, workdir)])
        await asyncio.to_thread(wait_until_quiet)
        log(f"{len(utterances)} turns, real time")
        server_cpu_s(server, reset=True)
        client, machine = time.process_time(), cpu_busy_s()
        conv_id, turns = await converse(server, utterances)
        own = server_cpu_s(server) + time.process_time() - client
        other = cpu_busy_s() - machine - own
        server_v2v = await server_latencies(server, conv_id)
    return {**report(turns, server_v2v, args.silence_ms), "other_cpu_s": max(0.0, other)}


def server_cpu_s(server: ServerHandle, *, reset: bool = False) -> float:
    """Server CPU seconds since the last reset (``/bench/stats``; 0 with ``--cli``)."""
    with contextlib.suppress(httpx.HTTPError):
        return float(bench_stats(server, reset=reset)["cpu_s"])
    return 0.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--turns", type=int, default=10, help="scripted turns (default 10)")
    parser.add_argument("--silence-ms", type=int, default=300,
                        help="vad_min_silence_duration_ms, the endpointing wait (default 300)")
    parser.add_argument("--fake", action="store_true",
                        help="instant fake providers: measures the engine overhead")
    parser.add_argument("--cli", action="store_true",
                        help="run `openline serve` itself instead of the launcher")
    parser.add_argument("--no-warmup", dest="warmup", action="store_false",
                        help="skip the uncounted warm-up conversation")
    parser.add_argument("--write-docs", action="store_true",
                        help=f"put the table in docs/benchmarks.md ({SECTION})")
    parser.add_argument("--json", action="store_true", help="print the raw result as JSON")
    args = parser.parse_args(argv)
    if args.turns < 1 or args.turns > 200:
        parser.error("--turns must be within 1..200")
    if not args.fake and shutil.which("espeak-ng") is None:
        parser.error("espeak-ng is needed to synthesize the caller")
    with tempfile.TemporaryDirectory(prefix="openline-latency-") as tmp:
        result = asyncio.run(run(args, Path(tmp)))
    mode = "Instant fake providers" if args.fake else "Embedded stack"
    print(f"\n{mode}\n{table(result)}")
    if args.json:
        print(json.dumps(result, indent=2))
    if args.write_docs:
        write_between("latency-fake" if args.fake else "latency-embedded",
                      docs_block(result, args, mode), SECTION)
    return 0


if __name__ == "__main__":
    sys.exit(main())
