"""Assistant backchannels: a short "mm-hmm" while the caller talks at length.

With ``enable_assistant_backchannel`` the assistant acknowledges a long caller turn in
its natural pauses, the way a listener does, without taking the turn. The rules:

* only inside a caller turn that has gone on for a while: ``gap_s`` of voiced speech
  before the first cue and between cues. ``assistant_backchannel_aggressiveness`` (0..1)
  sets it: ``gap_s = 12 - 10 * aggressiveness`` (0.1, the default: every 11 s of talk;
  1: every 2 s);
* only in a pause: the caller has been silent for ``pause_ms`` (380 ms at 0, 200 ms at
  1), which must leave room before the end of the turn (``vad_min_silence_duration_ms``
  at least 100 ms longer, else there are no backchannels);
* never over the caller's words: the first voiced frame stops a cue at once (its
  unplayed audio is cleared at the far end), and no cue starts while the assistant
  speaks or a reply is queued;
* a cue is not a turn: no ``assistant_started_speaking``, no stored item, no history, no
  interruption. Its audio (``audio_chunk`` with the cue's text) is in the recording.

The cue audio is synthesized once per voice, off the hot path, as soon as a turn gets
long; a pause that comes before it is ready simply has no cue.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from openline.providers.vad.base import VADStream
from openline.voice import events as ev
from openline.voice.playout import to_output_rate
from openline.voice.speech import SpeechHandle
from openline.voice.turns import FRAME_MS

if TYPE_CHECKING:
    from openline.voice.session import Conversation

CUES = ("Mm-hmm.", "Right.", "Uh-huh.")
Hook = Callable[[SpeechHandle], Awaitable[None]]


@dataclass(frozen=True)
class BackchannelSettings:
    """``enable_assistant_backchannel`` and ``assistant_backchannel_aggressiveness``."""

    enabled: bool = False
    aggressiveness: float = 0.1

    @property
    def gap_s(self) -> float:
        return 12.0 - 10.0 * self.aggressiveness

    @property
    def pause_ms(self) -> float:
        return 380.0 - 180.0 * self.aggressiveness


@dataclass
class Cue:
    """One backchannel played (for the tests and the logs); times are monotonic."""

    text: str
    started_at: float
    stopped_early: bool = False


@dataclass
class _Talk:
    """The caller's current turn, as far as backchannels care."""

    voiced_ms: float = 0.0  # since the turn started or the last cue
    silence_ms: float = 0.0


class Backchannel:
    """The backchannel player of one conversation (see the module docstring)."""

    def __init__(self, conv: Conversation) -> None:
        self.conv = conv
        self.settings: BackchannelSettings = conv.cfg.backchannel
        self.cues: list[Cue] = []
        self._talk = _Talk()
        self._audio: dict[str, list[npt.NDArray[np.int16]]] = {}
        self._preparing: set[str] = set()
        self._handle: SpeechHandle | None = None
        self._count = 0

    @property
    def active(self) -> bool:
        s = self.settings
        return s.enabled and s.pause_ms + 100 <= self.conv.cfg.turn.min_silence_ms

    # ----- engine hooks ------------------------------------------------------------------
    def tap(self, stream: VADStream) -> VADStream:
        """The caller's VAD, observed frame by frame (the stream itself when inactive)."""
        return _Tap(stream, self.on_frame) if self.active else stream

    def skip_cues(self, hook: Hook) -> Hook:
        """A playout hook that ignores cues (they are not assistant turns)."""
        async def hooked(handle: SpeechHandle) -> None:
            if handle is not self._handle:
                await hook(handle)
        return hooked

    def on_frame(self, probability: float) -> None:
        """One caller frame (before turn detection sees it)."""
        conv = self.conv
        turn = conv.cfg.turn
        voiced = probability >= max(0.05, turn.threshold - 0.15)  # the detector's "off"
        talk = self._talk
        if voiced:
            self._stop()
            talk.voiced_ms += FRAME_MS
            talk.silence_ms = 0.0
        else:
            talk.silence_ms += FRAME_MS
        if not conv.listener.turns.in_speech:
            if not voiced:
                self._talk = _Talk()  # between turns
            return
        if talk.voiced_ms >= self.settings.gap_s * 500:
            self._prepare()
        if (not voiced and talk.silence_ms >= self.settings.pause_ms
                and talk.voiced_ms >= self.settings.gap_s * 1000):
            self._play()

    # ----- cues ----------------------------------------------------------------------------
    def _play(self) -> None:
        conv = self.conv
        audio = self._audio.get(conv.cfg.voice_id)
        if (audio is None or conv.muted or conv.playout.current is not None
                or conv.assistant.replying or self._handle is not None):
            return
        index = self._count % len(CUES)
        self._count += 1
        handle = SpeechHandle("say", interruptible=False, fixed_text=CUES[index])
        handle.recorded = True  # never a stored item
        handle.put(audio[index], CUES[index])
        handle.close()
        self._handle = handle
        self._talk.voiced_ms = 0.0
        cue = Cue(CUES[index], conv.clock.monotonic())
        self.cues.append(cue)
        conv.playout.enqueue(handle)
        conv.spawn(self._forget(handle, cue), "backchannel")

    async def _forget(self, handle: SpeechHandle, cue: Cue) -> None:
        try:
            await handle.wait_for_playout()
        finally:
            cue.stopped_early = handle.interrupted
            if self._handle is handle:
                self._handle = None

    def _stop(self) -> None:
        """The caller speaks again: the cue stops now, and what was not played is cleared."""
        handle = self._handle
        if handle is None or handle.interrupted or handle.done():
            return
        handle.interruptible = True  # a cue is uninterruptible only to barge-in
        handle.interrupt()
        if handle.started:
            self.conv.sink.clear_buffer()
            self.conv.emit_now(ev.ClearAudio())

    def _prepare(self) -> None:
        voice = self.conv.cfg.voice_id
        if voice in self._audio or voice in self._preparing:
            return
        self._preparing.add(voice)
        self.conv.spawn(self._synthesize(voice), "backchannel-audio")

    async def _synthesize(self, voice: str) -> None:
        conv = self.conv
        fmt, tts = conv.cfg.output_format, conv.p.tts
        clips: list[npt.NDArray[np.int16]] = []
        try:
            for text in CUES:
                parts = [to_output_rate(c.samples, c.sample_rate, fmt) async for c in
                         tts.synthesize(text, voice, speed=conv.cfg.audio_speed)]
                clips.append(np.concatenate(parts) if parts else np.zeros(0, np.int16))
            self._audio[voice] = clips
        finally:
            self._preparing.discard(voice)


class _Tap(VADStream):
    """A VAD stream that tells ``observe`` every probability it computes."""

    def __init__(self, inner: VADStream, observe: Callable[[float], None]) -> None:
        self.inner, self.observe = inner, observe
        self.frame_samples, self.sample_rate = inner.frame_samples, inner.sample_rate

    def process(self, frame: npt.ArrayLike) -> float:
        probability = self.inner.process(frame)
        self.observe(probability)
        return probability

    def reset(self) -> None:
        self.inner.reset()
