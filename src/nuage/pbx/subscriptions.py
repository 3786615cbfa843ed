"""Subscriptions (RFC 6665): phones SUBSCRIBE to a colleague's state and get a NOTIFY
each time it changes. Generic over event packages (event_packages.py: dialog, presence,
message-summary).

A user's SUBSCRIBE is authenticated by digest as their calls are, and may only name a
user of their own company whom its package lets them watch (a voicemail box is its
owner's only). It is answered 200 with the granted Expires, then a NOTIFY carries the
full state at once; later NOTIFYs go only when the package's state really changed (a
listener says when it may have), one at a time per subscription: changes that come
while one is in flight are folded into the next. A refresh (SUBSCRIBE in the
subscription's dialog) extends it and is answered with the current state; Expires: 0,
or no refresh in time, ends it with a last NOTIFY ``terminated;reason=timeout``. A
NOTIFY refused in a way that says the subscriber is gone ends it without one.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from nuage.pbx.auth import UserAuthenticator
from nuage.pbx.directory import Directory
from nuage.sip.dialog import Dialog, DialogId, request_dialog_id
from nuage.sip.endpoint import ServerTransactionHandle, SipEndpoint
from nuage.sip.events import (
    EventType,
    TerminationReason,
    accepts,
    active_state,
    parse_event,
    terminated_state,
)
from nuage.sip.grammar import SipSyntaxError
from nuage.sip.message import URI
from nuage.store.models import Company, User

log = logging.getLogger(__name__)

DEFAULT_EXPIRES = 3600
MIN_EXPIRES = 60
MAX_EXPIRES = 3600
# A desk phone with expansion modules watches around a hundred colleagues; a company
# of hundreds of users with such phones stays well under the second bound.
MAX_PER_SUBSCRIBER = 200
MAX_PER_COMPANY = 5000

# Answers to a NOTIFY that end the subscription (RFC 6665 4.2.2, RFC 5057 5.1): the
# subscriber is gone (408 also stands for no answer at all) or has no such dialog or
# usage. Other failures concern only that NOTIFY; the next one carries the full state.
_ENDS_SUBSCRIPTION = frozenset(
    {404, 405, 408, 410, 416, 480, 481, 482, 483, 484, 485, 489, 501, 502, 604}
)

S = TypeVar("S")
K = TypeVar("K")


class EventPackage(Protocol[S]):
    """One event package: a comparable state of a user, and its document."""

    @property
    def event(self) -> str:
        """The Event header's package name: "dialog", "presence"..."""
        ...

    @property
    def content_type(self) -> str: ...

    def may_watch(self, subscriber: User, target: User) -> bool:
        """Whether ``subscriber`` may watch ``target``, a user of their company."""
        ...

    async def state(self, company: Company, user: User) -> S: ...

    def body(self, entity: str, version: int, state: S, previous: S | None) -> bytes:
        """The document of ``state``, the ``version``-th of its subscription;
        ``previous`` is the state the subscriber last got, if any."""
        ...


@dataclass(eq=False, slots=True)
class Subscription:
    dialog: Dialog
    event: EventType
    package: EventPackage[Any]
    company_id: int
    subscriber_id: int
    target_id: int
    expires_at: float
    version: int = 0
    # The state the subscriber was last sent, once ``notified``.
    last_state: Any = None
    notified: bool = False
    # The next NOTIFY goes even if the state is unchanged: a subscription that was just
    # created or refreshed is answered with its state (RFC 6665 4.2.1).
    forced: bool = False
    # Set once over: the next NOTIFY is the last.
    ending: TerminationReason | None = None
    sending: bool = False
    # Something may have changed since the NOTIFY in flight was built.
    pending: bool = False


class SubscriptionManager:
    def __init__(
        self,
        directory: Directory,
        auth: UserAuthenticator,
        packages: Iterable[EventPackage[Any]],
        *,
        contact_for: Callable[[str], str],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._directory = directory
        self._auth = auth
        self._packages = {package.event: package for package in packages}
        # What SUBSCRIBE accepts, for Allow-Events.
        self.allow_events = ", ".join(self._packages)
        self._contact_for = contact_for
        self._clock = clock
        self._endpoint: SipEndpoint | None = None
        self._by_dialog: dict[DialogId, Subscription] = {}
        self._by_target: defaultdict[tuple[int, int], set[Subscription]] = defaultdict(set)
        self._per_subscriber: Counter[tuple[int, int]] = Counter()
        self._per_company: Counter[int] = Counter()
        # (expires_at, n, subscription); entries of refreshed or ended subscriptions stay
        # until they come first and are skipped.
        self._expiries: list[tuple[float, int, Subscription]] = []
        self._sequence = itertools.count()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def attach(self, endpoint: SipEndpoint) -> None:
        self._endpoint = endpoint

    @property
    def count(self) -> int:
        return len(self._by_dialog)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        for task in self._tasks:
            task.cancel()

    # -- SUBSCRIBE ---------------------------------------------------------------------

    async def subscribe(self, tx: ServerTransactionHandle) -> None:
        """A SUBSCRIBE outside any dialog: a new subscription (or, with Expires: 0, a
        one-off fetch of the state)."""
        request = tx.request
        company = self._directory.company_by_domain(request.from_.uri.host)
        if company is None:
            tx.respond(403, "Unknown domain")
            return
        requested = self._requested(tx)
        if requested is None:
            return
        event, package, expires = requested
        if not request.contacts:
            tx.respond(400, "Missing Contact header")
            return
        subscriber = await self._auth.authenticate(tx, company)
        if subscriber is None:
            return
        target = self._target(company, request.uri)
        if target is None:
            tx.respond(404, "No such user")
            return
        if not package.may_watch(subscriber, target):
            tx.respond(403, f"Not allowed to watch this user's {package.event}")
            return
        if expires and self._per_subscriber[(company.id, subscriber.id)] >= MAX_PER_SUBSCRIBER:
            tx.respond(403, f"Too many subscriptions (at most {MAX_PER_SUBSCRIBER})")
            return
        if expires and self._per_company[company.id] >= MAX_PER_COMPANY:
            tx.respond(403, "Too many subscriptions in this company")
            return
        response = tx.respond(200, headers=self._granted(expires, tx))
        subscription = Subscription(
            Dialog.from_uas(request, response, peer=tx.source),
            event,
            package,
            company.id,
            subscriber.id,
            target.id,
            self._clock() + expires,
        )
        if expires:
            self._add(subscription)
        else:
            subscription.ending = TerminationReason.TIMEOUT
        self._notify_soon(subscription, forced=True)

    def refresh(self, tx: ServerTransactionHandle) -> bool:
        """A SUBSCRIBE in a dialog: refresh or end that subscription; False when the
        dialog is not one of ours."""
        request = tx.request
        subscription = self._by_dialog.get(request_dialog_id(request))
        if subscription is None:
            return False
        out_of_order = subscription.dialog.handle_request(request)
        if out_of_order is not None:
            tx.respond(out_of_order)
            return True
        requested = self._requested(tx)
        if requested is None:
            return True
        event, _, expires = requested
        if event != subscription.event:
            # RFC 6665 4.1.2.2: a dialog carries no second subscription.
            tx.respond(481, "No such subscription in this dialog")
            return True
        # The phone may have moved (a new NAT binding, a new connection).
        subscription.dialog.peer = tx.source
        tx.respond(200, headers=self._granted(expires, tx))
        if expires:
            self._schedule(subscription, self._clock() + expires)
            self._notify_soon(subscription, forced=True)
        else:
            self._end(subscription, TerminationReason.TIMEOUT)
        return True

    def _requested(
        self, tx: ServerTransactionHandle
    ) -> tuple[EventType, EventPackage[Any], int] | None:
        """The event, its package and the granted Expires of a SUBSCRIBE; None once it
        has been refused."""
        request = tx.request
        value = request.headers.get("Event")
        if value is None:
            tx.respond(400, "Missing Event header")
            return None
        try:
            event = parse_event(value)
            expires = request.expires
        except SipSyntaxError as exc:
            tx.respond(400, str(exc)[:100])
            return None
        package = self._packages.get(event.package)
        if package is None:
            tx.respond(489, headers=[("Allow-Events", self.allow_events)])
            return None
        if not accepts(request, package.content_type):
            tx.respond(406, headers=[("Accept", package.content_type)])
            return None
        if expires is None:
            expires = DEFAULT_EXPIRES
        if 0 < expires < MIN_EXPIRES:
            tx.respond(423, headers=[("Min-Expires", str(MIN_EXPIRES))])
            return None
        return event, package, min(expires, MAX_EXPIRES)

    def _granted(self, expires: int, tx: ServerTransactionHandle) -> list[tuple[str, str]]:
        return [("Expires", str(expires)), ("Contact", self._contact_for(tx.source.transport))]

    def _target(self, company: Company, uri: URI) -> User | None:
        """The user a SUBSCRIBE names: an extension of the subscriber's own company. A
        URI in another company's domain names no one, whatever its extension."""
        named = self._directory.company_by_domain(uri.host)
        if named is not None and named.id != company.id:
            return None
        return self._directory.user(company.id, uri.user or "")

    # -- bookkeeping ---------------------------------------------------------------------

    def _add(self, subscription: Subscription) -> None:
        self._by_dialog[subscription.dialog.id] = subscription
        self._by_target[(subscription.company_id, subscription.target_id)].add(subscription)
        self._per_subscriber[(subscription.company_id, subscription.subscriber_id)] += 1
        self._per_company[subscription.company_id] += 1
        self._schedule(subscription, subscription.expires_at)

    def _forget(self, subscription: Subscription) -> None:
        if self._by_dialog.pop(subscription.dialog.id, None) is None:
            return
        target = (subscription.company_id, subscription.target_id)
        watchers = self._by_target[target]
        watchers.discard(subscription)
        if not watchers:
            del self._by_target[target]
        _release(self._per_subscriber, (subscription.company_id, subscription.subscriber_id))
        _release(self._per_company, subscription.company_id)

    def _end(self, subscription: Subscription, reason: TerminationReason) -> None:
        """Over: forgotten now, and its last NOTIFY goes out after any in flight."""
        self._forget(subscription)
        subscription.ending = reason
        self._notify_soon(subscription)

    # -- expiry ----------------------------------------------------------------------------

    def _schedule(self, subscription: Subscription, expires_at: float) -> None:
        subscription.expires_at = expires_at
        heapq.heappush(self._expiries, (expires_at, next(self._sequence), subscription))
        self._arm()

    def _arm(self) -> None:
        """One loop timer, for the earliest expiry."""
        expiries = self._expiries
        while expiries and not self._is_current(expiries[0]):
            heapq.heappop(expiries)
        at = expiries[0][0] if expiries else None
        if at == self._timer_at:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_at = at
        if at is not None:
            delay = max(0.0, at - self._clock())
            self._timer = asyncio.get_running_loop().call_later(delay, self.expire_due)

    def _is_current(self, entry: tuple[float, int, Subscription]) -> bool:
        at, _, subscription = entry
        live = self._by_dialog.get(subscription.dialog.id) is subscription
        return live and subscription.expires_at == at

    def expire_due(self) -> None:
        """End every subscription whose time is up (the timer's callback)."""
        if self._timer is not None:
            self._timer.cancel()  # when called before its time (tests move the clock)
        self._timer = None
        self._timer_at = None
        now = self._clock()
        expiries = self._expiries
        while expiries and expiries[0][0] <= now:
            entry = heapq.heappop(expiries)
            if self._is_current(entry):
                self._end(entry[2], TerminationReason.TIMEOUT)
        self._arm()

    # -- NOTIFY ------------------------------------------------------------------------------

    def resource_changed(self, company_id: int, user_id: int, event: str | None = None) -> None:
        """The state of ``user_id`` in the package ``event`` (None: in every package) may
        have changed (a presence or message-waiting listener)."""
        for subscription in list(self._by_target.get((company_id, user_id), ())):
            if event is None or subscription.package.event == event:
                self._notify_soon(subscription)

    def watching(self, company_id: int, user_id: int, event: str) -> list[Dialog]:
        """The dialogs of the live subscriptions to ``event`` of ``user_id``: where their
        subscribers are."""
        return [
            subscription.dialog
            for subscription in self._by_target.get((company_id, user_id), ())
            if subscription.package.event == event
        ]

    def _notify_soon(self, subscription: Subscription, *, forced: bool = False) -> None:
        subscription.forced = subscription.forced or forced
        subscription.pending = True
        if subscription.sending:
            return
        subscription.sending = True
        task = asyncio.get_running_loop().create_task(self._notify(subscription))
        # Keep a reference: the loop only holds tasks weakly.
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _notify(self, subscription: Subscription) -> None:
        try:
            while subscription.pending:
                subscription.pending = False
                if not await self._notify_once(subscription):
                    return
        except Exception:
            log.exception("NOTIFY of subscription %s failed", subscription.dialog.call_id)
            self._forget(subscription)
        finally:
            subscription.sending = False

    async def _notify_once(self, subscription: Subscription) -> bool:
        """Send the current state if it changed (or must go anyway); False once the
        subscription is over."""
        company = self._directory.company(subscription.company_id)
        target = self._directory.user_by_id(subscription.company_id, subscription.target_id)
        if company is None or target is None:
            # Deprovisioned: nothing left to watch.
            if subscription.ending is None:
                self._forget(subscription)
                subscription.ending = TerminationReason.NORESOURCE
            return await self._send(subscription, None, b"")
        package = subscription.package
        state = await package.state(company, target)
        unchanged = subscription.notified and state == subscription.last_state
        if subscription.ending is None and not subscription.forced and unchanged:
            return True
        entity = f"sip:{target.extension}@{company.domain}"
        previous = subscription.last_state if subscription.notified else None
        body = package.body(entity, subscription.version, state, previous)
        subscription.version += 1
        subscription.last_state, subscription.notified = state, True
        return await self._send(subscription, package.content_type, body)

    async def _send(
        self, subscription: Subscription, content_type: str | None, body: bytes
    ) -> bool:
        assert self._endpoint is not None, "SubscriptionManager.attach() first"
        subscription.forced = False
        ending = subscription.ending
        if ending is None:
            state = active_state(round(subscription.expires_at - self._clock()))
        else:
            state = terminated_state(ending)
        headers = [("Event", str(subscription.event)), ("Subscription-State", state)]
        if content_type is not None:
            headers.append(("Content-Type", content_type))
        dialog = subscription.dialog
        assert dialog.peer is not None  # set from the SUBSCRIBE's source
        request = dialog.create_request("NOTIFY", body=body, headers=headers)
        handle = await self._endpoint.request(request, dialog.peer)
        response = await handle.final()
        if ending is not None:
            return False
        if response.status in _ENDS_SUBSCRIPTION:
            log.info(
                "subscription %s ended: NOTIFY answered %d %s",
                dialog.call_id,
                response.status,
                response.reason,
            )
            self._forget(subscription)
            return False
        return True


def _release(counter: Counter[K], key: K) -> None:
    """One less of ``key``; a key counted down to nothing is dropped, not kept at 0."""
    counter[key] -= 1
    if counter[key] <= 0:
        del counter[key]
