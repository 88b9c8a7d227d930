"""The per-turn latency chart, drawn on the server as SVG geometry (no script, no inline
style: the page's Content-Security-Policy allows neither)."""

from __future__ import annotations

from dataclasses import dataclass, field

#: the stages of a reply in the order they happen, with their labels
STAGES = (("endpointing_ms", "endpointing"), ("stt_ms", "STT"),
          ("llm_first_token_ms", "LLM first token"), ("tts_first_audio_ms", "TTS first audio"))
BAR_W, GAP, HEIGHT, TOP = 36, 14, 180, 10


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


def latency_chart(latencies_ms: list[float], stages: list[dict[str, float]]) -> Chart | None:
    """Per turn, a stacked bar of the stages and a marker at the voice-to-voice latency."""
    turns = max(len(latencies_ms), len(stages))
    if turns == 0:
        return None
    totals = [latencies_ms[i] if i < len(latencies_ms)
              else stages[i].get("voice_to_voice_ms", 0.0) for i in range(turns)]
    sums = [sum(float(stages[i].get(k, 0.0)) for k, _ in STAGES) if i < len(stages) else 0.0
            for i in range(turns)]
    top = max([*totals, *sums, 1.0]) * 1.1
    chart = Chart(turns * (BAR_W + GAP) + 60, HEIGHT + TOP + 30, round(top))
    px = HEIGHT / top
    for i in range(turns):
        x = 50 + i * (BAR_W + GAP)
        y: float = TOP + HEIGHT
        for n, (key, label) in enumerate(STAGES):
            ms = float(stages[i].get(key, 0.0)) if i < len(stages) else 0.0
            if ms <= 0:
                continue
            y -= ms * px
            chart.segments.append(Segment(x, y, BAR_W, ms * px, f"stage{n}",
                                          f"turn {i + 1}: {label} {ms:.0f} ms"))
        total_y = TOP + HEIGHT - totals[i] * px
        chart.segments.append(Segment(x - 3, total_y - 1, BAR_W + 6, 2, "total",
                                      f"turn {i + 1}: voice to voice {totals[i]:.0f} ms"))
        chart.labels.append((x + BAR_W / 2, str(i + 1)))
    for frac in (0.0, 0.5, 1.0):
        chart.ticks.append((TOP + HEIGHT - frac * top * px, f"{frac * top:.0f}"))
    return chart
