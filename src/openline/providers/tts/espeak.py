"""eSpeak NG voices (formant synthesis) through the ``espeak-ng`` binary.

Available only where the binary is installed (Debian: ``apt-get install espeak-ng``);
otherwise ``load()`` raises ``ProviderUnavailable`` and ``MultiTTS`` simply leaves the
family out. Synthesis runs ``espeak-ng --stdout`` as a subprocess with the text on stdin
(never on the command line, so text cannot be read as options) and streams the WAV it
writes, chunk by chunk; closing the stream kills the process.

Voice ids are ``espeak-`` + the eSpeak language tag, lowercase: ``espeak-en-us``,
``espeak-en-gb``, ``espeak-fr-fr``... By default all English variants plus a handful of
major languages are offered (``DEFAULT_LANGUAGES``); ``languages=None`` offers them all.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import struct
from collections.abc import AsyncIterator
from dataclasses import dataclass

import numpy as np

from openline.domain.errors import ProviderError, ProviderUnavailable
from openline.providers.tts.base import TTS, AudioChunk, Voice

ESPEAK_RATE = 22050
DEFAULT_WPM = 175
DEFAULT_LANGUAGES: tuple[str, ...] = (
    "en*", "de", "es", "es-419", "fr-fr", "it", "nl", "pt", "pt-br", "pl", "sv", "ru", "hi",
    "cmn", "ja", "tr", "ar",
)  # fmt: skip
_CHUNK_BYTES = 4096  # ~93 ms of 22.05 kHz PCM16


@dataclass(frozen=True)
class EspeakOptions:
    """Options for ``EspeakTTS``. ``languages``: tags to offer (``*`` suffix = prefix)."""

    binary: str = "espeak-ng"
    languages: tuple[str, ...] | None = DEFAULT_LANGUAGES
    words_per_minute: int = DEFAULT_WPM


def parse_voice_list(listing: str, languages: tuple[str, ...] | None) -> list[Voice]:
    """Parse ``espeak-ng --voices`` output into ``Voice``s (first voice per tag wins)."""
    voices: dict[str, Voice] = {}
    for line in listing.splitlines()[1:]:
        parts = line.split()
        if len(parts) < 5:
            continue
        tag, age_gender, raw_name = parts[1].lower(), parts[2], parts[3]
        if languages is not None and not _wanted(tag, languages):
            continue
        gender = {"M": "male", "F": "female"}.get(age_gender.rsplit("/", 1)[-1])
        name = raw_name.replace("_", " ")
        voices.setdefault(
            tag,
            Voice(
                id=f"espeak-{tag}",
                name=f"eSpeak {name}",
                description=f"eSpeak NG formant voice, {name} (robotic, very fast, small)",
                family="espeak",
                languages=(tag,),
                sample_rate=ESPEAK_RATE,
                gender=gender,
            ),
        )
    return list(voices.values())


def _wanted(tag: str, languages: tuple[str, ...]) -> bool:
    return any(tag.startswith(p[:-1]) if p.endswith("*") else tag == p for p in languages)


def _wav_rate(header: bytes) -> int:
    """Sample rate from a canonical 44-byte WAV header (espeak streams sizes as 0x7fff...)."""
    if len(header) < 44 or header[:4] != b"RIFF" or header[8:12] != b"WAVE":
        raise ProviderError("espeak: malformed WAV header on stdout")
    channels, rate = struct.unpack_from("<HI", header, 22)
    if channels != 1:
        raise ProviderError(f"espeak: expected mono output, got {channels} channels")
    return int(rate)


class EspeakTTS(TTS):
    """eSpeak NG voices via subprocess (no thread needed: the work is in another process)."""

    name = "espeak"

    def __init__(self, options: EspeakOptions | None = None) -> None:
        super().__init__()
        self.options = options or EspeakOptions()
        self._binary: str | None = None

    async def _load(self) -> None:
        self._binary = shutil.which(self.options.binary)
        if self._binary is None:
            raise ProviderUnavailable(f"espeak: binary {self.options.binary!r} not found")
        proc = await asyncio.create_subprocess_exec(
            self._binary, "--voices", stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        out, _ = await proc.communicate()
        voices = parse_voice_list(out.decode("utf-8", "replace"), self.options.languages)
        if not voices:
            raise ProviderUnavailable("espeak: no matching voices")
        self._set_voices(voices)

    async def _stream(self, text: str, voice: Voice, speed: float) -> AsyncIterator[AudioChunk]:
        assert self._binary is not None
        wpm = max(80, min(450, round(self.options.words_per_minute * speed)))
        proc = await asyncio.create_subprocess_exec(
            self._binary, "--stdout", "-v", voice.languages[0], "-s", str(wpm),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        assert proc.stdin is not None and proc.stdout is not None
        try:
            proc.stdin.write(text.encode("utf-8"))
            proc.stdin.close()
            rate = _wav_rate(await proc.stdout.readexactly(44))
            pending = b""
            while chunk := await proc.stdout.read(_CHUNK_BYTES):
                pending += chunk
                usable = len(pending) - len(pending) % 2
                if usable:
                    samples = np.frombuffer(pending[:usable], dtype="<i2").astype(np.int16)
                    pending = pending[usable:]
                    yield AudioChunk(samples, rate)
            code = await proc.wait()
            if code != 0:
                raise ProviderError(f"espeak: exited with status {code}")
        except asyncio.IncompleteReadError as exc:
            raise ProviderError("espeak: produced no audio") from exc
        finally:
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
