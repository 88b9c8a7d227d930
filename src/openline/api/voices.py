"""Adapts the installed TTS voices to the service layer's ``VoiceSource``."""

from __future__ import annotations

from openline.services.voices import VoiceInfo
from openline.settings import Settings


class InstalledVoices:
    """Lists the voices of the TTS engines installed in this process."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def list_voices(self) -> list[VoiceInfo]:
        return []
