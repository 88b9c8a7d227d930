"""Text-to-speech as a service: ``POST /tts`` and ``/tts/stream`` over the installed voices."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import numpy as np

from openline.audio.codecs import WIRE_FORMATS, AudioFormat
from openline.audio.resample import resample
from openline.audio.wav import write_wav_bytes
from openline.domain.errors import ValidationFailed
from openline.providers.tts.base import TTS

MAX_TEXT_CHARS = 5000
PREVIEW_TEXT = "Hello! This is how I sound. How can I help you today?"


class SpeechService:
    def __init__(self, tts: TTS, voices: Callable[[], tuple[set[str], str]]) -> None:
        self.tts = tts
        self._voices = voices
        self._previews: dict[str, bytes] = {}  # voices do not change while running

    def validate(self, body: dict[str, Any]) -> tuple[str, str, float, AudioFormat]:
        """(text, voice, speed, format) from a Phonic TTS body, or a 400."""
        errors: dict[str, str] = {}
        text = body.get("text")
        if not isinstance(text, str) or not text.strip():
            errors["text"] = "at least 1 character"
        elif len(text) > MAX_TEXT_CHARS:
            errors["text"] = f"at most {MAX_TEXT_CHARS} characters"
        speed = body.get("speed", 1.2)
        if isinstance(speed, bool) or not isinstance(speed, int | float) or not (
                0.5 <= speed <= 1.5):
            errors["speed"] = "a number between 0.5 and 1.5"
        fmt = body.get("output_format", "pcm_44100")
        if fmt not in WIRE_FORMATS:
            errors["output_format"] = f"one of {', '.join(WIRE_FORMATS)}"
        installed, default = self._voices()
        voice = body.get("voice_id") or "grant"
        if not isinstance(voice, str):
            errors["voice_id"] = "a voice id"
        if errors:
            field, message = next(iter(errors.items()))
            raise ValidationFailed(f"Invalid parameters: {field}: {message}", errors)
        assert isinstance(text, str)
        # Phonic's default voice "grant" is not installed here: use the default voice.
        chosen = voice if voice in installed else default
        return text, chosen, float(speed), WIRE_FORMATS[str(fmt)]

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
