"""SDP offer/answer for G.711 + RFC 4733, and RTP ports for SIP calls.

Openline offers PCMU and PCMA with ``telephone-event`` and accepts either; an offer with
neither is refused (488). The answer keeps the offerer's telephone-event payload type
(aiosipua's negotiation always answers 101), mirrors the direction (``sendonly`` ->
``recvonly`` for hold) and advertises the public IP in ``c=`` and ``o=``.

RTP ports come from ``OPENLINE_RTP_PORTS`` (even ports, RTCP on the next odd one) or, when
no range is set, from the operating system.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from dataclasses import dataclass

import aiortp
from aiortp.packet import RtpPacket
from aiosipua import SdpMessage, SdpNegotiationError, build_sdp, negotiate_sdp
from aiosipua.sdp import Codec, _extract_codecs

SUPPORTED = (0, 8)
DTMF_PT = 101
#: telephone-event events 0-15 are the keypad (aiosipua writes 0-16: flash too)
DTMF_FMTP = "0-16"


class NoCodec(Exception):
    """The offer has no audio Openline can speak (answer 488)."""


@dataclass(frozen=True)
class Answer:
    sdp: SdpMessage
    payload_type: int
    dtmf_payload_type: int
    remote: tuple[str, int]
    direction: str


def offer_sdp(ip: str, port: int) -> SdpMessage:
    """Our offer: PCMU, PCMA and telephone-event 101, 20 ms."""
    sdp = build_sdp(local_ip=ip, rtp_port=port, payload_type=0, codec_name="PCMU",
                    dtmf_payload_type=DTMF_PT)
    audio = sdp.audio
    assert audio is not None
    audio.formats = ["0", "8", str(DTMF_PT)]
    audio.attributes["rtpmap"] = ["0 PCMU/8000", "8 PCMA/8000",
                                  f"{DTMF_PT} telephone-event/8000"]
    audio.codecs = _extract_codecs(audio)
    return sdp


def _dtmf_pt(codecs: list[Codec]) -> int | None:
    return next((c.payload_type for c in codecs
                 if c.encoding_name.lower() == "telephone-event"), None)


def answer_sdp(offer: SdpMessage | None, ip: str, port: int) -> Answer:
    """Answer an offer (raises ``NoCodec``)."""
    if offer is None or offer.audio is None or offer.rtp_address is None:
        raise NoCodec("no audio offered")
    dtmf = _dtmf_pt(offer.audio.codecs)
    try:
        sdp, pt = negotiate_sdp(offer, local_ip=ip, rtp_port=port,
                                supported_codecs=list(SUPPORTED),
                                dtmf_payload_type=dtmf or DTMF_PT)
    except SdpNegotiationError as exc:
        raise NoCodec(str(exc)) from exc
    return Answer(sdp, pt, dtmf or DTMF_PT, offer.rtp_address, offer.audio.direction)


def read_answer(answer: SdpMessage | None) -> Answer:
    """The far end's answer to our offer (raises ``NoCodec``)."""
    if answer is None or answer.audio is None or answer.rtp_address is None:
        raise NoCodec("no audio in the answer")
    pt = next((c.payload_type for c in answer.audio.codecs if c.payload_type in SUPPORTED),
              None)
    if pt is None:
        raise NoCodec("the answer chose no G.711 codec")
    return Answer(answer, pt, _dtmf_pt(answer.audio.codecs) or DTMF_PT,
                  answer.rtp_address, answer.audio.direction)


def hold_answer(offer: SdpMessage, current: Answer, ip: str, port: int) -> Answer:
    """The answer to a re-INVITE: the same codec, the mirrored direction."""
    answer = answer_sdp(offer, ip, port)
    if answer.payload_type != current.payload_type:
        # Switching codecs mid-call is not supported: keep ours if still offered.
        offered = {c.payload_type for c in (offer.audio.codecs if offer.audio else [])}
        if current.payload_type not in offered:
            raise NoCodec("the re-INVITE dropped the call's codec")
    return answer


class DirectRTPSession(aiortp.RTPSession):
    """aiortp's session, delivering each G.711 packet as it arrives.

    A G.711 packet is a whole frame, but aiortp's jitter buffer (built for multi-packet
    frames) releases a frame only when a packet with the next timestamp arrives: every
    frame, the caller's last words included, would reach the engine 20 ms late. Here a
    packet newer than the last one delivered goes straight to ``on_audio``; a duplicate or
    a packet that arrives after a newer one is dropped (its slot already passed: the engine
    measures time by what it received, and the gap reads as a short silence). Telephone
    events, comfort noise and RTCP take the library's path. Touches the session's private
    state: aiortp is pinned exactly.
    """

    _last_seq: int | None = None

    def _handle_rtp(self, data: bytes, addr: tuple[str, int]) -> None:
        try:
            packet = RtpPacket.parse(data)
        except ValueError:
            return
        if packet.payload_type != self._payload_type or self._codec is None:
            super()._handle_rtp(data, addr)
            return
        self._latch_rtp_addr(addr)
        if packet.ssrc != self._remote_ssrc:
            self._remote_ssrc_changed(packet.ssrc)
            self._last_seq = None
        if self._stream_stats is not None:
            self._stream_stats.add(packet)
        seq = packet.sequence_number
        if self._last_seq is not None and not 0 < (seq - self._last_seq) & 0xFFFF < 0x8000:
            return  # a duplicate, or late
        self._last_seq = seq
        if self.on_audio is not None:
            self.on_audio(self._codec.decode(packet.payload), packet.timestamp)


class RtpPorts:
    """Even RTP ports from a range (or the OS's ephemeral ones)."""

    def __init__(self, bind_ip: str, port_range: tuple[int, int] | None = None) -> None:
        self.bind_ip, self.range = bind_ip, port_range
        self._used: set[int] = set()
        self._next = port_range[0] + port_range[0] % 2 if port_range else 0

    def reserve(self) -> Reservation:
        """Hold an RTP/RTCP port pair until ``open`` (the SDP names the port before RTP
        runs): both sockets stay bound meanwhile, so no other call can take either."""
        if self.range is None:
            for _ in range(64):
                sock = _bound(self.bind_ip, 0)
                if sock is None:
                    continue
                port = sock.getsockname()[1]
                rtcp = _bound(self.bind_ip, port + 1) if port % 2 == 0 and port < 65535 \
                    else None
                if rtcp is not None:
                    return Reservation(self, port, [sock, rtcp])
                sock.close()
            raise RuntimeError("no free ephemeral RTP port pair")
        lo, hi = self.range
        span = max(1, (hi - lo + 1) // 2)
        for _ in range(span):
            port = self._next
            self._next = port + 2 if port + 3 <= hi else lo + lo % 2
            if port in self._used:
                continue
            rtp = _bound(self.bind_ip, port)
            rtcp = _bound(self.bind_ip, port + 1) if rtp is not None else None
            if rtp is None or rtcp is None:
                for held in (rtp, rtcp):
                    if held is not None:
                        held.close()
                continue
            self._used.add(port)
            return Reservation(self, port, [rtp, rtcp])
        raise RuntimeError(f"no free RTP port in {lo}-{hi}")

    def release(self, port: int) -> None:
        self._used.discard(port)


def _bound(ip: str, port: int) -> socket.socket | None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.bind((ip, port))
    except OSError:
        sock.close()
        return None
    return sock


class Reservation:
    """A reserved RTP port pair; ``open`` turns it into the call's RTP session."""

    def __init__(self, ports: RtpPorts, port: int, socks: list[socket.socket]) -> None:
        self.ports, self.port, self._socks = ports, port, socks

    def _close(self) -> None:
        for sock in self._socks:
            with contextlib.suppress(OSError):
                sock.close()

    async def open(self, remote: tuple[str, int], payload_type: int,
                   dtmf_payload_type: int) -> DirectRTPSession:
        """Bind the call's RTP session on the reserved port (before the 200 OK)."""
        self._close()
        session = await DirectRTPSession.create(
            local_addr=(self.ports.bind_ip, self.port), remote_addr=remote,
            payload_type=payload_type, dtmf_payload_type=dtmf_payload_type,
            jitter_capacity=16, jitter_prefetch=0, symmetric_rtp=False)
        assert isinstance(session, DirectRTPSession)
        return session

    def release(self) -> None:
        self._close()
        self.ports.release(self.port)


async def close_quietly(session: aiortp.RTPSession | None) -> None:
    if session is not None:
        with contextlib.suppress(Exception):
            await asyncio.shield(session.close())
