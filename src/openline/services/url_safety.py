"""Refuse requests to internal addresses (SSRF guard) for user-configured URLs.

Webhooks, tool endpoints and configuration endpoints are URLs users type in: without a
guard they could make Openline call its own loopback services or a cloud metadata address.
Loopback, link-local, private and reserved addresses are refused unless the operator
allows them (``OPENLINE_ALLOW_PRIVATE_URLS=1``; the edge passes the flag in).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit


class UnsafeUrl(ValueError):
    """The URL points at an address Openline will not call."""


def _is_internal(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    return (ip.is_loopback or ip.is_link_local or ip.is_private or ip.is_reserved
            or ip.is_multicast or ip.is_unspecified)


async def check_url(url: str, *, allow_private: bool) -> None:
    """Raise ``UnsafeUrl`` unless ``url`` is http(s) to a public address (or allowed)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UnsafeUrl(f"not an absolute http(s) URL: {url!r}")
    if allow_private:
        return
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(
            parts.hostname, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise UnsafeUrl(f"cannot resolve {parts.hostname!r}: {exc}") from exc
    for info in infos:
        if _is_internal(str(info[4][0])):
            raise UnsafeUrl(f"{parts.hostname!r} resolves to an internal address; "
                            "set OPENLINE_ALLOW_PRIVATE_URLS=1 to allow it")
