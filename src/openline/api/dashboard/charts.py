"""The per-turn latency chart, drawn on the server as SVG geometry (no script, no inline
style: the page's Content-Security-Policy allows neither)."""

from __future__ import annotations

from dataclasses import dataclass, field

#: the stages of a reply in the order they begin, with their labels (the table's columns)
STAGES = (("endpointing_ms", "endpointing"), ("stt_ms", "STT"),
          ("llm_first_token_ms", "LLM first token"), ("tts_first_audio_ms", "TTS first audio"))
BAR_W, GAP, HEIGHT, TOP = 36, 14, 180, 10
LANE_W = BAR_W / len(STAGES)


@dataclass(frozen=True)
class Segment:
    x: float
    y: float
    width: float
    height: float
    css: str
    title: str


@dataclass
class Chart:
    width: int
    height: int
    scale_ms: float
    segments: list[Segment] = field(default_factory=list)
    labels: list[tuple[float, str]] = field(default_factory=list)
    ticks: list[tuple[float, str]] = field(default_factory=list)


def stage_spans(turn: dict[str, float]) -> list[tuple[int, float, float]]:
    """When each stage of one turn ran: (stage index, start, end) in ms after the caller's
    last voiced sample. The stages overlap: recognition and the reply start speculatively
    in the pause (``reply_started_ms``), before the end-of-turn wait is over, and the
    first clause is synthesised while the LLM writes on; with ``stt_unaided_ms`` the LLM
    began on the unaided words, before the recogniser's keyword pass was over. Turns
    stored without ``reply_started_ms`` are drawn one stage after the other, as they then
    ran."""
    wait, stt = turn.get("endpointing_ms"), turn.get("stt_ms")
    llm, tts = turn.get("llm_first_token_ms"), turn.get("tts_first_audio_ms")
    begun = turn.get("reply_started_ms", wait or 0.0)
    spans: list[tuple[int, float, float]] = []
    if wait:
        spans.append((0, 0.0, wait))
    at = begun
    if stt:
        spans.append((1, at, at + stt))
        at += turn.get("stt_unaided_ms", stt)
    if llm:
        spans.append((2, at, at + llm))
        at += turn.get("llm_first_sentence_ms", llm)
    if tts:
        ready = turn.get("first_audio_ready_ms", at + tts)
        spans.append((3, ready - tts, ready))
    return spans


def latency_chart(latencies_ms: list[float], stages: list[dict[str, float]]) -> Chart | None:
    """Per turn, a timeline of the stages (one lane each, from the caller's last voiced
    sample upwards) and a marker at the voice-to-voice latency."""
    turns = max(len(latencies_ms), len(stages))
    if turns == 0:
        return None
    totals = [latencies_ms[i] if i < len(latencies_ms)
              else stages[i].get("voice_to_voice_ms", 0.0) for i in range(turns)]
    spans = [stage_spans(stages[i]) if i < len(stages) else [] for i in range(turns)]
    top = max([*totals, *(end for turn in spans for _, _, end in turn), 1.0]) * 1.1
    chart = Chart(turns * (BAR_W + GAP) + 60, HEIGHT + TOP + 30, round(top))
    px = HEIGHT / top
    for i in range(turns):
        x = 50 + i * (BAR_W + GAP)
        for n, begin, end in spans[i]:
            label = STAGES[n][1]
            chart.segments.append(Segment(
                x + n * LANE_W, TOP + HEIGHT - end * px, LANE_W - 1, (end - begin) * px,
                f"stage{n}", f"turn {i + 1}: {label} {end - begin:.0f} ms "
                             f"({begin:.0f}-{end:.0f} ms after the caller stopped)"))
        total_y = TOP + HEIGHT - totals[i] * px
        chart.segments.append(Segment(x - 3, total_y - 1, BAR_W + 6, 2, "total",
                                      f"turn {i + 1}: voice to voice {totals[i]:.0f} ms"))
        chart.labels.append((x + BAR_W / 2, str(i + 1)))
    for frac in (0.0, 0.5, 1.0):
        chart.ticks.append((TOP + HEIGHT - frac * top * px, f"{frac * top:.0f}"))
    return chart
