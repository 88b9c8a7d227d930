"""SIPp as the real SIP peer of an Openline server whose SIP endpoint listens on loopback.

Every SIPp run gets its own free ports, a hard wall-clock limit (SIPp's ``-timeout`` does
not always stop a UAS whose peer vanished) and its message trace, which the tests read to
assert on what SIPp saw.
"""

from __future__ import annotations

import asyncio
import dataclasses
import socket
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from phonic import AsyncPhonic, PhonicEnvironment

from openline.providers.testing import FakeSTT, ScriptedLLM, ScriptedReply
from openline.services.telephony.sip import SipService
from openline.transports.sip import SipCallStats
from tests.conftest import LiveServer, fake_providers, start_server

SCENARIOS = Path(__file__).parent / "scenarios"
AGENT_NUMBER = "+15550001000"
CALLER = "+15557770101"
SENTENCE = "Hello, I would like to book an appointment for Tuesday."


def free_udp_port(even: bool = False) -> int:
    """A UDP port free now (with its neighbours, for RTP/RTCP pairs)."""
    for _ in range(200):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if even and port % 2:
            continue
        if port > 65000:
            continue
        ok = True
        for extra in (1, 2, 3):
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
                try:
                    probe.bind(("127.0.0.1", port + extra))
                except OSError:
                    ok = False
        if ok:
            return port
    raise RuntimeError("no free UDP port")


@dataclass
class SippRun:
    rc: int
    output: str
    messages: str

    def sent(self, start: str) -> list[str]:
        """Messages SIPp sent that start with ``start`` (e.g. ``ACK``)."""
        return [m for d, m in _messages(self.messages) if d == "sent" and
                m.lstrip().startswith(start)]

    def received(self, start: str) -> list[str]:
        return [m for d, m in _messages(self.messages) if d == "received" and
                m.lstrip().startswith(start)]


def _messages(trace: str) -> list[tuple[str, str]]:
    """(direction, message) pairs of a SIPp ``-trace_msg`` log."""
    out: list[tuple[str, str]] = []
    for block in trace.split("----------------------------------------------- ")[1:]:
        lines = block.split("\n")
        if len(lines) < 3:
            continue
        direction = "sent" if " sent " in lines[1] else "received"
        out.append((direction, "\n".join(lines[2:]).strip("\n")))
    return out


async def run_sipp(scenario: str, tmp: Path, target: str | None, *args: str,
                   fill: dict[str, str] | None = None, limit_s: float = 40.0,
                   port: int | None = None) -> SippRun:
    """Run SIPp once with free ports; ``target`` is ``host:port`` (None: a UAS);
    ``fill`` replaces ``{{name}}`` in the scenario (file names for ``exec``)."""
    log = tmp / f"{scenario}-{free_udp_port()}.log"
    text = (SCENARIOS / f"{scenario}.xml").read_text()
    for name, value in (fill or {}).items():
        text = text.replace("{{" + name + "}}", value)
    path = tmp / f"{scenario}-{free_udp_port()}.xml"
    path.write_text(text)
    cmd = ["sipp", "-sf", str(path), "-i", "127.0.0.1",
           "-p", str(port or free_udp_port()), "-mi", "127.0.0.1", "-mp", str(free_udp_port(True)),
           "-nostdin", "-trace_msg", "-message_file", str(log),
           "-timeout", f"{max(20, int(limit_s) - 10)}s",
           "-timeout_error", *args]
    if target:
        cmd.append(target)
    proc = await asyncio.create_subprocess_exec(*cmd, stdout=subprocess.PIPE,
                                                stderr=subprocess.STDOUT, cwd=tmp)
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), limit_s)
    except TimeoutError:
        proc.kill()
        out, _ = await proc.communicate()
    messages = log.read_text(errors="replace") if log.exists() else ""
    return SippRun(proc.returncode if proc.returncode is not None else -1,
                   out.decode(errors="replace"), messages)


@dataclass
class SipServer:
    """An Openline server with its SIP endpoint, and what its calls' media did."""

    server: LiveServer
    service: SipService
    stats: list[SipCallStats] = field(default_factory=list)

    @property
    def target(self) -> str:
        host, port = self.service.address
        return f"{host}:{port}"

    def client(self) -> AsyncPhonic:
        return AsyncPhonic(api_key=self.server.api_key, environment=PhonicEnvironment(
            base=f"{self.server.url}/v1", production=self.server.ws_url))

    async def agent(self, name: str = "front-desk", number: str = AGENT_NUMBER,
                    **fields: Any) -> AsyncPhonic:
        client = self.client()
        await client.agents.create(name=name, phone_number="custom",
                                   custom_phone_numbers=[number], voice_id="joe", **fields)
        return client

    async def wait_stats(self, count: int = 1, within: float = 15.0) -> list[SipCallStats]:
        async with asyncio.timeout(within):
            while True:
                if len(self.stats) >= count:
                    return self.stats
                await asyncio.sleep(0.05)


SipServerFactory = Callable[..., SipServer]


async def until(check: Callable[[], bool], within: float = 10.0) -> None:
    async with asyncio.timeout(within):
        while True:
            if check():
                return
            await asyncio.sleep(0.05)


@pytest.fixture
def sip_server(tmp_path: Path) -> Iterator[SipServerFactory]:
    """``make(replies, texts, **settings)``: a server whose SIP endpoint answers SIPp."""
    made: list[LiveServer] = []

    def make(replies: list[ScriptedReply | str] | None = None, *, heard: str = "hello",
             reply: str = "Okay.", **settings: Any) -> SipServer:
        """``heard``: what every caller utterance is recognised as; ``reply``: what the
        agent says once ``replies`` ran out (partial transcripts and speculative replies
        use the scripts too, so tests assert on these)."""
        providers = fake_providers(ScriptedLLM(replies or [], fallback=reply),
                                   FakeSTT([], default=heard))
        options: dict[str, Any] = {"sip_port": 0, "sip_allow": "127.0.0.1", **settings}
        server = start_server(f"sqlite+aiosqlite:///{tmp_path / 'sip.db'}", tmp_path,
                              providers, **options)
        made.append(server)
        service = server.server.config.app.state.runtime.services.sip  # type: ignore[attr-defined]
        service.options = dataclasses.replace(service.options, capture_media=True)
        result = SipServer(server, service)
        service.observers.append(result.stats.append)
        return result

    yield make
    for server in made:
        server.stop()


@pytest.fixture(scope="session")
def speech_ulaw(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """The spoken sentence as raw 8 kHz mu-law (espeak-ng, then sox)."""
    folder = tmp_path_factory.mktemp("speech")
    wav, raw = folder / "speech.wav", folder / "speech.ulaw"
    subprocess.run(["espeak-ng", "-w", str(wav), SENTENCE], check=True, capture_output=True)
    subprocess.run(["sox", str(wav), "-r", "8000", "-c", "1", "-e", "u-law", "-t", "raw",
                    str(raw)], check=True, capture_output=True)
    return raw.read_bytes()


def write_fixture(tmp: Path, data: bytes) -> Path:
    path = tmp / "speech.ulaw"
    path.write_bytes(data)
    return path


async def conversation(client: AsyncPhonic, conversation_id: str, *,
                       within: float = 15.0) -> Any:
    """The stored conversation once it has ended."""
    async with asyncio.timeout(within):
        while True:
            conv = (await client.conversations.get(conversation_id)).conversation
            if conv.ended_at is not None:
                return conv
            await asyncio.sleep(0.1)


async def only_conversation(client: AsyncPhonic, within: float = 15.0) -> Any:
    """The one conversation of the project, once it has ended."""
    async with asyncio.timeout(within):
        while True:
            listed = (await client.conversations.list()).conversations or []
            if listed:
                return await conversation(client, listed[0].id, within=within)
            await asyncio.sleep(0.1)

