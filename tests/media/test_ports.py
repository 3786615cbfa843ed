from __future__ import annotations

import socket

import pytest

from nuage.media.ports import PortAllocator, PortsExhaustedError

from . import free_udp_port_range


def test_pairs_are_even_odd_bound_and_within_range() -> None:
    low = free_udp_port_range(8)
    allocator = PortAllocator("127.0.0.1", low + 1, low + 7)  # odd bounds on purpose
    pairs = [allocator.allocate() for _ in range(3)]
    try:
        assert [p.rtp_port for p in pairs] == [low + 2, low + 4, low + 6]
        for pair in pairs:
            assert pair.rtcp_port == pair.rtp_port + 1
            assert pair.rtp_socket.getsockname() == ("127.0.0.1", pair.rtp_port)
            assert pair.rtcp_socket.getsockname() == ("127.0.0.1", pair.rtcp_port)
        assert allocator.capacity == 3
        assert allocator.in_use == 3
        with pytest.raises(PortsExhaustedError, match=rf"{low + 1}-{low + 7}: 3 of 3 pairs"):
            allocator.allocate()
    finally:
        for pair in pairs:
            allocator.release(pair)
    assert allocator.in_use == 0


def test_released_ports_are_reused_last_in_fifo_order() -> None:
    low = free_udp_port_range(6)
    allocator = PortAllocator("127.0.0.1", low, low + 5)
    first = allocator.allocate()
    allocator.release(first)
    allocator.release(first)  # idempotent
    assert first.rtp_socket.fileno() == -1
    order = [allocator.allocate() for _ in range(3)]
    assert [p.rtp_port for p in order] == [low + 2, low + 4, low]
    for pair in order:
        allocator.release(pair)


def test_a_port_bound_by_another_program_is_skipped() -> None:
    low = free_udp_port_range(4)
    squatter = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    squatter.bind(("127.0.0.1", low + 1))  # the RTCP port of the first pair
    try:
        allocator = PortAllocator("127.0.0.1", low, low + 3)
        pair = allocator.allocate()
        assert pair.rtp_port == low + 2
        with pytest.raises(PortsExhaustedError, match="1 bound by other programs"):
            allocator.allocate()
        # The half-bound pair's RTP socket was not leaked: its port is free.
        probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        probe.bind(("127.0.0.1", low))
        probe.close()
        allocator.release(pair)
    finally:
        squatter.close()


@pytest.mark.parametrize(
    ("host", "low", "high", "message"),
    [
        ("localhost", 10000, 10010, "IP address"),
        ("127.0.0.1", 10010, 10000, "invalid RTP port range"),
        ("127.0.0.1", 0, 10, "invalid RTP port range"),
        ("127.0.0.1", 10001, 10002, "no even/odd pair"),
    ],
)
def test_bad_configuration(host: str, low: int, high: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        PortAllocator(host, low, high)
