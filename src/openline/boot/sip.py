"""Openline's SIP endpoint in a serving process: built from settings, started with the
HTTP server (a worker process takes no calls), stopped before the runtime."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from openline.services.live import LiveService
from openline.services.telephony.sip import SipOptions, SipService
from openline.settings import Settings

if TYPE_CHECKING:
    from openline.boot.root import Runtime

log = logging.getLogger("openline")


def rtp_range(value: str | None) -> tuple[int, int] | None:
    """``OPENLINE_RTP_PORTS`` (``LOW-HIGH``) as a pair; raises ``ValueError``."""
    if not value or not value.strip():
        return None
    low, sep, high = value.partition("-")
    lo, hi = int(low), int(high if sep else low)
    if not (1024 <= lo < hi < 65536) or hi - lo < 3:
        raise ValueError(f"OPENLINE_RTP_PORTS must be LOW-HIGH within 1024-65535, got "
                         f"{value!r}")
    return lo, hi


def sip_options(settings: Settings) -> SipOptions | None:
    """The endpoint's options (None when ``OPENLINE_SIP_PORT`` is unset)."""
    if settings.sip_port is None:
        return None
    allow = tuple(v.strip() for v in (settings.sip_allow or "").split(",") if v.strip())
    if settings.sip_host in ("0.0.0.0", "::") and not settings.sip_public_ip:
        raise ValueError("OPENLINE_SIP_HOST binds every interface: set OPENLINE_SIP_PUBLIC_IP "
                         "to the address callers reach (it goes in Via, Contact and SDP)")
    if bool(settings.sip_inbound_username) != bool(settings.sip_inbound_password):
        raise ValueError("set both OPENLINE_SIP_INBOUND_USERNAME and "
                         "OPENLINE_SIP_INBOUND_PASSWORD, or neither")
    return SipOptions(host=settings.sip_host, port=settings.sip_port,
                      public_ip=settings.sip_public_ip, rtp_ports=rtp_range(settings.rtp_ports),
                      allow=allow, inbound_username=settings.sip_inbound_username,
                      inbound_password=settings.sip_inbound_password,
                      ring_timeout_s=settings.sip_ring_timeout_s)


def build_sip(settings: Settings, live: LiveService,
              transferred: Callable[[str, str], Awaitable[int]]) -> SipService | None:
    """The SIP endpoint, when configured (not yet listening)."""
    options = sip_options(settings)
    return None if options is None else SipService(options, live, transferred=transferred)


async def start_sip(runtime: Runtime, *, verbose: bool = True) -> None:
    """Bind the SIP socket and say where it listens."""
    sip = runtime.services.sip
    if sip is None:
        return
    host, port = await sip.start()
    rtp = sip.options.rtp_ports
    message = (f"SIP endpoint on udp {host}:{port} (advertised as {sip.media_ip}), RTP "
               f"{f'{rtp[0]}-{rtp[1]}' if rtp else 'on ephemeral ports'}")
    log.info(message)
    if verbose:
        print(message, flush=True)


async def stop_sip(runtime: Runtime) -> None:
    if runtime.services.sip is not None:
        await runtime.services.sip.stop()
