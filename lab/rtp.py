"""
What a SIPp phone heard: the RTP packets Asterisk sent to its media port,
captured on the loopback with a packet socket (root, inside the lab's
network namespace), since SIPp itself does not record the audio it receives.

Only the sizes, arrival times, sequence numbers and timestamps are kept:
enough to say how long Asterisk played to the phone (PCMU: 8,000 bytes a
second) and in which bursts.
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from dataclasses import dataclass

_ETH_P_ALL = 0x0003
_PACKET_HOST = 0  # a packet for this host (the loopback shows each one twice)


@dataclass(frozen=True)
class RtpPacket:
    at: float  # time.monotonic() on arrival
    payload_type: int
    sequence: int
    timestamp: int
    size: int  # audio bytes (PCMU: one byte a sample)


class RtpCapture:
    """Captures RTP sent to 127.0.0.1:C{port} on C{interface} until L{stop}."""

    def __init__(self, port: int, interface: str = "lo"):
        self.port = port
        self.packets: list[RtpPacket] = []
        self._sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(_ETH_P_ALL))
        self._sock.bind((interface, 0))
        self._sock.settimeout(0.2)
        self._running = True
        self._thread = threading.Thread(target=self._run, daemon=True, name=f"rtp-{port}")
        self._thread.start()

    def _run(self) -> None:
        while self._running:
            try:
                frame, address = self._sock.recvfrom(65535)
            except socket.timeout:
                continue
            except OSError:
                return
            if address[2] != _PACKET_HOST:
                continue
            packet = self._parse(frame)
            if packet is not None:
                self.packets.append(packet)

    def _parse(self, frame: bytes) -> RtpPacket | None:
        # Loopback frames carry a 14-byte Ethernet header of zeros.
        if len(frame) < 14 + 20 + 8 + 12 or frame[12:14] != b"\x08\x00":
            return None
        ip = frame[14:]
        header = (ip[0] & 0x0F) * 4
        if ip[9] != 17:  # UDP
            return None
        udp = ip[header:]
        _, dst, length, _ = struct.unpack("!HHHH", udp[:8])
        if dst != self.port:
            return None
        rtp = udp[8:length]
        if len(rtp) < 12 or rtp[0] >> 6 != 2:
            return None
        csrc = rtp[0] & 0x0F
        payload_type = rtp[1] & 0x7F
        sequence, timestamp = struct.unpack("!HI", rtp[2:8])
        return RtpPacket(time.monotonic(), payload_type, sequence, timestamp,
                         len(rtp) - 12 - 4 * csrc)

    def stop(self) -> None:
        self._running = False
        self._thread.join(2)
        self._sock.close()

    def bursts(self, gap: float = 0.25, payload_type: int = 0) -> list[tuple[float, float]]:
        """L{bursts} of what was captured so far."""
        return bursts(self.packets, gap, payload_type)


def continues(before: RtpPacket, after: RtpPacket) -> bool:
    """
    Whether C{after} carries the media right after C{before}'s: the next
    sequence number, the timestamp moved by exactly C{before}'s samples
    (PCMU: a sample a byte). Asterisk stamps a stream it stopped and started
    again at least 640 ms on (MAX_TIMESTAMP_SKEW, res_rtp_asterisk), so a
    pause between two prompts breaks this; a late packet does not.
    """
    return (after.sequence == (before.sequence + 1) & 0xFFFF
            and after.timestamp == (before.timestamp + before.size) & 0xFFFFFFFF)


def bursts(packets, gap: float = 0.25, payload_type: int = 0) -> list[tuple[float, float]]:
    """
    Audio as (seconds of audio, seconds from the first packet to the last)
    for each run of C{payload_type} packets: one ends where the next packet
    came more than C{gap} seconds after and does not continue its media (a
    pause), not where a loaded machine only delivered it late.
    """
    out = []
    run: list[RtpPacket] = []
    for p in [p for p in packets if p.payload_type == payload_type]:
        if run and p.at - run[-1].at > gap and not continues(run[-1], p):
            out.append(run)
            run = []
        run.append(p)
    if run:
        out.append(run)
    return [(sum(p.size for p in r) / 8000.0, r[-1].at - r[0].at) for r in out]
