"""SIP over WebSocket (RFC 7118): the transport side of one WebSocket connection.

The HTTP server owns the socket. Its adapter (``nuage.api.sip_websocket``) opens a flow
with :meth:`nuage.sip.transport.TransportLayer.open_websocket`, passes every WebSocket
message it receives to :meth:`WebSocketFlow.receive` and calls
:meth:`WebSocketFlow.connection_lost` when the connection ends; the flow gives what the
layer sends to the adapter's ``write`` callback, which must not block.

Each WebSocket message carries one whole SIP message (RFC 7118 section 5.1): no
Content-Length framing, but one that is present must match the body. A message made of
CRLFs only is a keep-alive; a double-CRLF ping is answered with CRLF as on TCP (RFC 5626
section 4.4.1), which SIP.js-style clients expect.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from nuage.sip.peer import Peer

if TYPE_CHECKING:
    from nuage.sip.transport import TransportLayer

__all__ = ["CloseConnection", "WebSocketFlow", "WriteMessage"]

_log = logging.getLogger(__name__)

# Gives one SIP message to the adapter to send as one WebSocket message; False when the
# connection cannot take it (closing, or its peer stopped reading).
WriteMessage = Callable[[bytes], bool]
# Asks the adapter to close the connection (server shutdown, a peer that does not read).
CloseConnection = Callable[[], None]

_PING = b"\r\n\r\n"
_PONG = b"\r\n"


class WebSocketFlow:
    """One client's WebSocket connection, as the transport layer sees it."""

    __slots__ = ("_close", "_layer", "_write", "closed", "id", "peer")

    def __init__(
        self,
        layer: TransportLayer,
        peer: Peer,
        write: WriteMessage,
        close: CloseConnection,
    ) -> None:
        self._layer = layer
        self._write = write
        self._close = close
        self.peer = peer
        assert peer.connection_id is not None
        self.id: int = peer.connection_id
        self.closed = False

    def receive(self, data: bytes) -> None:
        """One WebSocket message (a text message encoded as UTF-8). Never raises."""
        layer = self._layer
        try:
            if self.closed:
                return
            if not data.strip(b"\r\n"):
                # An empty message is noise; CRLFs alone are a keep-alive.
                if data:
                    layer.stats.keepalives += 1
                    if data == _PING:
                        self.write(_PONG)
                else:
                    layer.stats.dropped += 1
                return
            layer._receive(data, self.peer, self, whole=True)
        except Exception:
            layer.stats.dropped += 1
            _log.debug("ws: message from %s dropped", self.peer, exc_info=True)

    def reply(self, data: bytes, peer: Peer) -> None:
        if self.write(data):
            self._layer.stats.sent += 1

    def write(self, data: bytes) -> bool:
        if self.closed:
            return False
        try:
            if self._write(data):
                return True
        except Exception:
            _log.debug("ws: write to %s failed", self.peer, exc_info=True)
        # A connection that cannot take what we send is of no more use than a closed one.
        self.close()
        return False

    def close(self) -> None:
        """Close the connection from our side; the adapter then reports it lost."""
        if self.closed:
            return
        self.closed = True
        try:
            self._close()
        except Exception:
            _log.debug("ws: closing %s failed", self.peer, exc_info=True)

    def connection_lost(self) -> None:
        """The adapter's word that the connection is gone (either side closed it)."""
        self.closed = True
        self._layer._websocket_lost(self)
