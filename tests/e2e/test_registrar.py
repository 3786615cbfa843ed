"""The registrar's rules, exercised over real UDP with a minimal hand-written client."""

from __future__ import annotations

import asyncio
import itertools
import socket
from pathlib import Path

from e2e.server import DOMAIN, USERS, NuageProcess, acme_plan, running_nuage
from nuage.sip.digest import authorization_for
from nuage.sip.message import Response
from nuage.sip.parser import parse_message

_branches = itertools.count(1)


class Registering:
    """One phone's REGISTER dialogue: one Call-ID, growing CSeq, digest answered."""

    def __init__(
        self, nuage: NuageProcess, extension: str, call_id: str, *, aor: str | None = None
    ) -> None:
        self.nuage = nuage
        self.extension = extension
        # The address-of-record registered; the credentials are always `extension`'s.
        self.aor = aor or extension
        self.call_id = call_id
        self.cseq = 0
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(5)
        self.port = self.sock.getsockname()[1]

    def close(self) -> None:
        self.sock.close()

    async def _send(self, headers: list[str], cseq: int) -> Response:
        lines = [
            f"REGISTER sip:{DOMAIN} SIP/2.0",
            f"Via: SIP/2.0/UDP 127.0.0.1:{self.port};branch=z9hG4bK{next(_branches)};rport",
            "Max-Forwards: 70",
            f"From: <sip:{self.aor}@{DOMAIN}>;tag=t{self.call_id}",
            f"To: <sip:{self.aor}@{DOMAIN}>",
            f"Call-ID: {self.call_id}",
            f"CSeq: {cseq} REGISTER",
            *headers,
            "Content-Length: 0",
        ]
        data = ("\r\n".join(lines) + "\r\n\r\n").encode()
        self.sock.sendto(data, ("127.0.0.1", self.nuage.sip_port))
        while True:
            raw = await asyncio.to_thread(self.sock.recv, 65536)
            response = parse_message(raw)
            assert isinstance(response, Response)
            if response.status >= 200:
                return response

    async def register(
        self, contacts: list[str], *, expires: int | None = None, cseq: int | None = None
    ) -> Response:
        """REGISTER with these Contact values, answering the challenge."""
        headers = [f"Contact: {contact}" for contact in contacts]
        if expires is not None:
            headers.append(f"Expires: {expires}")
        self.cseq += 1
        challenge = await self._send(headers, self.cseq)
        assert challenge.status == 401, challenge
        credentials = authorization_for(
            challenge.headers.values("WWW-Authenticate"),
            "REGISTER",
            f"sip:{DOMAIN}",
            self.extension,
            USERS[self.extension][2],
        )
        self.cseq += 1
        return await self._send(
            [*headers, f"Authorization: {credentials}"], self.cseq if cseq is None else cseq
        )


def _contacts(response: Response) -> dict[str, int]:
    return {str(address.uri): int(address.params["expires"] or 0) for address in response.contacts}


async def test_bindings_expiry_refresh_unregister(tmp_path: Path) -> None:
    async with running_nuage(tmp_path / "nuage", acme_plan(5999)) as nuage:
        phone = Registering(nuage, "1001", "reg-a")
        try:
            desk = "<sip:1001@127.0.0.1:7001>"
            mobile = "<sip:1001@127.0.0.1:7002>;expires=120"
            ok = await phone.register([desk, mobile], expires=600)
            assert ok.status == 200
            assert _contacts(ok) == {"sip:1001@127.0.0.1:7001": 600, "sip:1001@127.0.0.1:7002": 120}
            too_brief = await phone.register(["<sip:1001@127.0.0.1:7003>"], expires=10)
            assert too_brief.status == 423
            assert too_brief.headers.get("Min-Expires") == "60"
            gone = await phone.register(["<sip:1001@127.0.0.1:7001>"], expires=0)
            assert gone.status == 200
            assert list(_contacts(gone)) == ["sip:1001@127.0.0.1:7002"]
            everything = await phone.register(["*"], expires=0)
            assert everything.status == 200 and everything.contacts == []
            wildcard_misuse = await phone.register(["*"], expires=60)
            assert wildcard_misuse.status == 400
        finally:
            phone.close()


async def test_stale_register_and_device_limit(tmp_path: Path) -> None:
    async with running_nuage(tmp_path / "nuage", acme_plan(5999)) as nuage:
        phone = Registering(nuage, "1002", "reg-b")
        try:
            first = await phone.register(["<sip:1002@127.0.0.1:7100>"], cseq=10)
            assert first.status == 200
            # Same Call-ID, older CSeq: an out-of-order request must not change the binding.
            stale = await phone.register(["<sip:1002@127.0.0.1:7100>"], expires=0, cseq=5)
            assert stale.status == 500
            contacts = [f"<sip:1002@127.0.0.1:{7101 + n}>" for n in range(9)]
            full = await phone.register(contacts)
            assert full.status == 200 and len(full.contacts) == 10
            one_more = await phone.register(["<sip:1002@127.0.0.1:7200>"])
            assert one_more.status == 403
            assert "Too many devices" in one_more.reason
        finally:
            phone.close()


async def test_cannot_register_someone_else(tmp_path: Path) -> None:
    async with running_nuage(tmp_path / "nuage", acme_plan(5999)) as nuage:
        phone = Registering(nuage, "1001", "reg-c", aor="1002")
        try:
            response = await phone.register(["<sip:1002@127.0.0.1:7300>"])
            assert response.status == 403
            assert response.reason == "Cannot register another user's extension"
        finally:
            phone.close()
