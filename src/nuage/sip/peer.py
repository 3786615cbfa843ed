"""Where a SIP message came from or goes to."""

from __future__ import annotations

from dataclasses import dataclass

# Transports whose clients are reached only over the connection they opened: a browser
# accepts no connection, and its Via and Contact name an unresolvable `.invalid` host
# (RFC 7118 section 5). Once that connection is gone, so is the client.
CONNECTION_BOUND_TRANSPORTS = frozenset({"ws", "wss"})


@dataclass(frozen=True, slots=True)
class Peer:
    """A transport address: ``transport`` is "udp", "tcp", "tls", "ws" or "wss" (lowercase).

    ``connection_id`` names the connection a message arrived on (stream transports), so a
    response or an in-dialog request can go back on it; None for UDP or "open one".
    """

    transport: str
    host: str
    port: int
    connection_id: int | None = None

    @property
    def connection_bound(self) -> bool:
        """Whether only the connection it came from can reach this peer (WebSocket)."""
        return self.transport in CONNECTION_BOUND_TRANSPORTS

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.transport}:{host}:{self.port}"
