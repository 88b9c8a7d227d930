"""Simultaneous conversations on the embedded stack: voice-to-voice per N, from outside.

A script, not a timed test. It starts Openline in a subprocess with the embedded models
(Silero VAD, Whisper tiny.en, Smart Turn, Gemma 3 270M through llama.cpp, Piper "joe")
and an agent with **default settings** (no welcome message), then for each N of
``--conversations`` (e.g. ``4,6,8,10``) opens N STS sockets with the official ``phonic``
SDK and lets each caller speak ``--turns`` turns in real time (``latency.py``'s
``Caller``/``send_loop``: 20 ms ``pcm_16000`` chunks on an absolute clock, silence
between utterances).

* The callers are espeak-ng voices at different speeds, each conversation with its own
  voice/speed and its own rotation of the lines, so no two turns send the same audio
  (recognition caches by audio) and no two conversations are in step;
* conversation ``i`` starts ``i * --stagger-s`` seconds after the first, so turns do not
  all end at the same instant (they still overlap: a turn lasts several seconds);
* **voice-to-voice** per turn = arrival of the first reply ``audio_chunk`` minus the moment
  the chunk holding the caller's last voiced sample was handed to the socket;
* the stages the server attaches to that chunk (``timings``: ``endpointing_ms``,
  ``stt_ms``, ``llm_first_token_ms``, ``tts_first_audio_ms``) are reported as p50s, and
  "after transcript" = voice-to-voice minus ``endpointing_ms`` (what the LLM and TTS add).

``--env KEY=VALUE`` passes settings to the server (e.g. ``OPENLINE_LLM_PARALLEL=1`` for
the one-at-a-time baseline). The caller processes run in this process, on the same two
cores as the server: their cost (about 2 % of a core per conversation) is part of what
is measured.

Usage::

    flock /tmp/bench.lock .venv/bin/python benchmarks/embedded_concurrency.py \\
        --conversations 4,6,8,10 --turns 4 --label after --write-docs
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import re
import shutil
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (
    aligned,
    bench_server,
    bench_stats,
    cpu_busy_s,
    espeak,
    log,
    machine,
    ms,
    percentile,
    provider_work,
    sdk,
    summary,
    wait_until_quiet,
    work_text,
    write_between,
)
from latency import (
    AGENT,
    CALLER_LINES,
    PROMPT,
    TURN_TIMEOUT_S,
    Caller,
    Turn,
    on_message,
    send_loop,
    sts_socket,
)

SECTION = "Embedded concurrency"
VOICES = ("en-us", "en-gb", "en-us+f3", "en-us+m3", "en-gb+f2")
STAGES = ("endpointing_ms", "stt_ms", "llm_first_token_ms", "llm_first_sentence_ms",
          "tts_first_audio_ms")
RESULTS = Path(__file__).resolve().parent / "results"


def caller_script(index: int, turns: int, workdir: Path) -> list[tuple[str, Any]]:
    """Conversation ``index``'s turns: its own voice, speed and rotation of the lines."""
    voice = VOICES[index % len(VOICES)]
    speed = 150 + 7 * index
    lines = [CALLER_LINES[(index * 3 + k) % len(CALLER_LINES)] for k in range(turns)]
    return [(text, aligned(espeak(text, voice, speed, workdir))) for text in lines]


async def converse(server: Any, script: list[tuple[str, Any]], delay_s: float,
                   tag: str, agent: str = AGENT) -> list[Turn]:
    """One conversation: wait ``delay_s``, then speak each line after the last reply."""
    await asyncio.sleep(delay_s)
    turns: list[Turn] = []
    async with sts_socket(server, agent) as (socket, _):
        caller = Caller()

        async def read() -> None:
            async for message in socket:
                on_message(message, caller.turn, time.perf_counter())

        tasks = [asyncio.create_task(read()), asyncio.create_task(send_loop(socket, caller))]
        try:
            for number, (text, samples) in enumerate(script, 1):
                turn = Turn(text)
                turns.append(turn)
                caller.say(turn, samples)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(TURN_TIMEOUT_S):
                        await turn.done.wait()
                log(f"  {tag} t{number} {turn.outcome:8s} "
                    f"v2v={ms(turn.v2v_ms or float('nan')):>6s} "
                    f"stall={ms(turn.stall_ms):>6s} "
                    + " ".join(f"{s.removesuffix('_ms')}={turn.timings.get(s)}" for s in STAGES))
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    return turns


def process_cpu_s(pid: int) -> float:
    """CPU seconds (user + system, all threads) of process ``pid`` so far (Linux /proc)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def level_report(n: int, turns: list[Turn], busy_s: float, elapsed_s: float) -> dict[str, Any]:
    """Percentiles for one level of concurrency."""
    ok = [t for t in turns if t.outcome == "ok" and t.v2v_ms is not None]
    v2v = [t.v2v_ms for t in ok if t.v2v_ms is not None]
    after = [(t.v2v_ms or 0) - t.timings["endpointing_ms"] for t in ok
             if "endpointing_ms" in t.timings]
    return {
        "conversations": n, "turns": len(turns), "answered": len(ok),
        "v2v": {**summary(v2v), "p90": percentile(v2v, 90)},
        "after_endpointing": {**summary(after), "p90": percentile(after, 90)},
        "stages_p50": {s: percentile([t.timings[s] for t in ok if s in t.timings], 50)
                       for s in STAGES},
        "cpu_share": busy_s / max(elapsed_s, 1e-9) / (os.cpu_count() or 1),
        "stalled": sum(t.stall_ms > STALL_MS for t in ok),
        "stall_ms": {**summary([t.stall_ms for t in ok]),
                     "p90": percentile([t.stall_ms for t in ok], 90)},
    }


async def run_level(server: Any, n: int, args: argparse.Namespace, workdir: Path
                    ) -> dict[str, Any]:
    """N simultaneous conversations of ``args.turns`` turns each."""
    scripts = [caller_script(i, args.turns, workdir) for i in range(n)]
    await asyncio.to_thread(wait_until_quiet, 0.3, 3.0, 30.0)
    log(f"{n} conversations x {args.turns} turns...")
    before, started, server_s = cpu_busy_s(), time.monotonic(), process_cpu_s(server.pid)
    calls = (await asyncio.to_thread(bench_stats, server))["provider_calls"]
    results = await asyncio.gather(*(
        converse(server, scripts[i], i * args.stagger_s, f"c{i:02d}",
                 agent_name(i % args.agents)) for i in range(n)))
    elapsed = time.monotonic() - started
    after = (await asyncio.to_thread(bench_stats, server))["provider_calls"]
    level = level_report(n, [t for turns in results for t in turns],
                         cpu_busy_s() - before, elapsed)
    server_cpu_s = process_cpu_s(server.pid) - server_s
    level["server_cores"] = server_cpu_s / elapsed
    level["elapsed_s"] = elapsed
    # the server's CPU time per turn: what one turn costs, whatever waits it had
    level["server_cpu_s_per_turn"] = server_cpu_s / max(level["turns"], 1)
    # each call's first turn: the one that finds its slot cold unless the call was warmed
    first = [t.v2v_ms for turns in results for t in turns[:1]
             if t.outcome == "ok" and t.v2v_ms is not None]
    level["first_turns_v2v"] = {**summary(first), "p90": percentile(first, 90)}
    # what the level ran: recognitions (speculative ones too), LLM streams, probes
    level["work"] = provider_work(calls, after)
    log(f"  work: {work_text(level['work'])}")
    log(f"N={n}: p50 {ms(level['v2v']['p50'])} ms, p90 {ms(level['v2v']['p90'])} ms "
        f"(first turns p50 {ms(level['first_turns_v2v']['p50'])} ms; "
        f"{level['answered']}/{level['turns']} answered, "
        f"server {level['server_cores']:.2f} cores)")
    return level


#: ``--agents``: the places the extra agents answer for (their personas differ from the
#: first words, so a call finds none of another agent's prompt in the embedded model's cache)
PLACES = ("Luigi's trattoria", "the Golden Dragon", "Chez Marie", "the Blue Door diner",
          "Sakura sushi bar", "the Olive Grove", "Casa Lopez", "the Harbour Grill",
          "Noodle House", "the Red Lantern", "Pierre's bistro")


def agent_name(i: int) -> str:
    """The ``i``-th agent of ``--agents`` (the first is the one of every other benchmark)."""
    return AGENT if i == 0 else f"{AGENT}-{i}"


async def run(args: argparse.Namespace, workdir: Path) -> list[dict[str, Any]]:
    env = dict(item.split("=", 1) for item in args.env)
    log(f"starting the server (embedded; env {env or 'default'})...")
    with bench_server(workdir, "embedded", env_extra=env) as server:
        for i in range(args.agents):
            prompt = PROMPT if i == 0 else f"{PLACES[i - 1]} takes your calls. {PROMPT}"
            await sdk(server).agents.create(
                name=agent_name(i), system_prompt=prompt, welcome_message="", voice_id="joe",
                audio_format="pcm_16000", no_input_poke_sec=300,
                no_input_end_conversation_sec=300)
        log("warm-up conversation (not counted)")
        await converse(server, [("warm-up", espeak("Hello, can you hear me?", "en-us", 165,
                                                   workdir))], 0.0, "warm")
        return [await run_level(server, n, args, workdir) for n in args.levels]


def table(label: str, levels: list[dict[str, Any]]) -> str:
    """Markdown rows for one run."""
    rows = []
    for lv in levels:
        st = lv["stages_p50"]
        rows.append(
            f"| {label} | {lv['conversations']} | {lv['answered']}/{lv['turns']} | "
            f"{ms(lv['v2v']['p50'])} | {ms(lv['v2v']['p90'])} | "
            f"{ms(lv['after_endpointing']['p50'])} | {ms(st['endpointing_ms'])} | "
            f"{ms(st['stt_ms'])} | {ms(st['llm_first_token_ms'])} | "
            f"{ms(st.get('llm_first_sentence_ms', math.nan))} | "
            f"{ms(st['tts_first_audio_ms'])} | "
            f"{ms(lv.get('first_turns_v2v', {}).get('p50', math.nan))} | "
            f"{stalled(lv)} | {lv['cpu_share']:.0%} |")
    return "\n".join(rows)


def stalled(level: dict[str, Any]) -> str:
    """"k/n (max m)": replies whose audio ran dry for over ``STALL_MS`` once started."""
    if "stalled" not in level:  # runs from before the stalls were measured
        return "n/a"
    return f"{level['stalled']}/{level['answered']} (max {ms(level['stall_ms']['max'])})"


#: a reply that ran dry for longer than this once it had started is counted as stalled
STALL_MS = 250.0
HEADER = ("| code | N | answered | v2v p50 | v2v p90 | after end of turn p50 | "
          "endpointing p50 | stt p50 | llm first token p50 | llm first sentence p50 | "
          "tts first audio p50 | first turns v2v p50 | replies stalled > 250 ms | "
          "machine CPU |\n"
          "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")


# --------------------------------------------------------------------------- the LLM alone


async def llm_level(llm: Any, k: int) -> dict[str, float]:
    """``k`` replies started together: p50 time to first token, wall time, tokens/s."""
    from openline.providers.llm.base import ChatMessage, GenerationOptions

    async def one(i: int) -> tuple[float, float, int]:
        messages = [ChatMessage.system(PROMPT),
                    ChatMessage.user(CALLER_LINES[i % len(CALLER_LINES)] + f" (caller {i})")]
        start = time.perf_counter()
        done = await llm.complete(messages, options=GenerationOptions(max_tokens=40))
        return (done.ttft_s or 0.0), time.perf_counter() - start, done.completion_tokens or 0

    lags: list[float] = []

    async def lag() -> None:  # how late a 10 ms sleep wakes: GIL or loop stalls
        while True:
            before = time.perf_counter()
            await asyncio.sleep(0.01)
            lags.append((time.perf_counter() - before - 0.01) * 1000)

    probe = asyncio.create_task(lag())
    start = time.perf_counter()
    runs = await asyncio.gather(*(one(i) for i in range(k)))
    wall = time.perf_counter() - start
    probe.cancel()
    return {"k": k, "ttft_p50_ms": percentile([r[0] * 1000 for r in runs], 50),
            "wall_ms": wall * 1000, "tokens_per_s": sum(r[2] for r in runs) / wall,
            "loop_lag_max_ms": max(lags, default=0.0)}


async def llm_sweep(levels: list[int], configs: list[str]) -> list[dict[str, Any]]:
    """The embedded model alone, per ``parallel:threads:poll`` configuration."""
    from openline.providers.llm.llama_cpp import LlamaCppLLM, LlamaCppOptions, ensure_embedded_gguf

    with tempfile.TemporaryDirectory() as tmp:
        gguf = ensure_embedded_gguf(Path(tmp))
        rows = []
        for config in configs:
            parallel, threads, poll = (int(v) for v in config.split(":"))
            options = LlamaCppOptions(gguf_path=gguf, n_parallel=parallel, n_threads=threads,
                                      poll=poll, seed=1)
            async with LlamaCppLLM(options) as llm:
                await llm_level(llm, 1)  # warm-up
                for k in levels:
                    row = {"config": config, **await llm_level(llm, k)}
                    log(f"  {row}")
                    rows.append(row)
        return rows


#: a post-call answer of fixed length (~120 tokens under its grammar, whatever the model)
COUNTING = {"type": "object", "additionalProperties": False, "required": ["numbers"],
            "properties": {"numbers": {"type": "array", "items": {"type": "integer"},
                                       "minItems": 40, "maxItems": 40}}}


async def background_sweep(reps: int) -> list[dict[str, Any]]:
    """A live reply's first token while a post-call generation holds the one slot: the
    post-call request sent as background work (the default since the slot gate) and as
    live work (first come, first served, as before it)."""
    from openline.providers.llm.base import ChatMessage, GenerationOptions, TextDelta
    from openline.providers.llm.llama_cpp import LlamaCppLLM, LlamaCppOptions, ensure_embedded_gguf

    counting = [ChatMessage.system("Count from 1 to 40."), ChatMessage.user("Count.")]
    with tempfile.TemporaryDirectory() as tmp:
        options = LlamaCppOptions(gguf_path=ensure_embedded_gguf(Path(tmp)), seed=1)
        async with LlamaCppLLM(options) as llm:
            await llm.complete(counting, options=GenerationOptions(json_schema=COUNTING))
            rows = []
            for mode in ("alone", "fifo", "background"):
                firsts, posts = [], []
                for i in range(reps):
                    post = None
                    if mode != "alone":
                        post = asyncio.create_task(llm.complete(counting, options=(
                            GenerationOptions(max_tokens=300, temperature=0.0,
                                              json_schema=COUNTING,
                                              background=mode == "background"))))
                        await asyncio.sleep(0.3)  # it holds the slot, generating
                    caller = CALLER_LINES[i % len(CALLER_LINES)]
                    start = time.perf_counter()
                    reply = llm.stream([ChatMessage.system(PROMPT), ChatMessage.user(caller)],
                                       options=GenerationOptions(max_tokens=40))
                    async with contextlib.aclosing(reply) as events:
                        async for event in events:
                            if isinstance(event, TextDelta):
                                firsts.append((time.perf_counter() - start) * 1000)
                                break
                    if post is not None:
                        await post
                        posts.append((time.perf_counter() - start) * 1000)
                rows.append({"mode": mode, "reps": reps, "first": summary(firsts),
                             "post_done": summary(posts) if posts else None,
                             "preemptions": llm.preemptions})
                log(f"  {rows[-1]}")
            return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--conversations", default="4,6,8,10",
                        help="comma-separated levels of concurrency (default 4,6,8,10)")
    parser.add_argument("--turns", type=int, default=4, help="turns per conversation")
    parser.add_argument("--stagger-s", type=float, default=0.45,
                        help="delay between conversation starts (default 0.45 s)")
    parser.add_argument("--env", action="append", default=[], metavar="KEY=VALUE",
                        help="server setting, e.g. OPENLINE_LLM_PARALLEL=1 (repeatable)")
    parser.add_argument("--agents", type=int, default=1, choices=range(1, len(PLACES) + 2),
                        metavar="K", help="conversations use K agents in turn, each with its "
                        "own persona (default 1)")
    parser.add_argument("--label", default="run", help="name of this run in the table/json")
    parser.add_argument("--write-docs", action="store_true",
                        help="append this run's rows to the docs section's table")
    parser.add_argument("--docs-only", action="store_true",
                        help="only rewrite the docs section from the saved runs")
    parser.add_argument("--llm-only", metavar="P:T:POLL,...",
                        help="measure the embedded LLM alone per slots:threads:poll config "
                             "with --conversations simultaneous replies each")
    parser.add_argument("--llm-background", type=int, metavar="REPS",
                        help="measure the embedded LLM alone: a live reply's first token "
                             "while post-call work holds the slot, REPS times per mode")
    args = parser.parse_args(argv)
    args.levels = [int(v) for v in args.conversations.split(",") if v.strip()]
    if not args.levels or min(args.levels) < 1 or max(args.levels) > 32:
        parser.error("--conversations must be 1..32 each")
    if not 1 <= args.turns <= 20:
        parser.error("--turns must be within 1..20")
    if shutil.which("espeak-ng") is None:
        parser.error("espeak-ng is needed to synthesize the callers")
    if args.docs_only:
        write_docs(args)
        return 0
    if args.llm_background:
        print("| post-call work | live first token p50 | p95 | max | post-call done p50 |"
              " preemptions |\n|---|---|---|---|---|---|")
        for r in asyncio.run(background_sweep(args.llm_background)):
            post = ms(r["post_done"]["p50"]) if r["post_done"] else "-"
            print(f"| {r['mode']} | {ms(r['first']['p50'])} | {ms(r['first']['p95'])} |"
                  f" {ms(r['first']['max'])} | {post} | {r['preemptions']} |")
        return 0
    if args.llm_only:
        rows = asyncio.run(llm_sweep(args.levels, args.llm_only.split(",")))
        print("| slots:threads:poll | replies at once | first token p50 | wall | tokens/s |"
              " loop lag max |\n|---|---|---|---|---|---|")
        for r in rows:
            print(f"| {r['config']} | {r['k']} | {ms(r['ttft_p50_ms'])} | {ms(r['wall_ms'])} |"
                  f" {r['tokens_per_s']:.0f} | {ms(r['loop_lag_max_ms'])} |")
        return 0
    with tempfile.TemporaryDirectory(prefix="openline-embedded-conc-") as tmp:
        levels = asyncio.run(run(args, Path(tmp)))
    RESULTS.mkdir(exist_ok=True)
    slug = re.sub(r"[^a-z0-9]+", "-", args.label.lower()).strip("-")
    out = RESULTS / f"embedded_concurrency-{slug}.json"
    out.write_text(json.dumps({"label": args.label, "env": args.env, "turns": args.turns,
                               "agents": args.agents,
                               "date": date.today().isoformat(), "at": time.time(),
                               "machine": machine(), "levels": levels}, indent=2))
    print(f"\n{HEADER}\n{table(args.label, levels)}\n(raw: {out})")
    if args.write_docs:
        write_docs(args)
    return 0


#: the runs saved before the results named their CPU were on the earlier AVX-512 machine
_FIRST_MACHINE = "2-core AVX-512 machine"


def write_docs(args: argparse.Namespace) -> None:
    """The section: every saved run's rows (``benchmarks/results/*.json``), one table."""
    runs = sorted((json.loads(p.read_text()) for p in RESULTS.glob("embedded_concurrency-*.json")),
                  key=lambda r: r.get("at", 0))
    rows = "\n".join(table(f"{r['label']} ({r['date']}, {r.get('machine', _FIRST_MACHINE)})",
                            r["levels"]) for r in runs)
    command = ("`flock /tmp/bench.lock .venv/bin/python benchmarks/embedded_concurrency.py "
               f"--conversations {args.conversations} --turns {args.turns} "
               "--label <label> [--env KEY=VALUE] --write-docs`")
    body = ("Each row: one run (its label, date and CPU; the raw results are in "
            "benchmarks/results/), embedded stack, default agent settings, "
            f"{args.turns} turns per conversation, conversations "
            f"started {args.stagger_s} s apart. Reproduce: {command}. Times in ms; "
            "\"after end of turn\" = voice-to-voice minus the server's `endpointing_ms`.\n\n"
            f"{HEADER}\n{rows}\n")
    notes = RESULTS / "embedded_concurrency-notes.md"  # the analysis, written by hand
    if notes.is_file():
        body += "\n" + notes.read_text()
    write_between("embedded-concurrency", body, SECTION)


if __name__ == "__main__":
    sys.exit(main())
