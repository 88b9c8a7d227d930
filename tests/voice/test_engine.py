"""The engine end to end with deterministic fake providers and a scripted caller."""

from __future__ import annotations

import asyncio

from openline.providers.llm.base import ToolCall
from openline.providers.testing import ScriptedReply
from openline.voice import events as ev
from tests.voice.harness import make, play, silence, tone


async def test_turn_order_items_and_latency() -> None:
    conv, log, p = make(replies=["Hi there! How can I help?"], texts=["book a table"],
                        welcome_message="Welcome to Openline.")
    runner = asyncio.create_task(conv.run())
    await log.wait_for(ev.AssistantFinishedSpeaking)
    await play(conv, tone(600))
    await play(conv, silence(600))
    await log.wait_for(ev.AssistantFinishedSpeaking, 2)
    conv.end("user")
    result = await runner
    assert log.kinds() == [
        "AssistantStartedSpeaking", "AudioOut", "AssistantFinishedSpeaking",
        "UserStartedSpeaking", "UserFinishedSpeaking", "InputText",
        "AssistantStartedSpeaking", "AudioOut", "AssistantFinishedSpeaking",
    ]
    assert log.of(ev.InputText)[0].text == "book a table"
    spoken = " ".join(a.text for a in log.of(ev.AudioOut) if a.text)
    assert spoken == "Welcome to Openline. Hi there! How can I help?"
    assert [(i.role, i.text) for i in log.items] == [
        ("assistant", "Welcome to Openline."), ("user", "book a table"),
        ("assistant", "Hi there! How can I help?")]
    assert result.ended_by == "user" and len(result.latencies_ms) == 1
    first_reply_audio = [a for a in log.of(ev.AudioOut) if a.timings]
    assert "endpointing_ms" in first_reply_audio[-1].timings
    # The LLM saw the system prompt, the welcome and the user's words.
    request = p.llm.requests[-1].messages  # type: ignore[attr-defined]
    assert request[0].role == "system" and request[-1].content == "book a table"
    assert result.recorder.stereo().shape[1] == 2


async def test_speculation_is_discarded_when_the_user_resumes() -> None:
    conv, log, _ = make(replies=["Sure."], texts=["first part", "first part and more"])
    runner = asyncio.create_task(conv.run())
    await play(conv, tone(400))
    await play(conv, silence(150))  # a pause shorter than the endpointing wait
    await play(conv, tone(400))
    await play(conv, silence(500))
    await log.wait_for(ev.AssistantFinishedSpeaking)
    conv.end("user")
    await runner
    assert [e.text for e in log.of(ev.InputText)] == ["first part and more"]
    assert len(log.of(ev.UserStartedSpeaking)) == 1


async def test_barge_in_keeps_only_heard_text() -> None:
    long_reply = "One two three four five six seven eight nine ten. " * 4
    conv, log, _ = make(replies=[long_reply], texts=["tell me a story", "stop"],
                        stream_ahead_of_real_time=False)
    runner = asyncio.create_task(conv.run())
    await play(conv, tone(500), realtime=True)
    await play(conv, silence(400), realtime=True)
    await log.wait_for(ev.AssistantStartedSpeaking)
    await asyncio.sleep(0.6)
    await play(conv, tone(500), realtime=True)
    await play(conv, silence(400), realtime=True)
    await log.wait_for(ev.InterruptedResponse)
    conv.end("user")
    result = await runner
    heard = log.of(ev.InterruptedResponse)[0].text
    assert heard and long_reply.strip().startswith(heard.rstrip("."))
    assert len(heard) < len(long_reply.strip())
    assert result.interruptions_count == 1
    assistant = [i for i in log.items if i.role == "assistant"]
    assert assistant[0].text == heard
    assert "AssistantFinishedSpeaking" not in log.kinds()[:log.kinds().index(
        "InterruptedResponse")][-3:]


async def test_few_words_do_not_interrupt() -> None:
    conv, log, _ = make(replies=["A fairly long answer. " * 6], texts=["question", "uh huh"],
                        stream_ahead_of_real_time=False, min_words_to_interrupt=3)
    runner = asyncio.create_task(conv.run())
    await play(conv, tone(500), realtime=True)
    await play(conv, silence(400), realtime=True)
    await log.wait_for(ev.AssistantStartedSpeaking)
    await play(conv, tone(400), realtime=True)
    await play(conv, silence(400), realtime=True)
    await log.wait_for(ev.InputCancelled)
    await log.wait_for(ev.AssistantFinishedSpeaking, within=20)
    conv.end("user")
    result = await runner
    assert result.interruptions_count == 0 and not log.of(ev.InterruptedResponse)


async def test_poke_then_silence_end() -> None:
    conv, log, _ = make(no_input_poke_sec=1, no_input_poke_text="Still with me?",
                        no_input_end_conversation_sec=2, welcome_message="Hello.")
    result = await asyncio.wait_for(conv.run(), timeout=10)
    spoken = [a.text for a in log.of(ev.AudioOut) if a.text]
    assert " ".join(spoken) == "Hello. Still with me?"
    assert result.ended_by == "assistant_silence_limit_reached"


async def test_assistant_ends_the_conversation() -> None:
    bye = ScriptedReply("Goodbye, have a nice day!",
                        (ToolCall("c1", "natural_conversation_ending", "{}"),))
    conv, log, _ = make(replies=[bye], texts=["that's all, thanks"],
                        built_in_tools=("natural_conversation_ending",))
    runner = asyncio.create_task(conv.run())
    await play(conv, tone(500))
    await play(conv, silence(500))
    result = await asyncio.wait_for(runner, timeout=10)
    assert result.ended_by == "assistant"
    kinds = log.kinds()
    assert kinds[-2:] == ["AssistantFinishedSpeaking", "AssistantEndedConversation"]
    assert log.items[-1].tool_calls[0].tool.name == "natural_conversation_ending"


async def test_choose_not_to_respond() -> None:
    silent = ScriptedReply.call("choose_not_to_respond")
    conv, log, _ = make(replies=[silent], texts=["hmm"])
    runner = asyncio.create_task(conv.run())
    await play(conv, tone(500))
    await play(conv, silence(500))
    await log.wait_for(ev.AssistantChoseNotToRespond)
    conv.end("user")
    await runner
    assert not log.of(ev.AudioOut)


async def test_provider_failure_ends_with_error_and_keeps_items() -> None:
    conv, log, p = make(replies=["First answer."], texts=["one"], welcome_message="Hi.")
    runner = asyncio.create_task(conv.run())
    await play(conv, tone(500))
    await play(conv, silence(500))
    await log.wait_for(ev.AssistantFinishedSpeaking, 2)
    p.llm.fail_next()  # type: ignore[attr-defined]
    await play(conv, tone(500))
    await play(conv, silence(500))
    result = await asyncio.wait_for(runner, timeout=10)
    assert result.ended_by == "error"
    assert log.of(ev.EngineError)
    assert [i.text for i in log.items] == ["Hi.", "one", "First answer.", "hello"]


async def test_end_reason_is_set_once() -> None:
    conv, _, _ = make()
    runner = asyncio.create_task(conv.run())
    await asyncio.sleep(0.05)
    assert conv.end("user_canceled") is True
    assert conv.end("user") is False
    assert (await runner).ended_by == "user_canceled"


async def test_say_mute_and_generate_reply() -> None:
    conv, log, _ = make(replies=["Generated."], texts=["ignored"])
    runner = asyncio.create_task(conv.run())
    await asyncio.sleep(0.05)
    conv.say("Exactly this.")
    await log.wait_for(ev.AssistantFinishedSpeaking)
    conv.mute()
    await play(conv, tone(500))
    await play(conv, silence(500))
    await asyncio.sleep(0.2)
    assert not log.of(ev.UserStartedSpeaking)
    conv.unmute()
    conv.generate_reply(user_message="Say something")
    await log.wait_for(ev.AssistantFinishedSpeaking, 2)
    conv.end("user")
    await runner
    spoken = [a.text for a in log.of(ev.AudioOut) if a.text]
    assert " ".join(spoken) == "Exactly this. Generated."
