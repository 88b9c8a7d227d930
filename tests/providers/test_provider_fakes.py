"""Fakes behave like providers, deterministically, and can fail on demand."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from openline.domain.errors import ProviderError, ProviderTimeout
from openline.providers.llm.base import ChatMessage, LLMDone, TextDelta, ToolCallEvent
from openline.providers.testing import EnergyVAD, FakeSTT, FakeTTS, ScriptedLLM, ScriptedReply


async def test_scripted_llm_streams_text_then_tool_calls() -> None:
    llm = ScriptedLLM(["Hello there, friend.", ScriptedReply.call("lookup", '{"id": 1}')])
    events = [e async for e in llm.stream([ChatMessage.user("hi")])]
    assert [e.text for e in events if isinstance(e, TextDelta)] == ["Hello ", "there, ", "friend."]
    second = await llm.complete([ChatMessage.user("look it up")])
    assert second.finish_reason == "tool_calls" and second.tool_calls[0].name == "lookup"
    assert (await llm.complete([])).text == "Okay."  # fallback after the script
    assert [r.messages[0].content for r in llm.requests[:2]] == ["hi", "look it up"]


async def test_scripted_llm_failures_and_retry() -> None:
    llm = ScriptedLLM(["one", "two"])
    llm.fail_next(ProviderTimeout("slow"))
    with pytest.raises(ProviderTimeout):
        await llm.complete([])
    llm.max_retries = 1
    llm.fail_next()  # retryable by default -> retried before any output
    assert (await llm.complete([])).text == "one"
    llm.fail_next(ProviderError("fatal"), times=None)
    for _ in range(2):
        with pytest.raises(ProviderError):
            await llm.complete([])
    llm.recover()
    assert (await llm.complete([])).text == "two"


async def test_scripted_llm_delays_and_cancellation() -> None:
    llm = ScriptedLLM(["a b c d e f"], first_token_delay_s=0.05, token_delay_s=0.05)
    got: list[str] = []

    async def consume() -> None:
        async for event in llm.stream([]):
            if isinstance(event, TextDelta):
                got.append(event.text)

    task = asyncio.create_task(consume())
    await asyncio.sleep(0.12)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert 0 < len(got) < 6 and llm.cancelled == 1
    done = [e async for e in ScriptedLLM(["x"]).stream([])][-1]
    assert isinstance(done, LLMDone) and done.ttft_s is not None
    calls = [e async for e in ScriptedLLM([ScriptedReply.call("t")]).stream([])]
    assert isinstance(calls[0], ToolCallEvent)


async def test_fake_stt_script_delay_and_failure() -> None:
    stt = FakeSTT(["first", "second"], default="...", delay_s=0.05)
    audio = np.zeros(1600, dtype=np.float32)
    assert (await stt.transcribe(audio, hotwords=["acme"])).text == "first"
    stt.fail_next()
    with pytest.raises(ProviderError):
        await stt.transcribe(audio)
    assert (await stt.transcribe(audio)).text == "second"
    assert (await stt.transcribe(audio, language="de")).language == "de"
    assert stt.calls[0] == (1600, None, ["acme"])


async def test_stt_coalesces_identical_concurrent_requests() -> None:
    stt = FakeSTT(["only once", "twice?"], delay_s=0.1)
    audio = np.ones(800, dtype=np.float32) * 0.1
    a, b = await asyncio.gather(stt.transcribe(audio), stt.transcribe(audio))
    assert a.text == b.text == "only once" and len(stt.calls) == 1


async def test_stt_cancelled_before_start_never_runs() -> None:
    stt = FakeSTT(["busy", "dropped", "next"], delay_s=0.2)
    busy = asyncio.create_task(stt.transcribe(np.zeros(10, dtype=np.float32)))
    await asyncio.sleep(0.02)
    queued = asyncio.create_task(stt.transcribe(np.ones(10, dtype=np.float32)))
    await asyncio.sleep(0.02)
    queued.cancel()  # still waiting for the single runner thread
    with pytest.raises(asyncio.CancelledError):
        await queued
    assert (await busy).text == "busy"
    assert (await stt.transcribe(np.full(10, 0.5, dtype=np.float32))).text == "dropped"
    assert len(stt.calls) == 2


async def test_fake_tts_is_deterministic_and_proportional() -> None:
    tts = FakeTTS(delay_s=0.01)
    await tts.load()
    assert [v.id for v in tts.voices()] == ["joe", "ava"]
    chunks = [c async for c in tts.synthesize("Hi. This one is longer!", "joe")]
    assert [c.text for c in chunks] == ["Hi.", "This one is longer!"]
    assert chunks[1].samples.size > 4 * chunks[0].samples.size
    again = [c async for c in tts.synthesize("Hi. This one is longer!", "joe")]
    assert np.array_equal(chunks[1].samples, again[1].samples)
    half = [c async for c in tts.synthesize("Hi.", "joe", speed=0.5)]
    assert half[0].samples.size == pytest.approx(2 * chunks[0].samples.size, abs=2)
    tts.fail_next()
    with pytest.raises(ProviderError):
        _ = [c async for c in tts.synthesize("Hi.", "joe")]


async def test_energy_vad() -> None:
    vad = EnergyVAD(threshold=0.05)
    with pytest.raises(RuntimeError):
        vad.stream()  # not loaded
    await vad.load()
    stream = vad.stream()
    loud = (np.sin(np.arange(512) / 5) * 10000).astype(np.int16)
    assert stream.process(loud) == 1.0
    assert stream.process(np.zeros(512, dtype=np.int16)) == 0.0
    with pytest.raises(ValueError):
        stream.process(np.zeros(100, dtype=np.int16))
    vad.fail_next()
    with pytest.raises(ProviderError):
        stream.process(loud)
