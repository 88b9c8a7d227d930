"""The voice catalogue: whatever TTS voices are installed, never a hard-coded list."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from openline.domain.errors import NotFound


@dataclass(frozen=True)
class VoiceInfo:
    """What the API shows about one installed voice."""

    id: str
    name: str
    description: str | None
    family: str
    languages: tuple[str, ...] = ()


class VoiceSource(Protocol):
    """Anything that can list installed voices (the TTS provider, in production)."""

    def list_voices(self) -> list[VoiceInfo]: ...


class VoiceService:
    def __init__(self, source: VoiceSource) -> None:
        self.source = source

    def list(self) -> list[VoiceInfo]:
        return sorted(self.source.list_voices(), key=lambda v: (v.family != "piper", v.id))

    def get(self, voice_id: str) -> VoiceInfo:
        for voice in self.source.list_voices():
            if voice.id == voice_id:
                return voice
        raise NotFound("Voice not found")
