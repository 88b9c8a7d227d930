"""The input path: caller audio -> frames -> VAD -> turn detection -> speculation, barge-in.

In a pause the end-of-turn decision (``end_of_turn.py``) asks the turn model at its probe
points and ends the turn early on "complete"; over the assistant, caller speech is first
checked for an acknowledgement (``acknowledgements.py``) before it interrupts. The recogniser
hears the agent's keywords, or else its own vocabulary (``vocabulary.py``).

Queue policy: inbound audio is a bounded queue that drops the oldest chunk when full (a
stalled engine must not grow memory; late audio is worthless).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from openline.audio.resample import Quality, StreamingResampler
from openline.domain.errors import ProviderError
from openline.providers.vad.base import VADStream
from openline.voice import events as ev
from openline.voice.acknowledgements import (
    BACKCHANNEL_PROBES_MS,
    is_backchannel,
    sounds_like_interruption,
)
from openline.voice.assistant import UserTurn
from openline.voice.end_of_turn import EndOfTurnDecision, Verdict, sounds_unfinished
from openline.voice.reply import ReplyJob
from openline.voice.turns import FRAME_MS, FRAME_SAMPLES, SAMPLE_RATE, TurnDetector, TurnEvent
from openline.voice.vocabulary import domain_vocabulary

if TYPE_CHECKING:
    from openline.voice.session import Conversation

log = logging.getLogger(__name__)
INBOUND_QUEUE_CHUNKS = 200  # ~4 s of 20 ms chunks


def input_quality(rate: int) -> Quality:
    """Resampling quality for caller audio, chosen for delay: every millisecond the filter
    holds back is added to every turn. Phone audio (8 kHz) is band-limited below 4 kHz, so
    cubic interpolation up to 16 kHz loses nothing the recogniser uses (0.2 ms instead of
    ~110 ms at HQ); downsampling keeps a real anti-alias filter at LQ (~20 ms, HQ ~40)."""
    return "QQ" if rate < SAMPLE_RATE else "LQ"


class Listener:
    """Turns the caller's audio into user turns for the assistant."""

    def __init__(self, conv: Conversation) -> None:
        self.conv = conv
        cfg = conv.cfg
        self.eot = EndOfTurnDecision(cfg.end_of_turn, cfg.turn.min_silence_ms,
                                     model_available=conv.p.turn is not None,
                                     transcript_waits=cfg.transcript_waits,
                                     rules=cfg.endpointing_rules)
        # The detector's own END is the longest wait; the decision may end a turn sooner.
        self.turns = TurnDetector(dataclasses.replace(cfg.turn,
                                                      min_silence_ms=self.eot.longest_ms))
        self.vad: VADStream | None = None  # set by open(), once the VAD is loaded
        self._inbound: asyncio.Queue[bytes] = asyncio.Queue(INBOUND_QUEUE_CHUNKS)
        rate = cfg.input_format.sample_rate
        self._resampler = (StreamingResampler(rate, SAMPLE_RATE, quality=input_quality(rate))
                           if rate != SAMPLE_RATE else None)
        self._frame_buf = np.zeros(0, dtype=np.int16)
        self._job: ReplyJob | None = None  # the speculative reply of the turn in progress
        self._last_voiced_at = 0.0
        self._speech_started_at = 0.0
        self._turn_seq = 0  # counts user turns (speech starts)
        self._hotwords: tuple[object, tuple[str, ...]] = (None, ())
        self._probe_ms = (0.0, 0.0)  # the last probe: model time, then transcript wait
        #: the last text check: (the speculation it judged, P(finished))
        self._text_check: tuple[ReplyJob | None, float | None] = (None, None)
        self._unannounced = False  # user_started_speaking held back (voice/acknowledgements.py)
        self._looks = 0  # backchannel looks started in this speech run
        self._heard_ack = False  # a look in this speech run heard an acknowledgement

    def open(self, vad: VADStream) -> None:
        self.vad = vad

    def push(self, data: bytes) -> None:
        """Queue caller audio (input format). Drops the oldest chunk when the queue is full."""
        if self._inbound.full():
            with contextlib.suppress(asyncio.QueueEmpty):
                self._inbound.get_nowait()
        self._inbound.put_nowait(data)

    async def run(self) -> None:
        fmt = self.conv.cfg.input_format
        while True:
            data = await self._inbound.get()
            samples = fmt.decode(data)
            if self._resampler is not None:
                samples = np.asarray(self._resampler.process(samples), dtype=np.int16)
            self.conv.recorder.caller(samples)
            buf = np.concatenate([self._frame_buf, samples])
            whole = buf.size // FRAME_SAMPLES * FRAME_SAMPLES
            self._frame_buf = buf[whole:]
            for start in range(0, whole, FRAME_SAMPLES):
                self._on_frame(buf[start:start + FRAME_SAMPLES])

    def _on_frame(self, frame: npt.NDArray[np.int16]) -> None:
        conv = self.conv
        prob = 0.0 if conv.muted or self.vad is None else self.vad.process(frame)
        event = self.turns.feed(frame, prob)
        if self.turns.in_speech and self.turns.silence_ms == 0:
            self._last_voiced_at = conv.clock.monotonic()
        elif self.turns.end_lag_frames:  # the sound had ended before the VAD heard it
            self._last_voiced_at -= self.turns.end_lag_frames * FRAME_MS / 1000
        if event is TurnEvent.SPEECH_START:
            self.eot.reset()
            self.eot.assistant_text = conv.chat.last_assistant_text()
            self._turn_seq += 1
            self._looks, self._heard_ack = 0, False
            self._speech_started_at = conv.clock.now() - self.turns.voiced_ms / 1000
            conv.timers.mark_activity()
            # Over the assistant, user_started_speaking *is* the barge-in for the client
            # (Phonic: it stops playback): hold it until the words say it is one.
            self._unannounced = self._may_be_backchannel()
            if not self._unannounced:
                conv.emit_now(ev.UserStartedSpeaking())
        elif event is TurnEvent.RESUME:
            self.eot.reset()
            self.drop_speculation()
        elif event is TurnEvent.PAUSE:
            self._start_speculation()
        if event is TurnEvent.END or (self.turns.in_speech and self._decide()):
            self._end_of_turn()
            return
        if self.turns.in_speech:
            self._maybe_barge_in()

    def _decide(self) -> bool:
        """In a pause: ask the end-of-turn model when a probe is due; end the turn?"""
        silence = self.turns.silence_ms
        if silence <= 0:
            return False
        if self.eot.probe_due(silence):
            audio = self.turns.turn_audio(trim_trailing_silence=False)
            self.conv.spawn(self._probe(audio, self.eot.generation), "end-of-turn")
        return self.eot.should_end(silence)

    async def _probe(self, audio: npt.NDArray[np.int16], generation: int) -> None:
        model, clock = self.conv.p.turn, self.conv.clock
        assert model is not None
        asked = clock.monotonic()
        # The words are judged while the audio model runs (both are needed for a verdict).
        words = asyncio.ensure_future(self._speculative_words())
        try:
            try:
                prob: float | None = await model.predict(audio)
            except Exception as exc:  # the fixed silence takes over; the call goes on
                log.warning("end-of-turn model failed: %s", exc)
                prob = None
            answered = clock.monotonic()
            transcript, text_p = await words if prob is not None else (None, None)
        finally:
            words.cancel()
        if generation == self.eot.generation:  # for the turn's timings (the last probe's)
            self._probe_ms = (round((answered - asked) * 1000, 1),
                              round((clock.monotonic() - answered) * 1000, 1))
        if (not self.eot.record(generation, prob, transcript, text_p)
                or not self.turns.in_speech):
            return
        if self.eot.verdict is Verdict.COMPLETE and self.eot.should_end(self.turns.silence_ms):
            self._end_of_turn()

    async def _speculative_words(self) -> tuple[str | None, float | None]:
        """The speculative transcript and the text model's P(finished) for it (None: no
        model, it failed, or the word rules already call the words unfinished). One check
        per speculation (it has one transcript): the second probe finds the first one's
        answer."""
        job, text = self._job, await self._speculative_text()
        text_model = self.conv.p.turn_text
        if text is None or text_model is None or sounds_unfinished(text):
            return text, None
        if self._text_check[0] is job:
            return text, self._text_check[1]
        try:
            prob: float | None = await text_model.complete(text)
        except Exception as exc:  # the audio model and the word rules decide alone
            log.warning("text end-of-turn model failed: %s", exc)
            prob = None
        self._text_check = (job, prob)
        return text, prob

    async def _speculative_text(self) -> str | None:
        """The transcript of the speculation in progress (None: none, or it failed). The
        reply needs it anyway, so waiting for it costs no time to first audio."""
        job = self._job
        if job is None:
            return None
        await asyncio.wait({job.transcript})
        if job.transcript.cancelled() or job.transcript.exception() is not None:
            return None
        return job.transcript.result()[0]

    def _interruptible_now(self) -> bool:
        cfg, current = self.conv.cfg, self.conv.playout.current
        # with min_words_to_interrupt > 1 the transcript decides (at the commit)
        return not (current is None or not current.started or not current.interruptible
                    or current.interrupted or cfg.min_words_to_interrupt > 1)

    def _may_be_backchannel(self) -> bool:
        cfg = self.conv.cfg
        return self._interruptible_now() and cfg.backchannel_max_ms > cfg.min_interruption_ms

    def _barge_in(self) -> None:
        if self._unannounced:
            self._unannounced = False
            self.conv.emit_now(ev.UserStartedSpeaking())
        self.conv.assistant.barge_in()

    def _maybe_barge_in(self) -> None:
        cfg = self.conv.cfg
        if not self._interruptible_now():
            return
        voiced = self.turns.voiced_ms
        if voiced < cfg.min_interruption_ms:
            return  # noise, echo, a click: shorter than the threshold never cuts off
        if cfg.backchannel_max_ms <= cfg.min_interruption_ms or voiced >= cfg.backchannel_max_ms:
            self._barge_in()  # long enough to be an interruption, whatever it is
        elif self._looks < len(BACKCHANNEL_PROBES_MS) and (
                self.turns.speech_ms >= BACKCHANNEL_PROBES_MS[self._looks]):
            # Is it "uh-huh" or "wait"? Hear the words first (voice/acknowledgements.py).
            self._looks += 1
            audio = self.turns.turn_audio(trim_trailing_silence=False)
            self.conv.spawn(self._backchannel_probe(audio, self._turn_seq,
                                                    first=self._looks == 1), "backchannel")

    async def _backchannel_probe(self, audio: npt.NDArray[np.int16], speech: int, *,
                                 first: bool) -> None:
        """Barge in if the words so far are not an acknowledgement (at the first look, only
        if they sound like an interruption). No keywords: they do not tell "uh-huh" from
        "wait", and with them the recogniser decodes twice."""
        try:
            heard = (await self.conv.p.stt.first_words(audio, language=self.conv.cfg.language)).text
        except ProviderError as exc:  # cannot tell: the caller is not talked over
            log.warning("backchannel recognition failed: %s", exc)
            heard = "?"
        if speech != self._turn_seq or not self.turns.in_speech:
            return  # that speech is over; its turn decides (Assistant.user_turn)
        cfg = self.conv.cfg
        acknowledges = is_backchannel(heard, cfg.acknowledgement_words)
        self._heard_ack = self._heard_ack or acknowledges
        interrupts = (sounds_like_interruption(heard, cfg.acknowledgement_words,
                                               cfg.interruption_cues)
                      if first else not acknowledges)
        if interrupts and self._interruptible_now():  # not cut off meanwhile
            self._barge_in()

    def hotwords(self) -> tuple[str, ...]:
        """The agent's boosted keywords; without any, its own vocabulary (if enabled).
        Measured (benchmarks/recognition.py): the derived vocabulary helps an agent with no
        keywords, but added to configured keywords it dilutes them. Computed once per
        configuration (a transfer replaces the configuration)."""
        cfg = self.conv.cfg
        if self._hotwords[0] is not cfg:
            words = cfg.boosted_keywords
            if not words and cfg.auto_vocabulary:
                words = tuple(domain_vocabulary(cfg.system_prompt, cfg.welcome_message,
                                                cfg.runtime_tools))
            self._hotwords = (cfg, words)
        return self._hotwords[1]

    def _new_job(self) -> ReplyJob:
        cfg = self.conv.cfg
        return ReplyJob(self.conv.p.stt, self.turns.turn_audio(), None, cfg.language,
                        self.hotwords(), self.conv.assistant.run_reply,
                        started_at=self.conv.clock.monotonic())

    def _start_speculation(self) -> None:
        """A pause: recognise and prepare the reply now; its tools wait for the commit."""
        self.drop_speculation()
        self._job = self._new_job()
        if self.eot.needs_words:
            self.conv.spawn(self._words_decide(self.eot.generation), "transcript-endpointing")

    async def _words_decide(self, generation: int) -> None:
        """The transcript sets the wait (``TranscriptWaits``, a rule on the caller's words):
        once it is known, the silence so far may already be long enough."""
        text = await self._speculative_text()
        if (text is not None and self.eot.record_words(generation, text)
                and self.turns.in_speech and self.eot.should_end(self.turns.silence_ms)):
            self._end_of_turn()

    def drop_speculation(self) -> None:
        if self._job is not None:
            self._job.cancel()
        self._job = None

    def _end_of_turn(self) -> None:
        conv = self.conv
        job = self._job or self._new_job()  # no job: the wait was too short to speculate
        self._job = None
        endpointing = (conv.clock.monotonic() - self._last_voiced_at) * 1000
        job.timings["endpointing_ms"] = round(endpointing, 1)
        # how far into the silence the (speculative) reply began
        job.timings["reply_started_ms"] = round(
            (job.started_at - self._last_voiced_at) * 1000 if job.started_at is not None
            else endpointing, 1)
        if self.eot.probability is not None:
            job.timings["end_of_turn_p"] = round(self.eot.probability, 3)
            job.timings["end_of_turn_model_ms"], job.timings["transcript_wait_ms"] = (
                self._probe_ms)
            judged, text_p = self._text_check
            if judged is job and text_p is not None:
                job.timings["end_of_turn_text_p"] = round(text_p, 3)
        announced, self._unannounced = not self._unannounced, False
        turn = UserTurn(self._speech_started_at, self.turns.voiced_ms, self._last_voiced_at,
                        announced=announced,
                        heard_acknowledgement=self._heard_ack)
        self.turns.reset()
        self.eot.reset()
        conv.timers.mark_activity()
        if announced:
            conv.emit_now(ev.UserFinishedSpeaking())
        if not conv.spawn(conv.assistant.user_turn(job, turn)):
            job.cancel()  # the conversation is ending
