"""A cheap Media Streams client for the concurrent-calls benchmark (``twilio_calls.py``).

The fake Twilio's own client (``tests/telephony/fake_twilio.py`` ``MediaStream``) is
written for assertions: three tasks per call (the line, the playback clock, the reader),
a JSON object encoded per frame, every played frame kept with its audio. At 100 calls
that is ~15,000 task wake-ups and ~5,000 ``json.dumps`` a second in one Python process,
on the same two cores as the server under test, so the load generator, not the server,
sets the event-loop lag.

``LeanStream`` behaves the same on the wire: 20 ms ``media`` frames on an absolute clock
(silence between utterances), a playback clock at 8000 bytes/s that echoes each mark once
the audio queued before it has played, ``clear`` drops the queue and echoes the pending
marks. But one ``LineHub`` task drives the line and the playback clock of every call on
one 20 ms tick, outgoing frames are formatted strings around a pre-encoded payload, and
the reader counts the agent's audio without decoding it.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import time
from collections import deque
from typing import Any

from _common import Ticker
from tests.telephony.fake_twilio import FRAME, FakeTwilio, MediaStream, until
from websockets.exceptions import ConnectionClosed

SILENT_B64 = base64.b64encode(b"\xff" * FRAME).decode()
PAYLOAD = '"payload":"'


class LineHub:
    """One task for every call's line and playback clock (a 20 ms absolute tick)."""

    def __init__(self) -> None:
        self.streams: list[LeanStream] = []
        self._task: asyncio.Task[None] | None = None
        #: ticks that started more than 10 ms late (the client fell behind real time)
        self.late_ticks = 0
        self.ticks = 0

    def add(self, stream: LeanStream) -> None:
        self.streams.append(stream)
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    def remove(self, stream: LeanStream) -> None:
        with contextlib.suppress(ValueError):
            self.streams.remove(stream)

    async def _run(self) -> None:
        ticker = Ticker()
        while True:
            due = ticker.t0 + ticker.k * 0.02
            await ticker.tick()
            self.ticks += 1
            if time.perf_counter() - due > 0.010:
                self.late_ticks += 1
            for stream in list(self.streams):
                await stream.step()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


HUB = LineHub()


class LeanStream(MediaStream):
    """``MediaStream`` on the wire, driven by ``HUB`` (see the module docstring)."""

    def __init__(self, fake: FakeTwilio, call: Any, url: str,
                 parameters: dict[str, str]) -> None:
        super().__init__(fake, call, url, parameters)
        self._say: deque[str] = deque()  # base64 payloads still to speak
        self._said: asyncio.Future[None] | None = None
        self._play: deque[list[int] | str] = deque()  # [frames left] or a mark's name
        self.frames_played = 0
        #: when playback started after the queue had run dry (the first frame of a reply)
        self.play_starts: list[float] = []
        self.last_play_at = 0.0
        self._idle = True

    def connect_options(self) -> dict[str, Any]:
        return {"compression": None, "max_queue": None}

    def start_tasks(self) -> None:
        """One reader per call; the shared hub drives every call's line and playback."""
        self._tasks.append(asyncio.create_task(self._lean_reader()))
        HUB.add(self)

    async def _finish(self) -> None:
        HUB.remove(self)
        await super()._finish()

    # ----- caller -> agent --------------------------------------------------------------
    async def say(self, mulaw: bytes) -> None:
        frames = [mulaw[i:i + FRAME].ljust(FRAME, b"\xff") for i in range(0, len(mulaw), FRAME)]
        self._say.extend(base64.b64encode(f).decode() for f in frames)
        self._said = asyncio.get_running_loop().create_future()
        await asyncio.wait_for(self._said, len(frames) * 0.05 + 5)

    async def step(self) -> None:
        """One 20 ms tick: a line frame up, one frame of the agent's audio played."""
        assert self.ws is not None
        payload = self._say.popleft() if self._say else SILENT_B64
        self._chunk += 1
        self._seq += 1
        out = [f'{{"event":"media","sequenceNumber":"{self._seq}","media":{{"track":'
               f'"inbound","chunk":"{self._chunk}","timestamp":"{(self._chunk - 1) * 20}",'
               f'"payload":"{payload}"}},"streamSid":"{self.stream_sid}"}}']
        if payload is not SILENT_B64 and not self._say:
            self.last_voiced_sent_at = time.monotonic()
            if self._said is not None and not self._said.done():
                self._said.set_result(None)
        self._play_one(out)
        try:
            for message in out:
                await self.ws.send(message)
        except ConnectionClosed:
            HUB.remove(self)

    def _play_one(self, out: list[str]) -> None:
        head = self._play[0] if self._play else None
        if isinstance(head, list):
            now = time.monotonic()
            if self._idle:
                self.play_starts.append(now)
                self._idle = False
            self.frames_played += 1
            self.last_play_at = now
            head[0] -= 1
            if head[0] <= 0:
                self._play.popleft()
        elif head is None:
            self._idle = True
        self._echo_marks(out)

    def _echo_marks(self, out: list[str]) -> None:
        while self._play and isinstance(self._play[0], str):
            name = self._play.popleft()
            self._seq += 1
            out.append(f'{{"event":"mark","sequenceNumber":"{self._seq}","streamSid":'
                       f'"{self.stream_sid}","mark":{{"name":{json.dumps(name)}}}}}')

    # ----- agent -> caller ----------------------------------------------------------------
    async def _lean_reader(self) -> None:
        assert self.ws is not None
        try:
            async for raw in self.ws:
                text = raw if isinstance(raw, str) else raw.decode()
                if text.startswith('{"event":"media"'):
                    start = text.index(PAYLOAD) + len(PAYLOAD)
                    b64 = text[start:text.index('"', start)]
                    size = len(b64) * 3 // 4 - b64.count("=", len(b64) - 2)
                    if size % FRAME:
                        self.bad_frames += 1
                    if self._play and isinstance(self._play[-1], list):
                        self._play[-1][0] += size // FRAME
                    else:
                        self._play.append([size // FRAME])
                    continue
                msg = json.loads(text)
                if msg.get("event") == "mark":
                    self._play.append(str(msg["mark"]["name"]))
                    out: list[str] = []
                    self._echo_marks(out)
                    for message in out:
                        await self.ws.send(message)
                elif msg.get("event") == "clear":
                    self.clears.append(time.monotonic())
                    pending = [m for m in self._play if isinstance(m, str)]
                    self._play.clear()
                    for name in pending:
                        self._play.append(name)
                    out = []
                    self._echo_marks(out)
                    for message in out:
                        await self.ws.send(message)
        except ConnectionClosed:
            pass
        finally:
            self.closed.set()

    # ----- measures -----------------------------------------------------------------------
    def quiet_for(self, seconds: float) -> bool:
        return not self._play and self.frames_played > 0 and \
            time.monotonic() - self.last_play_at >= seconds


async def lean_turn(stream: LeanStream, audio: bytes, within: float = 30.0) -> float:
    """Say ``audio``; voice-to-voice in ms at the playback clock (first reply frame)."""
    await stream.say(audio)
    voiced_end_at = stream.last_voiced_sent_at
    assert voiced_end_at is not None
    await until(lambda: bool(stream.play_starts) and stream.play_starts[-1] > voiced_end_at,
                within, 0.01)
    first = next(t for t in stream.play_starts if t > voiced_end_at)
    await until(lambda: stream.quiet_for(0.8), within)
    return (first - voiced_end_at) * 1000
