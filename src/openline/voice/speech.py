"""One assistant utterance, from its producer to what the caller heard of it.

Every assistant utterance (a reply to the user, ``generate_reply``, ``say``, the welcome,
the poke, the follow-up after a transfer) is a ``SpeechHandle``. Its *producer* (the LLM +
TTS task, or synthesis of a fixed text) puts sentences into it; the playout cuts them into
frames for the audio sink and records which words each frame carries; the sink reports how
much was played, from which ``heard_text`` follows. ``interrupt()`` stops the producer and
the playout. Model: LiveKit Agents ``voice/speech_handle.py``.

Queue policy: the sentence queue is unbounded but finite (one utterance's sentences).
"""

from __future__ import annotations

import asyncio
import itertools
import time
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from openline.domain.tool_call import ToolCallRecord
from openline.providers.llm.base import ChatMessage

SpeechKind = Literal["reply", "generated", "say", "welcome", "poke", "transfer"]
Int16 = npt.NDArray[np.int16]
_ids = itertools.count(1)


@dataclass
class ReplyResult:
    """How a produced utterance ended, beyond its audio (filled in place as it runs)."""

    text: str = ""
    end_conversation: bool = False
    chose_not_to_respond: bool = False
    tool_calls: list[ToolCallRecord] = field(default_factory=list)
    #: assistant/tool messages produced during tool rounds (for the history)
    messages: list[ChatMessage] = field(default_factory=list)
    transfer_to: str | None = None


class SpeechHandle:
    """See the module docstring. Not thread-safe; lives on the conversation's loop."""

    def __init__(self, kind: SpeechKind, *, interruptible: bool = True,
                 fixed_text: str | None = None) -> None:
        self.id = next(_ids)
        self.kind = kind
        #: False while an uninterruptible tool runs, or for an uninterruptible utterance
        self.interruptible = interruptible
        #: the exact text of ``say`` / a fixed welcome or poke (None: generated)
        self.fixed_text = fixed_text
        self.timings: dict[str, float] | None = None
        self.result = ReplyResult(text=fixed_text or "")
        self.producer: asyncio.Future[Any] | None = None
        self.started_at: float | None = None  # wall clock of the first frame
        self.first_frame_at: float | None = None  # monotonic
        #: performance-counter times (real time, as the stage durations): when the handle
        #: was made (a reply's: with its job, as its recognition starts) and its first
        #: audio was queued
        self.created_perf = time.perf_counter()
        self.first_audio_perf: float | None = None
        self.interrupted = False
        self.recorded = False  # stored as a conversation item
        self.sent_samples = 0
        self.played_samples: int | None = None  # what the sink reported
        self._frames: list[tuple[int, str]] = []  # (end sample, words) per frame sent
        self._full_text: list[str] = []
        self._sentences: asyncio.Queue[tuple[Int16, str] | None] = asyncio.Queue()
        self._queued = 0
        self._played = 0
        self._progress = asyncio.Event()
        self._done = asyncio.Event()

    # ----- the producer's side ---------------------------------------------------------
    def put(self, samples: Int16, text: str) -> None:
        """Queue a synthesized sentence (already at the output rate)."""
        if self.first_audio_perf is None and samples.size:
            self.first_audio_perf = time.perf_counter()
        self._full_text.append(text)
        self._queued += 1
        self._sentences.put_nowait((samples, text))

    def close(self) -> None:
        """No more sentences will come."""
        self._sentences.put_nowait(None)

    async def drained(self) -> None:
        """Until every sentence queued so far has been sent (or the utterance ended)."""
        target = self._queued
        while self._played < target and not self.interrupted and not self._done.is_set():
            self._progress.clear()
            await self._progress.wait()

    def first_frame_timings(self) -> dict[str, float] | None:
        """The stage timings that go out with the first frame. With ``reply_started_ms``
        (the silence at which the reply began, set at the end of the turn), adds
        ``first_audio_ready_ms``: from the caller's last voiced sample to the reply's first
        synthesized audio, before or after the end of the turn. When it is later than
        ``endpointing_ms``, the reply, not the end-of-turn wait, set the latency."""
        timings = self.timings
        started = timings.get("reply_started_ms") if timings is not None else None
        if timings is not None and started is not None and self.first_audio_perf is not None:
            timings["first_audio_ready_ms"] = round(
                started + (self.first_audio_perf - self.created_perf) * 1000, 1)
        return timings

    # ----- the playout's side ----------------------------------------------------------
    async def next_sentence(self) -> tuple[Int16, str] | None:
        """The next queued sentence (None once closed)."""
        return await self._sentences.get()

    def sentence_sent(self) -> None:
        self._played += 1
        self._progress.set()

    def frame_sent(self, samples: int, words: str) -> None:
        self.sent_samples += samples
        self._frames.append((self.sent_samples, words))

    def playout_done(self, played_samples: int | None = None) -> None:
        """The playout is over (``played_samples``: the sink's report, if it played)."""
        if played_samples is not None:
            self.played_samples = played_samples
        self._done.set()
        self._progress.set()

    # ----- control ---------------------------------------------------------------------
    def interrupt(self) -> bool:
        """Stop producing and playing (False when the utterance cannot be interrupted)."""
        if not self.interruptible:
            return False
        if not self.interrupted:
            self.interrupted = True
            if self.producer is not None:
                self.producer.cancel()  # stop generating (and any tool call) nobody will hear
            self._progress.set()
        return True

    def done(self) -> bool:
        return self._done.is_set()

    async def wait_for_playout(self) -> None:
        """Until the playout of this utterance is over (played, interrupted or dropped)."""
        await self._done.wait()

    @property
    def started(self) -> bool:
        return self.started_at is not None

    @property
    def text(self) -> str:
        """Everything produced for this utterance."""
        return " ".join(t for t in self._full_text if t).strip()

    @property
    def heard_text(self) -> str:
        """The words of the frames the sink reported played (sent, before any report)."""
        limit = self.played_samples if self.played_samples is not None else self.sent_samples
        return " ".join(w for end, w in self._frames if end <= limit and w).strip()

    @property
    def spoken_text(self) -> str:
        """What belongs in the history and the stored item: the heard part if cut short."""
        if self.interrupted or not self.done():
            return self.heard_text
        return self.text or self.heard_text

    def unheard_rest(self) -> str:
        """Of a fixed text, the words after the heard ones (to resume a cut utterance)."""
        if self.fixed_text is None:
            return ""
        words = self.fixed_text.split()
        return " ".join(words[len(self.heard_text.split()):])
