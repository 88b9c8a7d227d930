"""Languages: what the installed recogniser cannot recognise is refused (400) on agent
create/update and warned about on the socket; a multilingual agent's languages drive the
recogniser per ``multilingual_mode`` and pick a voice per language."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from phonic.errors import BadRequestError

from openline.domain.languages import LanguageSupport, voices_per_language
from openline.voice.languages import LanguagePolicy, LanguageSettings
from tests.phonic_fields.conftest import DetectingSTT, EnglishOnlySTT, StackFactory
from tests.ws.conftest import collect, config, sdk, send_pcm, silence, tone

NO_RETRY: Any = {"max_retries": 0}


async def _ended(client: Any, conv_id: str) -> Any:
    for _ in range(100):
        conv = (await client.conversations.get(conv_id)).conversation
        if conv.ended_at is not None:
            return conv
        await asyncio.sleep(0.05)
    raise AssertionError("the conversation did not end")


async def test_an_english_only_recogniser_refuses_other_languages(
        make_stack: StackFactory) -> None:
    stack = make_stack(stt=EnglishOnlySTT(default="hello"))
    client = sdk(stack.server)
    with pytest.raises(BadRequestError) as refused:
        await client.agents.create(name="spanish", default_language="es",
                                   request_options=NO_RETRY)
    body = refused.value.body
    assert "OPENLINE_STT_MODEL_DIR" in body["param_errors"]["default_language"]
    assert "'es'" in body["error"]["message"]
    with pytest.raises(BadRequestError) as refused:
        await client.agents.create(name="bilingual", additional_languages=["fr", "de"],
                                   request_options=NO_RETRY)
    assert "'fr', 'de'" in refused.value.body["param_errors"]["additional_languages"]
    with pytest.raises(BadRequestError):
        await client.agents.upsert(name="spanish", default_language="es",
                                   request_options=NO_RETRY)
    with pytest.raises(BadRequestError) as refused:  # the voice set: no repeats
        await client.agents.create(name="voices", voice_id="joe", additional_voice_ids=["joe"],
                                   request_options=NO_RETRY)
    assert "additional_voice_ids" in refused.value.body["param_errors"]
    assert (await client.agents.list()).agents == []  # nothing was created
    await client.agents.create(name="english", voice_id="joe")
    with pytest.raises(BadRequestError) as refused:
        await client.agents.update("english", additional_languages=["es"],
                                   request_options=NO_RETRY)
    assert "additional_languages" in refused.value.body["param_errors"]
    assert (await client.agents.get("english")).agent.additional_languages == []
    # Other changes to the agent are not refused for its (supported) languages.
    await client.agents.update("english", system_prompt="Be brief.")


async def test_the_socket_warns_and_keeps_to_what_can_be_recognised(
        make_stack: StackFactory) -> None:
    stt = EnglishOnlySTT(["hello there"])
    stack = make_stack(["Hi!"], stt=stt)
    client = sdk(stack.server)
    await client.agents.create(name="english", voice_id="joe", welcome_message="")
    seen: list[Any] = []
    async with client.conversations.connect() as socket:
        await socket.send_config(config(agent="english", additional_languages=["es"],
                                        multilingual_mode="auto",
                                        stream_ahead_of_real_time=True))
        await collect(socket, "ready_to_start_conversation", seen)
        await send_pcm(socket, tone(500))
        await send_pcm(socket, silence(1000))
        await collect(socket, "assistant_finished_speaking", seen)
    warnings = [m.warning for m in seen if getattr(m, "type", "") == "warning"]
    assert [w.code for w in warnings] == ["language_not_supported"]
    assert "Spanish" in warnings[0].message and "OPENLINE_STT_MODEL_DIR" in warnings[0].message
    assert [language for _, language, _ in stt.calls] == ["en"]  # English, not detection
    texts = [m for m in seen if getattr(m, "type", "") == "input_text"]
    assert [(m.text, m.language) for m in texts] == [("hello there", "en")]


async def test_request_mode_switches_when_the_caller_asks(make_stack: StackFactory) -> None:
    stt = DetectingSTT([("Can we speak Spanish please", "en"), ("Necesito una cita", "es")])
    stack = make_stack(["Claro, hablemos en español.", "Por supuesto."], stt=stt)
    client = sdk(stack.server)
    await client.agents.create(name="bilingual", voice_id="joe", welcome_message="Hello.",
                               additional_languages=["es"], additional_voice_ids=["sofia"])
    seen: list[Any] = []
    async with client.conversations.connect() as socket:
        await socket.send_config(config(agent="bilingual", stream_ahead_of_real_time=True))
        await collect(socket, "assistant_finished_speaking", seen)
        for ms in (500, 700):  # two turns of different audio
            await send_pcm(socket, tone(ms))
            await send_pcm(socket, silence(1000))
            await collect(socket, "assistant_finished_speaking", seen)
    assert stt.asked == ["en", "es"]  # the second turn is recognised in Spanish
    texts = [(m.text, m.language) for m in seen if getattr(m, "type", "") == "input_text"]
    assert texts == [("Can we speak Spanish please", "en"), ("Necesito una cita", "es")]
    voices = [(text, voice) for text, voice, _ in stack.tts.requests]
    assert voices[0] == ("Hello.", "joe") and {v for _, v in voices[1:]} == {"sofia"}
    told = [m.content for m in stack.llm.requests[0].messages if m.role == "system"]
    assert any("reply in Spanish" in note for note in told)
    conv = await _ended(client, seen[0].conversation_id)
    assert [i.voice_id for i in conv.items if i.role == "assistant"] == ["joe", "sofia", "sofia"]


async def test_auto_mode_detects_each_turn_within_the_agents_languages(
        make_stack: StackFactory) -> None:
    stt = DetectingSTT([("Buenos días amigo", "pt", "es"), ("Bonjour", "fr"),
                        ("Thank you", "en")])
    stack = make_stack(["Hola.", "Vale.", "You're welcome."], stt=stt)
    client = sdk(stack.server)
    await client.agents.create(name="auto", voice_id="joe", welcome_message="",
                               additional_languages=["es"], additional_voice_ids=["sofia"],
                               multilingual_mode="auto")
    seen: list[Any] = []
    async with client.conversations.connect() as socket:
        await socket.send_config(config(agent="auto", stream_ahead_of_real_time=True))
        await collect(socket, "ready_to_start_conversation", seen)
        for ms in (500, 600, 700):
            await send_pcm(socket, tone(ms))
            await send_pcm(socket, silence(1000))
            await collect(socket, "assistant_finished_speaking", seen)
    # Detection each turn. Detected as a language the agent does not speak, a turn is
    # recognised in each of the agent's languages (current first) and the clearest kept:
    # Spanish for the first turn; for the second, none is clearer: the current one.
    assert stt.asked == [None, "en", "es", None, "es", "en", None]
    texts = [m.language for m in seen if getattr(m, "type", "") == "input_text"]
    assert texts == ["es", "es", "en"]
    assert [voice for _, voice, _ in stack.tts.requests] == ["sofia", "sofia", "joe"]


def test_initial_mode_keeps_the_first_turns_language() -> None:
    policy = LanguagePolicy(LanguageSettings(("en", "es", "fr"), "initial"))
    assert policy.listen_for() is None
    assert policy.heard("Bonjour", "fr") == "fr"
    assert policy.listen_for() == "fr"
    assert policy.heard("Hola", "es") is None and policy.current == "fr"


def test_request_mode_needs_one_named_language() -> None:
    policy = LanguagePolicy(LanguageSettings(("en", "es", "de"), "request"))
    assert policy.listen_for() == "en"
    assert policy.heard("I love French food", "en") is None  # not one of the agent's
    assert policy.heard("Spanish or German, I don't mind", "en") is None  # ambiguous
    assert policy.heard("Auf Deutsch, bitte", "en") == "de"
    assert policy.heard("en español por favor", "de") == "es" and policy.switches == ["de", "es"]


def test_a_voice_per_language_chosen_evenly_from_the_voice_set() -> None:
    support = LanguageSupport((), {"joe": ("en",), "ava": ("en",), "sofia": ("es",)})
    picks = [voices_per_language(["en", "es"], ["joe", "ava", "sofia"], support, f"conv_{i}")
             for i in range(200)]
    assert all(p["es"] == "sofia" for p in picks)
    english = [p["en"] for p in picks]
    assert 60 < english.count("joe") < 140 and set(english) == {"joe", "ava"}
    assert picks[7] == voices_per_language(["en", "es"], ["joe", "ava", "sofia"], support,
                                           "conv_7")  # stable for a conversation
    assert voices_per_language(["fr"], ["joe"], support, "c") == {}


async def test_stt_model_dir_setting_reaches_the_recogniser(tmp_path: Any) -> None:
    from openline.boot.providers import build_providers
    from openline.providers.stt.faster_whisper import FasterWhisperSTT
    from openline.settings import Settings

    settings = Settings(data_dir=tmp_path, stt_model_dir=tmp_path / "whisper-small",
                        llm_base_url="http://127.0.0.1:9")
    stt = build_providers(settings).stt
    assert isinstance(stt, FasterWhisperSTT)
    assert stt.options.model_dir == tmp_path / "whisper-small"
    with pytest.raises(Exception, match="not found"):
        await stt.load()
