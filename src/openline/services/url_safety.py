"""Refuse requests to internal addresses (SSRF guard) for user-configured URLs.

Webhooks, tool endpoints and configuration endpoints are URLs users type in: without a
guard they could make Openline call its own loopback services, the LAN or a cloud metadata
service. The policy (``docs/security.md``):

* An address is public when ``ipaddress`` calls it global **and** it is outside an explicit
  table of special-purpose ranges (the table also covers Python releases whose ``is_global``
  data is older: 100.64.0.0/10 carrier-grade NAT, 6to4 ``2002::/16``, local NAT64, site-local,
  multicast...). An IPv6 address that embeds an IPv4 one (``::ffff:a.b.c.d``,
  ``::a.b.c.d``, NAT64 ``64:ff9b::/96``) is public only if the embedded address is.
* Cloud metadata addresses (169.254.169.254, fd00:ec2::254, 100.100.100.200,
  168.63.129.16 ...) are refused always, even with ``OPENLINE_ALLOW_PRIVATE_URLS=1``, which
  otherwise allows private and loopback targets (the edge passes the flag in).
* Every address a name resolves to must pass; the connection then goes to the address that was
  vetted: ``SafeAsyncClient`` resolves inside its connection pool and connects to the checked
  IP, while the Host header, TLS SNI and certificate verification keep using the hostname.
  A second DNS answer (rebinding) is never consulted for that connection.
* ``validate_url`` checks syntax, scheme and host when a URL is stored (no DNS: names can
  change, so the connect-time check is the one that counts).
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import re
import socket
import ssl
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpcore
import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
MAX_URL_LENGTH = 2048
DNS_TIMEOUT_S = 5.0


class UnsafeUrl(ValueError):
    """The URL points at an address Openline will not call (or is not a usable URL)."""


def _nets(*cidrs: str) -> tuple[IPNetwork, ...]:
    return tuple(ipaddress.ip_network(c) for c in cidrs)


#: Special-purpose ranges (IANA registries) that are never public targets.
_NOT_PUBLIC = _nets(
    "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16",
    "172.16.0.0/12", "192.0.0.0/24", "192.0.2.0/24", "192.88.99.0/24", "192.168.0.0/16",
    "198.18.0.0/15", "198.51.100.0/24", "203.0.113.0/24", "224.0.0.0/4", "240.0.0.0/4",
    "::/96",  # unspecified, loopback and the deprecated IPv4-compatible form
    "64:ff9b:1::/48", "100::/64", "2001::/23", "2001:db8::/32",
    "2002::/16",  # 6to4 (deprecated, RFC 7526): the relay decides where it lands
    "3fff::/20", "5f00::/16", "fc00::/7", "fe80::/10", "fec0::/10", "ff00::/8",
)

#: Instance metadata and platform endpoints of the big clouds (credentials live there).
METADATA_ADDRESSES: frozenset[IPAddress] = frozenset(ipaddress.ip_address(a) for a in (
    "169.254.169.254",  # AWS, GCP, Azure, OpenStack, DigitalOcean, Oracle IMDS
    "169.254.169.253", "169.254.169.123", "169.254.170.2",  # AWS DNS, time, ECS tasks
    "fd00:ec2::254", "fd00:ec2::253", "fd00:ec2::123",  # AWS IMDS, DNS, time over IPv6
    "100.100.100.200",  # Alibaba Cloud
    "168.63.129.16",  # Azure wire server (a global address: is_global alone misses it)
    "192.0.0.192",  # Oracle Cloud
))

_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_LOCAL_NAMES = ("localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback")


def _embedded_ipv4(ip: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one maps to (IPv4-mapped or NAT64 well-known prefix)."""
    if not isinstance(ip, ipaddress.IPv6Address):
        return None
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def is_metadata_address(ip: IPAddress) -> bool:
    """A cloud metadata endpoint, directly or through an IPv6 form that maps to one."""
    embedded = _embedded_ipv4(ip)
    return ip in METADATA_ADDRESSES or (embedded is not None and embedded in METADATA_ADDRESSES)


def is_public_address(ip: IPAddress) -> bool:
    """Whether Openline may call ``ip`` when private targets are not allowed."""
    embedded = _embedded_ipv4(ip)
    if embedded is not None and not is_public_address(embedded):
        return False
    if is_metadata_address(ip) or any(ip in net for net in _NOT_PUBLIC):
        return False
    return ip.is_global and not ip.is_multicast


@dataclass(frozen=True)
class AddressPolicy:
    """Which resolved addresses outbound requests may connect to.

    ``allow_private`` is ``OPENLINE_ALLOW_PRIVATE_URLS``; ``trusted_networks`` are extra
    ranges an operator vouches for (for example an internal tools subnet). Metadata addresses
    are refused whatever the policy says.
    """

    allow_private: bool = False
    trusted_networks: tuple[IPNetwork, ...] = ()

    def permits(self, ip: IPAddress) -> bool:
        if is_metadata_address(ip):
            return False
        if self.allow_private or any(ip in net for net in self.trusted_networks):
            return True
        return is_public_address(ip)


def policy_for(allow_private: bool, policy: AddressPolicy | None = None) -> AddressPolicy:
    """The explicit ``policy`` if given, else the one the boolean flag stands for."""
    return policy if policy is not None else AddressPolicy(allow_private=allow_private)


def _ip_literal(host: str) -> IPAddress | None:
    """The address a host spells, including the numeric IPv4 forms resolvers accept
    (``2130706433``, ``0x7f.1``, ``127.1``)."""
    try:
        return ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        pass
    if _NUMERIC_HOST.fullmatch(host):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None


_NUMERIC_HOST = re.compile(r"[0-9][0-9a-fA-FxX.]*")


def validate_url(url: str, *, allow_private: bool = False,
                 policy: AddressPolicy | None = None) -> str:
    """Check a URL when it is stored: absolute http(s), a host, no credentials or
    whitespace, a valid port; an IP-literal or ``localhost`` host must pass the address
    policy. No DNS lookup (the connect-time check is authoritative). Returns ``url``."""
    rules = policy_for(allow_private, policy)
    if not isinstance(url, str) or not url:
        raise UnsafeUrl("the URL is empty")
    if len(url) > MAX_URL_LENGTH:
        raise UnsafeUrl(f"the URL is longer than {MAX_URL_LENGTH} characters")
    if any(c.isspace() or ord(c) < 0x20 or ord(c) == 0x7F or c == "\\" for c in url):
        raise UnsafeUrl("the URL contains whitespace, control characters or backslashes")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UnsafeUrl(f"not an absolute http(s) URL: {url!r}")
    if parts.username is not None or parts.password is not None:
        raise UnsafeUrl("credentials in the URL are not allowed; send them in headers")
    try:
        parts.port  # noqa: B018 - parsing the port raises for out-of-range values
        httpx.URL(url)
    except (ValueError, httpx.InvalidURL) as exc:
        raise UnsafeUrl(f"not a valid URL: {exc}") from exc
    host = parts.hostname.rstrip(".")
    ip = _ip_literal(host)
    if ip is not None and not rules.permits(ip):
        raise UnsafeUrl(_refusal(host, ip))
    if ip is None and not rules.allow_private and (
            host in _LOCAL_NAMES or host.endswith(".localhost")):
        raise UnsafeUrl(f"{host!r} is a loopback name; "
                        "set OPENLINE_ALLOW_PRIVATE_URLS=1 to allow it")
    return url


def _refusal(host: str, ip: IPAddress) -> str:
    if is_metadata_address(ip):
        return f"{host!r} is a cloud metadata address ({ip}); it is never allowed"
    return (f"{host!r} resolves to an internal address ({ip}); "
            "set OPENLINE_ALLOW_PRIVATE_URLS=1 to allow it")


async def resolve(host: str, port: int) -> list[str]:
    """The addresses ``host`` resolves to, through the system resolver (``getaddrinfo``)."""
    try:
        infos = await asyncio.wait_for(asyncio.to_thread(
            socket.getaddrinfo, host, port, 0, socket.SOCK_STREAM), DNS_TIMEOUT_S)
    except (OSError, TimeoutError) as exc:
        raise UnsafeUrl(f"cannot resolve {host!r}: {exc or 'timed out'}") from exc
    out: list[str] = []
    for info in infos:
        address = str(info[4][0]).split("%", 1)[0]
        if address not in out:
            out.append(address)
    return out


async def vetted_addresses(host: str, port: int, policy: AddressPolicy) -> list[str]:
    """Resolve ``host`` once; every answer must pass ``policy`` (a name with one internal
    answer is refused whole). Returns the addresses to connect to, in resolver order."""
    addresses = await resolve(host, port)
    if not addresses:
        raise UnsafeUrl(f"cannot resolve {host!r}: no addresses")
    for address in addresses:
        ip = ipaddress.ip_address(address)
        if not policy.permits(ip):
            raise UnsafeUrl(_refusal(host, ip))
    return addresses


async def check_url(url: str, *, allow_private: bool,
                    policy: AddressPolicy | None = None) -> list[str]:
    """Raise ``UnsafeUrl`` unless ``url`` is valid and its host resolves only to permitted
    addresses; returns them. A pre-flight check for clear errors: ``SafeAsyncClient`` vets
    again at connect time and connects to what it vetted. With private targets allowed
    there is no lookup here (``[]``): only metadata could be refused, and the connect-time
    check does that."""
    rules = policy_for(allow_private, policy)
    validate_url(url, policy=rules)
    if rules.allow_private:
        return []
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return await vetted_addresses(str(parts.hostname), port, rules)


class _VettingBackend(httpcore.AsyncNetworkBackend):
    """httpcore network backend: resolve, vet, then connect to the vetted IP itself.

    httpcore starts TLS on the returned stream with the *origin's* hostname as
    ``server_hostname``, so SNI and certificate checks stay on the name in the URL."""

    def __init__(self, policy: AddressPolicy,
                 inner: httpcore.AsyncNetworkBackend | None = None) -> None:
        self.policy = policy
        self._inner = inner or httpcore.AnyIOBackend()

    # The signatures are httpcore's interface (hence the ``timeout`` parameters).
    async def connect_tcp(self, host: str, port: int,
                          timeout: float | None = None,  # noqa: ASYNC109
                          local_address: str | None = None,
                          socket_options: Iterable[Any] | None = None
                          ) -> httpcore.AsyncNetworkStream:
        addresses = await vetted_addresses(host, port, self.policy)
        failure: Exception | None = None
        for address in addresses:
            try:
                return await self._inner.connect_tcp(address, port, timeout=timeout,
                                                     local_address=local_address,
                                                     socket_options=socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc  # try the next vetted address, like a normal resolver loop
        assert failure is not None
        raise failure

    async def connect_unix_socket(self, path: str,
                                  timeout: float | None = None,  # noqa: ASYNC109
                                  socket_options: Iterable[Any] | None = None
                                  ) -> httpcore.AsyncNetworkStream:
        raise UnsafeUrl("unix sockets are not an outbound target")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


@functools.cache
def _default_ssl_context() -> ssl.SSLContext:
    # Loading the CA bundle costs milliseconds; one context serves every safe client.
    return httpx.create_ssl_context()


class PinnedTransport(httpx.AsyncHTTPTransport):
    """``AsyncHTTPTransport`` whose connection pool dials only vetted addresses."""

    def __init__(self, policy: AddressPolicy, *, verify: ssl.SSLContext | bool = True,
                 limits: httpx.Limits | None = None) -> None:
        limits = limits or httpx.Limits(max_connections=100, max_keepalive_connections=20)
        context = verify if isinstance(verify, ssl.SSLContext) else (
            _default_ssl_context() if verify else httpx.create_ssl_context(verify=False))
        super().__init__(verify=context, limits=limits)
        # httpx builds its pool without a network-backend option; the pool it made (and
        # never opened) is replaced by one with the vetting backend.
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=context, max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=_VettingBackend(policy))


class SafeAsyncClient(httpx.AsyncClient):
    """An ``httpx.AsyncClient`` for user-configured URLs: vetted, pinned addresses, no
    redirects (a redirect could lead anywhere), no proxies from the environment."""

    def __init__(self, policy: AddressPolicy | None = None, *, allow_private: bool = False,
                 verify: ssl.SSLContext | bool = True, **kwargs: Any) -> None:
        self.policy = policy_for(allow_private, policy)
        kwargs.setdefault("follow_redirects", False)
        super().__init__(transport=PinnedTransport(self.policy, verify=verify),
                         trust_env=False, **kwargs)


@asynccontextmanager
async def pinned_client(client: httpx.AsyncClient,
                        policy: AddressPolicy) -> AsyncIterator[httpx.AsyncClient]:
    """``client`` itself when it is a ``SafeAsyncClient`` with ``policy``; otherwise a
    short-lived ``SafeAsyncClient`` with the same timeout (callers that still pass a plain
    client stay safe, at the cost of connection reuse)."""
    if isinstance(client, SafeAsyncClient) and client.policy == policy:
        yield client
        return
    async with SafeAsyncClient(policy, timeout=client.timeout) as safe:
        yield safe
