"""The four engine bugs of issue 8, each pinned by a test that failed on the old engine.

These use only the engine's long-standing interface (and the fakes), so the same file runs
against the old engine: every test here fails there on its bug assertion.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from openline.audio.codecs import WIRE_FORMATS
from openline.providers.testing import EnergyVAD, FakeSTT, FakeTTS, ScriptedLLM, ScriptedReply
from openline.voice import events as ev
from openline.voice.config import AgentSwitch, SessionConfig
from openline.voice.session import Conversation, Providers
from openline.voice.tools import RuntimeTool
from openline.voice.turns import TurnSettings
from tests.voice.harness import (
    FakeAgents,
    FakeWebhooks,
    Log,
    make,
    play,
    silence,
    tone,
    utter,
    virtual,
)

LONG_REPLY = "One two three four five six seven eight nine ten. " * 4
NO_PARAMS: dict[str, Any] = {"type": "object", "properties": {}}
#: one tool of each kind that acts outside the conversation, and the call the model makes
TOOLS: dict[str, tuple[RuntimeTool | None, ScriptedReply]] = {
    "webhook": (RuntimeTool("book", "Book a table", "webhook", NO_PARAMS),
                ScriptedReply.call("book")),
    "client": (RuntimeTool("lookup", "Look it up", "websocket", NO_PARAMS, timeout_ms=1000),
               ScriptedReply.call("lookup")),
    "transfer": (RuntimeTool("transfer_to_agent", "Transfer", "transfer_agent",
                             {"type": "object", "properties": {"agent": {"type": "string"}}},
                             config={"agents_to_transfer_to": ["billing"]}),
                 ScriptedReply.call("transfer_to_agent", '{"agent": "billing"}')),
    "keypad": (RuntimeTool("press", "Press keys", "keypad",
                           {"type": "object", "properties": {"digits": {"type": "string"}}}),
               ScriptedReply.call("press", '{"digits": "12"}')),
    "end_call": (None, ScriptedReply.call("natural_conversation_ending")),
}
TOOL_EVENTS = (ev.ToolCallRequest, ev.ToolCallFinished, ev.Dtmf, ev.AssistantEndedConversation)
BILLING = AgentSwitch("agent_billing", "billing", "You are billing.", "ava", 1.2, (), [])


def _with_tool(kind: str, replies: list[ScriptedReply | str], texts: list[str]
               ) -> tuple[Conversation, Log, FakeWebhooks, FakeAgents]:
    tool, _ = TOOLS[kind]
    webhooks, agents = FakeWebhooks(), FakeAgents(BILLING)
    conv, log, _ = make(replies=replies, texts=texts, webhooks=webhooks, agents=agents,
                        runtime_tools=[tool] if tool else [],
                        built_in_tools=("natural_conversation_ending",))
    webhooks.log = log
    return conv, log, webhooks, agents


def _tool_effects(log: Log, webhooks: FakeWebhooks, agents: FakeAgents) -> list[str]:
    effects = [type(e).__name__ for e in log.events if isinstance(e, TOOL_EVENTS)]
    return effects + [f"webhook {n}" for n, _ in webhooks.calls] + [
        f"transfer {a}" for a in agents.asked]


@pytest.mark.parametrize("kind", sorted(TOOLS))
@virtual
async def test_a_resumed_turn_runs_no_tool(kind: str) -> None:
    """The model calls a tool in the reply prepared during a pause; the caller goes on
    talking: that speculative reply is dropped, and its tool never ran."""
    conv, log, webhooks, agents = _with_tool(
        kind, [TOOLS[kind][1], "Sure."], ["book me in", "book me in, no, never mind"])
    runner = asyncio.create_task(conv.run())
    await play(conv, tone(400))
    await play(conv, silence(200))  # a pause: speculation starts, the model calls the tool
    await play(conv, tone(400))  # ... and the caller resumes
    await play(conv, silence(500))
    await log.wait_for(ev.AssistantFinishedSpeaking)
    conv.end("user")
    result = await runner
    assert _tool_effects(log, webhooks, agents) == []
    assert log.spoken() == "Sure." and result.ended_by == "user"
    assert all(not i.tool_calls for i in log.items)


@pytest.mark.parametrize("kind", sorted(TOOLS))
@virtual
async def test_tools_wait_for_the_commit_of_the_turn(kind: str) -> None:
    """The reply is prepared speculatively in the endpointing wait, but its tool acts only
    once the turn is committed: after user_finished_speaking and input_text."""
    conv, log, webhooks, agents = _with_tool(kind, [TOOLS[kind][1], "Done."], ["book me in"])
    runner = asyncio.create_task(conv.run())

    async def client() -> None:  # the client answers its tool calls
        await log.wait_for(ev.ToolCallRequest)
        conv.tool_call_output(log.of(ev.ToolCallRequest)[0].tool_call_id, {"found": True})

    answering = asyncio.create_task(client())
    await utter(conv, 400, 600)
    await asyncio.sleep(3)
    conv.end("user")
    await runner
    answering.cancel()
    effects = [i for i, e in enumerate(log.events) if isinstance(e, TOOL_EVENTS)]
    assert effects, "the tool ran"
    committed = log.kinds().index("InputText")
    assert log.kinds()[:committed + 1] == ["UserStartedSpeaking", "UserFinishedSpeaking",
                                           "InputText"]
    assert min(effects) > log.events.index(log.of(ev.InputText)[0])
    if kind == "webhook":
        assert webhooks.seen_before[0][-1] == "InputText"
    assert agents.asked == (["billing"] if kind == "transfer" else [])


@virtual
async def test_barge_in_with_an_empty_transcript_resumes_and_leaves_nothing_pending() -> None:
    conv, log, p = make(replies=[LONG_REPLY, "Seven eight nine ten.", "Fine."],
                        texts=["tell me a story", "", "what now"],
                        stream_ahead_of_real_time=False, backchannel_max_ms=0)
    runner = asyncio.create_task(conv.run())
    await utter(conv, 500, 400)
    await log.wait_for(ev.AssistantStartedSpeaking)
    await asyncio.sleep(1.0)
    await utter(conv, 500, 400)  # a cough: it cuts the assistant off, but says nothing
    await log.wait_for(ev.InputCancelled)
    await asyncio.sleep(0.5)
    heard = [e.text for e in log.of(ev.InterruptedResponse)]
    assert len(heard) == 1 and heard[0] and LONG_REPLY.startswith(heard[0])
    await log.wait_for(ev.AssistantFinishedSpeaking)
    await utter(conv, 500, 400)  # the next real turn
    await log.wait_for(ev.AssistantFinishedSpeaking, 2)
    conv.end("user")
    result = await runner
    kinds = [k for k in log.kinds() if k not in ("ClearAudio", "AudioOut")]
    cancelled = kinds.index("InputCancelled")
    assert kinds[cancelled:] == [
        "InputCancelled", "InterruptedResponse",  # reported at once, nothing pending
        "AssistantStartedSpeaking", "AssistantFinishedSpeaking",  # resumed
        "UserStartedSpeaking", "UserFinishedSpeaking", "InputText",  # no stale report here
        "AssistantStartedSpeaking", "AssistantFinishedSpeaking"]
    resume = p.llm.requests[1].messages  # type: ignore[attr-defined]
    assert resume[-1].role == "system" and f'"{heard[0]}"' in resume[-1].content
    assert result.interruptions_count == 1
    assert [(i.role, i.text) for i in log.items] == [
        ("user", "tell me a story"), ("assistant", heard[0]),
        ("assistant", "Seven eight nine ten."), ("user", "what now"), ("assistant", "Fine.")]


@virtual
async def test_barge_in_with_an_empty_transcript_resumes_a_fixed_text_where_it_stopped() -> None:
    text = ("Alpha bravo charlie delta echo foxtrot golf hotel india juliet. "
            "Kilo lima mike november oscar papa quebec romeo sierra tango.")
    conv, log, _ = make(texts=[""], stream_ahead_of_real_time=False, backchannel_max_ms=0)
    runner = asyncio.create_task(conv.run())
    await asyncio.sleep(0.1)
    conv.say(text)
    await log.wait_for(ev.AssistantStartedSpeaking)
    await asyncio.sleep(1.0)
    await utter(conv, 500, 400)
    await log.wait_for(ev.InputCancelled)
    await asyncio.sleep(0.5)
    [heard] = [e.text for e in log.of(ev.InterruptedResponse)]  # reported at once
    await log.wait_for(ev.AssistantFinishedSpeaking)
    conv.end("user")
    await runner
    rest = " ".join(text.split()[len(heard.split()):])
    assert heard and rest and f"{heard} {rest}" == text
    resumed = log.events[log.events.index(log.of(ev.InterruptedResponse)[0]):]
    assert " ".join(e.text for e in resumed if isinstance(e, ev.AudioOut) and e.text) == rest
    assert [i.text for i in log.items] == [heard, rest]


@virtual
async def test_interrupting_a_generated_welcome_stops_its_generation() -> None:
    llm = ScriptedLLM([LONG_REPLY, "Okay."], token_delay_s=0.05)  # 40 words: 2 s of tokens
    providers = Providers(EnergyVAD(), FakeSTT(["stop"]), llm, FakeTTS(ms_per_char=20))
    conv, log, _ = make(providers=providers, generate_welcome_message=True,
                        stream_ahead_of_real_time=False, backchannel_max_ms=0)
    runner = asyncio.create_task(conv.run())
    await log.wait_for(ev.AssistantStartedSpeaking)
    await utter(conv, 500, 400)  # barge in while the model is still generating
    await log.wait_for(ev.InputText)
    assert llm.cancelled == 1  # stopped at the barge-in, long before the call ends
    await log.wait_for(ev.AssistantFinishedSpeaking)
    conv.end("user")
    await runner
    [heard] = [e.text for e in log.of(ev.InterruptedResponse)]
    assert log.items[0].text == heard and len(heard) < len(LONG_REPLY) / 2
    # the generated welcome was the call's first request: no warm-up was needed
    assert llm.warmed == [] and llm.requests[0].options.session is not None


@virtual
async def test_interrupting_a_fixed_welcome_stops_its_synthesis() -> None:
    tts = FakeTTS(ms_per_char=20, delay_s=1.0)  # one sentence a second, slower than speech
    providers = Providers(EnergyVAD(), FakeSTT(["stop"]), ScriptedLLM(["Okay."]), tts)
    welcome = " ".join(f"This is welcome sentence number {n}." for n in range(1, 7))
    conv, log, _ = make(providers=providers, welcome_message=welcome,
                        stream_ahead_of_real_time=False, backchannel_max_ms=0)
    runner = asyncio.create_task(conv.run())
    await log.wait_for(ev.AssistantStartedSpeaking)
    await utter(conv, 500, 400)
    await log.wait_for(ev.AssistantFinishedSpeaking)
    await asyncio.sleep(8)  # time enough for all six sentences, had synthesis gone on
    conv.end("user")
    await runner
    assert tts.cancelled == 1
    assert tts.chunks == 2  # the welcome's first sentence, then the reply "Okay."
    assert log.items[0].text == log.of(ev.InterruptedResponse)[0].text


@virtual
async def test_a_transfer_replaces_the_session_config() -> None:
    tool = TOOLS["transfer"][0]
    assert tool is not None
    cfg = SessionConfig("conv_test", input_format=WIRE_FORMATS["pcm_16000"],
                        output_format=WIRE_FORMATS["pcm_16000"], stream_ahead_of_real_time=True,
                        turn=TurnSettings(min_silence_ms=300, prebuffer_ms=200), voice_id="joe",
                        runtime_tools=[tool])
    agents = FakeAgents(BILLING)
    conv, log, p = make(cfg=cfg, agents=agents, texts=["billing please"],
                        replies=[TOOLS["transfer"][1], "Hi, billing here."])
    runner = asyncio.create_task(conv.run())
    await utter(conv)
    await log.wait_for(ev.AssistantFinishedSpeaking)
    conv.end("user")
    await runner
    assert log.transfers == [("agent_billing", "billing")]
    # The config the session was started with is untouched (it may be shared)...
    assert (cfg.voice_id, cfg.audio_speed, cfg.runtime_tools) == ("joe", 1.0, [tool])
    assert cfg.built_in_tools == ()
    # ... and the session goes on with the target agent's settings.
    assert conv.cfg is not cfg and (conv.cfg.voice_id, conv.cfg.audio_speed) == ("ava", 1.2)
    assert p.tts.requests[-1][1:] == ("ava", 1.2)  # type: ignore[attr-defined]
    assert p.llm.requests[-1].messages[0].content == "You are billing."  # type: ignore[attr-defined]
    assert (log.items[-1].text, log.items[-1].voice_id) == ("Hi, billing here.", "ava")
