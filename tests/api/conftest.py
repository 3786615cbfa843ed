"""The API in process on the test's database (SQLite, or PostgreSQL under `make pg-test`),
composed as the server composes it, with an in-process event bus; no SIP, no phones."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from e2e.server import acme_plan
from nuage.api.app import ApiServices, create_app, serve_api
from nuage.api.event_feed import EventFeed
from nuage.events.memory import InProcessBus
from nuage.media.engine import LocalMediaEngine
from nuage.pbx.admin import Administration
from nuage.pbx.app_sessions import AppSessions
from nuage.pbx.call_engine import CallEngine
from nuage.pbx.call_log import CallLog
from nuage.pbx.calls import CallerTransaction
from nuage.pbx.click_to_call import ClickToCall
from nuage.pbx.contacts import Favorites
from nuage.pbx.control import CallControl
from nuage.pbx.directory import Directory
from nuage.pbx.location import LocationService
from nuage.pbx.presence import Presence
from nuage.pbx.provision import apply_plan
from nuage.pbx.records import CallRecorder
from nuage.pbx.statuses import StatusService
from nuage.pbx.throttle import FailureThrottle
from nuage.pbx.voicemail.service import Voicemail
from nuage.pbx.voicemail.store import VoicemailStore
from nuage.store.database import Database
from nuage.store.models import Company, User
from nuage.store.writer import BatchWriter


async def no_call(tx: CallerTransaction, company: Company, user: User) -> None:
    raise AssertionError("no phone is registered here: nothing is called")


@pytest.fixture
async def api(database: Database, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    plan = tmp_path / "plan.toml"
    plan.write_text(acme_plan(5999))
    await apply_plan(database, plan)
    directory = Directory(database)
    await directory.load()
    writer = BatchWriter(database)
    # No phone registers and no call is made here: presence says everyone is offline.
    media = LocalMediaEngine("127.0.0.1", 40000, 40010)
    recorder = CallRecorder(writer)
    calls = CallEngine(media, recorder, ring_timeout=30)
    app = create_app(lambda: {"storage": True}, dict)
    location = LocationService(database, writer)
    presence = Presence(location, calls)
    control = CallControl(calls)
    statuses = StatusService(database, directory)
    call_log = CallLog(database, tmp_path)
    bus = InProcessBus()
    voicemail = Voicemail(VoicemailStore(database, tmp_path), media)
    feed = EventFeed(
        bus,
        engine=calls,
        control=control,
        presence=presence,
        location=location,
        statuses=statuses,
        recorder=recorder,
        call_log=call_log,
        voicemail=voicemail,
        directory=directory,
    )
    serve_api(
        app,
        ApiServices(
            sessions=AppSessions(database, FailureThrottle(max_failures=3)),
            directory=directory,
            favorites=Favorites(database, directory),
            presence=presence,
            control=control,
            call_log=call_log,
            location=location,
            statuses=statuses,
            bus=bus,
            feed=feed,
            click_to_call=ClickToCall(calls, lambda company, user: [], no_call),
            voicemail=voicemail,
            admin=Administration(database, directory, location),
        ),
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://nuage") as client:
        yield client
