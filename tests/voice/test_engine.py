"""The engine end to end with fake providers and a scripted caller, on virtual time."""

from __future__ import annotations

import asyncio
import time

from openline.providers.llm.base import ToolCall
from openline.providers.testing import ScriptedReply
from openline.voice import events as ev
from openline.voice.clock import VirtualClock
from openline.voice.io import FRAME_MS
from openline.voice.session import Conversation
from tests.voice.harness import MarkSink, make, play, silence, tone, utter, virtual

LONG_REPLY = "One two three four five six seven eight nine ten. " * 4


@virtual
async def test_turn_order_items_and_latency() -> None:
    conv, log, p = make(replies=["Hi there! How can I help?"], texts=["book a table"],
                        welcome_message="Welcome to Openline.")
    runner = asyncio.create_task(conv.run())
    await log.wait_for(ev.AssistantFinishedSpeaking)
    await utter(conv, 600, 600)
    await log.wait_for(ev.AssistantFinishedSpeaking, 2)
    conv.end("user")
    result = await runner
    assert log.kinds() == [
        "AssistantStartedSpeaking", "AudioOut", "AssistantFinishedSpeaking",
        "UserStartedSpeaking", "UserFinishedSpeaking", "InputText",
        "AssistantStartedSpeaking", "AudioOut", "AssistantFinishedSpeaking",
    ]
    assert log.of(ev.InputText)[0].text == "book a table"
    assert log.spoken() == "Welcome to Openline. Hi there! How can I help?"
    assert [(i.role, i.text) for i in log.items] == [
        ("assistant", "Welcome to Openline."), ("user", "book a table"),
        ("assistant", "Hi there! How can I help?")]
    assert result.ended_by == "user" and len(result.latencies_ms) == 1
    # Endpointing is the 300 ms silence wait (virtual time: exact to a VAD frame).
    first_reply_audio = [a for a in log.of(ev.AudioOut) if a.timings]
    timings = first_reply_audio[-1].timings
    assert 300 <= timings["endpointing_ms"] <= 340
    # The reply began at the first pause (96 ms) and, with instant fakes, had its audio
    # before the turn ended.
    assert 90 <= timings["reply_started_ms"] <= 140
    assert timings["reply_started_ms"] <= timings["first_audio_ready_ms"] < 300
    assert 300 <= result.latencies_ms[0] <= 340  # instant fakes: only the wait is left
    # every request of the conversation carries its one key (the embedded model's cache)
    sessions = {r.options.session for r in p.llm.requests}  # type: ignore[attr-defined]
    assert len(sessions) == 1 and None not in sessions
    assert p.llm.ended_sessions == list(sessions)  # type: ignore[attr-defined]
    # the embedded model was given the call's prompt to prepare at the start, under that key
    warmed = p.llm.warmed  # type: ignore[attr-defined]
    assert [w.options.session for w in warmed] == list(sessions)
    assert [m.role for m in warmed[0].messages] == ["system"]
    request = p.llm.requests[-1].messages  # type: ignore[attr-defined]
    assert [m.role for m in request] == ["system", "assistant", "user"]
    assert request[-1].content == "book a table"
    assert result.recorder.stereo().shape[1] == 2


def test_virtual_time_takes_no_real_time() -> None:
    """Three minutes of silence end the call (the default limit) in well under a second."""
    start = time.perf_counter()

    @virtual
    async def scenario() -> str:
        conv, _, _ = make(no_input_end_conversation_sec=180)
        return (await conv.run()).ended_by

    assert scenario() == "assistant_silence_limit_reached"
    assert time.perf_counter() - start < 5


@virtual
async def test_speculation_is_discarded_when_the_user_resumes() -> None:
    conv, log, p = make(replies=["Sure."], texts=["first part", "first part and more"])
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
    assert len(p.stt.calls) == 2  # type: ignore[attr-defined]  # the pause was recognised


@virtual
async def test_barge_in_keeps_exactly_what_the_pacer_played() -> None:
    conv, log, _ = make(replies=[LONG_REPLY], texts=["tell me a story", "stop"],
                        stream_ahead_of_real_time=False)
    runner = asyncio.create_task(conv.run())
    await utter(conv, 500, 400)
    await log.wait_for(ev.AssistantStartedSpeaking)
    await asyncio.sleep(1.0)
    spoke = conv.clock.monotonic()
    await utter(conv, 500, 400)
    await log.wait_for(ev.InterruptedResponse)
    conv.end("user")
    result = await runner
    cleared = log.time_of(ev.ClearAudio)
    audio = [(t, e) for t, e in zip(log.times, log.events, strict=True)
             if isinstance(e, ev.AudioOut)]
    origin = audio[0][0]
    # Frame i plays during [origin + i*40 ms, origin + (i+1)*40 ms]; the pacer sends it
    # up to LEAD_S early, so more was sent than played when the caller cut in.
    played = [e.text for i, (_, e) in enumerate(audio)
              if origin + (i + 1) * FRAME_MS / 1000 <= cleared + 1e-9]
    sent_before = [e.text for t, e in audio if t <= cleared]
    heard = log.of(ev.InterruptedResponse)[0].text
    assert heard == " ".join(w for w in played if w)
    assert len(sent_before) > len(played) and heard and len(heard) < len(LONG_REPLY)
    assert result.interruptions_count == 1
    assert next(i.text for i in log.items if i.role == "assistant") == heard
    kinds = log.kinds()
    # Over the assistant, user_started_speaking is held back until the barge-in (it is the
    # client's cue to stop playback; an acknowledgement must not trigger it).
    assert kinds[4:7] == ["AudioOut", "UserStartedSpeaking", "ClearAudio"]
    assert kinds[7:11] == ["UserFinishedSpeaking", "InterruptedResponse", "InputText",
                           "AssistantStartedSpeaking"]  # not one frame after the clear
    # The barge-in waits for the first look at the words, 256 ms after the first voiced
    # frame (BACKCHANNEL_PROBES_MS: "stop" is not an acknowledgement; the fake recogniser
    # answers at once).
    assert cleared == log.time_of(ev.UserStartedSpeaking, 1)
    assert 0.22 <= cleared - spoke <= 0.27


@virtual
async def test_barge_in_is_exact_when_the_far_end_buffers() -> None:
    """Everything is sent at once; truncation follows the far end's late acknowledgements."""
    conv, log, _ = make(replies=[LONG_REPLY], texts=["tell me a story", "stop"],
                        sink=MarkSink(VirtualClock(), ack_delay_s=0.3))
    sink = conv.sink
    assert isinstance(sink, MarkSink)
    runner = asyncio.create_task(conv.run())
    await utter(conv, 500, 400)
    await log.wait_for(ev.AssistantStartedSpeaking)
    await asyncio.sleep(1.5)
    await utter(conv, 500, 400)
    await log.wait_for(ev.InterruptedResponse)
    conv.end("user")
    await runner
    heard = log.of(ev.InterruptedResponse)[0].text
    sent = " ".join(f.text for f in sink.sent[0] if f.text)
    assert heard == " ".join(w for w in sink.acked[0] if w)
    assert sent == LONG_REPLY.strip()  # the whole reply went out ahead of playback
    assert heard and len(heard) < len(sent) / 2  # ... and far less was heard
    assert sink.clears == 1 and len(log.of(ev.ClearAudio)) == 1
    assistant = [i for i in log.items if i.role == "assistant"]
    assert assistant[0].text == heard
    # The stored duration is what was played, not what was sent.
    assert assistant[0].duration_ms < len(sink.sent[0]) * FRAME_MS / 2


@virtual
async def test_few_words_do_not_interrupt() -> None:
    conv, log, _ = make(replies=["A fairly long answer. " * 6], texts=["question", "uh huh"],
                        stream_ahead_of_real_time=False, min_words_to_interrupt=3)
    runner = asyncio.create_task(conv.run())
    await utter(conv, 500, 400)
    await log.wait_for(ev.AssistantStartedSpeaking)
    await utter(conv, 400, 400)
    await log.wait_for(ev.InputCancelled)
    await log.wait_for(ev.AssistantFinishedSpeaking)
    conv.end("user")
    result = await runner
    assert result.interruptions_count == 0 and not log.of(ev.InterruptedResponse)
    assert not log.of(ev.ClearAudio)
    assert log.spoken() == ("A fairly long answer. " * 6).strip()


@virtual
async def test_enough_words_interrupt_at_the_commit() -> None:
    conv, log, _ = make(replies=["A fairly long answer. " * 6, "Okay, stopping."],
                        texts=["question", "please stop talking now"],
                        stream_ahead_of_real_time=False, min_words_to_interrupt=3)
    runner = asyncio.create_task(conv.run())
    await utter(conv, 500, 400)
    await log.wait_for(ev.AssistantStartedSpeaking)
    await utter(conv, 400, 400)
    await log.wait_for(ev.AssistantFinishedSpeaking)
    conv.end("user")
    result = await runner
    assert result.interruptions_count == 1
    kinds = log.kinds()
    assert kinds[kinds.index("UserFinishedSpeaking", 5):] == [
        "UserFinishedSpeaking", "ClearAudio", "InterruptedResponse", "InputText",
        "AssistantStartedSpeaking", "AudioOut", "AssistantFinishedSpeaking"]


@virtual
async def test_poke_then_silence_end() -> None:
    conv, log, _ = make(no_input_poke_sec=1, no_input_poke_text="Still with me?",
                        no_input_end_conversation_sec=2, welcome_message="Hello.")
    result = await conv.run()
    assert log.spoken() == "Hello. Still with me?"
    assert result.ended_by == "assistant_silence_limit_reached"
    welcome_done = log.time_of(ev.AssistantFinishedSpeaking, 0)
    poke_start = log.time_of(ev.AssistantStartedSpeaking, 1)
    assert 1.0 <= poke_start - welcome_done <= 1.15  # measured from the end of the welcome
    assert [i.text for i in log.items] == ["Hello.", "Still with me?"]


@virtual
async def test_speech_restarts_the_silence_timers() -> None:
    conv, log, _ = make(no_input_poke_sec=2, no_input_end_conversation_sec=4,
                        texts=["still here"], replies=["Good."])
    runner = asyncio.create_task(conv.run())
    await asyncio.sleep(1.5)
    await utter(conv, 500, 500)
    result = await runner
    assert result.ended_by == "assistant_silence_limit_reached"
    replied = log.time_of(ev.AssistantFinishedSpeaking, 0)
    assert 1.9 <= log.time_of(ev.AssistantStartedSpeaking, 1) - replied <= 2.15
    assert log.spoken() == "Good. Are you still there?"


@virtual
async def test_assistant_ends_the_conversation() -> None:
    bye = ScriptedReply("Goodbye, have a nice day!",
                        (ToolCall("c1", "natural_conversation_ending", "{}"),))
    conv, log, _ = make(replies=[bye], texts=["that's all, thanks"],
                        built_in_tools=("natural_conversation_ending",))
    runner = asyncio.create_task(conv.run())
    await utter(conv)
    result = await asyncio.wait_for(runner, timeout=10)
    assert result.ended_by == "assistant"
    assert log.kinds()[-2:] == ["AssistantFinishedSpeaking", "AssistantEndedConversation"]
    assert [e.record.tool.name for e in log.of(ev.ToolCallFinished)] == [
        "natural_conversation_ending"]
    record = log.items[-1].tool_calls[0]
    assert record.tool.name == "natural_conversation_ending" and record.status == "success"


@virtual
async def test_choose_not_to_respond() -> None:
    conv, log, _ = make(replies=[ScriptedReply.call("choose_not_to_respond")], texts=["hmm"])
    runner = asyncio.create_task(conv.run())
    await utter(conv)
    await log.wait_for(ev.AssistantChoseNotToRespond)
    conv.end("user")
    await runner
    assert not log.of(ev.AudioOut)
    assert [(i.role, i.text) for i in log.items] == [("user", "hmm"), ("assistant", "")]


@virtual
async def test_provider_failure_ends_with_error_and_keeps_items() -> None:
    conv, log, p = make(replies=["First answer."], texts=["one"], welcome_message="Hi.")
    runner = asyncio.create_task(conv.run())
    await utter(conv)
    await log.wait_for(ev.AssistantFinishedSpeaking, 2)
    p.llm.fail_next()  # type: ignore[attr-defined]
    await utter(conv)
    result = await asyncio.wait_for(runner, timeout=10)
    assert result.ended_by == "error"
    assert log.of(ev.EngineError)
    assert [i.text for i in log.items] == ["Hi.", "one", "First answer.", "hello"]


@virtual
async def test_end_reason_is_set_once() -> None:
    conv, _, _ = make()
    runner = asyncio.create_task(conv.run())
    await asyncio.sleep(0.05)
    assert conv.end("user_canceled") is True
    assert conv.end("user") is False
    assert (await runner).ended_by == "user_canceled"


@virtual
async def test_say_mute_and_generate_reply() -> None:
    conv, log, p = make(replies=["Generated."], texts=["ignored"])
    runner = asyncio.create_task(conv.run())
    await asyncio.sleep(0.05)
    conv.say("Exactly this.")
    await log.wait_for(ev.AssistantFinishedSpeaking)
    conv.mute()
    await utter(conv)
    assert not log.of(ev.UserStartedSpeaking)
    conv.unmute()
    conv.generate_reply(system_message="Be brief.", user_message="Say something")
    await log.wait_for(ev.AssistantFinishedSpeaking, 2)
    conv.end("user")
    await runner
    assert log.spoken() == "Exactly this. Generated."
    request = p.llm.requests[-1].messages  # type: ignore[attr-defined]
    assert [(m.role, m.content) for m in request[1:]] == [
        ("assistant", "Exactly this."), ("system", "Be brief."), ("user", "Say something")]
    # generate_reply's user message is context, not a spoken turn: no user item.
    assert [(i.role, i.text) for i in log.items] == [
        ("assistant", "Exactly this."), ("assistant", "Generated.")]


@virtual
async def test_reset_forgets_the_history_and_stops_speaking() -> None:
    conv, log, p = make(replies=[LONG_REPLY, "Fresh start."], texts=["story"],
                        stream_ahead_of_real_time=False)
    runner = asyncio.create_task(conv.run())
    await utter(conv)
    await log.wait_for(ev.AssistantStartedSpeaking)
    await asyncio.sleep(0.5)
    conv.reset("You are terse.")
    conv.generate_reply()
    await log.wait_for(ev.AssistantFinishedSpeaking)
    conv.end("user")
    await runner
    assert log.of(ev.ClearAudio)
    request = p.llm.requests[-1].messages  # type: ignore[attr-defined]
    assert [(m.role, m.content) for m in request] == [("system", "You are terse.")]
    assert log.spoken().endswith("Fresh start.")



@virtual
async def test_a_hang_up_on_the_last_word_keeps_the_turn_latency() -> None:
    """The caller hangs up the moment the reply has played (as clients do on
    assistant_finished_speaking): the turn was heard, so its latency is stored."""
    def hang_up_when_done(conv: Conversation, event: ev.EngineEvent) -> None:
        if isinstance(event, ev.AssistantFinishedSpeaking):
            conv.end("user")

    conv, log, _ = make(replies=["Sure, done."], texts=["cancel my order"],
                        on_event=hang_up_when_done)
    runner = asyncio.create_task(conv.run())
    await utter(conv, 600, 600)
    result = await runner
    assert [i.role for i in log.items] == ["user", "assistant"]
    assert len(result.latencies_ms) == 1 and 300 <= result.latencies_ms[0] <= 340
