"""Tests of the media engine: SDP, RTP port allocation and the anchored relay."""

from __future__ import annotations

import random
import socket


def free_udp_port_range(count: int) -> int:
    """The first (even) of ``count`` consecutive ports free for UDP on 127.0.0.1.

    A random start keeps parallel test processes apart; the range stays below the
    kernel's ephemeral range so outgoing sockets do not take the ports meanwhile.
    """
    for _ in range(200):
        base = random.randrange(20000, 32000 - count) & ~1
        sockets: list[socket.socket] = []
        try:
            for port in range(base, base + count):
                sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                sockets.append(sock)
                sock.bind(("127.0.0.1", port))
        except OSError:
            continue
        finally:
            for sock in sockets:
                sock.close()
        return base
    raise RuntimeError(f"no {count} consecutive free UDP ports on 127.0.0.1")
