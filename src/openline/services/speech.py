"""Text-to-speech as a service: ``POST /tts`` and ``/tts/stream`` over the installed voices."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import numpy as np

from openline.audio.codecs import WIRE_FORMATS, AudioFormat
from openline.audio.resample import resample
from openline.audio.wav import write_wav_bytes
from openline.domain.errors import ValidationFailed
from openline.domain.limits import MAX_MESSAGE_CHARS, MAX_SHORT_CHARS
from openline.domain.validation import first_error_message
from openline.providers.tts.base import TTS, clean_text
from openline.services.commands import Synthesize

MAX_TEXT_CHARS = MAX_MESSAGE_CHARS
PREVIEW_TEXT = "Hello! This is how I sound. How can I help you today?"


@dataclass(frozen=True)
class PreparedSpeech:
    """Checked text-to-speech input: the installed voice to use and the wire format."""

    text: str
    voice_id: str
    speed: float
    format: AudioFormat


class SpeechService:
    def __init__(self, tts: TTS, voices: Callable[[], tuple[set[str], str]]) -> None:
        self.tts = tts
        self._voices = voices
        self._previews: dict[str, bytes] = {}  # voices do not change while running

    def prepare(self, cmd: Synthesize) -> PreparedSpeech:
        """The voice, speed and format to synthesize ``cmd`` with, or a 400.

        Text is not stored, so control characters are not refused: the TTS base removes
        them (``clean_text``) and the rest is spoken. Text with nothing left to speak is
        a 400, as empty text is."""
        errors: dict[str, str] = {}
        if len(cmd.text) > MAX_TEXT_CHARS:
            errors["text"] = f"at most {MAX_TEXT_CHARS} characters"
        elif not clean_text(cmd.text).strip():
            errors["text"] = "at least 1 character that can be spoken"
        if cmd.voice_id is not None and len(cmd.voice_id) > MAX_SHORT_CHARS:
            errors["voice_id"] = f"at most {MAX_SHORT_CHARS} characters"
        if not 0.5 <= cmd.speed <= 1.5:
            errors["speed"] = "a number between 0.5 and 1.5"
        if cmd.output_format not in WIRE_FORMATS:
            errors["output_format"] = f"one of {', '.join(WIRE_FORMATS)}"
        if errors:
            raise ValidationFailed(first_error_message(errors), errors)
        installed, default = self._voices()
        voice = cmd.voice_id or "grant"
        # Phonic's default voice "grant" is not installed here: use the default voice.
        chosen = voice if voice in installed else default
        return PreparedSpeech(cmd.text, chosen, float(cmd.speed), WIRE_FORMATS[cmd.output_format])

    async def synthesize(self, speech: PreparedSpeech) -> AsyncIterator[bytes]:
        """Encoded audio chunks of ``speech`` as they are made."""
        async for chunk in self.stream(speech.text, speech.voice_id, speech.speed, speech.format):
            yield chunk

    async def stream(self, text: str, voice: str, speed: float, fmt: AudioFormat
                     ) -> AsyncIterator[bytes]:
        """Encoded audio chunks as they are synthesized."""
        async for chunk in self.tts.synthesize(text, voice, speed=speed):
            samples = chunk.samples if chunk.sample_rate == fmt.sample_rate else np.asarray(
                resample(chunk.samples, chunk.sample_rate, fmt.sample_rate), dtype=np.int16)
            yield fmt.encode(samples)

    async def preview(self, voice_id: str) -> bytes:
        """A short spoken sample of ``voice_id`` as a WAV file (made once per voice)."""
        if voice_id not in self._previews:
            fmt = WIRE_FORMATS["pcm_24000"]
            pcm = b"".join([c async for c in self.stream(PREVIEW_TEXT, voice_id, 1.0, fmt)])
            self._previews[voice_id] = write_wav_bytes(fmt.decode(pcm), fmt.sample_rate)
        return self._previews[voice_id]
