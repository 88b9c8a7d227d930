"""Assistant backchannels, measured on virtual time: cues come in the pauses of a long
caller turn, as often as the aggressiveness says, stop the moment the caller speaks again,
and are never turns (no speaking events, no items, no interruptions)."""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass
from typing import Any

import pytest

from openline.providers.testing import EnergyVAD, FakeSTT, FakeTTS, ScriptedLLM
from openline.voice import events as ev
from openline.voice.backchannel import CUES, BackchannelSettings
from openline.voice.session import Conversation, Providers
from openline.voice.turns import TurnSettings
from tests.phonic_fields.conftest import StackFactory
from tests.voice.harness import Log, make, play, silence, tone, virtual
from tests.ws.conftest import collect, config, sdk, send_pcm
from tests.ws.conftest import silence as ws_silence
from tests.ws.conftest import tone as ws_tone

SPEECH_MS, PAUSE_MS, SEGMENTS = 1500, 500, 12


@dataclass
class Talk:
    """When the caller was silent (virtual monotonic seconds, [start, end) per pause)."""

    pauses: list[tuple[float, float]]
    ended_at: float


async def long_turn(conv: Conversation) -> Talk:
    """24 s of talk: 1.5 s of speech, a 0.5 s pause, twelve times; then the turn ends."""
    pauses: list[tuple[float, float]] = []
    for _ in range(SEGMENTS):
        await play(conv, tone(SPEECH_MS))
        start = conv.clock.monotonic()
        await play(conv, silence(PAUSE_MS))
        pauses.append((start, conv.clock.monotonic()))
    end = conv.clock.monotonic()
    await play(conv, silence(1500))
    return Talk(pauses, end)


def session(aggressiveness: float | None, ms_per_char: float = 20.0
            ) -> tuple[Conversation, Log, Providers]:
    providers = Providers(EnergyVAD(), FakeSTT(default="a long story"),
                          ScriptedLLM(fallback="I see."), FakeTTS(ms_per_char=ms_per_char))
    setting = BackchannelSettings(aggressiveness is not None, aggressiveness or 0.1)
    return make(providers=providers, backchannel=setting, stream_ahead_of_real_time=False,
                turn=TurnSettings(min_silence_ms=800, prebuffer_ms=200))


def cue_frames(log: Log) -> list[tuple[float, str]]:
    """(sent at, text) of every audio frame of a cue (their text is the cue's)."""
    return [(t, e.text) for t, e in zip(log.times, log.events, strict=True)
            if isinstance(e, ev.AudioOut) and e.text in CUES]


async def run_long_turn(aggressiveness: float | None, ms_per_char: float = 20.0
                        ) -> tuple[Conversation, Log, Talk]:
    conv, log, _ = session(aggressiveness, ms_per_char)
    runner = asyncio.ensure_future(conv.run())
    await asyncio.sleep(0.1)
    talk = await long_turn(conv)
    await log.wait_for(ev.AssistantFinishedSpeaking)
    conv.end("user")
    await runner
    return conv, log, talk


def in_a_pause(at: float, talk: Talk, slack: float = 0.0) -> bool:
    return any(start <= at <= end + slack for start, end in talk.pauses)


@virtual
async def test_cues_follow_the_aggressiveness_and_only_fill_pauses() -> None:
    counts: dict[float | None, int] = {}
    for aggressiveness in (None, 0.1, 0.5, 1.0):
        conv, log, talk = await run_long_turn(aggressiveness)
        cues = conv.backchannel.cues
        counts[aggressiveness] = len(cues)
        settings = conv.cfg.backchannel
        for cue in cues:
            # Started in a pause, after at least pause_ms of the caller's silence.
            assert in_a_pause(cue.started_at, talk)
            pause = next(s for s, e in talk.pauses if s <= cue.started_at <= e)
            assert cue.started_at - pause >= settings.pause_ms / 1000 - 0.04
        for at, _ in cue_frames(log):  # no cue audio was sent while the caller spoke
            assert in_a_pause(at, talk)
        # Voiced talk between cues is at least gap_s: the speech between two pauses.
        speech = [(end, start) for (_, end), (start, _) in itertools.pairwise(talk.pauses)]
        for a, b in itertools.pairwise([c.started_at for c in cues]):
            voiced = sum(min(b, e) - max(a, s) for s, e in speech if max(a, s) < min(b, e))
            assert voiced >= settings.gap_s - 0.1
        # A cue is not a turn: one user turn, one reply, nothing interrupted.
        assert [type(e).__name__ for e in log.events if isinstance(
            e, ev.AssistantStartedSpeaking | ev.UserStartedSpeaking
            | ev.UserFinishedSpeaking)] == ["UserStartedSpeaking", "UserFinishedSpeaking",
                                            "AssistantStartedSpeaking"]
        assert conv.interruptions == 0
        assert [(i.role, i.text) for i in log.items] == [("user", "a long story"),
                                                         ("assistant", "I see.")]
        assert not any(c in m.content for m in conv.chat.messages() for c in CUES
                       if isinstance(m.content, str))
    # 18 s of voiced talk: none when disabled; every 11 s at 0.1, every 7 s at 0.5,
    # every 2 s at 1.0 (whole segments of 1.5 s: after 3 s).
    assert counts == {None: 0, 0.1: 1, 0.5: 2, 1.0: 6}


@virtual
async def test_a_cue_stops_the_moment_the_caller_speaks_again() -> None:
    # Cues of ~0.4 s starting 0.2 s into a 0.5 s pause: each would run into the speech.
    conv, log, talk = await run_long_turn(1.0, ms_per_char=60.0)
    cues = conv.backchannel.cues
    # The caller speaks again after the first five; the last pause is the turn's end.
    assert [c.stopped_early for c in cues] == [True] * 5 + [False]
    resumed = [end for _, end in talk.pauses]
    for at, _ in cue_frames(log):
        # The last cue frame goes out before the caller's first voiced frame is analysed
        # (one 32 ms VAD frame plus one 20 ms chunk of slack).
        assert in_a_pause(at, talk, slack=0.06), (at, resumed)
    assert log.of(ev.ClearAudio)  # the far end drops what it had not played
    assert conv.interruptions == 0 and len(log.of(ev.InterruptedResponse)) == 0


@pytest.mark.parametrize("min_silence_ms", [250])
@virtual
async def test_no_cue_when_the_turn_would_end_first(min_silence_ms: int) -> None:
    providers = Providers(EnergyVAD(), FakeSTT(default="hi"), ScriptedLLM(), FakeTTS())
    conv, _, _ = make(providers=providers, backchannel=BackchannelSettings(True, 1.0),
                      turn=TurnSettings(min_silence_ms=min_silence_ms))
    assert not conv.backchannel.active


async def test_a_cue_reaches_the_socket_inside_the_callers_turn(make_stack: StackFactory
                                                                ) -> None:
    stack = make_stack(stt=FakeSTT(default="a long story"))  # replies: "Okay."
    client = sdk(stack.server)
    await client.agents.create(name="listener", voice_id="joe", welcome_message="",
                               enable_assistant_backchannel=True,
                               assistant_backchannel_aggressiveness=1.0)
    seen: list[Any] = []
    async with client.conversations.connect() as socket:
        await socket.send_config(config(agent="listener"))
        await collect(socket, "ready_to_start_conversation", seen)
        reader = asyncio.create_task(collect(socket, "assistant_finished_speaking", seen,
                                             within=20))
        for samples in (ws_tone(2500), ws_silence(450), ws_tone(800), ws_silence(1200)):
            await send_pcm(socket, samples, realtime=True)
        await reader
    kinds = [getattr(m, "type", "") for m in seen]
    cue = next(i for i, m in enumerate(seen) if getattr(m, "type", "") == "audio_chunk"
               and m.text in CUES)
    # The cue is heard inside the caller's turn, and the assistant's turn comes after it.
    assert kinds.index("user_started_speaking") < cue < kinds.index("user_finished_speaking")
    assert kinds.index("assistant_started_speaking") > kinds.index("user_finished_speaking")
    assert kinds.count("assistant_started_speaking") == 1
    for _ in range(100):
        conv = (await client.conversations.get(seen[0].conversation_id)).conversation
        if conv.ended_at is not None:
            break
        await asyncio.sleep(0.05)
    assert conv.enable_assistant_backchannel is True
    assert conv.assistant_backchannel_aggressiveness == 1.0
    assert [(i.role, i.live_transcript) for i in conv.items] == [
        ("user", "a long story"), ("assistant", "Okay.")]  # the cue is not an item
    assert conv.analysis.interruptions_count == 0
