"""How many new and old voicemail messages each user has in their own box: what
message-waiting lamps show (RFC 3842; group boxes light none). Counts change only
through the voicemail service, whose listeners say when a box changed; the counts are
then read again from the database, and the listeners here are told when they really
changed. Between changes they come from memory, so that a NOTIFY never waits for the
database. Boxes changed by other nodes (a message left or heard there) come by the event
bus: its voicemail events make the counts be read again here too.
"""

from __future__ import annotations

import asyncio
import logging

from nuage.events import Event, EventBus
from nuage.pbx.listeners import UserListeners
from nuage.pbx.voicemail.service import Voicemail
from nuage.pbx.voicemail.store import BoxKey, MessageCounts
from nuage.store.models import Company, Group, User, VoicemailMessage

log = logging.getLogger(__name__)


class MessageWaiting:
    def __init__(self, voicemail: Voicemail, bus: EventBus | None = None) -> None:
        self._store = voicemail.store
        self._counts: dict[tuple[int, int], MessageCounts] = {}
        self._first_reads: dict[tuple[int, int], asyncio.Future[MessageCounts]] = {}
        # Users whose counts are being read again; True: a change came during the read,
        # which may have missed it, so read once more.
        self._reading: dict[tuple[int, int], bool] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        # Told when a user's counts changed; they read them with counts().
        self.listeners = UserListeners()
        voicemail.add_listener(self._message_left)
        voicemail.add_box_listener(self._message_changed)
        if bus is not None:
            bus.watch(self._event)

    def known_counts(self, company_id: int, user_id: int) -> MessageCounts | None:
        """The user's counts if they were read already, without waiting."""
        return self._counts.get((company_id, user_id))

    async def counts(self, company_id: int, user_id: int) -> MessageCounts:
        """The user's counts, read from the database the first time only: callers that
        ask while that read is under way wait for it rather than read again (each
        REGISTER with a new Call-ID asks, and a site's phones all register at once)."""
        key = (company_id, user_id)
        known = self._counts.get(key)
        if known is not None:
            return known
        reading = self._first_reads.get(key)
        if reading is None:
            reading = asyncio.ensure_future(self._store.counts(BoxKey(company_id, user_id=user_id)))
            self._first_reads[key] = reading
            reading.add_done_callback(lambda _: self._first_reads.pop(key, None))
        # Shielded: a caller that gives up does not cancel the read the others wait for.
        read = await asyncio.shield(reading)
        # A change read meanwhile is newer than this read: it wins.
        return self._counts.setdefault(key, read)

    def _message_left(
        self, company: Company, owner: User | Group, message: VoicemailMessage
    ) -> None:
        if isinstance(owner, User):
            self.box_changed(company.id, owner.id)

    def _message_changed(self, box: BoxKey, change: str, message_id: int) -> None:
        # Heard or deleted.
        if box.user_id is not None:
            self.box_changed(box.company_id, box.user_id)

    def _event(self, event: Event) -> None:
        # This node's own changes come twice (their listener, then the bus): reading the
        # counts once more is cheap, and only a real change is told.
        personal = event.data.get("group_id") is None
        if event.type.startswith("voicemail.") and event.user_id is not None and personal:
            self.box_changed(event.company_id, event.user_id)

    def box_changed(self, company_id: int, user_id: int) -> None:
        """Read the user's counts again, once at a time per user."""
        key = (company_id, user_id)
        if key in self._reading:
            self._reading[key] = True
            return
        self._reading[key] = False
        task = asyncio.get_running_loop().create_task(self._read_again(key))
        # Keep a reference: the loop only holds tasks weakly.
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _read_again(self, key: tuple[int, int]) -> None:
        try:
            while True:
                self._reading[key] = False
                counts = await self._store.counts(BoxKey(key[0], user_id=key[1]))
                previous = self._counts.get(key)
                self._counts[key] = counts
                if counts != previous:
                    self.listeners.notify(*key)
                if not self._reading[key]:
                    return
        except Exception:
            log.exception("message counts of user %d of company %d unreadable", key[1], key[0])
            # Not kept from before the change: the next NOTIFY reads them again.
            self._counts.pop(key, None)
        finally:
            del self._reading[key]

    def close(self) -> None:
        for task in self._tasks:
            task.cancel()
