"""Free local ports for peers that must be told their port before they start."""

from __future__ import annotations

import itertools
import random
import socket
import time

_HOST = "127.0.0.1"
# Ports handed out by this process, and when: a peer binds them only when it starts, so
# a second caller in between would otherwise find them free too. After a while they are
# either bound (and found taken) or free again: remembering them for the whole run would
# use up the range in a long test session.
_given: dict[int, float] = {}
_GIVEN_FOR = 120.0


def _is_free(port: int) -> bool:
    given = _given.get(port)
    if given is not None and time.monotonic() - given < _GIVEN_FOR:
        return False
    # A SIP peer binds UDP and TCP on the same number, so both must be free.
    for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
        with socket.socket(socket.AF_INET, kind) as sock:
            try:
                sock.bind((_HOST, port))
            except OSError:
                return False
    return True


def free_port() -> int:
    """A port free for both UDP and TCP on 127.0.0.1."""
    return free_ports(1)


def free_ports(count: int) -> int:
    """The first of `count` consecutive ports, all free for UDP and TCP.

    Peers bind neighbours of the port they are given (baresip: SIP + 1 for TLS; sipp:
    media port + 2 for video), so one free port is not enough. Starting at a random place
    keeps parallel test processes apart; the range stays below the kernel's ephemeral
    range (32768+) so outgoing sockets do not take the ports before the peer binds them.
    """
    start = random.randrange(20000, 32000 - count)
    for base in itertools.chain(range(start, 32000 - count, count), range(20000, start, count)):
        block = range(base, base + count)
        if all(_is_free(port) for port in block):
            now = time.monotonic()
            _given.update(dict.fromkeys(block, now))
            return base
    raise RuntimeError(f"no {count} consecutive free ports on {_HOST}")
