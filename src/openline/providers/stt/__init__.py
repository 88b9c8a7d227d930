"""Speech-to-text: batch ``STT`` over 16 kHz float32 utterances."""

from openline.providers.stt.base import STT, STTCapabilities, Transcript

__all__ = ["STT", "STTCapabilities", "Transcript"]
