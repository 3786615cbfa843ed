"""Where a SIP message came from or goes to."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Peer:
    """A transport address: ``transport`` is "udp", "tcp", "tls" or "ws" (lowercase).

    ``connection_id`` names the connection a message arrived on (stream transports), so a
    response or an in-dialog request can go back on it; None for UDP or "open one".
    """

    transport: str
    host: str
    port: int
    connection_id: int | None = None

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.transport}:{host}:{self.port}"
