"""The per-stage latency histogram fed by the engine's first-frame timings."""

from __future__ import annotations

from typing import cast

from openline.services.metrics import Operations
from openline.store.db import Database
from openline.voice.events import AudioOut


async def _none() -> tuple[int, float]:
    return 0, 0.0


def test_only_durations_become_stages() -> None:
    ops = Operations(db=cast(Database, None), live_calls=lambda: 0,
                     providers_loaded=lambda: True, queue_depth=_none)
    ops.engine_event(AudioOut(b"", "Hi", {"endpointing_ms": 310.0, "end_of_turn_p": 0.97,
                                          "first_audio_ready_ms": 540.0}))
    stages = {s.labels["stage"] for m in ops.registry.collect()
              if m.name == "openline_turn_stage_seconds" for s in m.samples
              if s.name.endswith("_count")}
    assert stages == {"endpointing", "first_audio_ready"}
    total = ops.registry.get_sample_value("openline_turn_stage_seconds_sum",
                                          {"stage": "endpointing"})
    assert total == 0.31
