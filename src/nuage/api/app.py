"""The HTTP application: /healthz, the REST API under /api/v1 with its OpenAPI
description at /api/v1/openapi.json, and the web app at / (api/webapp.py)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from fastapi import APIRouter, FastAPI

from nuage.api import (
    admin,
    auth,
    calls,
    contacts,
    errors,
    events,
    groups,
    me,
    sip_websocket,
    statuses,
    voicemail,
    webapp,
)
from nuage.api.event_feed import EventFeed
from nuage.api.health import health_router
from nuage.events import EventBus
from nuage.pbx.admin import Administration
from nuage.pbx.app_sessions import AppSessions
from nuage.pbx.call_log import CallLog
from nuage.pbx.click_to_call import ClickToCall
from nuage.pbx.contacts import Favorites
from nuage.pbx.control import CallControl
from nuage.pbx.directory import Directory
from nuage.pbx.location import LocationService
from nuage.pbx.presence import Presence
from nuage.pbx.statuses import StatusService
from nuage.pbx.voicemail.service import Voicemail

API_PREFIX = "/api/v1"


def create_app(
    is_ready: Callable[[], dict[str, bool]],
    counters: Callable[[], dict[str, int]],
    *,
    webapp_dir: Path | None = None,
) -> FastAPI:
    """The HTTP server starts before storage, so that /healthz can say "starting": the
    API answers 503 until ``serve_api`` gives it the services it uses. The web app (built
    into ``webapp_dir``, the package's own by default) answers what no route does."""
    app = FastAPI(
        title="Nuage",
        version="1",
        docs_url=None,
        redoc_url=None,
        openapi_url=f"{API_PREFIX}/openapi.json",
    )
    errors.install(app)
    app.include_router(health_router(is_ready, counters))
    # SIP over WebSocket (RFC 7118) for the web softphone: outside the REST API.
    app.include_router(sip_websocket.router)
    api = APIRouter(prefix=API_PREFIX, responses=errors.RESPONSES)
    api.include_router(auth.router)
    api.include_router(me.router)
    api.include_router(contacts.router)
    api.include_router(calls.router)
    api.include_router(statuses.router)
    api.include_router(events.router)
    api.include_router(groups.router)
    api.include_router(voicemail.router)
    api.include_router(admin.router)
    app.include_router(api)
    app.router.default = webapp.WebApp(webapp_dir or webapp.WEBAPP_DIR, app.router.default)
    return app


@dataclass(frozen=True, slots=True)
class ApiServices:
    """What the routes use, from the domain layer (pbx/)."""

    sessions: AppSessions
    directory: Directory
    favorites: Favorites
    presence: Presence
    control: CallControl
    call_log: CallLog
    location: LocationService
    statuses: StatusService
    bus: EventBus
    feed: EventFeed
    click_to_call: ClickToCall
    voicemail: Voicemail
    admin: Administration


def serve_api(app: FastAPI, services: ApiServices) -> None:
    for name in ApiServices.__slots__:
        if name != "sessions":
            setattr(app.state, name, getattr(services, name))
    # Last: the API answers 503 until the sessions are there.
    app.state.sessions = services.sessions
