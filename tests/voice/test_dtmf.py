"""Keypad digits from the caller become one user turn that the assistant answers."""

from __future__ import annotations

import asyncio

from openline.voice import events as ev
from openline.voice.dtmf import DTMF_TIMEOUT_S
from tests.voice.harness import make, virtual

LONG = "Please listen carefully as our menu options have changed recently. " * 3


@virtual
async def test_digits_until_hash_make_one_turn() -> None:
    conv, log, p = make(replies=["You chose option one two three."])
    runner = asyncio.create_task(conv.run())
    await asyncio.sleep(0.1)
    for digit in "123":
        conv.push_dtmf(digit)
        await asyncio.sleep(0.3)
    assert not log.of(ev.DtmfReceived)  # still collecting
    conv.push_dtmf("#")
    await log.wait_for(ev.AssistantFinishedSpeaking)
    conv.end("user")
    await runner
    assert [e.digits for e in log.of(ev.DtmfReceived)] == ["123"]
    assert not log.of(ev.InputText)  # input_text is for speech transcripts
    assert [(i.role, i.text) for i in log.items] == [
        ("user", "The caller pressed 1 2 3."), ("assistant", "You chose option one two three.")]
    last = p.llm.requests[-1].messages[-1]  # type: ignore[attr-defined]
    assert (last.role, last.content) == ("user", "The caller pressed 1 2 3.")


@virtual
async def test_digits_are_committed_after_a_pause() -> None:
    conv, log, _ = make(replies=["Got it."])
    runner = asyncio.create_task(conv.run())
    await asyncio.sleep(0.1)
    conv.push_dtmf("4")
    await asyncio.sleep(1.5)
    conv.push_dtmf("2*")  # a later digit restarts the wait; several may come at once
    pushed = log.clock.monotonic()
    await log.wait_for(ev.AssistantFinishedSpeaking)
    conv.end("user")
    await runner
    assert [e.digits for e in log.of(ev.DtmfReceived)] == ["42*"]
    assert log.time_of(ev.DtmfReceived) - pushed == DTMF_TIMEOUT_S
    assert log.items[0].text == "The caller pressed 4 2 *."


@virtual
async def test_a_lone_hash_or_other_keys_do_nothing() -> None:
    conv, log, p = make()
    runner = asyncio.create_task(conv.run())
    await asyncio.sleep(0.1)
    conv.push_dtmf("#")
    conv.push_dtmf("x")
    await asyncio.sleep(5)
    conv.end("user")
    await runner
    assert not log.events and not log.items and not p.llm.requests  # type: ignore[attr-defined]


@virtual
async def test_a_keypad_entry_interrupts_the_assistant() -> None:
    conv, log, _ = make(replies=["Connecting you to sales."], stream_ahead_of_real_time=False)
    runner = asyncio.create_task(conv.run())
    await asyncio.sleep(0.1)
    conv.say(LONG)
    await log.wait_for(ev.AssistantStartedSpeaking)
    await asyncio.sleep(1.0)
    conv.push_dtmf("2#")
    await log.wait_for(ev.AssistantFinishedSpeaking)
    conv.end("user")
    result = await runner
    kinds = [k for k in log.kinds() if k != "AudioOut"]
    assert kinds == ["AssistantStartedSpeaking", "DtmfReceived", "ClearAudio",
                     "InterruptedResponse", "AssistantStartedSpeaking",
                     "AssistantFinishedSpeaking"]
    heard = log.of(ev.InterruptedResponse)[0].text
    assert heard and LONG.startswith(heard) and result.interruptions_count == 1
    assert [i.text for i in log.items] == [heard, "The caller pressed 2.",
                                           "Connecting you to sales."]
