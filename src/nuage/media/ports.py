"""RTP port allocation: an even RTP port and the odd RTCP port above it (RFC 3550 §11),
both bound before they are handed out, so a port taken by another program is skipped
rather than failing a call later.
"""

from __future__ import annotations

import errno
import ipaddress
import socket
from collections import deque
from dataclasses import dataclass


class PortsExhaustedError(RuntimeError):
    """No RTP port pair could be bound in the configured range."""


@dataclass(frozen=True, slots=True, eq=False)
class PortPair:
    """An RTP port, its RTCP port (RTP + 1) and their bound, non-blocking sockets."""

    rtp_port: int
    rtp_socket: socket.socket
    rtcp_socket: socket.socket

    @property
    def rtcp_port(self) -> int:
        return self.rtp_port + 1


class PortAllocator:
    """Hands out port pairs on ``host`` with both ports within [port_min, port_max].

    Free pairs are kept in a FIFO: a released pair goes to the back and is reused only
    after every other free pair, so a late packet meant for an ended call does not land
    in a new one.
    """

    def __init__(self, host: str, port_min: int, port_max: int) -> None:
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            raise ValueError(f"RTP bind host must be an IP address, not {host!r}") from None
        if not 0 < port_min <= port_max <= 65535:
            raise ValueError(f"invalid RTP port range {port_min}-{port_max}")
        first = port_min + port_min % 2
        if first + 1 > port_max:
            raise ValueError(f"RTP port range {port_min}-{port_max} holds no even/odd pair")
        self.host = str(ip)
        self.port_min = port_min
        self.port_max = port_max
        self._family = socket.AF_INET if ip.version == 4 else socket.AF_INET6
        self._free: deque[int] = deque(range(first, port_max, 2))
        self._in_use: dict[int, PortPair] = {}

    @property
    def capacity(self) -> int:
        """How many pairs the range holds."""
        return len(self._free) + len(self._in_use)

    @property
    def in_use(self) -> int:
        return len(self._in_use)

    def allocate(self) -> PortPair:
        """Bind the next free pair. Raises ``PortsExhaustedError`` when every pair of the
        range is in use here or bound by another program."""
        for _ in range(len(self._free)):
            port = self._free.popleft()
            pair = self._bind(port)
            if pair is None:
                self._free.append(port)
                continue
            self._in_use[port] = pair
            return pair
        raise PortsExhaustedError(
            f"no free RTP port pair on {self.host} in {self.port_min}-{self.port_max}: "
            f"{len(self._in_use)} of {self.capacity} pairs in use by calls, "
            f"{len(self._free)} bound by other programs"
        )

    def release(self, pair: PortPair) -> None:
        """Close the pair's sockets (if still open) and queue its port for reuse.
        Releasing a pair twice is harmless."""
        if self._in_use.get(pair.rtp_port) is not pair:
            return
        del self._in_use[pair.rtp_port]
        pair.rtp_socket.close()
        pair.rtcp_socket.close()
        self._free.append(pair.rtp_port)

    def _bind(self, port: int) -> PortPair | None:
        """Both sockets of ``port``, or None when one of the ports is taken."""
        sockets: list[socket.socket] = []
        try:
            for number in (port, port + 1):
                sock = socket.socket(self._family, socket.SOCK_DGRAM)
                sockets.append(sock)
                sock.setblocking(False)
                sock.bind((self.host, number))
        except OSError as exc:
            for sock in sockets:
                sock.close()
            if exc.errno == errno.EADDRINUSE:
                return None
            raise
        return PortPair(port, sockets[0], sockets[1])
