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

Cues are in the conversation's current language where a set is known (``CUES_BY_LANGUAGE``).
The cue audio is synthesized once per voice and language, off the hot path, as soon as a turn gets
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
#: cues in the conversation's current language (others: "Mm-hmm." only)
CUES_BY_LANGUAGE: dict[str, tuple[str, ...]] = {
    "en": CUES, "es": ("Mm-hmm.", "Sí.", "Ajá."), "fr": ("Mm-hmm.", "Oui.", "D'accord."),
    "de": ("Mhm.", "Ja.", "Genau."), "it": ("Mm-hmm.", "Sì.", "Certo."),
    "pt": ("Mm-hmm.", "Sim.", "Certo."), "nl": ("Mm-hmm.", "Ja.", "Precies."),
}
_Key = tuple[str, str | None]  # (voice, language)
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
        self._audio: dict[_Key, list[tuple[str, npt.NDArray[np.int16]]]] = {}
        self._preparing: set[_Key] = set()
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
        clips = self._audio.get(self._key())
        if (not clips or conv.muted or conv.playout.current is not None
                or conv.assistant.replying or self._handle is not None):
            return
        text, audio = clips[self._count % len(clips)]
        self._count += 1
        handle = SpeechHandle("say", interruptible=False, fixed_text=text)
        handle.recorded = True  # never a stored item
        handle.put(audio, text)
        handle.close()
        self._handle = handle
        self._talk.voiced_ms = 0.0
        cue = Cue(text, conv.clock.monotonic())
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

    def _key(self) -> _Key:
        return self.conv.cfg.voice_id, self.conv.cfg.language

    def _prepare(self) -> None:
        key = self._key()
        if key in self._audio or key in self._preparing:
            return
        self._preparing.add(key)
        self.conv.spawn(self._synthesize(key), "backchannel-audio")

    async def _synthesize(self, key: _Key) -> None:
        conv = self.conv
        voice, language = key
        fmt, tts = conv.cfg.output_format, conv.p.tts
        clips: list[tuple[str, npt.NDArray[np.int16]]] = []
        try:
            for text in CUES_BY_LANGUAGE.get(language or "en", ("Mm-hmm.",)):
                parts = [to_output_rate(c.samples, c.sample_rate, fmt) async for c in
                         tts.synthesize(text, voice, speed=conv.cfg.audio_speed)]
                if parts:
                    clips.append((text, np.concatenate(parts)))
            self._audio[key] = clips
        finally:
            self._preparing.discard(key)


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
