"""The per-turn latency chart's geometry (pure: no server, no browser)."""

from __future__ import annotations

import pytest

from openline.api.dashboard.charts import HEIGHT, TOP, latency_chart, stage_spans

#: a speculative turn as the engine records it (ms after the caller's last voiced sample)
SPECULATIVE = {"endpointing_ms": 290.0, "reply_started_ms": 100.0, "stt_ms": 180.0,
               "llm_first_token_ms": 110.0, "llm_first_sentence_ms": 200.0,
               "tts_first_audio_ms": 60.0, "first_audio_ready_ms": 550.0}


def test_the_stages_of_a_speculative_turn_are_drawn_where_they_ran() -> None:
    # recognition began in the pause, long before the end-of-turn wait was over; the
    # first clause went to the TTS when the LLM had written it
    assert stage_spans(SPECULATIVE) == [(0, 0.0, 290.0), (1, 100.0, 280.0),
                                        (2, 280.0, 390.0), (3, 490.0, 550.0)]


def test_a_reply_that_ran_ahead_of_the_keyword_pass_starts_at_the_unaided_words() -> None:
    turn = {**SPECULATIVE, "stt_unaided_ms": 90.0}  # the keyword pass ran on to 280 ms
    assert stage_spans(turn)[1:3] == [(1, 100.0, 280.0), (2, 190.0, 300.0)]


def test_a_turn_stored_without_its_start_is_drawn_stage_after_stage() -> None:
    turn = {"endpointing_ms": 300.0, "stt_ms": 150.0, "llm_first_token_ms": 100.0,
            "tts_first_audio_ms": 50.0}
    assert stage_spans(turn) == [(0, 0.0, 300.0), (1, 300.0, 450.0), (2, 450.0, 550.0),
                                 (3, 550.0, 600.0)]


def test_the_chart_is_scaled_to_the_latest_stage_not_the_sum_of_the_stages() -> None:
    chart = latency_chart([560.0], [SPECULATIVE])
    assert chart is not None
    # 1.1 x the voice-to-voice (560), not the stacked sum of the stages (640)
    assert chart.scale_ms == pytest.approx(616, abs=1)
    px = HEIGHT / (560.0 * 1.1)
    stt = next(s for s in chart.segments if s.css == "stage1")
    assert stt.y == pytest.approx(TOP + HEIGHT - 280 * px)
    assert stt.height == pytest.approx(180 * px)
    assert "100-280 ms" in stt.title
    [total] = [s for s in chart.segments if s.css == "total"]
    assert total.y == pytest.approx(TOP + HEIGHT - 560 * px - 1)
    assert latency_chart([], []) is None
