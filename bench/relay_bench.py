"""CPU cost of the anchored RTP relay, against a bare uvloop datagram relay.

    .venv/bin/python bench/relay_bench.py --sessions 100 --seconds 10

Per round, a relay process is started (Nuage's ``LocalMediaEngine``, or the bare
baseline: per session one socket pair, each socket forwarding to a fixed address with
``transport.sendto`` and nothing else), and this process, the load generator, plays two
phones per session sending 172-byte RTP packets (G.711, 20 ms) 50 times a second each
way. The relay process measures its own CPU time (user + system) over the sending
window; CPU per relayed packet is that time over the packets the phones received. The
two relays alternate for ``--rounds`` rounds and the medians are printed.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import socket
import statistics
import struct
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

import uvloop

from nuage.media.engine import LocalMediaEngine

HOST = "127.0.0.1"
PACKET_SIZE = 172
PACKETS_PER_SECOND = 50
DRAIN_SECONDS = 0.5


@dataclass(frozen=True)
class Round:
    relay: str
    sent: int
    received: int
    cpu_seconds: float

    @property
    def loss_percent(self) -> float:
        return 100.0 * (self.sent - self.received) / self.sent

    @property
    def cpu_us_per_packet(self) -> float:
        return 1e6 * self.cpu_seconds / max(self.received, 1)


# --- relay process ---------------------------------------------------------------------


class _BareForwarder(asyncio.DatagramProtocol):
    """The baseline: what a relay cannot do with less."""

    def __init__(self, destination: tuple[str, int]) -> None:
        self.destination = destination
        self.out: asyncio.DatagramTransport

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        self.out.sendto(data, self.destination)


async def _bind(
    loop: asyncio.AbstractEventLoop, protocol: _BareForwarder
) -> asyncio.DatagramTransport:
    transport, _ = await loop.create_datagram_endpoint(lambda: protocol, local_addr=(HOST, 0))
    return transport


async def _bare_relay(phones: list[tuple[int, int]]) -> list[tuple[int, int]]:
    loop = asyncio.get_running_loop()
    ports: list[tuple[int, int]] = []
    for phone_a, phone_b in phones:
        side_a = _BareForwarder((HOST, phone_b))
        side_b = _BareForwarder((HOST, phone_a))
        transport_a = await _bind(loop, side_a)
        transport_b = await _bind(loop, side_b)
        side_a.out, side_b.out = transport_b, transport_a
        ports.append(
            (transport_a.get_extra_info("sockname")[1], transport_b.get_extra_info("sockname")[1])
        )
    return ports


async def _nuage_relay(
    phones: list[tuple[int, int]], port_min: int
) -> tuple[list[tuple[int, int]], LocalMediaEngine]:
    # Slack in the range for ports other programs (or parallel test runs) hold.
    engine = LocalMediaEngine(HOST, port_min, port_min + 4 * len(phones) + 1000)
    ports: list[tuple[int, int]] = []
    for phone_a, phone_b in phones:
        session = await engine.create_session()
        session.a.set_remote(HOST, phone_a)
        session.b.set_remote(HOST, phone_b)
        ports.append((session.a.rtp_port, session.b.rtp_port))
    return ports, engine


async def _serve(relay: str, control: Connection, port_min: int) -> None:
    loop = asyncio.get_running_loop()
    phones: list[tuple[int, int]] = control.recv()
    engine = None
    if relay == "nuage":
        ports, engine = await _nuage_relay(phones, port_min)
    else:
        ports = await _bare_relay(phones)
    control.send(ports)
    done = loop.create_future()
    started = 0.0

    def on_command() -> None:
        nonlocal started
        command = control.recv()
        if command == "start":
            started = time.process_time()
            control.send("started")
        elif command == "stop":
            control.send(time.process_time() - started)
        else:
            done.set_result(None)

    loop.add_reader(control.fileno(), on_command)
    await done
    loop.remove_reader(control.fileno())
    if engine is not None:
        await engine.close()


def _relay_process(relay: str, loop_kind: str, control: Connection, port_min: int) -> None:
    if loop_kind == "uvloop":
        uvloop.run(_serve(relay, control, port_min))
    else:
        asyncio.run(_serve(relay, control, port_min))


# --- load generator --------------------------------------------------------------------


class _Phone(asyncio.DatagramProtocol):
    """One phone's socket: the loop counts what it receives; sending uses the socket
    directly, which keeps the generator's own cost low enough to hold the pace."""

    def __init__(self) -> None:
        self.received = 0
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.socket.setblocking(False)
        self.socket.bind((HOST, 0))
        self.port: int = self.socket.getsockname()[1]

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        self.received += 1

    async def start(self) -> None:
        await asyncio.get_running_loop().create_datagram_endpoint(lambda: self, sock=self.socket)


async def _generate(control: Connection, sessions: int, seconds: float) -> tuple[int, int, float]:
    loop = asyncio.get_running_loop()
    phones = [(_Phone(), _Phone()) for _ in range(sessions)]
    for phone_a, phone_b in phones:
        await phone_a.start()
        await phone_b.start()
    control.send([(a.port, b.port) for a, b in phones])
    relay_ports: list[tuple[int, int]] = control.recv()
    senders = [
        (a.socket, (HOST, port_a), b.socket, (HOST, port_b))
        for (a, b), (port_a, port_b) in zip(phones, relay_ports, strict=True)
    ]
    packet = struct.pack("!BBHII", 0x80, 0, 1, 160, 0x1234) + bytes(PACKET_SIZE - 12)

    def send_all() -> None:
        for sock_a, relay_a, sock_b, relay_b in senders:
            try:
                sock_a.sendto(packet, relay_a)
                sock_b.sendto(packet, relay_b)
            except BlockingIOError:
                pass  # counted as loss: the phone could not send it

    # Warm-up: every phone sends once so that the relay latches, then counting starts.
    send_all()
    await asyncio.sleep(DRAIN_SECONDS)
    for a, b in phones:
        a.received = b.received = 0
    control.send("start")
    control.recv()
    ticks = int(seconds * PACKETS_PER_SECOND)
    deadline = loop.time()
    for _ in range(ticks):
        send_all()
        deadline += 1 / PACKETS_PER_SECOND
        await asyncio.sleep(max(0.0, deadline - loop.time()))
    await asyncio.sleep(DRAIN_SECONDS)
    control.send("stop")
    cpu_seconds: float = control.recv()
    received = sum(a.received + b.received for a, b in phones)
    return 2 * sessions * ticks, received, cpu_seconds


def run_round(relay: str, args: argparse.Namespace) -> Round:
    context = multiprocessing.get_context("spawn")
    control, child_control = context.Pipe()
    process = context.Process(
        target=_relay_process,
        args=(relay, args.loop if relay == "nuage" else "uvloop", child_control, args.port_min),
    )
    process.start()
    # Only the child holds its end now, so its death shows here as EOFError, not a hang.
    child_control.close()
    try:
        sent, received, cpu_seconds = uvloop.run(_generate(control, args.sessions, args.seconds))
        control.send("exit")
    finally:
        process.join(timeout=10)
        if process.is_alive():
            process.kill()
    return Round(relay, sent, received, cpu_seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--loop",
        choices=["uvloop", "asyncio"],
        default="uvloop",
        help="Nuage relay's loop (the bare baseline always runs on uvloop)",
    )
    parser.add_argument(
        "--port-min",
        type=int,
        default=20000,
        help="start of Nuage's relay port range (keep it below the ephemeral range)",
    )
    args = parser.parse_args()

    print(
        f"{args.sessions} sessions, {PACKETS_PER_SECOND} packets/s of {PACKET_SIZE} bytes "
        f"each way, {args.seconds:g} s per round, Nuage relay loop: {args.loop}"
    )
    rounds: dict[str, list[Round]] = {"nuage": [], "bare": []}
    for number in range(1, args.rounds + 1):
        for relay in ("nuage", "bare"):
            result = run_round(relay, args)
            rounds[relay].append(result)
            print(
                f"round {number} {relay:5}: sent {result.sent}, received {result.received}, "
                f"loss {result.loss_percent:.3f} %, CPU {result.cpu_seconds:.3f} s, "
                f"{result.cpu_us_per_packet:.2f} µs/packet"
            )
    print()
    print(f"{'relay':6} {'loss % (median)':>16} {'CPU µs/packet (median)':>24}")
    for relay, results in rounds.items():
        loss = statistics.median(r.loss_percent for r in results)
        cpu = statistics.median(r.cpu_us_per_packet for r in results)
        print(f"{relay:6} {loss:16.3f} {cpu:24.2f}")
    nuage = statistics.median(r.cpu_us_per_packet for r in rounds["nuage"])
    bare = statistics.median(r.cpu_us_per_packet for r in rounds["bare"])
    print(f"nuage / bare: {nuage / bare:.2f}")


if __name__ == "__main__":
    main()
