"""The text end-of-turn model: the embedded Gemma 3 270M judging whether words end a turn
(providers/vad/text_turn.py), on lines as Whisper wrote them in benchmarks/turn_taking.py."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from openline.providers.vad.text_turn import LlamaTextTurnModel, LlamaTextTurnOptions, caller_line
from openline.voice.end_of_turn import EndOfTurnPolicy

THRESHOLD = EndOfTurnPolicy().text_threshold
FINISHED = ("What time do you close on Saturday?", "I would like to cancel my appointment.",
            "Hello, can you hear me?", "Is Doctor Patella maleable this week?", "Yes.",
            "I need to change my insurance details.", "Thanks, that is everything I needed.")
#: fragments the audio model called complete, or that end on no word the rules know
UNFINISHED = ("Could you tell me?", "Can you tell me", "I need to", "So I was thinking",
              "I would like to book an appointment for", "I was wondering if")


@pytest.fixture(scope="module")
async def text_turn(gguf_path: Path) -> AsyncIterator[LlamaTextTurnModel]:
    async with LlamaTextTurnModel(LlamaTextTurnOptions(gguf_path=gguf_path)) as model:
        yield model


def test_the_model_sees_the_words_without_the_recognisers_final_punctuation() -> None:
    assert caller_line("  Could you tell me?  ") == "Could you tell me"
    assert caller_line("Well, if...") == "Well, if"
    assert caller_line(" ".join(["word"] * 100)) == " ".join(["word"] * 48)


async def test_finished_lines_score_above_the_threshold_and_fragments_below(
        text_turn: LlamaTextTurnModel) -> None:
    finished = {t: await text_turn.complete(t) for t in FINISHED}
    unfinished = {t: await text_turn.complete(t) for t in UNFINISHED}
    assert all(p >= THRESHOLD for p in finished.values()), finished
    assert all(p < THRESHOLD for p in unfinished.values()), unfinished
    assert await text_turn.complete("") == 1.0  # no words: the audio decides


def test_the_server_builds_it_only_when_enabled_and_beside_an_audio_model(
        tmp_path: Path) -> None:
    from openline.boot.providers import build_text_turn_model
    from openline.providers.vad.smart_turn import SmartTurnModel
    from openline.settings import Settings

    audio = SmartTurnModel()  # not loaded: only its presence matters here
    assert build_text_turn_model(Settings(data_dir=tmp_path), audio) is None  # off by default
    on = Settings(data_dir=tmp_path, end_of_turn_text_model=True)
    assert build_text_turn_model(on, None) is None  # fixed silence: the words are not asked
    model = build_text_turn_model(on, audio)
    assert isinstance(model, LlamaTextTurnModel) and model.options.gguf_path.is_file()
