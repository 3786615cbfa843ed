"""The subscription manager (RFC 6665) between two SIP endpoints on loopback: a phone
subscribes (digest-authenticated), the server NOTIFYs. The event package is a stand-in
whose state the test sets, and the manager's clock is the test's: expiry is checked by
moving it, never by waiting."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import pytest

from nuage.pbx import subscriptions as subscriptions_module
from nuage.pbx.auth import UserAuthenticator
from nuage.pbx.call_engine import CallEngine
from nuage.pbx.directory import Directory
from nuage.pbx.event_packages import DialogPackage, presence_state
from nuage.pbx.provision import apply_plan
from nuage.pbx.subscriptions import SubscriptionManager
from nuage.pbx.throttle import FailureThrottle
from nuage.sip.dialog import Dialog
from nuage.sip.digest import DigestAuthenticator, authorization_for
from nuage.sip.endpoint import ServerTransactionHandle, SipEndpoint, new_tag
from nuage.sip.event_bodies import DialogInfo
from nuage.sip.message import URI, Headers, Request, Response
from nuage.sip.peer import Peer
from nuage.sip.transaction import TimerConfig
from nuage.store.database import Database
from nuage.store.models import Company, Status, User
from peers.waiting import until
from test_provision import GLOBEX, ISSUE_PLAN, MORE_USERS, write

pytestmark = pytest.mark.db

HOST = "127.0.0.1"
DOMAIN = "acme.example"
FAST = TimerConfig(t1=0.05, t2=0.4, t4=0.5, trying_delay=0.2)
PASSWORDS = {"1001": "sip-secret", "1002": "sip-secret-2", "1003": "sip-secret-3"}
_calls = itertools.count(1)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class FakePackage:
    """A package whose state of each user the test sets; its body says what it got."""

    event = "dialog"
    content_type = "application/dialog-info+xml"

    def __init__(self) -> None:
        self.states: dict[int, str] = {}

    def may_watch(self, subscriber: User, target: User) -> bool:
        return True

    async def state(self, company: Company, user: User) -> str:
        return self.states.get(user.id, "idle")

    def body(self, entity: str, version: int, state: str, previous: str | None) -> bytes:
        return f"{entity} v{version} {state} after {previous}".encode()


def _peer(sip: SipEndpoint) -> Peer:
    host, port = sip.transport.sent_by("udp")
    return Peer("udp", host, port)


@dataclass
class Phone:
    """A subscriber with its own endpoint; it answers every NOTIFY with ``answer``."""

    server: Peer
    sip: SipEndpoint | None = None
    answer: int = 200
    notifies: asyncio.Queue[Request] = field(default_factory=asyncio.Queue)
    dialog: Dialog | None = None

    async def start(self) -> None:
        self.sip = SipEndpoint(self._on_request, timers=FAST)
        await self.sip.listen_udp(HOST, 0)

    async def _on_request(self, tx: ServerTransactionHandle) -> None:
        if tx.request.method == "NOTIFY":
            self.notifies.put_nowait(tx.request)
        tx.respond(self.answer if tx.request.method == "NOTIFY" else 405)

    async def next_notify(self) -> Request:
        return await asyncio.wait_for(self.notifies.get(), 5)

    async def subscribe(
        self,
        extension: str = "1001",
        target: str = f"sip:1002@{DOMAIN}",
        *,
        password: str | None = None,
        domain: str = DOMAIN,
        headers: Iterable[tuple[str, str]] = (("Event", "dialog"), ("Expires", "600")),
    ) -> Response:
        """SUBSCRIBE as ``extension``, answering the challenge; the final response."""
        assert self.sip is not None
        call_id, tag = f"sub-{next(_calls)}", new_tag()

        def request(cseq: int, authorization: str | None = None) -> Request:
            me = _peer(self.sip) if self.sip is not None else self.server
            built = Headers(
                [
                    ("From", f"<sip:{extension}@{domain}>;tag={tag}"),
                    ("To", f"<{target}>"),
                    ("Call-ID", call_id),
                    ("CSeq", f"{cseq} SUBSCRIBE"),
                    ("Contact", f"<sip:{extension}@{me.host}:{me.port}>"),
                    *headers,
                ]
            )
            if authorization is not None:
                built.add("Authorization", authorization)
            return Request("SUBSCRIBE", URI.parse(target), built)

        first = request(1)
        response = await (await self.sip.request(first, self.server)).final()
        if response.status != 401:
            return response
        credentials = authorization_for(
            response.headers.values("WWW-Authenticate"),
            "SUBSCRIBE",
            target,
            extension,
            password or PASSWORDS[extension],
        )
        second = request(2, credentials)
        response = await (await self.sip.request(second, self.server)).final()
        if response.status == 200:
            self.dialog = Dialog.from_uac(second, response, peer=self.server)
        return response

    async def refresh(self, expires: int, event: str = "dialog") -> Response:
        assert self.sip is not None and self.dialog is not None
        request = self.dialog.create_request(
            "SUBSCRIBE", headers=[("Event", event), ("Expires", str(expires))]
        )
        return await (await self.sip.request(request, self.server)).final()

    async def close(self) -> None:
        if self.sip is not None:
            await self.sip.close()


@dataclass
class Notifier:
    manager: SubscriptionManager
    package: FakePackage
    clock: Clock
    company_id: int
    users: dict[str, int]
    phone: Phone

    def change(self, extension: str, state: str) -> None:
        user_id = self.users[extension]
        self.package.states[user_id] = state
        self.manager.resource_changed(self.company_id, user_id)


@pytest.fixture
async def notifier(database: Database, tmp_path: Path) -> AsyncIterator[Notifier]:
    await apply_plan(database, write(tmp_path, ISSUE_PLAN + MORE_USERS))
    await apply_plan(database, write(tmp_path, GLOBEX, "globex.toml"))
    directory = Directory(database)
    await directory.start()
    company = directory.company_by_domain(DOMAIN)
    assert company is not None
    users = {user.extension: user.id for user in directory.users_of(company.id)}
    auth = UserAuthenticator(directory, DigestAuthenticator(b"k" * 32), FailureThrottle())
    package, clock = FakePackage(), Clock()
    server: SipEndpoint | None = None

    def contact(transport: str) -> str:
        assert server is not None
        peer = _peer(server)
        return f"<sip:nuage@{peer.host}:{peer.port}>"

    manager = SubscriptionManager(directory, auth, [package], contact_for=contact, clock=clock)

    async def on_request(tx: ServerTransactionHandle) -> None:
        if not tx.request.to.tag:
            await manager.subscribe(tx)
        elif not (tx.request.method == "SUBSCRIBE" and manager.refresh(tx)):
            tx.respond(481)

    server = SipEndpoint(on_request, timers=FAST)
    await server.listen_udp(HOST, 0)
    manager.attach(server)
    phone = Phone(_peer(server))
    await phone.start()
    try:
        yield Notifier(manager, package, clock, company.id, users, phone)
    finally:
        manager.close()
        await phone.close()
        await server.close()
        await directory.close()


async def test_subscribe_is_authenticated_then_notified_with_the_state(
    notifier: Notifier,
) -> None:
    phone = notifier.phone
    response = await phone.subscribe()
    assert response.status == 200
    assert response.headers.get("Expires") == "600"
    assert response.contacts and response.to.tag
    notify = await phone.next_notify()
    assert notify.headers.get("Event") == "dialog"
    assert notify.headers.get("Subscription-State") == "active;expires=600"
    assert notify.headers.get("Content-Type") == "application/dialog-info+xml"
    assert notify.body == b"sip:1002@acme.example v0 idle after None"
    # In the subscription's dialog: our tag, theirs, and a target for their refreshes.
    assert notify.to.tag == notify_tag(phone) and notify.from_.tag == response.to.tag
    assert notifier.manager.count == 1


def notify_tag(phone: Phone) -> str:
    assert phone.dialog is not None
    return phone.dialog.local_tag


async def test_only_real_changes_are_notified_and_quick_ones_folded(
    notifier: Notifier,
) -> None:
    phone = notifier.phone
    assert (await phone.subscribe()).status == 200
    await phone.next_notify()
    notifier.change("1002", "idle")  # no change
    await asyncio.sleep(0)  # its NOTIFY task runs to the end: nothing to send
    notifier.change("1003", "ringing")  # another user: not watched here
    notifier.change("1002", "ringing")
    notifier.change("1002", "talking")  # before the first NOTIFY went: folded into one
    notify = await phone.next_notify()
    assert notify.body == b"sip:1002@acme.example v1 talking after idle"
    notifier.change("1002", "idle")
    notify = await phone.next_notify()
    assert notify.body == b"sip:1002@acme.example v2 idle after talking"
    assert notifier.phone.notifies.empty()


async def test_refresh_extends_and_unsubscribe_ends(notifier: Notifier) -> None:
    phone, clock, manager = notifier.phone, notifier.clock, notifier.manager
    assert (await phone.subscribe(headers=[("Event", "dialog"), ("Expires", "120")])).status == 200
    await phone.next_notify()
    clock.now += 100
    response = await phone.refresh(300)
    assert (response.status, response.headers.get("Expires")) == (200, "300")
    # A refresh is answered with the state, unchanged or not.
    notify = await phone.next_notify()
    assert notify.headers.get("Subscription-State") == "active;expires=300"
    assert notify.body.endswith(b"v1 idle after idle")
    clock.now += 100  # past the first expiry, not the refreshed one
    manager.expire_due()
    assert manager.count == 1
    # Another subscription in the same dialog is not ours to make.
    assert (await phone.refresh(300, event="dialog;id=2")).status == 481

    response = await phone.refresh(0)
    assert (response.status, response.headers.get("Expires")) == (200, "0")
    notify = await phone.next_notify()
    assert notify.headers.get("Subscription-State") == "terminated;reason=timeout"
    assert notify.body.endswith(b"v2 idle after idle")
    assert manager.count == 0
    assert (await phone.refresh(300)).status == 481


async def test_an_unrefreshed_subscription_expires(notifier: Notifier) -> None:
    phone, clock, manager = notifier.phone, notifier.clock, notifier.manager
    assert (await phone.subscribe(headers=[("Event", "dialog"), ("Expires", "60")])).status == 200
    await phone.next_notify()
    clock.now += 59
    manager.expire_due()
    assert manager.count == 1
    clock.now += 1
    manager.expire_due()
    notify = await phone.next_notify()
    assert notify.headers.get("Subscription-State") == "terminated;reason=timeout"
    assert manager.count == 0


async def test_a_fetch_gets_the_state_once(notifier: Notifier) -> None:
    phone = notifier.phone
    response = await phone.subscribe(headers=[("Event", "dialog"), ("Expires", "0")])
    assert (response.status, response.headers.get("Expires")) == (200, "0")
    notify = await phone.next_notify()
    assert notify.headers.get("Subscription-State") == "terminated;reason=timeout"
    assert notify.body == b"sip:1002@acme.example v0 idle after None"
    assert notifier.manager.count == 0


@pytest.mark.parametrize("status", [481, 408])
async def test_a_notify_refused_for_good_ends_the_subscription(
    notifier: Notifier, status: int
) -> None:
    phone, manager = notifier.phone, notifier.manager
    assert (await phone.subscribe()).status == 200
    await phone.next_notify()
    phone.answer = status
    notifier.change("1002", "ringing")
    await phone.next_notify()
    await until(lambda: manager.count == 0)
    phone.answer = 200
    notifier.change("1002", "talking")
    assert (await phone.refresh(600)).status == 481


async def test_a_notify_failing_once_keeps_the_subscription(notifier: Notifier) -> None:
    phone, manager = notifier.phone, notifier.manager
    assert (await phone.subscribe()).status == 200
    await phone.next_notify()
    phone.answer = 500
    notifier.change("1002", "ringing")
    await phone.next_notify()
    phone.answer = 200
    notifier.change("1002", "talking")
    notify = await phone.next_notify()
    assert notify.body.endswith(b"v2 talking after ringing")
    assert manager.count == 1


async def test_subscribe_refusals(notifier: Notifier) -> None:
    phone = notifier.phone
    dialog = ("Event", "dialog")
    # One server for every case: what each SUBSCRIBE gets, and a header it must carry.
    cases: list[tuple[Callable[[], Awaitable[Response]], int, tuple[str, str] | None]] = [
        (
            lambda: phone.subscribe(headers=[("Event", "message-summary")]),
            489,
            ("Allow-Events", "dialog"),
        ),
        (lambda: phone.subscribe(headers=[dialog, ("Expires", "30")]), 423, ("Min-Expires", "60")),
        (lambda: phone.subscribe(headers=[dialog, ("Expires", "7200")]), 200, ("Expires", "3600")),
        (lambda: phone.subscribe(headers=[dialog]), 200, ("Expires", "3600")),
        (lambda: phone.subscribe(headers=[("Expires", "600")]), 400, None),
        (lambda: phone.subscribe(headers=[("Event", "dialog;id=")]), 400, None),
        (lambda: phone.subscribe(headers=[dialog, ("Expires", "soon")]), 400, None),
        (
            lambda: phone.subscribe(headers=[dialog, ("Accept", "application/pidf+xml")]),
            406,
            ("Accept", "application/dialog-info+xml"),
        ),
        (lambda: phone.subscribe(target=f"sip:1099@{DOMAIN}"), 404, None),
        # Homer, extension 1001 of Globex: never another company's user.
        (lambda: phone.subscribe(target="sip:1001@globex.example"), 404, None),
        (lambda: phone.subscribe(password="guess"), 403, None),
        (lambda: phone.subscribe(domain="unknown.example"), 403, None),
    ]
    for index, (subscribe, status, header) in enumerate(cases):
        response = await subscribe()
        assert response.status == status, (index, response)
        if header is not None:
            assert response.headers.get(header[0]) == header[1], (index, response.headers)


async def test_subscriptions_per_subscriber_are_limited(
    notifier: Notifier, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(subscriptions_module, "MAX_PER_SUBSCRIBER", 2)
    phone = notifier.phone
    for target in ("1002", "1003"):
        assert (await phone.subscribe(target=f"sip:{target}@{DOMAIN}")).status == 200
    response = await phone.subscribe(target=f"sip:1001@{DOMAIN}")
    assert (response.status, response.reason) == (403, "Too many subscriptions (at most 2)")
    # Someone else's subscriptions are theirs.
    assert (await phone.subscribe("1003")).status == 200
    assert notifier.manager.count == 3


def test_an_ended_call_is_reported_terminated_once() -> None:
    package = DialogPackage(cast(CallEngine, None))  # body() needs no calls
    ringing = (DialogInfo("a", "early", "recipient"),)
    body = package.body("sip:1002@acme.example", 4, (), ringing).decode()
    assert '<dialog id="a" direction="recipient">' in body
    assert "<state>terminated</state>" in body
    assert "<dialog " not in package.body("sip:1002@acme.example", 5, (), ()).decode()


def _status(key: str, behaviour: str, name: str) -> Status:
    return Status(key=key, behaviour=behaviour, name=name)


@pytest.mark.parametrize(
    ("line", "status", "expected"),
    [
        ("offline", None, (False, "Offline", ())),
        ("available", None, (True, "Available", ())),
        ("available", _status("available", "ring", "Disponible"), (True, "Disponible", ())),
        ("ringing", _status("available", "ring", "Disponible"), (True, "Ringing", ())),
        (
            "in call",
            _status("available", "ring", "Dispo"),
            (True, "On the phone", ("on-the-phone",)),
        ),
        ("on hold", None, (True, "On hold", ("on-the-phone",))),
        (
            "available",
            _status("dnd", "busy", "Ne pas déranger"),
            (False, "Ne pas déranger", ("busy",)),
        ),
        (
            "in call",
            _status("meeting", "voicemail", "En réunion"),
            (False, "On the phone", ("meeting", "on-the-phone")),
        ),
        ("available", _status("lunch", "voicemail", "Lunch"), (False, "Lunch", ("meal",))),
        ("available", _status("closed", "busy", "Fermé"), (False, "Fermé", ("busy",))),
        ("available", _status("colleague", "forward", "Renvoi"), (False, "Renvoi", ())),
        ("offline", _status("dnd", "busy", "DND"), (False, "Offline", ("busy",))),
    ],
)
def test_presence_from_line_state_and_status(
    line: str, status: Status | None, expected: tuple[bool, str, tuple[str, ...]]
) -> None:
    state = presence_state(line, status)
    assert (state.is_open, state.note, state.activities) == expected
