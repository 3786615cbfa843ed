"""Voicemail for the call engine and the API: the deposit that takes a call to a user or
group, a user listening to their own box from a phone (access.py), and the listeners
told of every new message (events, message waiting, email)."""

from __future__ import annotations

import logging
from collections.abc import Callable

from nuage.media.engine import MediaEngine
from nuage.pbx.voicemail.access import VoicemailAccess
from nuage.pbx.voicemail.deposit import VoicemailDeposit
from nuage.pbx.voicemail.store import BoxKey, VoicemailStore
from nuage.store.models import Company, Group, User, VoicemailMessage

log = logging.getLogger(__name__)

# Told of each new message, once it is durable: (the box owner's company, the owner: a
# user or a group, it).
NewMessageListener = Callable[[Company, User | Group, VoicemailMessage], None]
# Told when a message of a box is heard or deleted: (the box, what happened: "heard" or
# "deleted", the message's id).
BoxListener = Callable[[BoxKey, str, int], None]


class Voicemail:
    def __init__(self, store: VoicemailStore, media: MediaEngine) -> None:
        self.store = store
        self._media = media
        self._listeners: list[NewMessageListener] = []
        self._box_listeners: list[BoxListener] = []

    def add_listener(self, listener: NewMessageListener) -> None:
        self._listeners.append(listener)

    def add_box_listener(self, listener: BoxListener) -> None:
        self._box_listeners.append(listener)

    async def mark_heard(self, box: BoxKey, message_id: int) -> bool:
        """False when the box has no such message."""
        if not await self.store.mark_heard(box, message_id):
            return False
        self._box_changed(box, "heard", message_id)
        return True

    async def delete(self, box: BoxKey, message_id: int) -> bool:
        """False when the box has no such message."""
        if not await self.store.delete(box, message_id):
            return False
        self._box_changed(box, "deleted", message_id)
        return True

    def _box_changed(self, box: BoxKey, change: str, message_id: int) -> None:
        for listener in self._box_listeners:
            try:
                listener(box, change, message_id)
            except Exception:
                log.exception("voicemail listener failed on message %d", message_id)

    async def deposit_for(self, company: Company, owner: User | Group) -> VoicemailDeposit | None:
        """What takes a call to ``owner`` that they cannot take; None if its box is off."""
        settings = await self.store.settings(BoxKey.of(owner))
        if not settings.enabled:
            return None

        def left(message: VoicemailMessage) -> None:
            for listener in self._listeners:
                try:
                    listener(company, owner, message)
                except Exception:
                    log.exception("voicemail listener failed on message %d", message.id)

        return VoicemailDeposit(company, owner, settings, self.store, self._media, on_message=left)

    async def access_for(self, company: Company, owner: User) -> VoicemailAccess | None:
        """What answers ``owner`` calling their own box; None if their box is off."""
        settings = await self.store.settings(BoxKey.of(owner))
        if not settings.enabled:
            return None
        return VoicemailAccess(company, owner, settings, self, self._media)
