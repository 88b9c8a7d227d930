"""The back-off after a barge-in (Vapi's ``stopSpeakingPlan.backoffSeconds``): the
assistant starts nothing for that long after it was cut off."""

from __future__ import annotations

import asyncio

from openline.voice import events as ev
from tests.voice.harness import make, utter, virtual

TEXT = ("Alpha bravo charlie delta echo foxtrot golf hotel india juliet. "
        "Kilo lima mike november oscar papa quebec romeo sierra tango.")


async def _cut_to_resumption_s(backoff_ms: int) -> float:
    """A noise cuts a fixed text off; seconds from the cut to the resumed audio."""
    conv, log, _ = make(texts=[""], stream_ahead_of_real_time=False, backchannel_max_ms=0,
                        interruption_backoff_ms=backoff_ms)
    runner = asyncio.create_task(conv.run())
    await asyncio.sleep(0.1)
    conv.say(TEXT)
    await log.wait_for(ev.AssistantStartedSpeaking)
    await asyncio.sleep(1.0)
    await utter(conv, 500, 400)
    await log.wait_for(ev.InputCancelled)
    await log.wait_for(ev.AssistantFinishedSpeaking)  # the rest of the text, resumed
    conv.end("user")
    await runner
    assert len(log.of(ev.InterruptedResponse)) == 1
    return log.time_of(ev.AssistantStartedSpeaking, 1) - log.time_of(ev.ClearAudio)


@virtual
async def test_the_resumption_waits_out_the_back_off() -> None:
    at_once = await _cut_to_resumption_s(0)
    backed_off = await _cut_to_resumption_s(2500)
    assert at_once < 1.5, at_once  # the noise's end of turn, then the rest of the text
    assert 2.5 <= backed_off < 2.7, backed_off
