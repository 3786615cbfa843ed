"""Unsolicited message-waiting NOTIFYs: many phones never SUBSCRIBE to message-summary
and yet light their lamp on an out-of-dialog NOTIFY, as Asterisk and most hosted PBXs
send them. When a user's counts change, each of their registered devices gets one,
except a device that holds a subscription to its box: that one gets the subscription's
NOTIFY instead. A device registering afresh (a new Call-ID: it rebooted) gets one at
once if messages are waiting, so that its lamp is right from the start.

No subscription exists, so the NOTIFY says ``Subscription-State: terminated``: RFC 6665
requires the header, and ``active`` would announce a subscription the phone never made
and cannot refresh (Asterisk's res_pjsip_mwi says terminated too). A NOTIFY that fails
is logged, not retried: the next change or registration carries the counts again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime

from nuage.pbx.dialing import new_call_id
from nuage.pbx.directory import Directory
from nuage.pbx.event_packages import MessageSummaryPackage
from nuage.pbx.location import Binding, LocationService
from nuage.pbx.message_waiting import MessageWaiting
from nuage.pbx.subscriptions import SubscriptionManager
from nuage.sip.dialog import Dialog
from nuage.sip.endpoint import SipEndpoint, new_tag
from nuage.sip.event_bodies import MESSAGE_SUMMARY, message_summary
from nuage.sip.message import URI, Request
from nuage.sip.peer import Peer

log = logging.getLogger(__name__)

EVENT = MessageSummaryPackage.event


class UnsolicitedMwi:
    def __init__(
        self,
        directory: Directory,
        location: LocationService,
        waiting: MessageWaiting,
        subscriptions: SubscriptionManager,
        *,
        contact_for: Callable[[str], str],
    ) -> None:
        self._directory = directory
        self._location = location
        self._waiting = waiting
        self._subscriptions = subscriptions
        self._contact_for = contact_for
        self._endpoint: SipEndpoint | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        # Users whose devices are being told; True: their counts changed again meanwhile.
        self._changed: dict[tuple[int, int], bool] = {}
        waiting.listeners.add(self.counts_changed)

    def attach(self, endpoint: SipEndpoint) -> None:
        self._endpoint = endpoint

    def close(self) -> None:
        for task in self._tasks:
            task.cancel()

    def counts_changed(self, company_id: int, user_id: int) -> None:
        """Every registered device of the user that does not subscribe hears of it. One
        round of NOTIFYs at a time per user: a change during a round gets a round of its
        own after it, so that the last NOTIFY a phone gets carries the last counts."""
        key = (company_id, user_id)
        if key in self._changed:
            self._changed[key] = True
            return
        self._changed[key] = False
        self._spawn(self._tell_devices(key))

    def registered(self, company_id: int, user_id: int, binding: Binding) -> None:
        """A device registered afresh (the registrar's listener)."""
        known = self._waiting.known_counts(company_id, user_id)
        if known is not None and not known.new:
            # Nothing to light: no task for the common case (every phone of a restarted
            # site registers afresh at once).
            return
        self._spawn(self._tell(company_id, user_id, [binding], only_waiting=True))

    def _spawn(self, work: Coroutine[None, None, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        # Keep a reference: the loop only holds tasks weakly.
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _tell_devices(self, key: tuple[int, int]) -> None:
        try:
            while True:
                self._changed[key] = False
                bindings = self._location.bindings(*key, datetime.now(UTC))
                await self._tell(*key, bindings, only_waiting=False)
                if not self._changed[key]:
                    return
        finally:
            del self._changed[key]

    async def _tell(
        self, company_id: int, user_id: int, bindings: list[Binding], *, only_waiting: bool
    ) -> None:
        """NOTIFY the counts to the devices of ``bindings`` that do not subscribe (with
        ``only_waiting``, only if a message is new); failures are logged."""
        try:
            company = self._directory.company(company_id)
            user = self._directory.user_by_id(company_id, user_id)
            if company is None or user is None or not bindings:
                return
            counts = await self._waiting.counts(company_id, user_id)
            if only_waiting and not counts.new:
                return
            account = f"sip:{user.extension}@{company.domain}"
            body = message_summary(account, counts.new, counts.old)
            watching = self._subscriptions.watching(company_id, user_id, EVENT)
            await asyncio.gather(
                *(
                    self._send(account, binding, body)
                    for binding in bindings
                    if not any(_same_device(binding, dialog) for dialog in watching)
                )
            )
        except Exception:
            log.exception("unsolicited MWI to user %d of company %d failed", user_id, company_id)

    async def _send(self, account: str, binding: Binding, body: bytes) -> None:
        assert self._endpoint is not None, "UnsolicitedMwi.attach() first"
        request = Request("NOTIFY", URI.parse(binding.contact))
        headers = request.headers
        headers.add("From", f"<{account}>;tag={new_tag()}")
        headers.add("To", f"<{account}>")
        headers.add("Call-ID", new_call_id())
        headers.add("CSeq", "1 NOTIFY")
        headers.add("Contact", self._contact_for(binding.peer.transport))
        headers.add("Event", EVENT)
        headers.add("Subscription-State", "terminated")
        headers.add("Content-Type", MESSAGE_SUMMARY)
        request.body = body
        response = await (await self._endpoint.request(request, binding.peer)).final()
        if response.status >= 300:
            log.info(
                "unsolicited MWI to %s answered %d %s",
                binding.contact,
                response.status,
                response.reason,
            )


def _same_device(binding: Binding, dialog: Dialog) -> bool:
    """Whether a subscription's dialog runs with the device of ``binding``: the same
    contact address, or requests from the same transport address."""
    if dialog.peer is not None and _address(dialog.peer) == _address(binding.peer):
        return True
    return _where(dialog.remote_target) == _where(URI.parse(binding.contact))


def _address(peer: Peer) -> tuple[str, str, int]:
    # Not the connection: a device reconnecting over TCP is still the same device.
    return (peer.transport, peer.host.lower(), peer.port)


def _where(uri: URI) -> tuple[str, int]:
    return (uri.host.lower(), uri.port or (5061 if uri.scheme == "sips" else 5060))
