"""A reply starts on the recogniser's unaided words while its keyword pass runs
(``ReplyJob._run_ahead``): kept when the pass keeps the words, started over, unheard, when
the pass brings a keyword."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from openline.providers.stt.base import RawTranscript, Transcript
from openline.providers.testing import FakeSTT
from openline.voice.reply import ReplyJob
from openline.voice.speech import ReplyResult, SpeechHandle

AUDIO = np.zeros(16_000, dtype=np.int16)


class StagedSTT(FakeSTT):
    """Hears ``unaided`` at once; the keyword pass answers ``boosted`` once released."""

    def __init__(self, unaided: str, boosted: str | Exception) -> None:
        super().__init__()
        self.unaided, self.boosted = unaided, boosted
        self.release = asyncio.Event()
        self.passes: list[asyncio.Task[Transcript]] = []

    async def transcribe_staged(self, audio, *, language=None, hotwords=()):  # type: ignore[no-untyped-def, override]
        async def keyword_pass() -> Transcript:
            await self.release.wait()
            if isinstance(self.boosted, Exception):
                raise self.boosted
            return Transcript(self.boosted, "en", 1.0, 0.1)

        self.passes.append(asyncio.create_task(keyword_pass()))
        return Transcript(self.unaided, "en", 1.0, 0.05), self.passes[-1]

    def _transcribe_sync(self, audio, language, hotwords) -> RawTranscript:  # type: ignore[no-untyped-def]
        raise AssertionError("the job asks for the staged recognition")


class Replies:
    """``run_reply``: records each start, writes one sentence, waits to be let finish."""

    def __init__(self) -> None:
        self.started: list[tuple[str, SpeechHandle]] = []
        self.cancelled: list[str] = []
        self.finish = asyncio.Event()

    async def __call__(self, text: str, job: ReplyJob) -> ReplyResult:
        handle = job.handle
        self.started.append((text, handle))
        job.timings.setdefault("llm_first_token_ms", float(len(self.started)))
        try:
            handle.put(np.ones(160, dtype=np.int16), f"About {text}")
            await self.finish.wait()
        except asyncio.CancelledError:
            self.cancelled.append(text)
            raise
        handle.close()
        return ReplyResult(text=f"About {text}")


async def _job(stt: StagedSTT, replies: Replies) -> ReplyJob:
    job = ReplyJob(stt, AUDIO, None, "en", ("billing",), replies)
    for _ in range(5):
        await asyncio.sleep(0)  # recognition done, the reply under way
    return job


async def test_the_reply_runs_ahead_and_stands_when_the_pass_keeps_the_words() -> None:
    stt, replies = StagedSTT("I have a question", "I have a question"), Replies()
    job = await _job(stt, replies)
    assert [t for t, _ in replies.started] == ["I have a question"]  # before the pass
    assert not job.transcript.done()  # the engine cannot take the reply yet
    stt.release.set()
    replies.finish.set()
    result = await job.task
    assert job.transcript.result() == ("I have a question", "en")
    assert result is not None and result.text == "About I have a question"
    assert replies.started[0][1] is job.handle and not replies.cancelled
    assert job.timings["stt_unaided_ms"] <= job.timings["stt_ms"]


async def test_the_reply_starts_over_on_the_words_the_keyword_pass_brings() -> None:
    stt, replies = StagedSTT("I have a willing question", "I have a billing question"), Replies()
    job = await _job(stt, replies)
    first_handle = replies.started[0][1]
    stt.release.set()
    for _ in range(5):
        await asyncio.sleep(0)
    assert job.transcript.result() == ("I have a billing question", "en")
    assert replies.cancelled == ["I have a willing question"]
    assert [t for t, _ in replies.started] == ["I have a willing question",
                                              "I have a billing question"]
    # the dropped reply's audio is in a handle nobody will play; the job's is fresh
    assert job.handle is not first_handle and first_handle.interrupted
    assert job.handle.created_perf == first_handle.created_perf
    assert "stt_unaided_ms" not in job.timings  # the reply heard began after the pass
    assert job.timings["llm_first_token_ms"] == 2.0  # its own stages, not the dropped one's
    assert "stt_ms" in job.timings
    replies.finish.set()
    result = await job.task
    assert result is not None and result.text == "About I have a billing question"


async def test_a_failed_keyword_pass_keeps_the_unaided_words() -> None:
    stt, replies = StagedSTT("I have a question", RuntimeError("decoder crashed")), Replies()
    job = await _job(stt, replies)
    stt.release.set()
    replies.finish.set()
    result = await job.task
    assert job.transcript.result() == ("I have a question", "en")
    assert result is not None and not replies.cancelled


async def test_cancelling_the_job_stops_the_reply_and_the_pass() -> None:
    stt, replies = StagedSTT("I have a question", "I have a question"), Replies()
    job = await _job(stt, replies)
    job.cancel()
    with pytest.raises(asyncio.CancelledError):
        await job.task
    assert replies.cancelled == ["I have a question"]
    assert stt.passes[0].cancelled() and job.transcript.cancelled()
