"""The local pacer (the default audio sink) and the playout loop, on virtual time."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import numpy as np
import pytest

from openline.audio.codecs import WIRE_FORMATS
from openline.audio.noise import NoiseGenerator
from openline.voice.clock import VirtualClock
from openline.voice.events import AudioOut
from openline.voice.io import FRAME_MS, LEAD_S, LocalPacer, SpeechFrame
from openline.voice.playout import Playout
from openline.voice.speech import SpeechHandle
from tests.voice.harness import MarkSink, virtual

FMT = WIRE_FORMATS["pcm_16000"]
FRAME = FMT.sample_rate * FRAME_MS // 1000  # 640 samples
clock = VirtualClock()


@dataclass
class Wire:
    sent: list[tuple[float, AudioOut]] = field(default_factory=list)

    async def send(self, event: AudioOut) -> None:
        self.sent.append((clock.monotonic(), event))


def _frames(n: int, words: str = "") -> list[SpeechFrame]:
    return [SpeechFrame(np.full(FRAME, 100, np.int16), words) for _ in range(n)]


async def _pacer(realtime: bool = True, noise: NoiseGenerator | None = None
                 ) -> tuple[LocalPacer, Wire, asyncio.Task[None]]:
    wire = Wire()
    pacer = LocalPacer(FMT, wire.send, clock=clock, realtime=realtime, noise=noise)
    return pacer, wire, asyncio.create_task(pacer.run())


@virtual
async def test_frames_go_out_in_real_time_with_a_small_lead() -> None:
    pacer, wire, runner = await _pacer()
    t0 = clock.monotonic()
    for frame in _frames(25):  # one second of audio
        await pacer.capture_frame(frame)
    pacer.flush()
    finished = await pacer.wait_for_playout()
    assert clock.monotonic() - t0 == pytest.approx(1.0)  # reported once it has played
    assert (finished.position, finished.interrupted) == (25 * FRAME, False)
    offsets = [t - t0 for t, _ in wire.sent]
    expected = [max(0.0, i * FRAME_MS / 1000 - LEAD_S) for i in range(25)]
    assert offsets == pytest.approx(expected)
    assert pacer.underruns == 0
    runner.cancel()


@virtual
async def test_clear_reports_what_was_played_not_what_was_sent() -> None:
    pacer, wire, runner = await _pacer()
    t0 = clock.monotonic()
    for frame in _frames(13):
        await pacer.capture_frame(frame)
    assert clock.monotonic() - t0 == pytest.approx(0.36)  # frame 12 went out 120 ms early
    await asyncio.sleep(0.13)  # t = 0.49: frames 0..11 (ending at 0.48) have played
    pacer.clear_buffer()
    finished = await pacer.wait_for_playout()
    assert (finished.position, finished.interrupted) == (12 * FRAME, True)
    assert finished.position_ms == 480
    assert len(wire.sent) == 13
    # The next segment starts afresh: pacing restarts with the same small lead.
    await pacer.capture_frame(_frames(1)[0])
    assert wire.sent[-1][0] == clock.monotonic()
    runner.cancel()


@virtual
async def test_stream_ahead_sends_at_once_and_counts_sent_as_played() -> None:
    pacer, wire, runner = await _pacer(realtime=False)
    for frame in _frames(50):
        await pacer.capture_frame(frame)
    pacer.flush()
    finished = await pacer.wait_for_playout()
    assert {t for t, _ in wire.sent} == {0.0} and clock.monotonic() == 0.0
    assert (finished.position, finished.interrupted) == (50 * FRAME, False)
    runner.cancel()


@virtual
async def test_an_underrun_mid_utterance_is_counted_once_and_pacing_restarts() -> None:
    pacer, wire, runner = await _pacer()
    for frame in _frames(5):
        await pacer.capture_frame(frame)
    await asyncio.sleep(1.0)  # the producer stalls: the far end runs dry
    restart = clock.monotonic()
    for frame in _frames(5):
        await pacer.capture_frame(frame)
    assert pacer.underruns == 1
    assert [t - restart for t, _ in wire.sent[5:8]] == [0.0, 0.0, 0.0]  # no burst to catch up
    pacer.flush()
    await pacer.wait_for_playout()
    await asyncio.sleep(2.0)
    for frame in _frames(3):  # a new utterance after silence is not an underrun
        await pacer.capture_frame(frame)
    assert pacer.underruns == 1
    runner.cancel()


@virtual
async def test_background_noise_flows_only_while_nobody_speaks() -> None:
    noise = NoiseGenerator("office", FMT.sample_rate, 0.1, seed=1)
    pacer, wire, runner = await _pacer(noise=noise)
    await asyncio.sleep(1.0)
    idle = [e for _, e in wire.sent]
    # 25 frames a second, plus the lead (3 frames) sent at once.
    assert len(idle) == 25 + round(LEAD_S * 1000 / FRAME_MS)
    assert all(e.text == "" for e in idle)
    start = len(wire.sent)
    for frame in _frames(25, "word"):
        await pacer.capture_frame(frame)
    pacer.flush()
    await pacer.wait_for_playout()
    speech = [e for _, e in wire.sent[start:start + 25]]
    assert [e.text for e in speech] == ["word"] * 25  # no noise frame slipped in between
    assert {e.text for _, e in wire.sent[start + 25:]} == {""}  # the noise bed resumes
    samples = np.frombuffer(speech[0].audio, np.int16)
    assert not np.all(samples == 100)  # speech carries the noise bed too
    runner.cancel()


async def _playout(sink: LocalPacer | MarkSink) -> tuple[Playout, list[str], asyncio.Task[None]]:
    seen: list[str] = []

    async def started(h: SpeechHandle) -> None:
        seen.append(f"start {h.kind}")

    async def finished(h: SpeechHandle) -> None:
        seen.append(f"finish {h.kind} {'cut' if h.interrupted else 'done'}")

    playout = Playout(FMT, sink, clock=clock, on_start=started, on_finish=finished)
    return playout, seen, asyncio.create_task(playout.run())


def _sentence(handle: SpeechHandle, words: str, frames: int) -> None:
    handle.put(np.full(frames * FRAME, 100, np.int16), words)


@virtual
async def test_words_are_spread_over_the_frames_that_speak_them() -> None:
    pacer, wire, runner = await _pacer(realtime=False)
    playout, seen, player = await _playout(pacer)
    handle = SpeechHandle("say")
    _sentence(handle, "one two three", 6)
    _sentence(handle, "four", 2)
    handle.close()
    playout.enqueue(handle)
    await handle.wait_for_playout()
    # Each word rides on one frame within its share of the sentence (round half to even).
    assert [e.text for _, e in wire.sent] == ["", "one", "two", "", "", "three", "", "four"]
    assert handle.heard_text == handle.text == "one two three four"
    assert seen == ["start say", "finish say done"]
    runner.cancel()
    player.cancel()


@virtual
async def test_interrupt_stops_the_current_utterance_and_drops_queued_ones() -> None:
    pacer, _, runner = await _pacer()
    playout, seen, player = await _playout(pacer)
    first, queued, kept = (SpeechHandle("reply"), SpeechHandle("say"),
                           SpeechHandle("say", interruptible=False))
    for handle, words in ((first, "alpha beta gamma delta"), (queued, "dropped"),
                          (kept, "kept")):
        _sentence(handle, words, 20)
        handle.close()
        playout.enqueue(handle)
    await asyncio.sleep(0.45)  # frames 0..10 of 20 played (each 40 ms)
    assert playout.interrupt() is first
    await first.wait_for_playout()
    assert first.interrupted and first.played_samples == 11 * FRAME
    assert first.heard_text == "alpha beta"  # words sit on frames 2, 7, 12, 17
    assert queued.interrupted and queued.done() and not queued.started
    await kept.wait_for_playout()
    assert kept.heard_text == "kept" and not kept.interrupted
    assert seen == ["start reply", "finish reply cut", "start say", "finish say done"]
    runner.cancel()
    player.cancel()


@virtual
async def test_an_uninterruptible_utterance_ignores_interrupt() -> None:
    pacer, _, runner = await _pacer(realtime=False)
    playout, _, player = await _playout(pacer)
    handle = SpeechHandle("welcome", interruptible=False)
    playout.enqueue(handle)
    _sentence(handle, "hello there", 4)
    await asyncio.sleep(0)
    assert playout.interrupt() is None and not handle.interrupted
    handle.close()
    await handle.wait_for_playout()
    assert handle.heard_text == "hello there"
    runner.cancel()
    player.cancel()
