"""SSRF guard: address classification, create-time URL checks, and DNS pinning at connect.

The rebinding tests patch only ``socket.getaddrinfo``: the first answer for ``rebind.test``
is an address the policy accepts (127.0.0.2, trusted for the test the way an operator would
trust an internal range), every later answer is 127.0.0.1. Two real HTTP servers listen on
the same port of those two addresses; only the vetted one may ever be reached.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import shutil
import socket
import ssl
import subprocess
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from openline.services.outbound import (
    CallContext,
    ConfigEndpointFailed,
    HttpWebhookCaller,
    fetch_configuration,
)
from openline.services.url_safety import (
    AddressPolicy,
    SafeAsyncClient,
    UnsafeUrl,
    check_url,
    validate_url,
)
from openline.voice.tools import RuntimeTool

VETTED, INTERNAL = "127.0.0.2", "127.0.0.1"
TRUST_VETTED = AddressPolicy(trusted_networks=(ipaddress.ip_network(f"{VETTED}/32"),))


# --- a resolver that rebinds, and real servers -------------------------------------------

@dataclass
class Resolver:
    """Answers for made-up names; every other name goes to the real resolver."""

    answers: dict[str, list[list[str]]] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)

    def __call__(self, host: Any, port: Any, *args: Any, **kwargs: Any) -> list[Any]:
        name = host.decode() if isinstance(host, bytes) else str(host)
        if name not in self.answers:
            return REAL_GETADDRINFO(host, port, *args, **kwargs)
        self.calls.append(name)
        sequence = self.answers[name]
        addresses = sequence.pop(0) if len(sequence) > 1 else sequence[0]
        out = []
        for address in addresses:
            ip = ipaddress.ip_address(address)
            family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
            sockaddr = (address, int(port or 0), 0, 0) if ip.version == 6 else (
                address, int(port or 0))
            out.append((family, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", sockaddr))
        return out


REAL_GETADDRINFO = socket.getaddrinfo


@pytest.fixture
def resolver(monkeypatch: pytest.MonkeyPatch) -> Resolver:
    fake = Resolver()
    monkeypatch.setattr(socket, "getaddrinfo", fake)
    return fake


@dataclass
class Hit:
    host_header: str
    sni: str | None
    path: str


@dataclass
class TinyServer:
    """A real HTTP/1.1 server on one address; records each request it answers."""

    address: str
    name: str
    hits: list[Hit] = field(default_factory=list)
    sni: list[str | None] = field(default_factory=list)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
            headers = {k.lower(): v.strip() for k, _, v in (h.partition(":") for h in head[1:])}
            length = int(headers.get("content-length") or 0)
            if length:
                await reader.readexactly(length)
            self.hits.append(Hit(headers.get("host", ""), self.sni[-1] if self.sni else None,
                                 head[0].split(" ")[1]))
            body = json.dumps({"server": self.name}).encode()
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                         b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body))
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()


async def _servers(port: int, tls: tuple[Path, Path] | None
                   ) -> tuple[TinyServer, TinyServer, list[asyncio.Server]]:
    vetted, internal = TinyServer(VETTED, "vetted"), TinyServer(INTERNAL, "internal")
    running = []
    for srv in (vetted, internal):
        context = None if tls is None else _server_context(tls, srv)
        running.append(await asyncio.start_server(srv._handle, srv.address, port, ssl=context))
    return vetted, internal, running


def _server_context(tls: tuple[Path, Path], srv: TinyServer) -> ssl.SSLContext:
    """Serves the certificate and records the SNI name each handshake asked for."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*tls)
    context.sni_callback = lambda _sock, name, _ctx: srv.sni.append(name)  # type: ignore
    return context


def _free_shared_port() -> int:
    """A port that is free on both loopback addresses."""
    for _ in range(50):
        with socket.socket() as a:
            a.bind((VETTED, 0))
            port = int(a.getsockname()[1])
            with socket.socket() as b:
                try:
                    b.bind((INTERNAL, port))
                except OSError:
                    continue
            return port
    raise RuntimeError("no shared free port")


@pytest.fixture
async def pair() -> AsyncIterator[tuple[int, TinyServer, TinyServer]]:
    port = _free_shared_port()
    vetted, internal, running = await _servers(port, None)
    yield port, vetted, internal
    for server in running:
        server.close()
        await server.wait_closed()


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    """A self-signed certificate for ``rebind.test`` (made with the openssl CLI)."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is needed to make a test certificate")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1",
                    "-subj", "/CN=rebind.test", "-addext", "subjectAltName=DNS:rebind.test",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    yield cert, key


# --- classification -------------------------------------------------------------------

REFUSED = [
    "127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254", "0.0.0.0",
    "100.64.0.1", "100.100.100.200",  # carrier-grade NAT, Alibaba metadata inside it
    "168.63.129.16", "192.0.0.192",  # Azure wire server, Oracle metadata (global-looking)
    "198.18.0.1", "192.0.2.1", "224.0.0.1", "255.255.255.255",
    "::1", "::", "fe80::1", "fc00::1", "fd00:ec2::254", "fec0::1", "ff02::1",
    "::ffff:127.0.0.1", "::ffff:169.254.169.254", "::127.0.0.1",  # mapped / compatible
    "2002:7f00:1::1", "2002:a9fe:a9fe::1", "2002:808:808::1",  # 6to4 (deprecated relays)
    "64:ff9b::a9fe:a9fe", "64:ff9b::7f00:1", "64:ff9b:1::1",  # NAT64 to internal, local NAT64
    "2001:db8::1", "2001::1",  # documentation, Teredo
]
ALLOWED = ["8.8.8.8", "1.1.1.1", "2606:4700::1111", "2001:4860:4860::8888",
           "64:ff9b::808:808"]  # NAT64 of a public IPv4 address


@pytest.mark.parametrize("address", REFUSED)
async def test_internal_and_special_addresses_are_refused(resolver: Resolver,
                                                          address: str) -> None:
    resolver.answers["host.test"] = [[address]]
    with pytest.raises(UnsafeUrl):
        await check_url("https://host.test/hook", allow_private=False)


@pytest.mark.parametrize("address", ALLOWED)
async def test_public_addresses_pass(resolver: Resolver, address: str) -> None:
    resolver.answers["host.test"] = [[address]]
    assert await check_url("https://host.test/hook", allow_private=False) == [address]


@pytest.mark.parametrize("address", ["169.254.169.254", "fd00:ec2::254", "100.100.100.200",
                                     "::ffff:169.254.169.254", "168.63.129.16"])
async def test_metadata_is_refused_even_when_private_urls_are_allowed(
        resolver: Resolver, address: str) -> None:
    resolver.answers["host.test"] = [[address]]
    async with SafeAsyncClient(allow_private=True) as client:
        with pytest.raises(UnsafeUrl, match="metadata"):
            await client.get("http://host.test/latest/meta-data/")
    literal = f"[{address}]" if ":" in address else address
    with pytest.raises(UnsafeUrl, match="metadata"):
        await check_url(f"http://{literal}/", allow_private=True)


async def test_private_urls_flag_still_allows_private_targets(resolver: Resolver) -> None:
    resolver.answers["host.test"] = [["10.0.0.5"]]
    assert await check_url("http://host.test/", allow_private=True) == []  # no lookup needed
    assert await check_url("http://10.0.0.5:8080/", allow_private=True) == []


async def test_one_internal_answer_refuses_the_name(resolver: Resolver) -> None:
    resolver.answers["host.test"] = [["8.8.8.8", "10.0.0.5"]]
    with pytest.raises(UnsafeUrl, match="internal"):
        await check_url("https://host.test/", allow_private=False)


# --- create-time validation -----------------------------------------------------------

@pytest.mark.parametrize("url", ["https://example.com/hook", "http://example.com:8080/x?y=1",
                                 "https://api.example.com/orders/{order_id}",
                                 "https://8.8.8.8/", "https://[2606:4700::1111]:8443/"])
def test_validate_url_accepts(url: str) -> None:
    assert validate_url(url) == url


@pytest.mark.parametrize("url", [
    "", "ftp://example.com/", "example.com/hook", "http:///nohost", "https://user:pw@example.com/",
    " https://example.com", "https://exa mple.com/", "https://example.com/\x00",
    "https://example.com:99999/", "http://127.0.0.1/", "http://[::1]:8000/",
    "http://2130706433/", "http://0x7f.1/", "http://127.1/", "http://localhost:8000/",
    "http://api.localhost/", "http://169.254.169.254/latest/meta-data/", "http://[fd00:ec2::254]/",
    "http://100.64.0.1/", "https://example.com/" + "a" * 2100,
])
def test_validate_url_refuses(url: str) -> None:
    with pytest.raises(UnsafeUrl):
        validate_url(url)


def test_validate_url_with_private_allowed() -> None:
    assert validate_url("http://127.0.0.1:9000/x", allow_private=True)
    assert validate_url("http://localhost:9000/x", allow_private=True)
    with pytest.raises(UnsafeUrl, match="metadata"):
        validate_url("http://169.254.169.254/", allow_private=True)


# --- pinning at connect time ----------------------------------------------------------

def _rebinding(resolver: Resolver, name: str = "rebind.test") -> None:
    resolver.answers[name] = [[VETTED], [INTERNAL]]


async def test_safe_client_connects_to_the_vetted_address_only(
        resolver: Resolver, pair: tuple[int, TinyServer, TinyServer]) -> None:
    port, vetted, internal = pair
    _rebinding(resolver)
    async with SafeAsyncClient(TRUST_VETTED) as client:
        r = await client.get(f"http://rebind.test:{port}/first")
        assert r.json() == {"server": "vetted"}
        # The next connection resolves again and now gets the internal address: refused.
        with pytest.raises(UnsafeUrl):
            await client.get(f"http://rebind.test:{port}/second")
    assert [(h.host_header, h.path) for h in vetted.hits] == [(f"rebind.test:{port}", "/first")]
    assert internal.hits == []
    assert resolver.calls == ["rebind.test", "rebind.test"]  # once per connection


async def test_webhook_tool_is_pinned_even_with_a_plain_client(
        resolver: Resolver, pair: tuple[int, TinyServer, TinyServer]) -> None:
    """The call path live conversations use today: a plain httpx client is passed in."""
    port, vetted, internal = pair
    _rebinding(resolver)
    tool = RuntimeTool("lookup", "Look up an order", "webhook", config={
        "endpoint_url": f"http://rebind.test:{port}/orders", "endpoint_method": "POST"})
    async with httpx.AsyncClient() as plain:
        caller = HttpWebhookCaller(plain, CallContext("conv_1"), allow_private=False,
                                   policy=TRUST_VETTED)
        result = await caller.call(tool, {"order": "7"})
        assert result.error is None and result.body == {"server": "vetted"}
        again = await caller.call(tool, {"order": "8"})
    assert again.error is not None and "internal address" in again.error
    assert [h.path for h in vetted.hits] == ["/orders"] and internal.hits == []


async def test_configuration_endpoint_is_pinned(
        resolver: Resolver, pair: tuple[int, TinyServer, TinyServer]) -> None:
    port, vetted, internal = pair
    _rebinding(resolver)
    endpoint = {"url": f"http://rebind.test:{port}/config", "timeout_ms": 3000}
    async with httpx.AsyncClient() as plain:
        assert await fetch_configuration(plain, endpoint, {"x": 1}, allow_private=False,
                                         policy=TRUST_VETTED) == {"server": "vetted"}
        with pytest.raises(ConfigEndpointFailed) as failed:
            await fetch_configuration(plain, endpoint, {"x": 1}, allow_private=False,
                                      policy=TRUST_VETTED)
    assert failed.value.ended_by == "configuration_endpoint_error"
    assert len(vetted.hits) == 1 and internal.hits == []


async def test_private_flag_reaches_local_servers_through_the_safe_client(
        pair: tuple[int, TinyServer, TinyServer]) -> None:
    port, _, internal = pair
    async with SafeAsyncClient(allow_private=True) as client:
        assert (await client.get(f"http://127.0.0.1:{port}/ok")).json() == {"server": "internal"}
    async with SafeAsyncClient() as strict:
        with pytest.raises(UnsafeUrl):
            await strict.get(f"http://127.0.0.1:{port}/no")
    assert [h.path for h in internal.hits] == ["/ok"]


async def test_tls_keeps_sni_and_verifies_the_hostname(
        resolver: Resolver, certificate: tuple[Path, Path]) -> None:
    cert, _ = certificate
    port = _free_shared_port()
    vetted, internal, running = await _servers(port, certificate)
    _rebinding(resolver)
    resolver.answers["other.test"] = [[VETTED]]
    trust = ssl.create_default_context(cafile=str(cert))
    try:
        async with SafeAsyncClient(TRUST_VETTED, verify=trust) as client:
            r = await client.get(f"https://rebind.test:{port}/secure")
            assert r.json() == {"server": "vetted"}
            # Same vetted IP, another name: the certificate is checked against the name.
            with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
                await client.get(f"https://other.test:{port}/secure")
    finally:
        for server in running:
            server.close()
            await server.wait_closed()
    assert [(h.sni, h.host_header) for h in vetted.hits] == [
        ("rebind.test", f"rebind.test:{port}")]
    assert internal.hits == []
