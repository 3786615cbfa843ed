"""What the live event stream carries, made from the domain's changes and published on
the event bus in the API's own shapes (the same JSON the REST routes return):

- ``presence.status`` {user_id, status} to the company, when a user's status changes;
- ``presence.line`` {user_id, line_state} to the company, when a user's line state
  (offline, available, ringing, in call, on hold) changes on this node;
- ``call.ringing``, ``call.answered``, ``call.held``, ``call.resumed``,
  ``call.transferred``, ``call.conference``, ``call.recording``, ``call.quality`` {the
  call as GET /me/calls shows it} and ``call.ended`` {id} to each user of the call (a
  click-to-call from its devices' ringing on);
- ``call_log.created`` {the entry as GET /me/calllog shows it} to each user of a call
  once its record is complete;
- ``favorites.changed`` {user_id, favorite} to the user who starred or unstarred.

A presence change is published by the node where it happened: status changes by the node
that wrote them, line states by the node that carries the user's registrations and calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from nuage.api.calls import LiveCallOut, LogEntryOut
from nuage.api.statuses import StatusOut
from nuage.api.voicemail import VoicemailOut
from nuage.events import EventBus
from nuage.pbx.call_engine import CallEngine
from nuage.pbx.call_log import CallLog, LogEntry
from nuage.pbx.calls import Call
from nuage.pbx.control import CallControl
from nuage.pbx.directory import Directory
from nuage.pbx.location import LocationService
from nuage.pbx.originated import Dialling
from nuage.pbx.presence import Presence
from nuage.pbx.records import CallRecorder, CompletedRecord
from nuage.pbx.statuses import StatusError, StatusService
from nuage.pbx.voicemail.service import Voicemail
from nuage.pbx.voicemail.store import BoxKey
from nuage.store.models import Company, Group, User, VoicemailMessage

log = logging.getLogger(__name__)

# Call quality is re-read this often; a changed figure becomes a call.quality event.
QUALITY_PERIOD = 5.0


class EventFeed:
    def __init__(
        self,
        bus: EventBus,
        *,
        engine: CallEngine,
        control: CallControl,
        presence: Presence,
        location: LocationService,
        statuses: StatusService,
        recorder: CallRecorder,
        call_log: CallLog,
        voicemail: Voicemail,
        directory: Directory,
    ) -> None:
        self._bus = bus
        self._directory = directory
        self._control = control
        self._presence = presence
        self._statuses = statuses
        self._call_log = call_log
        # What each user was last told: their line state, each of their live calls (by
        # id: a click-to-call's dialling and the call that takes it over are one call).
        self._lines: dict[tuple[int, int], str] = {}
        self._calls: dict[tuple[str, int], tuple[Call | Dialling, dict[str, Any]]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._quality_task: asyncio.Task[None] | None = None
        engine.add_observer(self._call_changed)
        location.listeners.add(self._line_may_have_changed)
        statuses.listeners.add(self._status_changed)
        recorder.add_listener(self._record_completed)
        voicemail.add_listener(self._message_left)
        voicemail.add_box_listener(self._box_changed)

    def start(self) -> None:
        self._quality_task = asyncio.get_running_loop().create_task(self._watch_quality())

    async def close(self) -> None:
        tasks = [*self._tasks, *([self._quality_task] if self._quality_task else [])]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def favorite_changed(
        self, company_id: int, user_id: int, colleague_id: int, *, on: bool
    ) -> None:
        self._bus.publish(
            company_id,
            "favorites.changed",
            {"user_id": colleague_id, "favorite": on},
            user_id=user_id,
        )

    # -- presence ---------------------------------------------------------------------------

    def _status_changed(self, company_id: int, user_id: int) -> None:
        try:
            status = self._statuses.current(company_id, user_id)
        except StatusError:
            return
        data = {"user_id": user_id, "status": StatusOut.of(status).model_dump(mode="json")}
        self._bus.publish(company_id, "presence.status", data)

    def _line_may_have_changed(self, company_id: int, user_id: int) -> None:
        state = self._presence.line_state(company_id, user_id)
        key = (company_id, user_id)
        if self._lines.get(key) == state:
            return
        self._lines[key] = state
        self._bus.publish(company_id, "presence.line", {"user_id": user_id, "line_state": state})

    # -- calls ------------------------------------------------------------------------------

    def _call_changed(self, call: Call | Dialling, change: str) -> None:
        company_id = call.company.id
        for user_id in sorted(call.user_ids()):
            self._line_may_have_changed(company_id, user_id)
            self._tell(call, user_id, change)

    def _tell(self, call: Call | Dialling, user_id: int, change: str) -> None:
        key = (call.call_id, user_id)
        view = None if change == "ended" else self._control.view(call, user_id)
        if view is None:
            if self._calls.pop(key, None) is not None:
                self._bus.publish(
                    call.company.id, "call.ended", {"id": call.call_id}, user_id=user_id
                )
            return
        data = LiveCallOut.of(view).model_dump(mode="json")
        told = self._calls.get(key)
        previous = told[1] if told is not None else None
        # Kept even when unchanged: the call that took a dialling over is the one to watch.
        self._calls[key] = (call, data)
        if previous == data:
            return
        self._bus.publish(
            call.company.id, f"call.{_kind(change, previous, view.state)}", data, user_id=user_id
        )

    async def _watch_quality(self) -> None:
        while True:
            await asyncio.sleep(QUALITY_PERIOD)
            for (_, user_id), (call, _) in list(self._calls.items()):
                try:
                    self._tell(call, user_id, "quality")
                except Exception:
                    log.exception("quality of call %s not published", call.call_id)

    # -- voicemail -------------------------------------------------------------------------

    def _message_left(
        self, company: Company, owner: User | Group, message: VoicemailMessage
    ) -> None:
        box = BoxKey.of(owner)
        data = VoicemailOut.of(message, box).model_dump(mode="json")
        for user_id in self._box_readers(box):
            self._bus.publish(company.id, "voicemail.created", data, user_id=user_id)

    def _box_changed(self, box: BoxKey, change: str, message_id: int) -> None:
        data = {"id": message_id, "group_id": box.group_id}
        for user_id in self._box_readers(box):
            self._bus.publish(box.company_id, f"voicemail.{change}", data, user_id=user_id)

    def _box_readers(self, box: BoxKey) -> list[int]:
        """Who sees the box's messages: its owner, or the group's members."""
        if box.user_id is not None:
            return [box.user_id]
        group = self._directory.group_by_id(box.company_id, box.group_id or 0)
        return group.member_ids if group is not None else []

    # -- call log ---------------------------------------------------------------------------

    def _record_completed(self, completed: CompletedRecord) -> None:
        record = completed.record
        if completed.recorded:
            # The entries list the user's recordings: read back with them.
            task = asyncio.get_running_loop().create_task(
                self._publish_log_entries(record.company_id, record.id, completed.users)
            )
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            return
        # Most calls: the entry is the record as written, nothing to read back.
        callee = (
            None
            if record.callee_user_id is None
            else self._directory.user_by_id(record.company_id, record.callee_user_id)
        )
        for user_id in completed.users:
            entry = LogEntry.of(record, user_id, [], callee.name if callee is not None else "")
            self._publish_log_entry(record.company_id, user_id, entry)

    async def _publish_log_entries(
        self, company_id: int, record_id: int, users: tuple[int, ...]
    ) -> None:
        for user_id in users:
            try:
                entries = await self._call_log.entries(company_id, user_id, record_id=record_id)
            except Exception:
                log.exception("call log entry %d not published", record_id)
                return
            for entry in entries:
                self._publish_log_entry(company_id, user_id, entry)

    def _publish_log_entry(self, company_id: int, user_id: int, entry: LogEntry) -> None:
        data = LogEntryOut.of(entry).model_dump(mode="json")
        self._bus.publish(company_id, "call_log.created", data, user_id=user_id)


def _kind(change: str, previous: dict[str, Any] | None, state: str) -> str:
    """The event type (after "call.") of a change of the call as a user sees it: it rings
    for them, they answered (whatever brought it to them), or the change itself."""
    if state == "ringing":
        return "ringing"
    if previous is None or previous["state"] == "ringing":
        return "answered"
    return change
