"""Message-waiting indication (RFC 3842) between SIP endpoints on loopback: a phone
subscribes to its own box's message-summary through the subscription manager, and
registered phones that do not subscribe get unsolicited NOTIFYs. The box is the
database's: messages are added through the store (what a deposit does, then its
listener), heard and deleted through the voicemail service (what the API does)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import cast

import pytest

from nuage.events.memory import InProcessBus
from nuage.media.engine import MediaEngine
from nuage.pbx.auth import UserAuthenticator
from nuage.pbx.directory import Directory
from nuage.pbx.event_packages import MessageSummaryPackage
from nuage.pbx.location import LocationService
from nuage.pbx.message_waiting import MessageWaiting
from nuage.pbx.provision import apply_plan
from nuage.pbx.registrar import Registrar
from nuage.pbx.subscriptions import SubscriptionManager
from nuage.pbx.throttle import FailureThrottle
from nuage.pbx.unsolicited_mwi import UnsolicitedMwi
from nuage.pbx.voicemail.service import Voicemail
from nuage.pbx.voicemail.store import BoxKey, MessageCounts, VoicemailStore
from nuage.sip.digest import DigestAuthenticator, authorization_for
from nuage.sip.endpoint import ServerTransactionHandle, SipEndpoint, new_tag
from nuage.sip.event_bodies import MESSAGE_SUMMARY
from nuage.sip.message import URI, Headers, Request, Response
from nuage.store.database import Database
from nuage.store.writer import BatchWriter
from test_provision import ISSUE_PLAN, MORE_USERS, write
from test_subscriptions import DOMAIN, FAST, HOST, PASSWORDS, Clock, Phone, _peer

pytestmark = pytest.mark.db

MWI = [("Event", "message-summary"), ("Expires", "600")]


@dataclass
class Mwi:
    voicemail: Voicemail
    waiting: MessageWaiting
    manager: SubscriptionManager
    company_id: int
    users: dict[str, int]
    server: SipEndpoint
    data_dir: Path
    bus: InProcessBus  # what other nodes' event feeds publish to
    db: Database

    def box(self, extension: str) -> BoxKey:
        return BoxKey(self.company_id, user_id=self.users[extension])

    async def leave_message(self, extension: str) -> int:
        """A message for ``extension``'s box, as a deposit keeps it; its id."""
        user_id = self.users[extension]
        message = await self.voicemail.store.add_message(
            BoxKey(self.company_id, user_id=user_id),
            caller="1003",
            caller_name="Camille",
            path=self.data_dir / "voicemail" / f"{new_tag()}.wav",
            duration_ms=4000,
        )
        self.waiting.box_changed(self.company_id, user_id)
        return message.id

    async def phone(self) -> Phone:
        phone = Phone(_peer(self.server))
        await phone.start()
        return phone


@pytest.fixture
async def mwi(database: Database, tmp_path: Path) -> AsyncIterator[Mwi]:
    await apply_plan(database, write(tmp_path, ISSUE_PLAN + MORE_USERS))
    directory = Directory(database)
    await directory.start()
    company = directory.company_by_domain(DOMAIN)
    assert company is not None
    users = {user.extension: user.id for user in directory.users_of(company.id)}
    auth = UserAuthenticator(directory, DigestAuthenticator(b"k" * 32), FailureThrottle())
    # Deposits need media; nothing here leaves a message by a call.
    voicemail = Voicemail(VoicemailStore(database, tmp_path), cast(MediaEngine, None))
    bus = InProcessBus()
    waiting = MessageWaiting(voicemail, bus)
    package = MessageSummaryPackage(waiting)
    server: SipEndpoint | None = None

    def contact(transport: str) -> str:
        assert server is not None
        peer = _peer(server)
        return f"<sip:nuage@{peer.host}:{peer.port}>"

    manager = SubscriptionManager(directory, auth, [package], contact_for=contact, clock=Clock())
    waiting.listeners.add(partial(manager.resource_changed, event=package.event))
    writer = BatchWriter(database)
    writer.start()
    location = LocationService(database, writer)
    unsolicited = UnsolicitedMwi(directory, location, waiting, manager, contact_for=contact)
    registrar = Registrar(location, auth, on_new_binding=unsolicited.registered)

    async def on_request(tx: ServerTransactionHandle) -> None:
        request = tx.request
        if request.method == "REGISTER":
            await registrar.handle(tx, company)
        elif not request.to.tag:
            await manager.subscribe(tx)
        elif not (request.method == "SUBSCRIBE" and manager.refresh(tx)):
            tx.respond(481)

    server = SipEndpoint(on_request, timers=FAST)
    await server.listen_udp(HOST, 0)
    manager.attach(server)
    unsolicited.attach(server)
    try:
        yield Mwi(voicemail, waiting, manager, company.id, users, server, tmp_path, bus, database)
    finally:
        unsolicited.close()
        waiting.close()
        manager.close()
        await server.close()
        await writer.close()
        await directory.close()


async def register(phone: Phone, extension: str, call_id: str, cseq: int = 1) -> Response:
    """REGISTER the phone's address as ``extension``, answering the challenge."""
    assert phone.sip is not None
    me, tag, registrar = _peer(phone.sip), new_tag(), f"sip:{DOMAIN}"

    def request(seq: int, authorization: str | None = None) -> Request:
        headers = Headers(
            [
                ("From", f"<sip:{extension}@{DOMAIN}>;tag={tag}"),
                ("To", f"<sip:{extension}@{DOMAIN}>"),
                ("Call-ID", call_id),
                ("CSeq", f"{seq} REGISTER"),
                ("Contact", f"<sip:{extension}@{me.host}:{me.port}>"),
                ("Expires", "600"),
            ]
        )
        if authorization is not None:
            headers.add("Authorization", authorization)
        return Request("REGISTER", URI.parse(registrar), headers)

    response = await (await phone.sip.request(request(cseq), phone.server)).final()
    assert response.status == 401, response
    credentials = authorization_for(
        response.headers.values("WWW-Authenticate"),
        "REGISTER",
        registrar,
        extension,
        PASSWORDS[extension],
    )
    request_with_credentials = request(cseq + 1, credentials)
    return await (await phone.sip.request(request_with_credentials, phone.server)).final()


def summary(notify: Request) -> tuple[str, str]:
    """(Messages-Waiting, Voice-Message) of a NOTIFY."""
    assert notify.headers.get("Content-Type") == MESSAGE_SUMMARY
    lines = dict(line.split(": ", 1) for line in notify.body.decode().splitlines())
    return lines["Messages-Waiting"], lines["Voice-Message"]


async def nothing_more(phone: Phone) -> None:
    await asyncio.sleep(0.3)
    assert phone.notifies.empty(), phone.notifies.get_nowait()


async def test_a_phone_watches_its_own_box(mwi: Mwi) -> None:
    phone = await mwi.phone()
    try:
        response = await phone.subscribe("1002", f"sip:1002@{DOMAIN}", headers=MWI)
        assert response.status == 200
        notify = await phone.next_notify()
        assert notify.headers.get("Event") == "message-summary"
        assert notify.headers.get("Subscription-State") == "active;expires=600"
        assert f"Message-Account: sip:1002@{DOMAIN}\r\n".encode() in notify.body
        assert summary(notify) == ("no", "0/0 (0/0)")

        first = await mwi.leave_message("1002")
        assert summary(await phone.next_notify()) == ("yes", "1/0 (0/0)")
        second = await mwi.leave_message("1002")
        assert summary(await phone.next_notify()) == ("yes", "2/0 (0/0)")
        await mwi.leave_message("1003")  # someone else's box
        assert await mwi.voicemail.mark_heard(mwi.box("1002"), first)
        assert summary(await phone.next_notify()) == ("yes", "1/1 (0/0)")
        # Heard again: the counts do not change, no NOTIFY.
        assert await mwi.voicemail.mark_heard(mwi.box("1002"), first)
        await nothing_more(phone)
        assert await mwi.voicemail.delete(mwi.box("1002"), second)
        assert summary(await phone.next_notify()) == ("no", "0/1 (0/0)")
    finally:
        await phone.close()


async def test_only_the_boxs_owner_may_watch_it(mwi: Mwi) -> None:
    phone = await mwi.phone()
    try:
        response = await phone.subscribe("1001", f"sip:1002@{DOMAIN}", headers=MWI)
        assert response.status == 403
        accept = ("Accept", "application/pidf+xml")
        response = await phone.subscribe("1001", f"sip:1001@{DOMAIN}", headers=[*MWI, accept])
        assert (response.status, response.headers.get("Accept")) == (406, MESSAGE_SUMMARY)
        assert mwi.manager.count == 0
    finally:
        await phone.close()


async def test_registered_phones_that_do_not_subscribe_are_told_unsolicited(mwi: Mwi) -> None:
    """Lucas has a desk phone that only registers and a softphone that registers and
    subscribes: a new message reaches the first out of any dialog, the second only in
    its subscription."""
    desk, softphone = await mwi.phone(), await mwi.phone()
    try:
        assert (await register(desk, "1002", "desk-boot-1")).status == 200
        assert (await register(softphone, "1002", "soft-boot-1")).status == 200
        assert (await softphone.subscribe("1002", f"sip:1002@{DOMAIN}", headers=MWI)).status == 200
        assert summary(await softphone.next_notify()) == ("no", "0/0 (0/0)")
        # Nothing waits: registering told them nothing.
        await nothing_more(desk)

        await mwi.leave_message("1002")
        notify = await desk.next_notify()
        assert notify.to.tag is None and notify.from_.tag
        assert str(notify.to.uri) == f"sip:1002@{DOMAIN}"
        assert notify.uri.host_port == contact_address(desk)
        assert notify.headers.get("Event") == "message-summary"
        assert notify.headers.get("Subscription-State") == "terminated"
        assert summary(notify) == ("yes", "1/0 (0/0)")
        in_dialog = await softphone.next_notify()
        assert in_dialog.to.tag and summary(in_dialog) == ("yes", "1/0 (0/0)")
        await nothing_more(softphone)
        await nothing_more(desk)
    finally:
        await desk.close()
        await softphone.close()


def contact_address(phone: Phone) -> str:
    """host:port the phone registered as its contact."""
    assert phone.sip is not None
    peer = _peer(phone.sip)
    return f"{peer.host}:{peer.port}"


async def test_a_phone_registering_afresh_hears_of_waiting_messages(mwi: Mwi) -> None:
    desk = await mwi.phone()
    try:
        first = await mwi.leave_message("1002")
        assert (await register(desk, "1002", "boot-1")).status == 200
        assert summary(await desk.next_notify()) == ("yes", "1/0 (0/0)")
        # A refresh (same Call-ID) is no news.
        assert (await register(desk, "1002", "boot-1", cseq=3)).status == 200
        await nothing_more(desk)
        # Rebooted: a new Call-ID for the same contact.
        assert (await register(desk, "1002", "boot-2")).status == 200
        assert summary(await desk.next_notify()) == ("yes", "1/0 (0/0)")

        assert await mwi.voicemail.mark_heard(mwi.box("1002"), first)
        assert summary(await desk.next_notify()) == ("no", "0/1 (0/0)")
        # Nothing new waits: a fresh registration says nothing.
        assert (await register(desk, "1002", "boot-3")).status == 200
        await nothing_more(desk)
    finally:
        await desk.close()


async def test_quick_changes_end_with_the_last_counts(mwi: Mwi) -> None:
    desk = await mwi.phone()
    try:
        assert (await register(desk, "1002", "boot-1")).status == 200
        for _ in range(3):
            await mwi.leave_message("1002")
        # Changes that come while NOTIFYs are on their way are folded into the next.
        seen = [summary(await desk.next_notify())]
        while seen[-1] != ("yes", "3/0 (0/0)"):
            seen.append(summary(await desk.next_notify()))
        assert len(seen) <= 3, seen
        await nothing_more(desk)
    finally:
        await desk.close()


async def test_another_nodes_change_comes_by_the_event_bus(mwi: Mwi) -> None:
    """Lucas hears his message in the app, served by another node: its event feed
    publishes voicemail.heard, and his phone here hears the new counts."""
    desk = await mwi.phone()
    try:
        message = await mwi.leave_message("1002")
        assert (await register(desk, "1002", "boot-1")).status == 200
        assert summary(await desk.next_notify()) == ("yes", "1/0 (0/0)")
        other_node = VoicemailStore(mwi.db, mwi.data_dir)
        assert await other_node.mark_heard(mwi.box("1002"), message)
        await nothing_more(desk)  # nothing here knows yet
        data = {"id": message, "group_id": None}
        mwi.bus.publish(mwi.company_id, "voicemail.heard", data, user_id=mwi.users["1002"])
        assert summary(await desk.next_notify()) == ("no", "0/1 (0/0)")
        # A group's box lights no lamp; other events are not about boxes.
        group = {"id": message, "group_id": 1}
        mwi.bus.publish(mwi.company_id, "voicemail.heard", group, user_id=mwi.users["1002"])
        mwi.bus.publish(mwi.company_id, "presence.status", {}, user_id=mwi.users["1002"])
        await nothing_more(desk)
    finally:
        await desk.close()


async def test_concurrent_first_asks_for_a_users_counts_read_once(
    mwi: Mwi, monkeypatch: pytest.MonkeyPatch
) -> None:
    # What a site's phones rebooting at once do: many REGISTERs with new Call-IDs, each
    # asking for the user's counts before the first read is back.
    store = mwi.voicemail.store
    read = store.counts
    reads: list[BoxKey] = []

    async def counted(box: BoxKey) -> MessageCounts:
        reads.append(box)
        return await read(box)

    monkeypatch.setattr(store, "counts", counted)
    user_id = mwi.users["1002"]
    await store.add_message(
        mwi.box("1002"),
        caller="1003",
        caller_name="Camille",
        path=mwi.data_dir / "voicemail" / "m.wav",
        duration_ms=4000,
    )
    asks = [mwi.waiting.counts(mwi.company_id, user_id) for _ in range(20)]
    results = await asyncio.gather(*asks)
    assert results == [MessageCounts(1, 0)] * 20
    assert reads == [mwi.box("1002")]
    # Known from then on: no read at all.
    assert await mwi.waiting.counts(mwi.company_id, user_id) == MessageCounts(1, 0)
    assert len(reads) == 1
