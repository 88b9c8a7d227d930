"""Embedded llama.cpp (xllamacpp) with the PyPI-shipped Gemma 3 270M GGUF."""

from __future__ import annotations

import asyncio
import json
import time
from contextlib import aclosing
from pathlib import Path

import pytest

from openline.domain.errors import ProviderUnavailable
from openline.providers.llm.base import (
    ChatMessage,
    GenerationOptions,
    LLMDone,
    TextDelta,
    ToolCall,
    ToolSpec,
)
from openline.providers.llm.llama_cpp import (
    LlamaCppLLM,
    LlamaCppOptions,
    build_transcript_prompt,
    decision_schema,
    ensure_embedded_gguf,
)

WEATHER = ToolSpec(
    "get_weather",
    "Get the current weather for a city.",
    {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)


def test_embedded_gguf_is_assembled_once(gguf_path: Path) -> None:
    assert gguf_path.stat().st_size > 200_000_000
    with gguf_path.open("rb") as f:
        assert f.read(4) == b"GGUF"
    mtime = gguf_path.stat().st_mtime_ns
    assert ensure_embedded_gguf(gguf_path.parent) == gguf_path
    assert gguf_path.stat().st_mtime_ns == mtime  # reused, not rewritten
    assert not list(gguf_path.parent.glob("*.partial"))


def test_transcript_prompt_shape() -> None:
    prompt = build_transcript_prompt(
        [
            ChatMessage.system("You work at Luigi's pizzeria."),
            ChatMessage.user("Hi,\n are you open?"),
            ChatMessage.assistant("", [ToolCall("c1", "hours", "{}")]),
            ChatMessage.tool("c1", '{"open": true}', name="hours"),
        ]
    )
    assert prompt.startswith("You work at Luigi's pizzeria.")
    assert "User: Hi, are you open?" in prompt
    assert '(Tool hours returned: {"open": true})' in prompt
    assert prompt.endswith("\nAssistant:")
    schema = decision_schema([WEATHER], allow_none=False)
    assert [b["properties"]["tool"]["const"] for b in schema["anyOf"]] == ["get_weather"]


async def test_gemma_replies_with_text(gemma: LlamaCppLLM) -> None:
    messages = [ChatMessage.system("You answer calls for a dental clinic."),
                ChatMessage.user("Hello, can I make an appointment?")]  # fmt: skip
    events = [e async for e in gemma.stream(messages)]
    done = events[-1]
    assert isinstance(done, LLMDone)
    deltas = [e.text for e in events if isinstance(e, TextDelta)]
    assert done.text.strip() and "".join(deltas) == done.text
    assert "\n" not in done.text and "User:" not in done.text  # stopped at the turn end
    assert done.ttft_s is not None and done.ttft_s < done.duration_s
    assert done.completion_tokens and done.completion_tokens > 0


async def test_closing_the_stream_stops_generation(gemma: LlamaCppLLM) -> None:
    options = GenerationOptions(max_tokens=400, temperature=0.9)
    messages = [ChatMessage.user("Tell me a very long story about a dragon and a castle.")]
    async with aclosing(gemma.stream(messages, options=options)) as stream:
        async for event in stream:
            assert isinstance(event, TextDelta)
            break
    start = time.perf_counter()
    done = await gemma.complete([ChatMessage.user("Thanks, goodbye!")])
    # The runner is free right away: no 400-token generation finishing in the background.
    assert time.perf_counter() - start < 3.0
    assert done.finish_reason in ("stop", "length")


async def test_constrained_tool_decision(gemma: LlamaCppLLM) -> None:
    await gemma.prepare([WEATHER])
    done = await gemma.complete(
        [ChatMessage.user("What's the weather in Paris right now?")],
        tools=[WEATHER],
        options=GenerationOptions(tool_choice="required"),
    )
    assert done.finish_reason == "tool_calls" and done.text == ""
    (call,) = done.tool_calls
    assert call.name == "get_weather" and call.id.startswith("call_")
    assert isinstance(json.loads(call.arguments)["city"], str)
    # After a tool result the model replies in text (no second decision).
    reply = await gemma.complete(
        [
            ChatMessage.user("What's the weather in Paris right now?"),
            ChatMessage.assistant("", [call]),
            ChatMessage.tool(call.id, '{"weather": "sunny, 21 C"}', name="get_weather"),
        ],
        tools=[WEATHER],
    )
    assert reply.tool_calls == () and reply.text.strip()


async def test_missing_gguf_is_unavailable(tmp_path: Path) -> None:
    llm = LlamaCppLLM(LlamaCppOptions(gguf_path=tmp_path / "none.gguf"))
    with pytest.raises(ProviderUnavailable):
        await llm.load()


async def test_a_live_reply_stops_a_background_generation_that_then_starts_over(
        gemma: LlamaCppLLM) -> None:
    """One slot: post-call work in it does not hold a caller's reply back."""
    schema = {"type": "object", "additionalProperties": False, "required": ["numbers"],
              "properties": {"numbers": {"type": "array", "items": {"type": "integer"},
                                         "minItems": 30, "maxItems": 30}}}
    counting = [ChatMessage.system("Count from 1 to 30."), ChatMessage.user("Count.")]
    options = GenerationOptions(max_tokens=300, temperature=0.0, json_schema=schema,
                                background=True)
    alone = await gemma.complete(counting, options=options)  # also compiles the grammar
    preempted = gemma.preemptions
    background = asyncio.create_task(gemma.complete(counting, options=options))
    await asyncio.sleep(0.4)
    assert not background.done()  # it holds the only slot
    live = await gemma.complete([ChatMessage.user("Are you open today?")],
                                options=GenerationOptions(max_tokens=8))
    assert live.text and not background.done()  # the reply did not wait for it
    again = await asyncio.wait_for(background, 60)
    assert gemma.preemptions == preempted + 1
    assert again.text == alone.text  # started over: one whole result, not two halves
    assert json.loads(again.text)["numbers"][-1] == 30


async def test_the_shared_prompt_prefix_is_not_processed_again(gguf_path: Path) -> None:
    """Gemma 3's sliding-window layers need a full-size cache for the prefix to be reused
    (without it every reply reprocessed its whole prompt: ~0.5 s on two AVX2 cores). With
    every slot holding a call (here the one), a new call takes the least recently used
    slot and finds the persona it shares there."""
    persona = ChatMessage.system("You answer the phone at Bella's salon. Be brief.")
    async with LlamaCppLLM(LlamaCppOptions(gguf_path=gguf_path, seed=7,
                                           prompt_caches=1)) as gemma:
        first = await gemma.complete([persona, ChatMessage.user("Are you open on Sunday?")],
                                     options=GenerationOptions(max_tokens=4))
        second = await gemma.complete(
            [persona, ChatMessage.user("Do you cut children's hair?")],
            options=GenerationOptions(max_tokens=4))
    assert first.prompt_tokens and second.prompt_tokens and second.cached_prompt_tokens
    # Everything up to the caller's line came from the cache.
    assert second.cached_prompt_tokens >= second.prompt_tokens - 15


async def test_calls_taking_turns_each_find_their_own_transcript_cached(gguf_path: Path
                                                                        ) -> None:
    """llama.cpp left to choose sent calls that take turns to a slot holding another
    call's transcript (only the shared persona cached); the provider pins each call
    (``GenerationOptions.session``) to its own slot, also after a speculative reply to a
    shorter line was dropped."""
    persona = ChatMessage.system("You answer the phone at Bella's salon. Be brief.")
    lines = (["Are you open on Sunday?", "Do you cut children's hair?"],
             ["How much is a haircut?", "Can I book for Friday?"])
    async with LlamaCppLLM(LlamaCppOptions(gguf_path=gguf_path, seed=7, n_threads=1,
                                           prompt_caches=2)) as llm:
        calls: list[list[ChatMessage]] = [[persona], [persona]]
        done: list[list[LLMDone]] = [[], []]
        for turn in range(2):
            for call, history in enumerate(calls):
                options = GenerationOptions(max_tokens=6, session=f"call-{call}")
                if turn:  # the caller paused after two words: a reply that is dropped
                    partial = " ".join(lines[call][turn].split()[:2])
                    await llm.complete([*history, ChatMessage.user(partial)], options=options)
                history.append(ChatMessage.user(lines[call][turn]))
                reply = await llm.complete(history, options=options)
                done[call].append(reply)
                history.append(ChatMessage.assistant(reply.text))
    for first, second in done:
        assert first.prompt_tokens and second.prompt_tokens and second.cached_prompt_tokens
        # the whole first turn came from the cache, not just the persona
        assert second.cached_prompt_tokens >= first.prompt_tokens


async def test_a_warmed_call_finds_its_persona_cached_at_its_first_turn(gguf_path: Path
                                                                        ) -> None:
    """``warm`` processes the call's persona in the slot its first turn takes (a slot
    nobody used yet holds nothing), and leaves alone a slot the call already uses."""
    persona = ChatMessage.system("You answer the phone at Bella's salon. Be brief.")
    options = GenerationOptions(max_tokens=4, session="call-0")
    async with LlamaCppLLM(LlamaCppOptions(gguf_path=gguf_path, seed=7, n_threads=1,
                                           prompt_caches=2)) as llm:
        await llm.warm([persona], tools=[WEATHER], options=options)
        assert llm.warmups == 2  # the reply's slot and the tool decision's
        history = [persona, ChatMessage.user("Are you open on Sunday?")]
        first = await llm.complete(history, options=options)
        assert first.prompt_tokens and first.cached_prompt_tokens
        assert first.cached_prompt_tokens >= first.prompt_tokens - 15
        # the call's own slot now holds its first turn: a late warm-up must not replace it
        await llm.warm([persona], options=options)
        assert llm.warmups == 2
        history += [ChatMessage.assistant(first.text), ChatMessage.user("And Monday?")]
        second = await llm.complete(history, options=options)
        assert second.cached_prompt_tokens and second.cached_prompt_tokens >= first.prompt_tokens
        # no key, nothing to pin the work to: nothing is done
        await llm.warm([persona])
        assert llm.warmups == 2
