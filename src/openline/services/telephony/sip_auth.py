"""Who may place calls into Openline's SIP endpoint (toll-fraud protection).

An INVITE is answered only when its source address is allowed, or when it carries valid
digest credentials:

* allowed sources: the ``OPENLINE_SIP_ALLOW`` networks (the trunks and PBXs that send
  calls to pool numbers), and, for a custom SIP number, the address of that number's own
  trunk (its ``X-Sip-Address``);
* otherwise, with ``OPENLINE_SIP_INBOUND_USERNAME``/``_PASSWORD`` set, the INVITE is
  challenged (401, digest MD5, ``qop=auth``); a retry with the right credentials is
  answered, a wrong one gets 403. Without inbound credentials it gets 403 at once.

Nonces are stateless: a timestamp signed with a per-process key, valid for
``NONCE_TTL_S``, so a node keeps no table of challenges.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
import secrets
import socket
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import Enum

from aiosipua import AuthChallenge, SipDigestAuth, build_credentials, parse_auth

NONCE_TTL_S = 60.0
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class Verdict(Enum):
    ALLOWED = "allowed"
    CHALLENGE = "challenge"
    FORBIDDEN = "forbidden"


def parse_networks(values: Iterable[str]) -> list[Network]:
    """CIDRs or addresses (``10.0.0.0/8``, ``203.0.113.7``); raises ``ValueError``."""
    return [ipaddress.ip_network(v.strip(), strict=False) for v in values if v.strip()]


def split_address(address: str, default_port: int = 5060) -> tuple[str, int]:
    """``(host, port)`` of a trunk address: ``host``, ``host:port``, ``[v6]:port`` or a
    ``sip:`` URI (``sip:user@host:port;params``). Raises ``ValueError``."""
    rest = address.strip()
    for prefix in ("sips:", "sip:"):
        if rest.lower().startswith(prefix):
            rest = rest[len(prefix):]
    rest = rest.split(";", 1)[0].rsplit("@", 1)[-1].strip()
    port = default_port
    if rest.startswith("["):
        host, _, tail = rest[1:].partition("]")
        if tail.startswith(":"):
            port = int(tail[1:])
    elif rest.count(":") == 1:
        host, _, raw = rest.partition(":")
        port = int(raw)
    else:
        host = rest
    if not host or not 0 < port < 65536:
        raise ValueError(f"not a SIP address: {address!r}")
    return host, port


async def resolve(address: str, default_port: int = 5060) -> tuple[str, int]:
    """The first IPv4/IPv6 address and port of a trunk address (raises ``ValueError``)."""
    host, port = split_address(address, default_port)
    try:
        return str(ipaddress.ip_address(host)), port
    except ValueError:
        pass
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port,
                                                             type=socket.SOCK_DGRAM)
    except OSError as exc:
        raise ValueError(f"cannot resolve {host!r}: {exc}") from exc
    if not infos:
        raise ValueError(f"cannot resolve {host!r}")
    return str(infos[0][4][0]), port


@dataclass
class InboundGuard:
    """The allow-list and the inbound digest credentials (see the module docstring)."""

    allow: list[Network] = field(default_factory=list)
    username: str | None = None
    password: str | None = None
    realm: str = "openline"
    clock: Callable[[], float] = time.time
    _key: bytes = field(default_factory=lambda: secrets.token_bytes(32))

    def source_allowed(self, ip: str, trunk_ips: frozenset[str] = frozenset()) -> bool:
        if ip in trunk_ips:
            return True
        try:
            addr = ipaddress.ip_address(ip)
        except ValueError:
            return False
        return any(addr in net for net in self.allow)

    def check(self, ip: str, authorization: str | None, method: str,
              trunk_ips: frozenset[str] = frozenset()) -> Verdict:
        """What to do with a request from ``ip`` with this ``Authorization`` header."""
        if self.source_allowed(ip, trunk_ips):
            return Verdict.ALLOWED
        if not (self.username and self.password):
            return Verdict.FORBIDDEN
        if not authorization:
            return Verdict.CHALLENGE
        return Verdict.ALLOWED if self._valid(authorization, method) else Verdict.FORBIDDEN

    def challenge(self) -> str:
        """A ``WWW-Authenticate`` value with a fresh nonce."""
        return (f'Digest realm="{self.realm}", nonce="{self._nonce()}", algorithm=MD5, '
                f'qop="auth"')

    def _nonce(self, at: float | None = None) -> str:
        stamp = str(int(self.clock() if at is None else at))
        mac = hmac.new(self._key, stamp.encode(), hashlib.sha256).hexdigest()[:24]
        return f"{stamp}.{mac}"

    def _nonce_fresh(self, nonce: str) -> bool:
        stamp, _, _ = nonce.partition(".")
        try:
            issued = float(stamp)
        except ValueError:
            return False
        return hmac.compare_digest(nonce, self._nonce(issued)) and \
            0 <= self.clock() - issued <= NONCE_TTL_S

    def _valid(self, authorization: str, method: str) -> bool:
        try:
            creds = parse_auth(authorization)
        except Exception:
            return False
        p = creds.params
        if creds.scheme.lower() != "digest" or p.get("username") != self.username or \
                p.get("realm") != self.realm or not self._nonce_fresh(p.get("nonce", "")):
            return False
        qop = p.get("qop")
        challenge = AuthChallenge("Digest", {"realm": self.realm, "nonce": p["nonce"],
                                             "algorithm": "MD5",
                                             **({"qop": "auth"} if qop else {})})
        try:
            nc = int(p.get("nc", "1"), 16)
        except ValueError:
            return False
        expected = build_credentials(SipDigestAuth(self.username or "", self.password or ""),
                                     challenge, method, p.get("uri", ""), nonce_count=nc,
                                     cnonce=p.get("cnonce"))
        return expected is not None and hmac.compare_digest(
            expected.params.get("response", ""), p.get("response", ""))
