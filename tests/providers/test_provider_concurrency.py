"""Simultaneous calls on the embedded models: llama.cpp slots and Piper's step order.

Ordering and overlap only, no wall-clock limits: the machine may be busy."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from openline.providers.llm.base import ChatMessage, GenerationOptions, LLMDone, TextDelta
from openline.providers.llm.llama_cpp import LlamaCppLLM, LlamaCppOptions
from openline.providers.tts.piper import PiperOptions, PiperTTS

PROMPTS = (
    "Please read me your full list of opening hours for every day of the week.",
    "Can you spell out the whole address of the clinic, street, city and postcode?",
)
LONG = ("Thank you for calling the clinic today, we are happy to help you with that. "
        "Our opening hours are from nine in the morning until six in the evening. "
        "On Saturdays we open a little later, at ten, and we close at two. "
        "If you need to cancel an appointment, please call us one day before. "
        "Parking is available behind the building, next to the pharmacy. ")


async def _events(llm: LlamaCppLLM, tag: str, log: list[tuple[str, str]]) -> LLMDone:
    """Stream one reply, logging ``(tag, "token" | "done")`` in arrival order."""
    options = GenerationOptions(max_tokens=24, temperature=0.0)
    done: LLMDone | None = None
    async for event in llm.stream([ChatMessage.system("You answer calls for a clinic."),
                                   ChatMessage.user(PROMPTS[tag == "b"])], options=options):
        if isinstance(event, TextDelta):
            log.append((tag, "token"))
        elif isinstance(event, LLMDone):
            done = event
    log.append((tag, "done"))
    assert done is not None
    return done


async def _two_replies(gguf_path: Path, slots: int) -> tuple[list[tuple[str, str]], list[str]]:
    async with LlamaCppLLM(LlamaCppOptions(gguf_path=gguf_path, seed=7,
                                           n_parallel=slots)) as llm:
        log: list[tuple[str, str]] = []
        done = await asyncio.gather(_events(llm, "a", log), _events(llm, "b", log))
    return log, [d.text for d in done]


def _overlapped(log: list[tuple[str, str]]) -> bool:
    """Whether each reply produced a token before the other one finished."""
    def first_token(tag: str) -> int:
        return log.index((tag, "token"))

    return (first_token("b") < log.index(("a", "done"))
            and first_token("a") < log.index(("b", "done")))


async def test_two_slots_generate_two_replies_at_once(gguf_path: Path) -> None:
    log, texts = await _two_replies(gguf_path, 2)
    assert all(t.strip() for t in texts)
    assert sum(1 for e in log if e[1] == "token") >= 6  # long enough to tell overlap apart
    assert _overlapped(log), log


async def test_one_slot_serves_one_reply_at_a_time(gguf_path: Path) -> None:
    """The control: the overlap check above does fail when the model serves one request."""
    log, texts = await _two_replies(gguf_path, 1)
    assert all(t.strip() for t in texts)
    assert not _overlapped(log), log


def test_slot_count_must_be_positive(gguf_path: Path) -> None:
    with pytest.raises(ValueError):
        LlamaCppLLM(LlamaCppOptions(gguf_path=gguf_path, n_parallel=0))


@pytest.fixture
async def piper_one() -> AsyncIterator[PiperTTS]:
    async with PiperTTS(PiperOptions(workers=1)) as tts:
        yield tts


async def test_a_first_clause_goes_ahead_of_other_calls_later_sentences(
        piper_one: PiperTTS) -> None:
    """Two long replies are speaking; a third call's short first clause is synthesized
    right after the step that is running, not behind the other call's queued sentence
    (a FIFO would put it after both)."""
    log: list[str] = []
    started = {"a": asyncio.Event(), "c": asyncio.Event()}

    async def consume(tag: str, text: str) -> None:
        async for _ in piper_one.synthesize(text, "joe"):
            log.append(tag)
            if tag in started:
                started[tag].set()

    long_ones = [asyncio.create_task(consume(tag, LONG)) for tag in ("a", "c")]
    await asyncio.gather(*(e.wait() for e in started.values()))
    log.append("submit")
    await consume("b", "Sure.")
    await asyncio.gather(*long_ones)
    after = log[log.index("submit") + 1:]
    others_before_b = after.index("b")
    assert others_before_b <= 1, log  # only the step that was already running
    assert after[others_before_b + 1:].count("a") >= 2  # the long replies were not done
