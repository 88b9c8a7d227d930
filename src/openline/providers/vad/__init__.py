"""Voice activity detection: ``VAD`` (one per process) makes a ``VADStream`` per audio stream."""

from openline.providers.vad.base import VAD, VADStream

__all__ = ["VAD", "VADStream"]
