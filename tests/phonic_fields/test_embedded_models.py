"""The embedded models, as the language refusal sees them: the bundled Whisper tiny.en
recognises English only (whatever it is asked), and each voice names its languages."""

from __future__ import annotations

from openline.boot.providers import language_support
from openline.domain.languages import language_errors
from openline.providers.stt.faster_whisper import FasterWhisperSTT
from openline.providers.testing import EnergyVAD, ScriptedLLM
from openline.providers.tts.espeak import EspeakTTS
from openline.providers.tts.multi import MultiTTS
from openline.providers.tts.piper import PiperTTS
from openline.voice.session import Providers
from tests.providers.speech_helpers import speak_16k, wer


async def test_tiny_en_is_english_only_and_voices_know_their_languages() -> None:
    stt, tts = FasterWhisperSTT(), MultiTTS([PiperTTS(), EspeakTTS()])
    async with stt, tts:
        support = language_support(Providers(EnergyVAD(), stt, ScriptedLLM(), tts))
        assert support.recognisable == ("en",)
        assert support.voice_speaks("joe", "en") and not support.voice_speaks("joe", "es")
        assert support.voice_speaks("espeak-es", "es")
        assert support.voice_speaks("espeak-cmn", "zh")  # eSpeak's tag for Mandarin
        audio = await speak_16k(tts, "Please book a table for two tonight.", "joe")
        heard = await stt.transcribe(audio, language=None)  # detection: still English
        assert heard.language == "en"
        assert wer("Please book a table for two tonight.", heard.text) < 0.3
    errors = language_errors(support, "en", ["es"])
    assert set(errors) == {"additional_languages"}
    assert "OPENLINE_STT_MODEL_DIR" in errors["additional_languages"]
