"""An in-repo fake of the parts of Twilio an agent talks to, on 127.0.0.1.

* **REST** (aiohttp): Calls create and update with HTTP Basic auth (401 with Twilio's
  body otherwise). Like Twilio, an update answers at once and applies the change in the
  background: new TwiML ends the running stream (``stop``, close) and then runs.
* **Webhooks** it sends are form-encoded and signed with ``RequestValidator``: the voice
  URL of an inbound call, status callbacks (the subscribed events, ``completed`` always),
  the async AMD result, ``<Dial action>`` and the dialled number's status callback.
* **TwiML executor**: ``<Connect><Stream>`` (no ``?`` allowed in the URL) with its
  ``<Parameter>``s blocks until the stream closes; ``<Play digits>``, ``<Dial><Number>``
  (outcome scripted per number), ``<Say>``, ``<Pause>``, ``<Hangup>``, ``<Reject>``.
* **Media Streams client** (``MediaStream``): signs the upgrade over the ``ws://`` URL,
  sends ``connected``/``start``/``media`` (string numbers, 20 ms frames in real time,
  silence when the caller says nothing)/``dtmf``/``stop``; a playback clock plays the
  agent's audio at 8000 bytes/s, echoes each mark once the audio before it has played,
  and on ``clear`` drops its queue and echoes every pending mark at once.

Everything is logged on the ``FakeCall`` for assertions.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import time
import uuid
import xml.etree.ElementTree as ET
from collections import deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import httpx
from aiohttp import web
from twilio.request_validator import RequestValidator
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

ACCOUNT_SID = "AC" + "1" * 32
AUTH_TOKEN = "fake-twilio-auth-token"
FRAME = 160  # 20 ms of μ-law
SILENT = b"\xff" * FRAME
STATUS_OF_EVENT = {"initiated": "initiated", "ringing": "ringing", "answered": "in-progress",
                   "completed": "completed"}


def sid(prefix: str) -> str:
    return prefix + uuid.uuid4().hex


@dataclass
class Played:
    at: float
    audio: bytes


class MediaStream:
    """The caller's side of one Media Streams connection."""

    def __init__(self, fake: FakeTwilio, call: FakeCall, url: str,
                 parameters: dict[str, str]) -> None:
        self.fake, self.call, self.url, self.parameters = fake, call, url, parameters
        self.stream_sid = sid("MZ")
        self.ws: ClientConnection | None = None
        self.rejected: int | None = None
        self.received: list[dict[str, Any]] = []
        self.played: list[Played] = []
        self.marks: list[tuple[str, float, bool]] = []  # (name, when, echoed by a clear)
        self.clears: list[float] = []
        self.bad_frames = 0  # media payloads that were not whole 20 ms frames
        self.closed = asyncio.Event()
        self.stopped_by_twilio = False
        self._queue: deque[tuple[str, bytes | str]] = deque()
        self._outgoing: asyncio.Queue[tuple[bytes, asyncio.Future[None]]] = asyncio.Queue()
        self._seq = 0
        self._chunk = 0
        self._tasks: list[asyncio.Task[None]] = []
        self.last_voiced_sent_at: float | None = None

    # ----- connection -------------------------------------------------------------------
    def connect_options(self) -> dict[str, Any]:
        """Extra ``websockets.connect`` options (a load client tunes them)."""
        return {}

    def start_tasks(self) -> None:
        """The tasks that play Twilio's side once the stream has started."""
        for work in (self._reader(), self._playback(), self._line()):
            self._tasks.append(asyncio.create_task(work))

    async def open(self, signature: str | None = None) -> bool:
        headers = {"X-Twilio-Signature": signature if signature is not None
                   else self.fake.validator.compute_signature(self.url, {})}
        try:
            self.ws = await connect(self.url, additional_headers=headers,
                                    **self.connect_options())
        except InvalidStatus as exc:
            self.rejected = exc.response.status_code
            self.closed.set()
            return False
        await self._send({"event": "connected", "protocol": "Call", "version": "1.0.0"})
        await self._send({"event": "start", "start": {
            "accountSid": self.fake.account_sid, "streamSid": self.stream_sid,
            "callSid": self.call.sid, "tracks": ["inbound"],
            "customParameters": self.parameters,
            "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}},
            "streamSid": self.stream_sid}, numbered=True)
        self.start_tasks()
        return True

    async def _send(self, message: dict[str, Any], numbered: bool = False) -> None:
        if numbered:
            self._seq += 1
            message["sequenceNumber"] = str(self._seq)
        assert self.ws is not None
        with contextlib.suppress(ConnectionClosed):
            await self.ws.send(json.dumps(message))

    async def stop(self) -> None:
        """Twilio ends the stream: ``stop``, then the socket closes."""
        if self.ws is None or self.closed.is_set():
            return
        await self._send({"event": "stop", "stop": {"accountSid": self.fake.account_sid,
                                                    "callSid": self.call.sid},
                          "streamSid": self.stream_sid}, numbered=True)
        await self.ws.close()
        await self._finish()

    async def drop(self) -> None:
        """The socket goes away without ``stop``."""
        if self.ws is not None:
            await self.ws.close()
        await self._finish()

    async def _finish(self) -> None:
        self.closed.set()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    # ----- caller -> agent --------------------------------------------------------------
    async def say(self, mulaw: bytes) -> None:
        """Speak ``mulaw`` (8 kHz) in real time; returns once the last frame was sent."""
        frames = [mulaw[i:i + FRAME].ljust(FRAME, b"\xff") for i in range(0, len(mulaw), FRAME)]
        done: list[asyncio.Future[None]] = []
        for frame in frames:
            future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            await self._outgoing.put((frame, future))
            done.append(future)
        if done:
            await asyncio.wait_for(asyncio.gather(*done), len(frames) * 0.05 + 5)
        self.last_voiced_sent_at = time.monotonic()

    async def dtmf(self, digit: str) -> None:
        await self._send({"event": "dtmf", "streamSid": self.stream_sid,
                          "dtmf": {"track": "inbound_track", "digit": digit}}, numbered=True)

    async def _line(self) -> None:
        """The phone line: 20 ms frames in real time, silence when nobody speaks."""
        next_at = time.monotonic()
        while True:
            try:
                frame, future = self._outgoing.get_nowait()
            except asyncio.QueueEmpty:
                frame, future = SILENT, None
            self._chunk += 1
            await self._send({"event": "media", "streamSid": self.stream_sid, "media": {
                "track": "inbound", "chunk": str(self._chunk),
                "timestamp": str((self._chunk - 1) * 20),
                "payload": base64.b64encode(frame).decode()}}, numbered=True)
            if future is not None and not future.done():
                future.set_result(None)
            next_at += 0.02
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))

    # ----- agent -> caller ----------------------------------------------------------------
    async def _reader(self) -> None:
        assert self.ws is not None
        try:
            async for raw in self.ws:
                msg = json.loads(raw)
                msg["_at"] = time.monotonic()
                self.received.append(msg)
                self._handle(msg)
        except ConnectionClosed:
            pass
        finally:
            self.closed.set()

    def _handle(self, msg: dict[str, Any]) -> None:
        assert msg.get("streamSid") == self.stream_sid, msg
        kind = msg.get("event")
        if kind == "media":
            audio = base64.b64decode(msg["media"]["payload"])
            if len(audio) % FRAME:
                self.bad_frames += 1
            for i in range(0, len(audio), FRAME):
                self._queue.append(("audio", audio[i:i + FRAME]))
        elif kind == "mark":
            self._queue.append(("mark", msg["mark"]["name"]))
            self._echo_ready()
        elif kind == "clear":
            self.clears.append(time.monotonic())
            pending = [name for what, name in self._queue if what == "mark"]
            self._queue.clear()
            for name in pending:
                self._echo(str(name), cleared=True)

    def _echo(self, name: str, cleared: bool = False) -> None:
        self.marks.append((name, time.monotonic(), cleared))
        asyncio.get_running_loop().create_task(self._send(
            {"event": "mark", "streamSid": self.stream_sid, "mark": {"name": name}},
            numbered=True))

    def _echo_ready(self) -> None:
        while self._queue and self._queue[0][0] == "mark":
            self._echo(str(self._queue.popleft()[1]))

    async def _playback(self) -> None:
        """Plays 160 bytes every 20 ms."""
        next_at = time.monotonic()
        while True:
            next_at += 0.02
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
            if self._queue and self._queue[0][0] == "audio":
                audio = self._queue.popleft()[1]
                assert isinstance(audio, bytes)
                self.played.append(Played(time.monotonic(), audio))
            self._echo_ready()

    # ----- assertions -------------------------------------------------------------------
    def sent(self, event: str) -> list[dict[str, Any]]:
        return [m for m in self.received if m.get("event") == event]

    def played_audio(self) -> bytes:
        return b"".join(p.audio for p in self.played)

    async def wait_played(self, seconds: float, within: float = 20.0) -> None:
        """Until ``seconds`` of agent audio have been played."""
        await until(lambda: len(self.played) * 0.02 >= seconds - 1e-6, within, 0.02)

    async def wait_quiet(self, quiet_s: float = 0.6, within: float = 30.0) -> None:
        """Until the agent has been silent for ``quiet_s`` after speaking."""
        await until(lambda: bool(self.played) and not self._queue
                    and time.monotonic() - self.played[-1].at >= quiet_s, within)


@dataclass
class FakeCall:
    sid: str
    direction: str
    from_: str
    to: str
    form: dict[str, list[str]] = field(default_factory=dict)
    status: str = "queued"
    streams: list[MediaStream] = field(default_factory=list)
    verbs: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    said: list[str] = field(default_factory=list)
    digits: list[str] = field(default_factory=list)
    dials: list[dict[str, str]] = field(default_factory=list)
    updates: list[dict[str, list[str]]] = field(default_factory=list)
    #: every webhook the fake sent: (url, form, HTTP status of the reply, when it was sent)
    callbacks: list[tuple[str, dict[str, str], int, float]] = field(default_factory=list)
    executor: asyncio.Task[None] | None = None
    ended: asyncio.Event = field(default_factory=asyncio.Event)
    stream_started: asyncio.Event = field(default_factory=asyncio.Event)

    def value(self, key: str) -> str | None:
        values = self.form.get(key)
        return values[0] if values else None

    async def stream(self, index: int = -1, within: float = 10.0) -> MediaStream:
        """The call's stream (the latest by default), once it has been opened."""
        async with asyncio.timeout(within):
            while not self.streams or (index >= 0 and len(self.streams) <= index):
                self.stream_started.clear()
                await self.stream_started.wait()
        return self.streams[index]

    async def wait_streams(self, count: int, within: float = 15.0) -> MediaStream:
        return await self.stream(count - 1, within)

    def statuses(self) -> list[str]:
        return [form.get("CallStatus", "") for url, form, _, _ in self.callbacks
                if "/status" in url]

    def sent_at(self, path_part: str) -> float:
        """When the first webhook whose URL contains ``path_part`` was sent."""
        return next(at for url, _, _, at in self.callbacks if path_part in url)


class FakeTwilio:
    """See the module docstring."""

    def __init__(self, account_sid: str = ACCOUNT_SID, auth_token: str = AUTH_TOKEN) -> None:
        self.account_sid, self.auth_token = account_sid, auth_token
        self.validator = RequestValidator(auth_token)
        self.calls: dict[str, FakeCall] = {}
        #: outbound outcome per number: human, machine_end_beep, busy, no-answer, failed
        self.answers: dict[str, str] = {}
        #: transfer outcome per number: answered, no-answer, busy; a list gives one
        #: outcome per dial in turn (the last one repeats)
        self.dial_answers: dict[str, str | list[str]] = {}
        self.amd_delay_s = 0.8
        self.ring_s = 0.1
        self.bridge_s = 0.3
        self.rest_failures: list[tuple[str, int]] = []
        self.rest_delay_s = 0.0
        #: the Media Streams client each ``<Connect><Stream>`` opens (a benchmark swaps in
        #: a cheaper one)
        self.stream_class: type[MediaStream] = MediaStream
        self.url = ""
        self._created: asyncio.Queue[FakeCall] = asyncio.Queue()
        self._runner: web.AppRunner | None = None
        self._http = httpx.AsyncClient(timeout=30)
        self._tasks: set[asyncio.Task[Any]] = set()

    # ----- server -----------------------------------------------------------------------
    async def start(self) -> None:
        app = web.Application()
        base = "/2010-04-01/Accounts/{account}/Calls"
        app.router.add_post(base + ".json", self._create)
        app.router.add_post(base + "/{sid}.json", self._update)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for call in self.calls.values():
            for stream in call.streams:
                await stream.drop()
        if self._runner is not None:
            await self._runner.cleanup()
        await self._http.aclose()

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _authorized(self, request: web.Request) -> bool:
        scheme, _, value = request.headers.get("Authorization", "").partition(" ")
        if scheme != "Basic":
            return False
        user, _, password = base64.b64decode(value).decode().partition(":")
        return (user, password) == (self.account_sid, self.auth_token) \
            and request.match_info["account"] == self.account_sid

    @staticmethod
    def _denied() -> web.Response:
        return web.json_response({"code": 20003, "message": "Authenticate",
                                  "more_info": "https://www.twilio.com/docs/errors/20003",
                                  "status": 401}, status=401)

    async def _form(self, request: web.Request) -> dict[str, list[str]]:
        form = await request.post()
        return {key: [str(v) for v in form.getall(key)] for key in set(form.keys())}

    def _resource(self, call: FakeCall, status: str) -> dict[str, Any]:
        return {"sid": call.sid, "status": status, "to": call.to, "from": call.from_,
                "account_sid": self.account_sid, "direction": call.direction,
                "api_version": "2010-04-01"}

    async def _create(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return self._denied()
        form = await self._form(request)
        to, from_ = form.get("To", [""])[0], form.get("From", [""])[0]
        for number, code in self.rest_failures:
            if number == to:
                return web.json_response({"code": code, "message": f"The 'To' number {to} "
                                          "is not a valid phone number.", "status": 400},
                                         status=400)
        call = FakeCall(sid("CA"), "outbound-api", from_, to, form)
        self.calls[call.sid] = call
        self._created.put_nowait(call)
        call.executor = self.spawn(self._run_outbound(call))
        return web.json_response(self._resource(call, "queued"), status=201)

    async def _update(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return self._denied()
        call = self.calls.get(request.match_info["sid"])
        if call is None:
            return web.json_response({"code": 20404, "message": "Not found", "status": 404},
                                     status=404)
        form = await self._form(request)
        call.updates.append(form)
        if self.rest_delay_s:
            await asyncio.sleep(self.rest_delay_s)
        self.spawn(self._apply_update(call, form))
        return web.json_response(self._resource(call, "in-progress"))

    async def _apply_update(self, call: FakeCall, form: dict[str, list[str]]) -> None:
        await self._cancel_executor(call)
        if call.streams:
            await call.streams[-1].stop()
        if "Twiml" in form:
            call.executor = self.spawn(self._execute(call, form["Twiml"][0]))
        elif form.get("Status", [""])[0] in ("completed", "canceled"):
            await self._end(call, form["Status"][0])

    async def _cancel_executor(self, call: FakeCall) -> None:
        task, call.executor = call.executor, None
        if task is not None and task is not asyncio.current_task() and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    # ----- calls ------------------------------------------------------------------------
    async def next_call(self, within: float = 10.0) -> FakeCall:
        """The next call Openline creates."""
        return await asyncio.wait_for(self._created.get(), within)

    async def inbound(self, voice_url: str, from_: str, to: str, *,
                      signature: str | None = None) -> tuple[FakeCall, httpx.Response]:
        """Twilio receives a call for ``to``: it asks the voice URL and runs the TwiML."""
        call = FakeCall(sid("CA"), "inbound", from_, to)
        self.calls[call.sid] = call
        params = {"CallSid": call.sid, "AccountSid": self.account_sid, "From": from_, "To": to,
                  "CallStatus": "ringing", "Direction": "inbound", "ApiVersion": "2010-04-01"}
        reply = await self.post(voice_url, params, call, signature=signature)
        if reply.status_code == 200:
            call.status = "in-progress"
            call.executor = self.spawn(self._execute(call, reply.text))
        return call, reply

    async def post(self, url: str, params: dict[str, str], call: FakeCall | None = None, *,
                   signature: str | None = None) -> httpx.Response:
        """A signed webhook (``signature``: send this one instead; "" sends none)."""
        sig = self.validator.compute_signature(url, params) if signature is None else signature
        headers = {"X-Twilio-Signature": sig} if sig else {}
        at = time.monotonic()
        reply = await self._http.post(url, data=params, headers=headers)
        if call is not None:
            call.callbacks.append((url, params, reply.status_code, at))
        return reply

    async def _status(self, call: FakeCall, event: str, status: str | None = None) -> None:
        url = call.value("StatusCallback")
        if not url or (event != "completed" and event not in call.form.get(
                "StatusCallbackEvent", [])):
            return
        await self.post(url, {"CallSid": call.sid, "AccountSid": self.account_sid,
                              "From": call.from_, "To": call.to,
                              "CallStatus": status or STATUS_OF_EVENT[event],
                              "Direction": call.direction, "ApiVersion": "2010-04-01",
                              "CallbackSource": "call-progress-events",
                              "Timestamp": time.strftime("%a, %d %b %Y %H:%M:%S +0000")}, call)

    async def _run_outbound(self, call: FakeCall) -> None:
        await asyncio.sleep(0.05)  # Twilio's REST reply reaches the caller first
        call.status = "initiated"
        await self._status(call, "initiated")
        await asyncio.sleep(self.ring_s)
        call.status = "ringing"
        await self._status(call, "ringing")
        outcome = self.answers.get(call.to, "human")
        if outcome in ("busy", "no-answer", "failed"):
            await self._end(call, outcome)
            return
        call.status = "in-progress"
        await self._status(call, "answered")
        amd = call.value("AsyncAmdStatusCallback")
        if call.value("MachineDetection") and amd:
            self.spawn(self._amd(call, amd, outcome))
        await self._execute(call, call.value("Twiml") or "<Response/>")

    async def _amd(self, call: FakeCall, url: str, answered_by: str) -> None:
        await asyncio.sleep(self.amd_delay_s)
        await self.post(url, {"CallSid": call.sid, "AccountSid": self.account_sid,
                              "AnsweredBy": answered_by,
                              "MachineDetectionDuration": "1830"}, call)

    async def _end(self, call: FakeCall, status: str) -> None:
        if call.ended.is_set():
            return
        call.status = status
        call.ended.set()
        await self._status(call, "completed", status)

    async def hang_up(self, call: FakeCall) -> None:
        """The caller hangs up: the stream stops and the call completes."""
        await self._cancel_executor(call)
        if call.streams:
            await call.streams[-1].stop()
        await self._end(call, "completed")

    # ----- TwiML ------------------------------------------------------------------------
    async def _execute(self, call: FakeCall, document: str) -> None:
        for verb in ET.fromstring(document):
            call.verbs.append((verb.tag, dict(verb.attrib)))
            if verb.tag == "Connect":
                await self._connect(call, verb)
            elif verb.tag == "Play":
                call.digits.append(verb.get("digits", ""))
                await asyncio.sleep(0.05 * len(verb.get("digits", "")))
            elif verb.tag == "Say":
                call.said.append(verb.text or "")
            elif verb.tag == "Pause":
                await asyncio.sleep(float(verb.get("length", "1")) / 10)
            elif verb.tag == "Dial":
                follow_up = await self._dial(call, verb)
                if follow_up is not None:
                    await self._execute(call, follow_up)
                    return
            elif verb.tag in ("Hangup", "Reject"):
                break
        await self._end(call, "completed")

    async def _connect(self, call: FakeCall, verb: ET.Element) -> None:
        element = verb.find("Stream")
        assert element is not None
        url = element.get("url", "")
        assert "?" not in url, "Twilio drops query strings from stream URLs"
        params = {p.get("name", ""): p.get("value", "") for p in element.findall("Parameter")}
        stream = self.stream_class(self, call, url, params)
        call.streams.append(stream)
        await stream.open()
        call.stream_started.set()
        await stream.closed.wait()

    def _dial_outcome(self, number: str) -> str:
        outcome = self.dial_answers.get(number, "answered")
        if isinstance(outcome, str):
            return outcome
        return outcome.pop(0) if len(outcome) > 1 else outcome[0]

    async def _dial(self, call: FakeCall, verb: ET.Element) -> str | None:
        number = verb.find("Number")
        target = (number.text or "").strip() if number is not None else ""
        leg = {**verb.attrib, **(number.attrib if number is not None else {}),
               "number": target}
        call.dials.append(leg)
        outcome = self._dial_outcome(target)
        child = sid("CA")
        if outcome == "answered":
            if leg.get("statusCallback") and "answered" in leg.get("statusCallbackEvent", ""):
                await self.post(leg["statusCallback"], {
                    "CallSid": child, "ParentCallSid": call.sid, "CallStatus": "in-progress",
                    "AccountSid": self.account_sid, "To": target}, call)
            await asyncio.sleep(self.bridge_s)
            status = "completed"
        else:
            await asyncio.sleep(0.2)
            status = outcome
        action = verb.get("action")
        if not action:
            return None
        reply = await self.post(action, {"CallSid": call.sid, "AccountSid": self.account_sid,
                                         "DialCallStatus": status, "DialCallSid": child,
                                         "DialCallDuration": "1" if status == "completed"
                                         else "0"}, call)
        return reply.text if reply.status_code == 200 else None


Check = Callable[[], bool]


async def until(check: Check, within: float = 10.0, step: float = 0.05) -> None:
    """Poll ``check`` until it holds (for effects that arrive over the network)."""
    async with asyncio.timeout(within):
        while True:
            if check():
                return
            await asyncio.sleep(step)
