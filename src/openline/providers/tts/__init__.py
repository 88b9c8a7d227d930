"""Text-to-speech: ``TTS`` providers, ``Voice`` descriptions and a routing ``MultiTTS``."""

from openline.providers.tts.base import TTS, AudioChunk, UnknownVoice, Voice
from openline.providers.tts.multi import MultiTTS

__all__ = ["TTS", "AudioChunk", "MultiTTS", "UnknownVoice", "Voice"]
