"""Which languages an agent asks for, and whether the installed models can honour them.

An agent speaks its ``default_language`` and may also recognise and speak its
``additional_languages``. Whether a process can honour that depends on its models: the
speech recogniser (the embedded Whisper tiny.en knows English only; a multilingual
faster-whisper model given with ``OPENLINE_STT_MODEL_DIR`` knows about a hundred) and
the voices (each voice names the languages it speaks). ``LanguageSupport`` describes what
is installed; ``language_errors`` is the refusal of a configuration that asks for more.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

STT_MODEL_HINT = ("set OPENLINE_STT_MODEL_DIR to a multilingual faster-whisper model "
                  "directory (for example Whisper small in CTranslate2 format)")

#: English and native names, lowercase, for the languages an agent may ask to switch to.
LANGUAGE_NAMES: dict[str, tuple[str, ...]] = {
    "ar": ("arabic", "العربية"), "bg": ("bulgarian", "български"), "cs": ("czech", "čeština"),
    "da": ("danish", "dansk"), "de": ("german", "deutsch"), "el": ("greek", "ελληνικά"),
    "en": ("english",), "es": ("spanish", "español", "espanol", "castellano"),
    "fi": ("finnish", "suomi"), "fr": ("french", "français", "francais"),
    "he": ("hebrew", "עברית"), "hi": ("hindi", "हिन्दी"), "hu": ("hungarian", "magyar"),
    "id": ("indonesian", "bahasa indonesia"), "it": ("italian", "italiano"),
    "ja": ("japanese", "日本語"), "ko": ("korean", "한국어"), "nl": ("dutch", "nederlands"),
    "no": ("norwegian", "norsk"), "pl": ("polish", "polski"),
    "pt": ("portuguese", "português", "portugues"), "ro": ("romanian", "română"),
    "ru": ("russian", "русский"), "sv": ("swedish", "svenska"), "tr": ("turkish", "türkçe"),
    "uk": ("ukrainian", "українська"), "vi": ("vietnamese", "tiếng việt"),
    "zh": ("chinese", "mandarin", "中文"), "yue": ("cantonese", "粵語"),
}  # fmt: skip
#: voice language tags whose primary subtag is not the ISO 639-1 code
_TAG_ALIASES = {"cmn": "zh", "nb": "no", "nn": "no", "tl": "fil", "iw": "he"}


def language_name(code: str) -> str:
    """The English name of ``code`` ("es" -> "Spanish"), or the code itself."""
    names = LANGUAGE_NAMES.get(code)
    return names[0].capitalize() if names else code


def tag_language(tag: str) -> str:
    """The ISO 639-1 code of a voice's language tag ("en-US", "en_us", "cmn" -> "zh")."""
    primary = tag.lower().replace("_", "-").split("-")[0]
    return _TAG_ALIASES.get(primary, primary)


def agent_languages(default: str, additional: Iterable[str]) -> tuple[str, ...]:
    """The default language first, then the additional ones (no repeats)."""
    return tuple(dict.fromkeys([default, *additional]))


@dataclass(frozen=True)
class LanguageSupport:
    """What the installed models can do: ``recognisable`` empty means any language; every
    voice id maps to the languages (ISO 639-1) it speaks."""

    recognisable: tuple[str, ...] = ()
    voice_languages: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def can_recognise(self, code: str) -> bool:
        return not self.recognisable or code in self.recognisable

    def voice_speaks(self, voice_id: str, code: str) -> bool:
        return code in self.voice_languages.get(voice_id, ())


def language_errors(support: LanguageSupport, default: str, additional: Sequence[str],
                    deprecated: Sequence[str] = ()) -> dict[str, str]:
    """``{field: message}`` for every language the recogniser cannot recognise."""
    errors: dict[str, str] = {}
    known = ", ".join(support.recognisable)
    for key, codes in (("default_language", [default]), ("additional_languages", additional),
                       ("languages", deprecated)):
        missing = [c for c in codes if not support.can_recognise(c)]
        if missing:
            errors[key] = (f"the installed speech recogniser cannot recognise "
                           f"{', '.join(repr(c) for c in missing)} (it knows {known}); "
                           f"{STT_MODEL_HINT}")
    return errors


def voices_per_language(languages: Sequence[str], voice_set: Sequence[str],
                        support: LanguageSupport, seed: str) -> dict[str, str]:
    """For each language, the voice of ``voice_set`` that speaks it.

    Where several voices of the set speak a language, one is chosen at random with equal
    probability for the conversation (``seed``: its id, so the choice is stable); a
    language no voice of the set speaks has no entry."""
    rng = random.Random(seed)
    chosen: dict[str, str] = {}
    for code in languages:
        speakers = [v for v in voice_set if support.voice_speaks(v, code)]
        if speakers:
            chosen[code] = rng.choice(speakers)
    return chosen
