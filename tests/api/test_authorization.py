"""Companies are sealed from each other: a user or an administrator of Acme who tries every
route of the API on the ids of another company, Globex, gets 404, exactly as for ids that
do not exist, and never sees anything of Globex, on any route or on the event stream.

The sweep enumerates the application's routes: a route added later is swept as well, and
one with a path parameter this module cannot fill with a Globex id (`path_values` in the
`isolation` fixture), or a request body it has no example of (`_bodies`), fails the
test until it is taught, so that no route escapes it."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.routing import APIRoute, APIWebSocketRoute, iter_route_contexts
from starlette.routing import Route
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from api.plans import ACME_ADMIN, ACME_USER, ACME_WITH_ADMIN, API, Headers, logged_in, provision
from nuage.api.ids import MAX_ID
from nuage.events import EventBus
from nuage.pbx.directory import Directory
from nuage.pbx.location import LocationService
from nuage.store import repositories
from nuage.store.database import Database
from nuage.store.models import CallRecord, Recording, User, VoicemailBox, VoicemailMessage
from peers.ports import free_port

pytestmark = pytest.mark.db

GLOBEX = """
[company]
name = "Globex Corporation"
domain = "globex.example"
country = "FR"
language = "en"

[[users]]
name = "Hank Scorpio"
extension = "4817"
email = "hank.scorpio@globex.example"
password = "app-4817"
sip_password = "sip-4817"
role = "admin"

[[users]]
name = "Mindy Simmons"
extension = "4829"
email = "mindy.simmons@globex.example"
password = "app-4829"
sip_password = "sip-4829"

[[trunks]]
name = "globex-carrier"
host = "192.0.2.77"
username = "globex-trunk-user"
password = "globex-trunk-secret"

[[numbers]]
number = "+33155554817"
route = "4817"

[[groups]]
name = "Globex Doomsday Desk"
extension = "4800"
members = ["4817", "4829"]
"""
HANK = ("hank.scorpio@globex.example", "app-4817")
MINDY = ("mindy.simmons@globex.example", "app-4829")
GLOBEX_STATUS = {
    "key": "globex-beach",
    "name": "Globex Beach Day",
    "behaviour": "forward",
    "forward_to": "4817",
}
GLOBEX_CALL_ID = "globex-call-1@192.0.2.77"
GLOBEX_PHONE = {"contact": "sip:4829@198.51.100.48:5060", "user_agent": "Globex Deskphone 3"}

# Answered without a token: the rest answers 401.
PUBLIC = {f"{API}/auth/login", f"{API}/auth/refresh", f"{API}/openapi.json", "/healthz"}
LOGOUT = ("POST", f"{API}/auth/logout")


@dataclass(frozen=True)
class PathValue:
    """How a path parameter is filled: with a Globex row's id (``theirs``), with an id of
    no row (``missing``: Globex's ids must be answered alike), and, for the parameter
    that scopes a path to a company, with Acme's own (``ours``)."""

    theirs: str
    missing: str
    ours: str | None = None


@dataclass
class Isolation:
    api: httpx.AsyncClient
    app: FastAPI
    directory: Directory
    acme: int
    globex: int
    user: Headers  # Élodie, a plain user of Acme
    admin: Headers  # Ada, Acme's administrator
    hank: Headers  # Globex's administrator
    mindy: Headers  # a plain user of Globex
    path_values: dict[str, PathValue]
    bodies: dict[str, dict[str, Any]]  # a valid request body, by its model's name
    secrets: list[str]  # Globex's values as a JSON answer would show them
    globex_call: int  # Globex's call record

    def leaks(self, answer: str, sent: str) -> list[str]:
        """Globex's values in the answer, but those the request carried itself (an
        error message may quote what it refuses)."""
        return [
            secret for secret in self.secrets if secret in answer and secret.strip('"') not in sent
        ]


def _token(headers: Headers) -> str:
    return headers["Authorization"].removeprefix("Bearer ")


async def _ok(api: httpx.AsyncClient, method: str, path: str, who: Headers, body: Any) -> Any:
    response = await api.request(method, API + path, headers=who, json=body)
    assert response.status_code in (200, 201, 204), response.text
    return None if response.status_code == 204 else response.json()


def _user(directory: Directory, company_id: int, extension: str) -> User:
    user = directory.user(company_id, extension)
    assert user is not None, extension
    return user


async def _add_calls(
    database: Database, tmp_path: Path, acme: list[User], globex: list[User]
) -> tuple[int, int, int]:
    """A call between Globex's users, recorded by its caller (the WAV in the call log's
    data directory, as the recorder leaves it), a voicemail message in Globex's first
    user's box, and a call between Acme's users: the ids of Globex's record, recording
    and message."""
    now = datetime.now(UTC)
    (tmp_path / "globex.wav").write_bytes(b"RIFF Globex recording")
    (tmp_path / "globex-message.wav").write_bytes(b"RIFF Globex message")
    async with database.transaction() as session:
        records = [
            CallRecord(
                company_id=caller.company_id,
                call_id=call_id,
                direction="internal",
                caller=caller.extension,
                caller_name=caller.name,
                callee=callee.extension,
                started_at=now - timedelta(minutes=5),
                answered_at=now - timedelta(minutes=4),
                ended_at=now - timedelta(minutes=1),
                outcome="answered",
                caller_user_id=caller.id,
                callee_user_id=callee.id,
            )
            for (caller, callee), call_id in (
                (globex, GLOBEX_CALL_ID),
                (acme[:2], "acme-call-1@192.0.2.10"),
            )
        ]
        session.add_all(records)
        await session.flush()
        recording = Recording(
            company_id=globex[0].company_id,
            call_record_id=records[0].id,
            owner_user_id=globex[0].id,
            path="globex.wav",
            started_at=now - timedelta(minutes=3),
            duration_ms=60_000,
            stopped_by="user",
        )
        session.add(recording)
        box = VoicemailBox(
            company_id=globex[0].company_id,
            user_id=globex[0].id,
            enabled=True,
            max_seconds=180,
            send_email=True,
            attach_audio=True,
        )
        session.add(box)
        await session.flush()
        message = VoicemailMessage(
            company_id=globex[0].company_id,
            box_id=box.id,
            caller=globex[1].extension,
            caller_name=globex[1].name,
            path="globex-message.wav",
            created_at=now,
            duration_ms=5_000,
        )
        session.add(message)
        await session.flush()
        return records[0].id, recording.id, message.id


def _bodies(hank: User) -> dict[str, dict[str, Any]]:
    """A valid body for each request model (patches take {}), naming Globex's things
    where a field can: the body must not be what the route refuses."""
    return {
        "LoginRequest": {"email": hank.email, "password": ACME_USER[1]},
        "RefreshRequest": {"refresh_token": "no-such-session.secret"},
        "DialIn": {"target": hank.extension},
        "TransferIn": {"target": hank.extension},
        "OtherCallIn": {"other_call_id": GLOBEX_CALL_ID},
        "DigitsIn": {"digits": "1"},
        "StatusIn": {"key": GLOBEX_STATUS["key"]},
        "CompanyEntry": {"name": "Globex Corporation", "domain": "globex.example", "country": "FR"},
        "UserPlan": {
            "name": "Hank Scorpio",
            "extension": "4830",
            "email": "hank.scorpio.2@globex.example",
            "password": "app-4830",
            "sip_password": "sip-4830",
        },
        "StatusPlan": {"key": "globex-volcano", "name": "Volcano"},
        "NumberPlan": {"number": "+33155554830", "route": hank.extension},
        "TrunkPlan": {"name": "globex-backup", "host": "192.0.2.78"},
        "GroupPlan": {
            "name": "Globex Doomsday Desk",
            "extension": "4801",
            "members": [hank.extension, "4829"],
        },
        "VoicemailSettings": {"pin": "4817", "email": hank.email, "max_seconds": 60},
    }


@pytest.fixture
async def isolation(api: httpx.AsyncClient, database: Database, tmp_path: Path) -> Isolation:
    directory = await provision(api, database, tmp_path, ACME_WITH_ADMIN, GLOBEX)
    acme, globex = (directory.company_by_domain(d) for d in ("acme.example", "globex.example"))
    assert acme is not None and globex is not None
    hank, mindy = await logged_in(api, HANK), await logged_in(api, MINDY)
    # Globex's own use: a status of theirs, chosen; a favorite; a phone; a recorded call.
    await _ok(api, "POST", f"/companies/{globex.id}/statuses", hank, GLOBEX_STATUS)
    await _ok(api, "PUT", "/me/status", mindy, {"key": GLOBEX_STATUS["key"]})
    hank_user, mindy_user = (_user(directory, globex.id, ext) for ext in ("4817", "4829"))
    await _ok(api, "PUT", f"/favorites/{hank_user.id}", mindy, None)
    now = datetime.now(UTC)
    async with database.transaction() as session:
        await repositories.save_registration(
            session,
            company_id=globex.id,
            user_id=mindy_user.id,
            contact=GLOBEX_PHONE["contact"],
            transport="udp",
            source_host="198.51.100.48",
            source_port=5060,
            call_id="globex-register-1",
            cseq=1,
            expires_at=now + timedelta(hours=1),
            user_agent=GLOBEX_PHONE["user_agent"],
        )
    location: LocationService = api._transport.app.state.location  # type: ignore[attr-defined]
    await location.load(now)
    acme_users = [_user(directory, acme.id, extension) for extension in ("1001", "1002")]
    globex_call, recording, message = await _add_calls(
        database, tmp_path, acme_users, [hank_user, mindy_user]
    )
    secrets = [globex.name, globex.domain, "198.51.100.48", GLOBEX_PHONE["user_agent"]]
    secrets += [GLOBEX_STATUS["name"], GLOBEX_CALL_ID]
    for user in directory.users_of(globex.id):
        secrets += [user.name, user.email, json.dumps(user.extension)]
    secrets += [number.number for number in directory.numbers(globex.id)]
    secrets += ["Globex Doomsday Desk"]
    for trunk in directory.trunks(globex.id):
        secrets += [trunk.name, trunk.host, trunk.username or "", trunk.password or ""]
    missing = str(MAX_ID)
    return Isolation(
        api=api,
        app=api._transport.app,  # type: ignore[attr-defined]
        directory=directory,
        acme=acme.id,
        globex=globex.id,
        user=await logged_in(api, ACME_USER),
        admin=await logged_in(api, ACME_ADMIN),
        hank=hank,
        mindy=mindy,
        path_values={
            "company_id": PathValue(str(globex.id), missing, ours=str(acme.id)),
            "user_id": PathValue(str(hank_user.id), missing),
            "number_id": PathValue(str(directory.numbers(globex.id)[0].id), missing),
            "trunk_id": PathValue(str(directory.trunks(globex.id)[0].id), missing),
            "key": PathValue(GLOBEX_STATUS["key"], "no-such-status"),
            "call_id": PathValue(GLOBEX_CALL_ID, "no-such-call"),
            "recording_id": PathValue(str(recording), missing),
            "message_id": PathValue(str(message), missing),
            "group_id": PathValue(str(directory.group(globex.id, "4800").id), missing),
            "extension": PathValue(hank_user.extension, "9999"),
        },
        bodies=_bodies(hank_user),
        secrets=[secret for secret in secrets if secret],
        globex_call=globex_call,
    )


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str  # as routed, with its "{parameters}"
    parameters: tuple[str, ...]


def _endpoints(app: FastAPI) -> list[Endpoint]:
    """Every HTTP method of every route of the application; fails on a route of a kind
    this module does not sweep."""
    endpoints = []
    for context in iter_route_contexts(app.routes):
        route, path = context.original_route, context.path
        assert path is not None
        if isinstance(route, APIRoute):
            parameters = tuple(context.param_convertors)
            endpoints += [Endpoint(m, path, parameters) for m in sorted(route.methods or ())]
        elif isinstance(route, Route) and path == app.openapi_url:
            continue  # public, and the same for everyone
        else:
            # The event stream: test_the_event_stream_* below. SIP over WebSocket carries
            # no ids and no token: SIP digest authenticates it (e2e/test_sip_websocket.py).
            assert isinstance(route, APIWebSocketRoute), f"not swept: {route!r}"
            assert path in (f"{API}/events", "/sip"), f"not swept: {path}"
    return endpoints


def _body(isolation: Isolation, endpoint: Endpoint) -> dict[str, Any] | None:
    """A valid body for the endpoint, if it takes one (its model as the OpenAPI
    description names it)."""
    paths = isolation.app.openapi()["paths"]
    operation = paths.get(endpoint.path, {}).get(endpoint.method.lower(), {})
    if "requestBody" not in operation:
        return None
    content = operation["requestBody"]["content"]
    if "application/json" not in content:
        # An upload (a greeting's WAV) names nothing but the caller's own things: sent
        # empty, it must still be refused without a leak or a server error.
        return None
    reference: str = content["application/json"]["schema"]["$ref"]
    model = reference.rpartition("/")[2]
    if model.endswith("Patch"):
        return {}  # a patch changes the fields sent: none is valid
    body = isolation.bodies.get(model)
    assert body is not None, f"{endpoint}: give _bodies an example of {model}"
    return body


def _fillings(endpoint: Endpoint, values: dict[str, PathValue]) -> Iterator[tuple[str, str]]:
    """(the path on Globex's ids, the same path on ids of nothing), for each way to mix
    Globex's ids with Acme's own company id, but Acme's alone."""
    choices = []
    for name in endpoint.parameters:
        filling = values[name]
        choices.append([(name, filling.theirs, filling.missing)])
        if filling.ours is not None:
            choices[-1].append((name, filling.ours, filling.ours))
    for combination in itertools.product(*choices):
        if all(value == values[name].ours for name, value, _ in combination):
            continue
        theirs, missing = endpoint.path, endpoint.path
        for name, value, nothing in combination:
            theirs = theirs.replace(f"{{{name}}}", value)
            missing = missing.replace(f"{{{name}}}", nothing)
        yield theirs, missing


def _text(response: httpx.Response) -> str:
    return response.text + json.dumps(dict(response.headers))


def _code(response: httpx.Response) -> str | None:
    try:
        code: str = response.json()["error"]["code"]
    except (ValueError, KeyError, TypeError):
        return None
    return code


async def test_another_companys_ids_are_not_found_on_any_route(isolation: Isolation) -> None:
    api, values = isolation.api, isolation.path_values
    endpoints = [endpoint for endpoint in _endpoints(isolation.app) if endpoint.parameters]
    unknown = {name for endpoint in endpoints for name in endpoint.parameters} - set(values)
    assert not unknown, f"add these path parameters to the sweep, with a Globex id: {unknown}"
    swept = 0
    for endpoint in endpoints:
        method, body = endpoint.method, _body(isolation, endpoint)
        sent = json.dumps(body)
        for theirs, missing in _fillings(endpoint, values):
            for who in (isolation.user, isolation.admin):
                answer = await api.request(method, theirs, headers=who, json=body)
                control = await api.request(method, missing, headers=who, json=body)
                where = (method, theirs, answer.status_code, answer.text)
                # 403 only for a role refused on Acme's own company: the same as for an
                # id of nothing, so that it tells nothing of Globex either.
                assert answer.status_code in (403, 404), where
                assert (answer.status_code, _code(answer)) == (
                    control.status_code,
                    _code(control),
                ), (*where, control.text)
                assert not isolation.leaks(_text(answer), theirs + sent), where
                swept += 1
    assert swept >= 2 * len(endpoints)
    await _globex_is_untouched(isolation)


async def _globex_is_untouched(isolation: Isolation) -> None:
    """What Globex's administrator and users see is what the fixture made."""
    api, globex, hank = isolation.api, isolation.globex, isolation.hank
    users = await _ok(api, "GET", f"/companies/{globex}/users", hank, None)
    assert sorted(user["name"] for user in users["items"]) == ["Hank Scorpio", "Mindy Simmons"]
    for collection, count in (("numbers", 1), ("trunks", 1), ("statuses", 6)):
        listed = await _ok(api, "GET", f"/companies/{globex}/{collection}", hank, None)
        assert listed["total"] == count, (collection, listed)
    status = await _ok(api, "GET", f"/companies/{globex}/statuses/globex-beach", hank, None)
    assert status["name"] == GLOBEX_STATUS["name"]
    [favorite] = await _ok(api, "GET", "/favorites", isolation.mindy, None)
    assert favorite["name"] == "Hank Scorpio"
    [call] = await _ok(api, "GET", "/me/calllog", isolation.hank, None)
    assert call["id"] == isolation.globex_call and len(call["recordings"]) == 1
    recording = call["recordings"][0]["id"]
    audio = await api.get(f"{API}/recordings/{recording}", headers=isolation.hank)
    assert audio.status_code == 200 and audio.content == b"RIFF Globex recording"


async def test_ones_own_routes_show_nothing_of_another_company(isolation: Isolation) -> None:
    """The routes without a path parameter ("/me", "/directory"...) are the caller's by
    their token: every one, with a body naming Globex's things where it has one, shows
    nothing of Globex."""
    api = isolation.api
    endpoints = [endpoint for endpoint in _endpoints(isolation.app) if not endpoint.parameters]
    # Logging out ends the token the other calls use.
    endpoints.sort(key=lambda endpoint: (endpoint.method, endpoint.path) == LOGOUT)
    for who in (isolation.user, isolation.admin):
        for endpoint in endpoints:
            method, path, body = endpoint.method, endpoint.path, _body(isolation, endpoint)
            answer = await api.request(method, path, headers=who, json=body)
            where = (method, path, answer.status_code, answer.text)
            assert answer.status_code < 500, where
            assert not isolation.leaks(_text(answer), json.dumps(body)), where


async def test_searches_and_lists_are_the_callers_companys(isolation: Isolation) -> None:
    api, user = isolation.api, isolation.user
    for query in ("Hank", "Scorpio", "4817", "4829", "globex", "mindy.simmons@globex.example"):
        found = await api.get(f"{API}/directory", params={"q": query}, headers=user)
        assert found.status_code == 200 and found.json() == [], (query, found.text)
    everyone = await _ok(api, "GET", "/directory?limit=200", user, None)
    assert {contact["extension"] for contact in everyone} == {"1001", "1002", "1003", "1009"}
    for kind in ("all", "missed", "recordings"):
        for who in (isolation.user, isolation.admin):
            calls = await _ok(api, "GET", f"/me/calllog?filter={kind}", who, None)
            assert isolation.globex_call not in {call["id"] for call in calls}
    [call] = await _ok(api, "GET", "/me/calllog", user, None)
    assert call["other"]["number"] == "1002"  # Acme's own call, for contrast
    # Globex's status is not Acme's to choose.
    chosen = await api.put(f"{API}/me/status", json={"key": "globex-beach"}, headers=user)
    assert chosen.status_code == 422 and chosen.json()["error"]["code"] == "invalid"
    assert await _ok(api, "GET", "/me/devices", user, None) == []


async def test_every_route_needs_a_valid_token(isolation: Isolation) -> None:
    api, values = isolation.api, isolation.path_values
    for endpoint in _endpoints(isolation.app):
        if endpoint.path in PUBLIC:
            continue
        path = endpoint.path
        for name in endpoint.parameters:
            path = path.replace(f"{{{name}}}", values[name].theirs)
        body = _body(isolation, endpoint)
        for headers, code in (
            ({}, "unauthorized"),
            ({"Authorization": "Bearer no-such-session.secret"}, "invalid_token"),
        ):
            answer = await api.request(endpoint.method, path, headers=headers, json=body)
            where = (endpoint.method, path, answer.status_code, answer.text)
            assert answer.status_code == 401 and _code(answer) == code, where
            assert answer.headers["www-authenticate"].startswith("Bearer"), where


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield  # Ctrl-C is pytest's


@contextlib.asynccontextmanager
async def _events_url(app: FastAPI) -> AsyncIterator[str]:
    """The app served on a loopback port from this loop (the database's): httpx's ASGI
    transport has no WebSockets."""
    port = free_port()
    server = _Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()  # the bind failed: its error
        await asyncio.sleep(0.01)
    try:
        yield f"ws://127.0.0.1:{port}{API}/events"
    finally:
        server.should_exit = True
        await task


async def _received_until(
    connection: ClientConnection, last: Callable[[dict[str, Any]], bool], within: float = 5.0
) -> list[str]:
    """The messages received, up to the first that is ``last``."""
    received: list[str] = []
    try:
        async with asyncio.timeout(within):
            while True:
                text = await connection.recv()
                assert isinstance(text, str)
                received.append(text)
                if last(json.loads(text)):
                    return received
    except TimeoutError:
        pytest.fail(f"the awaited event did not come; came: {received}")


def _status_of(user_id: int, key: str) -> Callable[[dict[str, Any]], bool]:
    def matches(message: dict[str, Any]) -> bool:
        data = message["data"]
        return bool(
            message["type"] == "presence.status"
            and data["user_id"] == user_id
            and data["status"]["key"] == key
        )

    return matches


async def test_the_event_stream_carries_nothing_of_another_company(
    isolation: Isolation,
) -> None:
    api = isolation.api
    bus: EventBus = isolation.app.state.bus
    acme = {user.id for user in isolation.directory.users_of(isolation.acme)}
    elodie, ada, hank = [
        (await _ok(api, "GET", "/me", who, None))["id"]
        for who in (isolation.user, isolation.admin, isolation.hank)
    ]
    # Before Acme connects, to be replayed: an event of Acme's, then one of Globex's.
    await _ok(api, "PUT", "/me/status", isolation.admin, {"key": "meeting"})
    bus.publish(isolation.globex, "presence.line", {"user_id": hank, "line_state": "ringing"})
    async with _events_url(isolation.app) as url:
        connections = [
            await connect(f"{url}?token={_token(who)}&stream={bus.stream}&since=0")
            for who in (isolation.user, isolation.admin)
        ]
        try:
            replayed = [
                await _received_until(connection, _status_of(ada, "meeting"))
                for connection in connections
            ]
            # Globex's events: status changes of theirs, and events published for them,
            # one even addressed to the id of an Acme user.
            await _ok(api, "PUT", "/me/status", isolation.mindy, {"key": "available"})
            await _ok(api, "PUT", "/me/status", isolation.hank, {"key": "globex-beach"})
            call = {"id": GLOBEX_CALL_ID, "other": {"number": "4829", "name": "Mindy Simmons"}}
            bus.publish(isolation.globex, "call.ringing", call, user_id=hank)
            bus.publish(isolation.globex, "call.ringing", call, user_id=elodie)
            bus.publish(isolation.globex, "favorites.changed", {"user_id": hank, "favorite": True})
            # Then one of Acme's: once it has arrived, Globex's would have come before it.
            await _ok(api, "PUT", "/me/status", isolation.user, {"key": "lunch"})
            live = [
                await _received_until(connection, _status_of(elodie, "lunch"))
                for connection in connections
            ]
        finally:
            for connection in connections:
                await connection.close()
    for texts in (*replayed, *live):
        for text in texts:
            assert not isolation.leaks(text, ""), text
            message = json.loads(text)
            if message["type"] != "connected":
                assert message["type"] == "presence.status", text
                assert message["data"]["user_id"] in acme, text
    # Exactly Acme's: the connection, its replay, Élodie's change.
    assert [len(texts) for texts in replayed] == [2, 2]
    assert [len(texts) for texts in live] == [1, 1]


async def test_the_event_stream_is_the_tokens_companys(isolation: Isolation) -> None:
    """No token, no stream; and a stream cannot be carried on with another company's
    token (the client's token renewal)."""
    async with _events_url(isolation.app) as url:
        async with connect(url) as anonymous:
            refusal = json.loads(await anonymous.recv())
            assert refusal["data"]["error"]["code"] == "invalid_token"
            with pytest.raises(ConnectionClosed):
                await anonymous.recv()
            assert anonymous.close_code == 4401
        async with connect(f"{url}?token={_token(isolation.user)}") as stream:
            assert json.loads(await stream.recv())["type"] == "connected"
            await stream.send(json.dumps({"type": "authenticate", "token": _token(isolation.hank)}))
            await _ok(isolation.api, "PUT", "/me/status", isolation.hank, {"key": "globex-beach"})
            with pytest.raises(ConnectionClosed):
                text = await stream.recv()
                pytest.fail(f"received after another company's token: {text!r}")
            assert stream.close_code == 4401
