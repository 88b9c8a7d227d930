"""The embedded models, as the language refusal sees them: the bundled Whisper tiny.en
recognises English only (whatever it is asked), and each voice names its languages; and
what the real voices' chunks say about their words."""

from __future__ import annotations

from openline.audio.codecs import WIRE_FORMATS
from openline.boot.providers import language_support
from openline.domain.languages import language_errors
from openline.providers.stt.faster_whisper import FasterWhisperSTT
from openline.providers.testing import EnergyVAD, ScriptedLLM
from openline.providers.tts.espeak import EspeakTTS
from openline.providers.tts.multi import MultiTTS
from openline.providers.tts.piper import PiperTTS
from openline.voice.reply import Speech, speak
from openline.voice.session import Providers
from openline.voice.speech import SpeechHandle
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


async def test_a_multi_chunk_utterance_names_its_words_once() -> None:
    """Piper (a chunk per sentence) and eSpeak (a chunk per ~93 ms) name no words in their
    chunks: a two-sentence welcome was stored twice with Piper and ~25 times with eSpeak."""
    text = "Hello there. How are you today?"
    async with MultiTTS([PiperTTS(), EspeakTTS()]) as tts:
        for voice in ("joe", "espeak-en-us"):
            handle = SpeechHandle("welcome", fixed_text=text)
            await speak(Speech(ScriptedLLM(), tts, WIRE_FORMATS["pcm_16000"], voice, 1.0),
                        text, handle)
            handle.close()
            assert handle.text == text, voice
