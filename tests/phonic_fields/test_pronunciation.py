"""``pronunciation_dictionary``: the TTS is given the respelled words; the caller's
transcript, the ``audio_chunk`` text and the stored item keep the agent's own words."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from phonic.errors import BadRequestError

from openline.voice.pronunciation import Pronunciations
from tests.phonic_fields.conftest import StackFactory
from tests.ws.conftest import collect, config, sdk, send_pcm, silence, tone


def test_whole_words_and_case_awareness() -> None:
    words = Pronunciations([("Phuket", "Poo-ket"), ("US", "you ess"), ("Dr.", "Doctor"),
                            ("New York", "Noo York"), ("SQL", "sequel"), ("sql", "ess cue el")])
    assert words.apply("Fly to Phuket, PHUKET or phuket!") == \
        "Fly to Poo-ket, Poo-ket or Poo-ket!"
    assert words.apply("Phukets and SuperPhuket stay") == "Phukets and SuperPhuket stay"
    # An acronym matches only in its own case: "us" is a pronoun.
    assert words.apply("Call us in the US.") == "Call us in the you ess."
    # The exact-case entry wins over a case-insensitive one.
    assert words.apply("SQL or sql or Sql") == "sequel or ess cue el or ess cue el"
    assert words.apply("Ask Dr. Lee in New York.") == "Ask Doctor Lee in Noo York."
    assert not Pronunciations([]) and Pronunciations([]).apply("Phuket") == "Phuket"


async def test_replies_and_welcome_are_respelled_before_tts(make_stack: StackFactory) -> None:
    stack = make_stack(["Phuket is lovely. The US office says hi."], stt=None)
    client = sdk(stack.server)
    await client.agents.create(
        name="travel", voice_id="joe", welcome_message="Welcome to Phuket travel.",
        pronunciation_dictionary=[{"word": "Phuket", "pronunciation": "Poo-ket"},
                                  {"word": "US", "pronunciation": "you ess"}])
    seen: list[Any] = []
    async with client.conversations.connect() as socket:
        await socket.send_config(config(agent="travel", stream_ahead_of_real_time=True))
        await collect(socket, "assistant_finished_speaking", seen)
        await send_pcm(socket, tone(500))
        await send_pcm(socket, silence(1000))
        await collect(socket, "assistant_finished_speaking", seen)
    asked = [text for text, _, _ in stack.tts.requests]
    assert "Welcome to Poo-ket travel." in asked
    assert "Poo-ket is lovely." in asked and "The you ess office says hi." in asked
    assert not any("Phuket" in text for text in asked)
    chunks = " ".join(m.text for m in seen if getattr(m, "type", "") == "audio_chunk")
    assert "Phuket" in chunks and "Poo-ket" not in chunks
    conv_id = seen[0].conversation_id
    for _ in range(50):
        conv = (await client.conversations.get(conv_id)).conversation
        if conv.ended_at is not None:
            break
        await asyncio.sleep(0.1)
    assert [i.live_transcript for i in conv.items if i.role == "assistant"] == [
        "Welcome to Phuket travel.", "Phuket is lovely. The US office says hi."]
    assert conv.pronunciation_dictionary[0].pronunciation == "Poo-ket"


async def test_without_a_dictionary_the_text_is_spoken_as_written(
        make_stack: StackFactory) -> None:
    stack = make_stack()
    client = sdk(stack.server)
    await client.agents.create(name="plain", voice_id="joe", welcome_message="Phuket.")
    seen: list[Any] = []
    async with client.conversations.connect() as socket:
        await socket.send_config(config(agent="plain", stream_ahead_of_real_time=True))
        await collect(socket, "assistant_finished_speaking", seen)
    assert [text for text, _, _ in stack.tts.requests] == ["Phuket."]


async def test_words_must_be_unique(make_stack: StackFactory) -> None:
    client = sdk(make_stack().server)
    with pytest.raises(BadRequestError) as refused:
        await client.agents.create(
            name="twice", request_options={"max_retries": 0},
            pronunciation_dictionary=[{"word": "Phuket", "pronunciation": "Poo-ket"},
                                      {"word": "Phuket", "pronunciation": "Foo-ket"}])
    assert "pronunciation_dictionary" in refused.value.body["param_errors"]
