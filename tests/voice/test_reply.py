"""Reply generation on its own: scripted LLM + tone TTS into a speech handle."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import numpy as np

from openline.audio.codecs import WIRE_FORMATS
from openline.domain.tool_call import ToolCallRecord, ToolRef
from openline.providers.llm.base import ChatMessage, ToolCall
from openline.providers.testing import FakeSTT, FakeTTS, ScriptedLLM, ScriptedReply
from openline.voice.chat_context import (
    AssistantMessage,
    ChatContext,
    SystemNote,
    ToolResult,
    UserMessage,
    from_message,
)
from openline.voice.reply import (
    FILLER,
    ReplyJob,
    ReplyResult,
    ReplyTools,
    Speech,
    ToolOutcome,
    generate,
    speak_fixed,
)
from openline.voice.speech import SpeechHandle
from openline.voice.tools import RuntimeTool
from tests.voice.harness import virtual

FMT = WIRE_FORMATS["pcm_16000"]
MESSAGES = [ChatMessage.system("Be brief."), ChatMessage.user("Hi")]


@dataclass
class Executor:
    """Runs every custom tool instantly (or after ``delay_s``), with fixed flags."""

    flags: RuntimeTool | None = None
    delay_s: float = 0.0
    calls: list[str] = field(default_factory=list)

    async def execute(self, call: ToolCall) -> ToolOutcome:
        self.calls.append(call.name)
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        return ToolOutcome('{"status": "ready"}', ToolCallRecord(
            ToolRef(call.name, "tool_1"), "success", id="tool_call_1", tool_call_id=call.id))

    def describe(self, name: str) -> RuntimeTool | None:
        return self.flags


def _speech(llm: ScriptedLLM, tts: FakeTTS | None = None) -> Speech:
    return Speech(llm, tts or FakeTTS(ms_per_char=10), FMT, "joe", 1.0)


async def _sentences(handle: SpeechHandle) -> list[str]:
    out = []
    while (item := await handle.next_sentence()) is not None:
        out.append(item[1])
    return out


@virtual
async def test_sentences_stream_into_the_handle_with_timings() -> None:
    llm, tts = ScriptedLLM(["Hello there. How are you today?"]), FakeTTS(ms_per_char=10)
    handle, timings = SpeechHandle("reply"), {}
    result = await generate(_speech(llm, tts), MESSAGES, ReplyTools(), handle, timings)
    assert await _sentences(handle) == ["Hello there.", "How are you today?"]
    assert result is handle.result and result.text == "Hello there. How are you today?"
    assert set(timings) == {"llm_first_token_ms", "llm_first_sentence_ms", "tts_first_audio_ms"}
    assert timings["llm_first_sentence_ms"] >= timings["llm_first_token_ms"]
    assert [r[0] for r in tts.requests] == ["Hello there.", "How are you today?"]
    assert llm.requests[0].messages == MESSAGES and llm.requests[0].options.max_tokens == 160
    assert llm.requests[0].options.session is None  # no conversation key given


@virtual
async def test_the_reply_asks_the_model_under_the_conversation_key() -> None:
    llm = ScriptedLLM(["Hello there."])
    speech = Speech(llm, FakeTTS(ms_per_char=10), FMT, "joe", 1.0, session="call-7")
    await generate(speech, MESSAGES, ReplyTools(), SpeechHandle("reply"), {})
    assert llm.requests[0].options.session == "call-7"


@virtual
async def test_a_tool_round_feeds_the_result_back_to_the_model() -> None:
    llm = ScriptedLLM([ScriptedReply.call("lookup", '{"id": 7}', "c1"), "It is ready."])
    executor, finished = Executor(), []

    async def on_tool(record: ToolCallRecord) -> None:
        finished.append(record)

    handle = SpeechHandle("reply")
    result = await generate(_speech(llm), MESSAGES, ReplyTools([], executor, on_tool),
                            handle, {})
    assert executor.calls == ["lookup"] and [r.tool.name for r in finished] == ["lookup"]
    assert result.tool_calls == finished and result.text == "It is ready."
    assistant, tool = result.messages
    assert assistant.tool_calls == (ToolCall("c1", "lookup", '{"id": 7}'),)
    assert (tool.role, tool.tool_call_id, tool.content) == ("tool", "c1", '{"status": "ready"}')
    assert llm.requests[1].messages[-2:] == [assistant, tool]


@virtual
async def test_tools_wait_for_the_gate_but_speech_is_prepared() -> None:
    llm = ScriptedLLM([ScriptedReply("Let me check.", (ToolCall("c1", "lookup", "{}"),)),
                       "Done."])
    executor, gate, handle = Executor(), asyncio.Event(), SpeechHandle("reply")
    task = asyncio.create_task(generate(_speech(llm), MESSAGES,
                                        ReplyTools([], executor, gate=gate), handle, {}))
    await asyncio.sleep(5)
    assert executor.calls == [] and not task.done()
    assert handle.text == "Let me check."  # synthesized while waiting for the commit
    gate.set()
    result = await task
    assert executor.calls == ["lookup"] and result.text == "Let me check. Done."


@virtual
async def test_a_cancelled_reply_runs_no_tool_and_keeps_what_it_said() -> None:
    llm = ScriptedLLM([ScriptedReply("Let me check.", (ToolCall("c1", "lookup", "{}"),))])
    executor, handle = Executor(), SpeechHandle("reply")
    task = asyncio.create_task(generate(_speech(llm), MESSAGES,
                                        ReplyTools([], executor, gate=asyncio.Event()),
                                        handle, {}))
    await asyncio.sleep(1)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert executor.calls == [] and handle.result.text == "Let me check."
    assert handle.result.tool_calls == []
    assert await _sentences(handle) == ["Let me check."]  # closed: the playout ends


@virtual
async def test_a_tool_cut_by_a_barge_in_is_recorded_cancelled() -> None:
    llm = ScriptedLLM([ScriptedReply.call("lookup", "{}", "c1")])
    handle = SpeechHandle("reply")
    task = asyncio.create_task(generate(_speech(llm), MESSAGES,
                                        ReplyTools([], Executor(delay_s=10)), handle, {}))
    await asyncio.sleep(1)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert handle.result.tool_calls == [ToolCallRecord(
        ToolRef("lookup"), "cancelled", tool_call_id="c1", arguments="{}",
        error_message="interrupted by the caller")]


@virtual
async def test_flags_filler_forbid_speech_after_and_no_chaining() -> None:
    flags = RuntimeTool("lookup", "d", "webhook", require_speech_before=True,
                        forbid_speech_after=True)
    llm = ScriptedLLM([ScriptedReply.call("lookup")])
    handle = SpeechHandle("reply")
    result = await generate(_speech(llm), MESSAGES, ReplyTools([], Executor(flags)), handle, {})
    assert handle.text == FILLER and result.text == FILLER
    assert len(llm.requests) == 1  # no model round after a forbid_speech_after tool

    no_chain = RuntimeTool("lookup", "d", "webhook", allow_chaining=False)
    llm = ScriptedLLM([ScriptedReply.call("lookup"), "Done."])
    specs = [no_chain.spec()]
    await generate(_speech(llm), MESSAGES, ReplyTools(specs, Executor(no_chain)),
                   SpeechHandle("reply"), {})
    assert [len(r.tools) for r in llm.requests] == [1, 0]  # may speak, not call again


@virtual
async def test_an_uninterruptible_tool_makes_the_utterance_uninterruptible_while_it_runs(
) -> None:
    flags = RuntimeTool("pay", "d", "webhook", uninterruptible=True)
    llm = ScriptedLLM([ScriptedReply.call("pay"), "Paid."])
    handle = SpeechHandle("reply")
    task = asyncio.create_task(generate(_speech(llm), MESSAGES,
                                        ReplyTools([], Executor(flags, delay_s=1)), handle, {}))
    await asyncio.sleep(0.5)
    assert handle.interrupt() is False and not handle.interrupted
    await task
    assert handle.interruptible and handle.interrupt() is True


@virtual
async def test_built_ins_end_the_call_or_stay_silent() -> None:
    llm = ScriptedLLM([ScriptedReply("Bye!", (ToolCall("c1", "natural_conversation_ending",
                                                       "{}"),))])
    result = await generate(_speech(llm), MESSAGES, ReplyTools(), SpeechHandle("reply"), {})
    assert result.end_conversation and result.tool_calls[0].to_stored() == {
        "tool_call_id": "c1", "tool": {"id": "tool_natural_conversation_ending",
                                       "name": "natural_conversation_ending"},
        "arguments": "{}", "status": "success"}
    llm = ScriptedLLM([ScriptedReply.call("choose_not_to_respond")])
    result = await generate(_speech(llm), MESSAGES, ReplyTools(), SpeechHandle("reply"), {})
    assert result.chose_not_to_respond and result.text == "" and len(llm.requests) == 1


@virtual
async def test_an_unknown_custom_tool_is_reported_unavailable_by_default() -> None:
    llm = ScriptedLLM([ScriptedReply.call("lookup"), "Sorry."])
    result = await generate(_speech(llm), MESSAGES, ReplyTools(), SpeechHandle("reply"), {})
    assert result.tool_calls[0].to_stored() == {
        "tool": {"name": "lookup"}, "status": "error", "error_message": "unavailable"}
    assert "not available" in llm.requests[1].messages[-1].content


@virtual
async def test_speak_fixed_and_text_only_speech() -> None:
    handle = SpeechHandle("say", fixed_text="Exactly this. And this.")
    result = await speak_fixed(_speech(ScriptedLLM()), handle)
    assert await _sentences(handle) == ["Exactly this.", "And this."]
    assert result.text == "Exactly this. And this."
    text_only = Speech(ScriptedLLM(), None, FMT, "joe", 1.0)
    handle = SpeechHandle("say", fixed_text="No audio.")
    await speak_fixed(text_only, handle)
    item = await handle.next_sentence()
    assert item is not None and item[1] == "No audio." and item[0].size == 0


@virtual
async def test_reply_job_recognises_then_replies_and_can_be_dropped() -> None:
    stt = FakeSTT(["book a table"])
    seen: list[str] = []

    async def run_reply(text: str, job: ReplyJob) -> ReplyResult:
        seen.append(text)
        await job.gate.wait()
        job.handle.close()
        return job.handle.result

    job = ReplyJob(stt, np.ones(8000, np.int16), None, "en", ["table"], run_reply)
    assert await job.transcript == ("book a table", "en")
    assert "stt_ms" in job.timings and stt.calls[0][1:] == ("en", ["table"])
    await asyncio.sleep(1)
    assert seen == ["book a table"] and not job.task.done() and not job.committed
    job.commit()
    assert await job.task is job.handle.result

    dropped = ReplyJob(None, None, "text turn", None, (), run_reply)
    await asyncio.sleep(0)
    dropped.cancel()
    await asyncio.gather(dropped.task, return_exceptions=True)
    assert dropped.task.cancelled() and dropped.handle.interrupted and dropped.handle.done()


def test_chat_context_renders_typed_items_for_the_llm() -> None:
    chat = ChatContext("You are Openline.")
    chat.add_user("Hi", "speech")
    chat.add_assistant("Hello, how can I")
    chat.add_assistant("")  # nothing said: nothing added
    chat.add_messages([ChatMessage.assistant("", [ToolCall("c1", "hours", "{}")]),
                       ChatMessage.tool("c1", "9 to 5", "hours")])
    chat.add_system("Be brief.")
    assert chat.items == [UserMessage("Hi"), AssistantMessage("Hello, how can I"),
                          AssistantMessage("", tool_calls=(ToolCall("c1", "hours", "{}"),)),
                          ToolResult("c1", "hours", "9 to 5"), SystemNote("Be brief.")]
    assert chat.messages(UserMessage("extra")) == [
        ChatMessage.system("You are Openline."), ChatMessage.user("Hi"),
        ChatMessage.assistant("Hello, how can I"),
        ChatMessage.assistant("", [ToolCall("c1", "hours", "{}")]),
        ChatMessage.tool("c1", "9 to 5", "hours"), ChatMessage.system("Be brief."),
        ChatMessage.user("extra")]
    assert from_message(ChatMessage.system("x")) == SystemNote("x")
    chat.clear()
    assert chat.messages() == [ChatMessage.system("You are Openline.")]
