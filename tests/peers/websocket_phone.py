"""A minimal SIP user agent over a real WebSocket (RFC 7118), shaped like a browser's.

It connects with the ``sip`` subprotocol, names itself with an unresolvable `.invalid`
host in its Via and Contact (as JsSIP does), registers with digest, or with the web app's
access token (``bearer``: ``Authorization: Bearer <token>`` on every request, as JsSIP's
``authorization_jwt`` does, RFC 8898), and lets a test read the requests the server sends
it and answer them by hand. One SIP message per WebSocket message, sent as text.
"""

from __future__ import annotations

import asyncio
import itertools
import secrets
import ssl
from types import TracebackType
from typing import Self

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from nuage.sip.digest import authorization_for
from nuage.sip.message import Request, Response, make_response
from nuage.sip.parser import parse_message

WAIT = 10.0


class WebSocketPhone:
    """One account over one WebSocket: ``async with WebSocketPhone(url, ...) as phone``."""

    def __init__(
        self,
        url: str,
        domain: str,
        user: str,
        password: str = "",
        *,
        bearer: str | None = None,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.url = url
        # For a wss:// URL: what the server's certificate is checked against.
        self.tls = tls
        self.domain = domain
        self.user = user
        self.password = password
        # The app's access token: sent on every request instead of answering challenges.
        self.bearer = bearer
        self.host = f"{secrets.token_hex(6)}.invalid"
        self.contact = f"sip:{secrets.token_hex(4)}@{self.host};transport=ws"
        self.call_id = secrets.token_hex(10)
        self._cseq = itertools.count(1)
        self._branches = itertools.count(1)
        self._tag = secrets.token_hex(4)
        self._connection: ClientConnection | None = None
        self._reader: asyncio.Task[None] | None = None
        self.responses: asyncio.Queue[Response] = asyncio.Queue()
        self.requests: asyncio.Queue[Request] = asyncio.Queue()
        # What came that was no SIP message: keep-alive answers, or anything unexpected.
        self.other: list[str | bytes] = []
        # The last REGISTER's challenge, if one came.
        self.challenge: Response | None = None

    async def __aenter__(self) -> Self:
        self._connection = await connect(
            self.url,
            subprotocols=["sip"],  # type: ignore[list-item]
            ssl=self.tls,
        )
        self._reader = asyncio.create_task(self._read())
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    @property
    def connection(self) -> ClientConnection:
        assert self._connection is not None
        return self._connection

    @property
    def open(self) -> bool:
        """Whether the server has not closed the connection."""
        return self._reader is not None and not self._reader.done()

    async def close(self) -> None:
        if self._connection is not None:
            await self._connection.close()
        if self._reader is not None:
            await asyncio.wait([self._reader], timeout=WAIT)

    async def _read(self) -> None:
        try:
            async for data in self.connection:
                raw = data.encode() if isinstance(data, str) else bytes(data)
                try:
                    message = parse_message(raw, whole=True)
                except ValueError:
                    self.other.append(data)
                    continue
                if isinstance(message, Response):
                    self.responses.put_nowait(message)
                else:
                    self.requests.put_nowait(message)
        except ConnectionClosed:
            pass

    async def send(self, data: str | bytes) -> None:
        await self.connection.send(data)

    def _via(self) -> str:
        return f"SIP/2.0/WSS {self.host};branch=z9hG4bK{self._tag}{next(self._branches)}"

    def request_text(
        self,
        method: str,
        uri: str,
        headers: list[str],
        body: str = "",
        *,
        to: str | None = None,
        call_id: str | None = None,
        cseq: int | None = None,
    ) -> str:
        """A request from this account; by default in its registration's dialog-less
        sequence (To: itself), else to ``to`` in call ``call_id`` at ``cseq``."""
        lines = [
            f"{method} {uri} SIP/2.0",
            f"Via: {self._via()}",
            "Max-Forwards: 70",
            f"From: <sip:{self.user}@{self.domain}>;tag={self._tag}",
            f"To: {to or f'<sip:{self.user}@{self.domain}>'}",
            f"Call-ID: {call_id or self.call_id}",
            f"CSeq: {cseq if cseq is not None else next(self._cseq)} {method}",
            *headers,
            *([f"Authorization: Bearer {self.bearer}"] if self.bearer is not None else []),
            f"Content-Length: {len(body.encode())}",
        ]
        return "\r\n".join(lines) + "\r\n\r\n" + body

    async def response(self, within: float = WAIT) -> Response:
        """The next final response."""
        while True:
            response = await asyncio.wait_for(self.responses.get(), within)
            if response.status >= 200:
                return response

    async def register(self, *, password: str | None = None, expires: int = 600) -> Response:
        """REGISTER (answering the 401 unless it has a bearer token) and return the final
        response."""
        headers = [
            f'Contact: <{self.contact}>;reg-id=1;+sip.instance="<urn:uuid:{self.call_id}>"',
            f"Expires: {expires}",
        ]
        uri = f"sip:{self.domain}"
        await self.send(self.request_text("REGISTER", uri, headers))
        challenge = self.challenge = await self.response()
        if challenge.status != 401 or self.bearer is not None:
            return challenge
        credentials = authorization_for(
            challenge.headers.values("WWW-Authenticate"),
            "REGISTER",
            uri,
            self.user,
            password if password is not None else self.password,
        )
        await self.send(
            self.request_text("REGISTER", uri, [*headers, f"Authorization: {credentials}"])
        )
        return await self.response()

    async def request(self, method: str, within: float = WAIT) -> Request:
        """The next request the server sent, which must be a ``method``."""
        request = await asyncio.wait_for(self.requests.get(), within)
        assert request.method == method, bytes(request).decode()
        return request

    async def respond(
        self,
        request: Request,
        status: int,
        *,
        to_tag: str | None = None,
        headers: list[tuple[str, str]] | None = None,
        body: str = "",
    ) -> None:
        response = make_response(request, status)
        if to_tag is not None and request.to.tag is None:
            response.headers.set("To", f"{response.headers.get('To')};tag={to_tag}")
        for name, value in headers or []:
            response.headers.add(name, value)
        if body:
            response.headers.add("Content-Type", "application/sdp")
        response.body = body.encode()
        await self.send(bytes(response).decode())

    # -- calls: as the web app places and ends them --------------------------------------

    async def invite(self, target: str, offer: str) -> Response:
        """INVITE ``target`` with the SDP ``offer`` (answering the digest challenge);
        the final response. ACK it with ``ack``, end it with ``bye``."""
        call = {"to": f"<{target}>", "call_id": secrets.token_hex(10)}
        headers = [f"Contact: <{self.contact}>", "Content-Type: application/sdp"]
        await self.send(self.request_text("INVITE", target, headers, offer, cseq=1, **call))
        response = await self.response(within=30)
        if response.status != 401:
            return response
        refused = {"to": str(response.to), "call_id": call["call_id"]}
        await self.send(self.request_text("ACK", target, [], cseq=1, **refused))
        if self.bearer is not None:
            return response
        credentials = authorization_for(
            response.headers.values("WWW-Authenticate"), "INVITE", target, self.user, self.password
        )
        headers.append(f"Authorization: {credentials}")
        await self.send(self.request_text("INVITE", target, headers, offer, cseq=2, **call))
        return await self.response(within=30)

    async def ack(self, answer: Response) -> None:
        target = str(answer.contacts[0].uri)
        dialog = {"to": str(answer.to), "call_id": answer.call_id}
        await self.send(self.request_text("ACK", target, [], cseq=answer.cseq.seq, **dialog))

    async def bye(self, answer: Response) -> Response:
        """BYE the call ``answer`` (its 2xx) set up; the final response."""
        target = str(answer.contacts[0].uri)
        dialog = {"to": str(answer.to), "call_id": answer.call_id}
        await self.send(self.request_text("BYE", target, [], cseq=answer.cseq.seq + 1, **dialog))
        return await self.response()
