"""Backchannels and false barge-in: "uh-huh" over the assistant does not interrupt, noise
shorter than the threshold never cuts off, a real interruption does, and after any cut-off
the assistant resumes or answers. Engine on a virtual clock; words from a keyed fake
recogniser (the tone's pitch says which words it is) or from the real Whisper on espeak."""

from __future__ import annotations

import asyncio

import numpy as np
import numpy.typing as npt
import pytest

from openline.providers.stt.base import STT, RawTranscript
from openline.providers.testing import EnergyVAD, FakeTTS, ScriptedLLM
from openline.voice import events as ev
from openline.voice.acknowledgements import is_backchannel, phrase_words
from openline.voice.session import Conversation, Providers
from openline.voice.turns import TurnSettings
from tests.voice.harness import Log, make, play, silence, tone, virtual

LONG_REPLY = "One two three four five six seven eight nine ten. " * 4
WORDS = {300: "tell me a story", 500: "Uh-huh.", 700: "Wait, stop.", 900: "",
         1100: "Tuesday, please.", 1300: "3 3 1.", 1500: "Roger."}


class PitchSTT(STT):
    """Recognises a tone by its pitch (``WORDS``): every call, speculative or not, hears
    what the audio is, like a real recogniser would."""

    name = "pitch-stt"
    cache_size = 0

    def _transcribe_sync(self, audio: npt.NDArray[np.float32], language: str | None,
                         hotwords: list[str]) -> RawTranscript:
        spectrum = np.abs(np.fft.rfft(audio))
        pitch = float(np.argmax(spectrum)) * 16_000 / max(1, audio.size)
        text = WORDS[min(WORDS, key=lambda f: abs(f - pitch))] if spectrum.max() > 1 else ""
        return RawTranscript(text=text, language="en")


def test_acknowledgements_and_interruptions_are_told_apart() -> None:
    for text in ("Uh-huh.", "Mm-hmm", "MMM", "okay", "Yeah, right.", "I see.", "All right.",
                 "Got it.", "", "...", "Got it Got it Got it", "yeah yeah yeah okay sure",
                 "Fff", "Hmm, mm.", "Shh"):  # sounds without a vowel are no words
        assert is_backchannel(text), text  # a recogniser's loop or a stutter counts once
    for text in ("Wait, stop.", "No.", "Hold on", "Sorry, what?", "Thank you.",
                 "yes I see you got it all right", "Can you repeat that?",
                 "x", "I", "I. I.", "It",  # "actually" at 320 ms; a phrase word alone
                 "3 3 1", "331.", "4-5-7"):  # digits dictated after a pause are words
        assert not is_backchannel(text), text


def test_the_first_look_barges_in_on_an_interruption_cue_or_several_words() -> None:
    from openline.voice.acknowledgements import sounds_like_interruption

    for text in ("Wait.", "No.", "Hold on", "Sorry", "Excuse me", "Actually, I", "What?",
                 "Can you repeat"):
        assert sounds_like_interruption(text), text
    # what a cut-short acknowledgement is misheard as: not an interruption yet
    for text in ("Afer", "and anthem", "BOLA", "Die. Die.", "Uh-huh.", "Okay", "",
                 "Okay, I see you"):
        assert not sounds_like_interruption(text), text


def _conversation(**settings: object) -> tuple[Conversation, Log, Providers]:
    providers = Providers(EnergyVAD(), PitchSTT(), ScriptedLLM([LONG_REPLY, "Sure, stopping."]),
                          FakeTTS(ms_per_char=20))
    return make(providers=providers, stream_ahead_of_real_time=False, **settings)


async def _over_the_reply(conv: Conversation, log: Log, ms: int, pitch: int) -> float:
    """Ask for the long reply, then make a sound over it; returns when the sound began."""
    await play(conv, tone(500, 300))
    await play(conv, silence(400))
    await log.wait_for(ev.AssistantStartedSpeaking)
    await asyncio.sleep(0.8)
    onset = conv.clock.monotonic()
    await play(conv, tone(ms, pitch))
    await play(conv, silence(1000))
    return onset


@virtual
async def test_an_acknowledgement_over_the_assistant_does_not_interrupt() -> None:
    conv, log, _ = _conversation()
    runner = asyncio.create_task(conv.run())
    await _over_the_reply(conv, log, 450, 500)
    await log.wait_for(ev.AssistantFinishedSpeaking)
    await asyncio.sleep(1.0)
    conv.end("user")
    result = await runner
    assert result.interruptions_count == 0
    assert not log.of(ev.ClearAudio) and not log.of(ev.InterruptedResponse)
    # The client never saw a second user turn start: Phonic clients stop playback on it.
    assert len(log.of(ev.UserStartedSpeaking)) == 1 and not log.of(ev.InputCancelled)
    assert log.spoken() == LONG_REPLY.strip()
    assert [i.role for i in log.items] == ["user", "assistant"]  # no item for "uh-huh"
    assert [e.text for e in log.of(ev.InputText)] == ["tell me a story"]


@virtual
async def test_a_real_interruption_cuts_in_soon_after_the_voice_starts() -> None:
    conv, log, _ = _conversation()
    runner = asyncio.create_task(conv.run())
    onset = await _over_the_reply(conv, log, 600, 700)
    await log.wait_for(ev.AssistantFinishedSpeaking)  # the answer to "wait, stop"
    conv.end("user")
    result = await runner
    assert result.interruptions_count == 1
    assert log.time_of(ev.ClearAudio) - onset <= 0.4
    assert [e.text for e in log.of(ev.InputText)] == ["tell me a story", "Wait, stop."]
    assert "Sure, stopping." in log.spoken()


@virtual
async def test_words_that_are_no_cue_interrupt_at_the_second_look() -> None:
    """"Tuesday, please." is no acknowledgement but no interruption cue either: the first
    look (256 ms) lets it be, the second (288 ms) barges in."""
    conv, log, _ = _conversation()
    runner = asyncio.create_task(conv.run())
    onset = await _over_the_reply(conv, log, 600, 1100)
    await log.wait_for(ev.InterruptedResponse)
    conv.end("user")
    result = await runner
    assert result.interruptions_count == 1
    assert 0.27 <= log.time_of(ev.ClearAudio) - onset <= 0.31
    assert [e.text for e in log.of(ev.InputText)][-1] == "Tuesday, please."


@virtual
async def test_digits_over_the_reply_are_a_turn_not_a_sound() -> None:
    """A caller going on with a number ("3 3 1." has no letters) is heard and answered: it
    once counted as "no words at all", like a cough, and was dropped."""
    conv, log, _ = _conversation()
    runner = asyncio.create_task(conv.run())
    await _over_the_reply(conv, log, 600, 1300)
    await log.wait_for(ev.InterruptedResponse)
    await log.wait_for(ev.AssistantFinishedSpeaking)
    conv.end("user")
    result = await runner
    assert result.interruptions_count == 1 and not log.of(ev.InputCancelled)
    assert [e.text for e in log.of(ev.InputText)] == ["tell me a story", "3 3 1."]


@virtual
async def test_the_acknowledgement_words_are_the_conversations_own() -> None:
    """Vapi's ``stopSpeakingPlan.acknowledgementPhrases``: "Roger." is no acknowledgement by
    default and interrupts; for a conversation whose phrases include it, it does not."""
    for words, interruptions in ((None, 1), (phrase_words(["roger that", "okay"]), 0)):
        conv, log, _ = (_conversation() if words is None
                        else _conversation(acknowledgement_words=words))
        runner = asyncio.create_task(conv.run())
        await _over_the_reply(conv, log, 600, 1500)
        await log.wait_for(ev.AssistantFinishedSpeaking)
        conv.end("user")
        result = await runner
        assert result.interruptions_count == interruptions, words
        texts = [e.text for e in log.of(ev.InputText)]
        assert texts == (["tell me a story", "Roger."] if interruptions else ["tell me a story"])


@virtual
async def test_an_interruption_phrase_of_the_conversation_cuts_in_at_the_first_look() -> None:
    """Vapi's ``interruptionPhrases``: with "tuesday" among them, "Tuesday, please." barges in
    at the first look (256 ms), not at the second (288 ms) as by default."""
    conv, log, _ = _conversation(interruption_cues=phrase_words(["tuesday", "stop"]))
    runner = asyncio.create_task(conv.run())
    onset = await _over_the_reply(conv, log, 600, 1100)
    await log.wait_for(ev.InterruptedResponse)
    conv.end("user")
    await runner
    assert 0.24 <= log.time_of(ev.ClearAudio) - onset < 0.27


@virtual
async def test_noise_shorter_than_the_threshold_never_cuts_off() -> None:
    conv, log, _ = _conversation(min_interruption_ms=250)
    runner = asyncio.create_task(conv.run())
    await _over_the_reply(conv, log, 200, 700)  # would be "wait, stop" if it were long enough
    await log.wait_for(ev.AssistantFinishedSpeaking)
    conv.end("user")
    result = await runner
    assert result.interruptions_count == 0 and not log.of(ev.ClearAudio)
    assert log.spoken().startswith(LONG_REPLY.strip())


@virtual
async def test_after_a_long_noise_cuts_the_assistant_off_it_resumes() -> None:
    conv, log, _ = _conversation(backchannel_max_ms=900)
    runner = asyncio.create_task(conv.run())
    await _over_the_reply(conv, log, 1100, 900)  # no words, but longer than 900 ms
    await log.wait_for(ev.InterruptedResponse)
    await log.wait_for(ev.AssistantFinishedSpeaking)
    conv.end("user")
    result = await runner
    assert result.interruptions_count == 1
    kinds = [k for k in log.kinds() if k not in ("AudioOut", "ClearAudio")]
    cut = kinds.index("InterruptedResponse")
    assert "InputCancelled" in kinds[cut - 1:cut + 1]
    assert kinds[cut + 1:] == ["AssistantStartedSpeaking", "AssistantFinishedSpeaking"]


# ----- the real recogniser on generated speech ------------------------------------------------
@pytest.fixture(scope="module")
def whisper():  # type: ignore[no-untyped-def]
    from openline.providers.stt.faster_whisper import FasterWhisperOptions, FasterWhisperSTT

    return FasterWhisperSTT(FasterWhisperOptions(beam_size=1))


def _espeak(text: str) -> np.ndarray:
    from tests.voice.test_end_of_turn import _espeak as speak

    return speak(text)


@virtual
async def test_with_whisper_uh_huh_is_ignored_and_wait_stop_interrupts(whisper) -> None:  # type: ignore[no-untyped-def]
    async def run(caller: str) -> tuple[int, list[str]]:
        providers = Providers(EnergyVAD(threshold=0.01), whisper,
                              ScriptedLLM([LONG_REPLY, "Okay."]), FakeTTS(ms_per_char=20))
        conv, log, _ = make(providers=providers, stream_ahead_of_real_time=False)
        runner = asyncio.create_task(conv.run())
        await play(conv, _espeak("Tell me about your opening hours."))
        await play(conv, silence(400))
        await log.wait_for(ev.AssistantStartedSpeaking)
        await asyncio.sleep(0.8)
        await play(conv, _espeak(caller))
        await play(conv, silence(1000))
        await log.wait_for(ev.AssistantFinishedSpeaking)
        conv.end("user")
        result = await runner
        return result.interruptions_count, [e.text for e in log.of(ev.InputText)]

    count, texts = await run("uh-huh")
    assert count == 0 and len(texts) == 1
    count, texts = await run("wait, stop")
    assert count == 1 and len(texts) == 2 and "stop" in texts[1].lower()


class LengthSTT(PitchSTT):
    """The request as ``PitchSTT`` hears it; over the reply, the looks at the words (short
    audio) hear ``look`` and the whole turn ``turn``: a recogniser that hears a short hum
    differently with more of it."""

    name = "length-stt"

    def __init__(self, look: str, turn: str) -> None:
        super().__init__()
        self.look, self.turn = look, turn

    def _transcribe_sync(self, audio: npt.NDArray[np.float32], language: str | None,
                         hotwords: list[str]) -> RawTranscript:
        heard = super()._transcribe_sync(audio, language, hotwords)
        if heard.text in ("", WORDS[300]):
            return heard
        return RawTranscript(text=self.look if audio.size < 0.75 * 16_000 else self.turn,
                             language="en")


async def _hum_over_the_reply(look: str, turn: str) -> tuple[Log, int]:
    return await _tone_over_the_reply(LengthSTT(look, turn))


async def _tone_over_the_reply(stt: STT) -> tuple[Log, int]:
    """Ask for a story, then hum (a 650 Hz tone) 0.8 s into the long reply."""
    providers = Providers(EnergyVAD(), stt, ScriptedLLM([LONG_REPLY, "Sure, stopping."]),
                          FakeTTS(ms_per_char=20))
    conv, log, _ = make(providers=providers, stream_ahead_of_real_time=False,
                        turn=TurnSettings(min_silence_ms=300, prebuffer_ms=200))
    runner = asyncio.create_task(conv.run())
    await play(conv, tone(300, 300))
    await play(conv, silence(400))
    await log.wait_for(ev.AssistantStartedSpeaking)
    await asyncio.sleep(0.8)
    await play(conv, tone(650, 500))
    await play(conv, silence(1500))
    await log.wait_for(ev.AssistantFinishedSpeaking)
    conv.end("user")
    return log, (await runner).interruptions_count


@virtual
async def test_a_hum_the_whole_turn_mishears_stays_an_acknowledgement() -> None:
    """The looks heard "Uh-huh."; the whole turn came back as "Afer" (as Whisper tiny.en
    did on an en-gb "uh-huh"): one word, no interruption cue, so still no turn."""
    log, interruptions = await _hum_over_the_reply("Uh-huh.", "Afer")
    assert interruptions == 0 and not log.of(ev.ClearAudio)
    assert [e.text for e in log.of(ev.InputText)] == ["tell me a story"]
    assert [i.role for i in log.items] == ["user", "assistant"]


@virtual
async def test_an_interruption_the_looks_heard_as_a_hum_still_interrupts() -> None:
    """The looks heard "Mm."; the whole turn is "Wait, stop." (a cue): it interrupts."""
    log, interruptions = await _hum_over_the_reply("Mm.", "Wait, stop.")
    assert interruptions == 1
    assert [e.text for e in log.of(ev.InputText)] == ["tell me a story", "Wait, stop."]


class FirstWordsSTT(LengthSTT):
    """Over the reply, a whole transcript hears "Uh-huh." but the first words "Wait.": the
    looks must ask for the first words (``STT.first_words``)."""

    def __init__(self) -> None:
        super().__init__("Uh-huh.", "Uh-huh.")
        self.first_words_asked = 0

    def _first_words_sync(self, audio: npt.NDArray[np.float32], language: str | None
                          ) -> RawTranscript:
        self.first_words_asked += 1
        return RawTranscript(text="Wait.", language="en")


@virtual
async def test_the_looks_ask_the_recogniser_for_the_first_words() -> None:
    stt = FirstWordsSTT()
    _, interruptions = await _tone_over_the_reply(stt)
    assert interruptions == 1 and stt.first_words_asked >= 1
