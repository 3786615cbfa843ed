"""The admin API (issue 4): companies for the provider's engineers; users, groups,
statuses, numbers, trunks and voicemail boxes' settings for a company's administrators;
roles, other companies' ids, conflicts, validation; every change in effect in the
directory at once."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from api.plans import PROVIDER
from nuage.pbx.directory import Directory
from nuage.pbx.location import LocationService
from nuage.pbx.provision import apply_plan, password_hash, sip_ha1, sip_secrets
from nuage.pbx.voicemail.access import pin_matches
from nuage.pbx.voicemail.service import Voicemail
from nuage.pbx.voicemail.store import BoxKey
from nuage.store import repositories
from nuage.store.database import Database
from nuage.store.models import AppSession, Favorite, Registration, User, VoicemailBox

pytestmark = pytest.mark.db

GLOBEX = """
[company]
name = "Globex"
domain = "globex.example"
country = "FR"
language = "en"

[[users]]
name = "Gaston Lagaffe"
extension = "2001"
email = "gaston@globex.example"
password = "app-2001"
sip_password = "sip-2001"
role = "admin"

[[trunks]]
name = "globex-carrier"
host = "192.0.2.50"

[[numbers]]
number = "+33155550100"
route = "2001"

[[ivrs]]
name = "Standard"
extension = "800"
fallback = "2001"
[ivrs.keys]
"1" = "2001"
"""

API = "/api/v1"

Headers = dict[str, str]


async def logged_in(api: httpx.AsyncClient, email: str, password: str) -> Headers:
    response = await api.post(f"{API}/auth/login", json={"email": email, "password": password})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


@dataclass
class World:
    api: httpx.AsyncClient
    database: Database
    directory: Directory
    acme: int
    globex: int
    engineer: Headers
    admin: Headers  # Ada, administrator of Acme
    user: Headers  # Élodie, a plain user of Acme
    globex_admin: Headers

    async def call(
        self, method: str, path: str, who: Headers | None, body: dict[str, Any] | None = None
    ) -> httpx.Response:
        return await self.api.request(method, API + path, headers=who or {}, json=body)

    async def ok(
        self, method: str, path: str, who: Headers, body: dict[str, Any] | None = None
    ) -> Any:
        response = await self.call(method, path, who, body)
        assert response.status_code in (200, 201, 204), response.text
        return None if response.status_code == 204 else response.json()

    async def refused(
        self,
        method: str,
        path: str,
        who: Headers | None,
        body: dict[str, Any] | None,
        expected: tuple[int, str, str | None],
    ) -> str:
        """Asserts the error, (status, code, field); returns its message."""
        status, code, field = expected
        response = await self.call(method, path, who, body)
        assert response.status_code == status, (method, path, response.text)
        error = response.json()["error"]
        assert error["code"] == code, error
        assert error.get("field") == field, error
        message: str = error["message"]
        return message


@functools.cache
def _ada_password_hash() -> str:
    hashed = password_hash(None, "app-1009")
    assert hashed is not None
    return hashed


@pytest.fixture
async def world(api: httpx.AsyncClient, database: Database, tmp_path: Path) -> World:
    for name, text in (("provider.toml", PROVIDER), ("globex.toml", GLOBEX)):
        (tmp_path / name).write_text(text)
        await apply_plan(database, tmp_path / name)
    directory: Directory = api._transport.app.state.directory  # type: ignore[attr-defined]
    await directory.load()
    acme, globex = (directory.company_by_domain(d) for d in ("acme.example", "globex.example"))
    assert acme is not None and globex is not None
    # Acme's administrator, added as the plan would (argon2 costs ~50 ms a hash: once).
    async with database.transaction() as session:
        session.add(
            User(
                company_id=acme.id,
                name="Ada Admin",
                extension="1009",
                email="ada@acme.example",
                password_hash=_ada_password_hash(),
                role="admin",
                **sip_secrets("1009", "acme.example", "sip-1009"),
            )
        )
    await directory.load()
    return World(
        api=api,
        database=database,
        directory=directory,
        acme=acme.id,
        globex=globex.id,
        engineer=await logged_in(api, "eve@provider.example", "app-9001"),
        admin=await logged_in(api, "ada@acme.example", "app-1009"),
        user=await logged_in(api, "elodie@acme.example", "app-1001"),
        globex_admin=await logged_in(api, "gaston@globex.example", "app-2001"),
    )


def rows_of(world: World, company: int) -> dict[str, int | str]:
    """A row of each kind of the company: its id in the admin paths (a status's key)."""
    directory = world.directory
    return {
        "users": directory.users_of(company)[0].id,
        "trunks": directory.trunks(company)[0].id,
        "numbers": directory.numbers(company)[0].id,
        "statuses": directory.statuses(company)[-1].key,
    }


def company_routes(company: int, rows: dict[str, int | str]) -> list[tuple[str, str]]:
    """Every company-scoped admin route: the collections, and the items ``rows``."""
    routes = []
    for collection, item in rows.items():
        base = f"/companies/{company}/{collection}"
        routes += [("GET", base), ("POST", base)]
        routes += [(method, f"{base}/{item}") for method in ("GET", "PATCH", "DELETE")]
    return routes


async def test_roles_decide_who_may_call_each_route(world: World) -> None:
    for method, path in company_routes(world.acme, rows_of(world, world.acme)):
        await world.refused(method, path, None, {}, (401, "unauthorized", None))
        await world.refused(method, path, world.user, {}, (403, "forbidden", None))
        await world.refused(method, path, world.globex_admin, {}, (404, "not_found", None))
    for method, path in company_routes(world.globex, rows_of(world, world.globex)):
        for who in (world.user, world.admin):
            await world.refused(method, path, who, {}, (404, "not_found", None))
    # Engineers only: a company's own administrator gets 403 for their company, and for
    # any other 404, the same answer as for an id that does not exist.
    for who in (world.admin, world.user):
        await world.refused("GET", "/companies", who, None, (403, "forbidden", None))
        await world.refused("POST", "/companies", who, {}, (403, "forbidden", None))
        for method in ("GET", "PATCH", "DELETE"):
            await world.refused(
                method, f"/companies/{world.acme}", who, {}, (403, "forbidden", None)
            )
            other = await world.call(method, f"/companies/{world.globex}", who, {})
            missing = await world.call(method, "/companies/999999", who, {})
            assert other.status_code == missing.status_code == 404
            assert other.json()["error"]["message"].replace(str(world.globex), "X") == (
                missing.json()["error"]["message"].replace("999999", "X")
            )
    # The engineer reads every company's rows; each company's administrator their own.
    for who, company in (
        (world.engineer, world.acme),
        (world.engineer, world.globex),
        (world.admin, world.acme),
        (world.globex_admin, world.globex),
    ):
        for collection in ("users", "trunks", "numbers", "statuses"):
            listed = await world.ok("GET", f"/companies/{company}/{collection}", who)
            assert listed["total"] == len(listed["items"]) > 0


async def test_another_companys_rows_are_not_found_under_ones_own(world: World) -> None:
    await world.ok(
        "POST",
        f"/companies/{world.globex}/statuses",
        world.globex_admin,
        {"key": "beach", "name": "Beach"},
    )
    globex_rows = rows_of(world, world.globex)
    assert globex_rows["statuses"] == "beach"
    for method, path in company_routes(world.acme, globex_rows):
        if path.endswith(tuple(globex_rows)):
            continue  # a collection, not a row
        for who in (world.admin, world.engineer):
            await world.refused(method, path, who, {}, (404, "not_found", None))
    # Untouched.
    assert world.directory.user(world.globex, "2001").name == "Gaston Lagaffe"  # type: ignore[union-attr]
    assert len(world.directory.trunks(world.globex)) == 1
    assert len(world.directory.statuses(world.globex)) == 6


async def test_engineers_manage_companies(world: World) -> None:
    engineer = world.engineer
    created = await world.ok(
        "POST",
        "/companies",
        engineer,
        {"name": "Initech", "domain": "Initech.example", "country": "nl", "language": "nl"},
    )
    company = created["id"]
    assert created == {
        "name": "Initech",
        "domain": "initech.example",
        "country": "NL",
        "language": "nl",
        "recording_announcement": "beep",
        "policy": {"allowed_countries": ["NL"], "blocked_prefixes": [], "max_external_calls": 10},
        "id": company,
    }
    # As a plan without [[statuses]]: the defaults, in the company's language.
    statuses = await world.ok("GET", f"/companies/{company}/statuses", engineer)
    assert [s["key"] for s in statuses["items"]][:2] == ["available", "meeting"]
    assert statuses["items"][0]["name"] == "Beschikbaar"
    assert world.directory.company_by_domain("initech.example") is not None
    listed = await world.ok("GET", "/companies", engineer)
    assert [c["name"] for c in listed["items"]] == ["Acme", "Globex", "Initech", "Nuage Provider"]
    await world.refused(
        "POST",
        "/companies",
        engineer,
        {"name": "Again", "domain": "initech.example", "country": "NL"},
        (409, "domain_taken", "domain"),
    )
    await world.refused(
        "POST",
        "/companies",
        engineer,
        {"name": "Nowhere", "domain": "nowhere.example", "country": "XX"},
        (422, "invalid", "country"),
    )
    await world.refused(
        "POST",
        "/companies",
        engineer,
        {"domain": "x.example", "country": "BE"},
        (422, "invalid", "name"),
    )
    changed = await world.ok(
        "PATCH",
        f"/companies/{company}",
        engineer,
        {"name": "Initech BV", "policy": {"allowed_countries": ["NL", "BE"]}},
    )
    assert changed["name"] == "Initech BV" and changed["policy"]["allowed_countries"] == [
        "BE",
        "NL",
    ]
    assert changed["language"] == "nl"  # not sent: unchanged
    # The domain is the realm of the users' SIP secrets: it does not change.
    await world.refused(
        "PATCH",
        f"/companies/{company}",
        engineer,
        {"domain": "y.example"},
        (422, "invalid", "domain"),
    )
    await world.refused(
        "PATCH", f"/companies/{company}", engineer, {"name": None}, (422, "invalid", "name")
    )
    # A company with users (or numbers) is not deleted: each of them is a decision.
    await world.ok(
        "POST",
        f"/companies/{company}/users",
        engineer,
        {
            "name": "Peter Gibbons",
            "extension": "100",
            "email": "peter@initech.example",
            "password": "app-secret",
            "sip_password": "sip-secret",
        },
    )
    await world.refused("DELETE", f"/companies/{company}", engineer, None, (409, "in_use", None))
    [peter] = (await world.ok("GET", f"/companies/{company}/users", engineer))["items"]
    await world.ok("DELETE", f"/companies/{company}/users/{peter['id']}", engineer)
    await world.ok("DELETE", f"/companies/{company}", engineer)
    await world.refused("GET", f"/companies/{company}", engineer, None, (404, "not_found", None))
    assert world.directory.company(company) is None


async def test_an_admin_adds_a_user_who_works_at_once(world: World) -> None:
    users = f"/companies/{world.acme}/users"
    new = {
        "name": "Zoé Lemaire",
        "extension": "1004",
        "email": "Zoe@Acme.example",
        "password": "app-secret-4",
        "sip_password": "sip-secret-4",
    }
    created = await world.ok("POST", users, world.admin, new)
    assert created == {
        "name": "Zoé Lemaire",
        "extension": "1004",
        "email": "zoe@acme.example",
        "role": "user",
        "id": created["id"],
    }
    # In the directory at once: colleagues find her, she logs in and reads her profile.
    found = await world.ok("GET", "/directory?q=zoe", world.user)
    assert [c["extension"] for c in found] == ["1004"]
    zoe = await logged_in(world.api, "zoe@acme.example", "app-secret-4")
    assert (await world.ok("GET", "/me", zoe))["extension"] == "1004"
    async with world.database.session() as session:
        row = await session.get(User, created["id"])
        assert row is not None
        assert row.sip_ha1_md5 == sip_ha1("md5", "1004", "acme.example", "sip-secret-4")
        assert row.password_hash.startswith("$argon2id$")
    # Secrets are set, never shown.
    for item in (await world.ok("GET", users, world.admin))["items"]:
        assert set(item) == {"id", "name", "extension", "email", "role"}
    refusals = [
        ({"extension": "1001"}, 409, "extension_taken", "extension"),
        ({"email": "lucas@acme.example"}, 409, "email_taken", "email"),
        # Emails are logins across companies; the answer does not say whose it is.
        ({"email": "gaston@globex.example"}, 409, "email_taken", "email"),
        ({"extension": "0123"}, 422, "invalid", "extension"),
        ({"email": "not an email"}, 422, "invalid", "email"),
        ({"password": "short"}, 422, "invalid", "password"),
        ({"role": "root"}, 422, "invalid", "role"),
        ({"colour": "#ffffff"}, 422, "invalid", "colour"),
    ]
    for change, status, code, field in refusals:
        body = new | {"extension": "1005", "email": "new@acme.example"} | change
        message = await world.refused("POST", users, world.admin, body, (status, code, field))
        if code == "email_taken":
            assert message == f"{body['email']} is already in use"
    await world.refused(
        "POST", users, world.admin, {"name": "Nobody"}, (422, "invalid", "extension")
    )
    # Users and voice menus share the numbering plan.
    message = await world.refused(
        "POST",
        f"/companies/{world.globex}/users",
        world.globex_admin,
        new | {"extension": "800"},
        (409, "extension_taken", "extension"),
    )
    assert "'Standard'" in message


async def test_an_admin_changes_a_user(world: World) -> None:
    lucas = world.directory.user(world.acme, "1002")
    assert lucas is not None
    path = f"/companies/{world.acme}/users/{lucas.id}"
    changed = await world.ok("PATCH", path, world.admin, {"name": "Lucas Dubois-Martin"})
    assert (changed["name"], changed["extension"]) == ("Lucas Dubois-Martin", "1002")
    assert world.directory.user(world.acme, "1002").name == "Lucas Dubois-Martin"  # type: ignore[union-attr]
    # A new app password: the old one stops working, the new one logs in.
    await world.ok("PATCH", path, world.admin, {"password": "new-app-secret"})
    refused = await world.api.post(
        f"{API}/auth/login", json={"email": "lucas@acme.example", "password": "app-1002"}
    )
    assert refused.status_code == 401
    await logged_in(world.api, "lucas@acme.example", "new-app-secret")
    # The SIP secrets are bound to the extension: a new one needs the SIP password.
    await world.refused(
        "PATCH", path, world.admin, {"extension": "1012"}, (422, "invalid", "sip_password")
    )
    await world.refused(
        "PATCH",
        path,
        world.admin,
        {"extension": "1001", "sip_password": "sip-secret-2"},
        (409, "extension_taken", "extension"),
    )
    await world.refused("PATCH", path, world.admin, {"email": None}, (422, "invalid", "email"))
    await world.refused("PATCH", path, world.admin, {"pager": "1"}, (422, "invalid", "pager"))
    # Élodie's number goes with her to her new extension.
    elodie = world.directory.user(world.acme, "1001")
    assert elodie is not None
    await world.ok(
        "PATCH",
        f"/companies/{world.acme}/users/{elodie.id}",
        world.admin,
        {"extension": "1011", "sip_password": "sip-new-1011"},
    )
    owner = world.directory.number_owner("+3225550100")
    assert owner is not None and owner.route == "1011"
    moved = world.directory.user(world.acme, "1011")
    assert moved is not None and moved.id == elodie.id
    assert moved.sip_ha1_sha256 == sip_ha1("sha256", "1011", "acme.example", "sip-new-1011")
    # So do a voice menu's key and fallback.
    gaston = world.directory.user(world.globex, "2001")
    assert gaston is not None
    await world.ok(
        "PATCH",
        f"/companies/{world.globex}/users/{gaston.id}",
        world.globex_admin,
        {"extension": "2002", "sip_password": "sip-new-2002"},
    )
    menu = world.directory.ivr(world.globex, "800")
    assert menu is not None and (menu.keys, menu.fallback) == ({"1": "2002"}, "2002")


async def test_only_engineers_make_engineers(world: World) -> None:
    users = f"/companies/{world.acme}/users"
    engineer_account = {
        "name": "Ivan Ingénieur",
        "extension": "1090",
        "email": "ivan@acme.example",
        "password": "app-secret-90",
        "sip_password": "sip-secret-90",
        "role": "engineer",
    }
    await world.refused("POST", users, world.admin, engineer_account, (403, "forbidden", "role"))
    ivan = await world.ok("POST", users, world.engineer, engineer_account)
    for method, body in (("PATCH", {"name": "Ivan"}), ("DELETE", None)):
        await world.refused(
            method, f"{users}/{ivan['id']}", world.admin, body, (403, "forbidden", "role")
        )
    elodie = world.directory.user(world.acme, "1001")
    assert elodie is not None
    await world.refused(
        "PATCH",
        f"{users}/{elodie.id}",
        world.admin,
        {"role": "engineer"},
        (403, "forbidden", "role"),
    )
    promoted = await world.ok("PATCH", f"{users}/{elodie.id}", world.admin, {"role": "admin"})
    assert promoted["role"] == "admin"
    # Her existing session has her new role at once.
    assert (await world.ok("GET", f"/companies/{world.acme}/users", world.user))["total"] == 5
    await world.ok("DELETE", f"{users}/{ivan['id']}", world.engineer)


async def test_deleting_a_user_takes_their_phones_sessions_and_favorites(
    world: World,
) -> None:
    camille = world.directory.user(world.acme, "1003")
    assert camille is not None
    path = f"/companies/{world.acme}/users/{camille.id}"
    camille_api = await logged_in(world.api, "camille@acme.example", "app-1003")
    now = datetime.now(UTC)
    async with world.database.transaction() as session:
        await repositories.save_registration(
            session,
            company_id=world.acme,
            user_id=camille.id,
            contact="sip:1003@192.0.2.30:5060",
            transport="udp",
            source_host="192.0.2.30",
            source_port=5060,
            call_id="call-1",
            cseq=1,
            expires_at=now + timedelta(hours=1),
        )
    location: LocationService = world.api._transport.app.state.location  # type: ignore[attr-defined]
    await location.load(now)
    assert location.bindings(world.acme, camille.id, now)
    await world.ok("PUT", f"/favorites/{camille.id}", world.user)
    await world.ok("DELETE", path, world.admin)
    assert (await world.call("GET", "/me", camille_api)).status_code == 401
    await world.refused("GET", path, world.admin, None, (404, "not_found", None))
    assert world.directory.user(world.acme, "1003") is None
    assert not location.bindings(world.acme, camille.id, now)
    assert await world.ok("GET", "/favorites", world.user) == []
    async with world.database.session() as session:
        for model in (Registration, AppSession):
            count = select(func.count()).select_from(model).where(model.user_id == camille.id)
            assert (await session.execute(count)).scalar_one() == 0
        favorites = select(func.count()).where(Favorite.favorite_user_id == camille.id)
        assert (await session.execute(favorites)).scalar_one() == 0
    # Élodie's number still rings her: she cannot just disappear.
    elodie = world.directory.user(world.acme, "1001")
    assert elodie is not None
    message = await world.refused(
        "DELETE",
        f"/companies/{world.acme}/users/{elodie.id}",
        world.admin,
        None,
        (409, "in_use", None),
    )
    assert "+3225550100" in message


async def test_statuses_follow_the_plans_rules(world: World) -> None:
    statuses = f"/companies/{world.acme}/statuses"
    admin = world.admin
    created = await world.ok(
        "POST",
        statuses,
        admin,
        {"key": "support", "name": "Support", "behaviour": "forward", "forward_to": "1002"},
    )
    assert created == {
        "key": "support",
        "name": "Support",
        "colour": None,
        "behaviour": "forward",
        "forward_to": "1002",
        "pause_acd": False,
    }
    keys = [s["key"] for s in (await world.ok("GET", statuses, admin))["items"]]
    assert keys == ["available", "meeting", "lunch", "dnd", "away", "support"]
    national = await world.ok(
        "POST",
        statuses,
        admin,
        {"key": "desk", "name": "Desk", "behaviour": "forward", "forward_to": "02 555 09 99"},
    )
    assert national["forward_to"] == "+3225550999"
    for body, status, code, field in (
        ({"key": "dnd", "name": "Again"}, 409, "key_taken", "key"),
        ({"key": "Bad Key", "name": "x"}, 422, "invalid", "key"),
        ({"key": "x", "name": "x", "colour": "red"}, 422, "invalid", "colour"),
        ({"key": "x", "name": "x", "behaviour": "forward"}, 422, "invalid", "forward_to"),
        ({"key": "x", "name": "x", "forward_to": "1002"}, 422, "invalid", "forward_to"),
        (
            {"key": "x", "name": "x", "behaviour": "forward", "forward_to": "1099"},
            422,
            "invalid",
            "forward_to",
        ),
        # The policy allows BE, NL and FR only.
        (
            {"key": "x", "name": "x", "behaviour": "forward", "forward_to": "+442079460000"},
            422,
            "invalid",
            "forward_to",
        ),
    ):
        await world.refused("POST", statuses, admin, body, (status, code, field))
    # Élodie chooses "meeting"; the admin makes it "busy": her next call meets it.
    await world.ok("PUT", "/me/status", world.user, {"key": "meeting"})
    elodie = world.directory.user(world.acme, "1001")
    assert elodie is not None
    changed = await world.ok("PATCH", f"{statuses}/meeting", admin, {"behaviour": "busy"})
    assert changed["behaviour"] == "busy" and changed["name"] == "En réunion"
    in_effect = world.directory.user_status(world.acme, elodie.id)
    assert in_effect is not None and in_effect.behaviour == "busy"
    await world.refused(
        "PATCH", f"{statuses}/meeting", admin, {"key": "m"}, (422, "invalid", "key")
    )
    # A deleted status's users are back on the default.
    await world.ok("DELETE", f"{statuses}/meeting", admin)
    assert (await world.ok("GET", "/me/status", world.user))["key"] == "available"
    await world.refused("GET", f"{statuses}/meeting", admin, None, (404, "not_found", None))
    # At least one status rings.
    await world.refused(
        "PATCH",
        f"{statuses}/available",
        admin,
        {"behaviour": "busy"},
        (409, "conflict", "behaviour"),
    )
    await world.refused("DELETE", f"{statuses}/available", admin, None, (409, "conflict", None))
    # A user that a status forwards to stays until the status stops.
    lucas = world.directory.user(world.acme, "1002")
    assert lucas is not None
    message = await world.refused(
        "DELETE", f"/companies/{world.acme}/users/{lucas.id}", admin, None, (409, "in_use", None)
    )
    assert "'support'" in message


async def test_numbers_route_at_once(world: World) -> None:
    numbers = f"/companies/{world.acme}/numbers"
    admin = world.admin
    created = await world.ok("POST", numbers, admin, {"number": "02 555 01 77", "route": "1002"})
    assert (created["number"], created["route"]) == ("+3225550177", "1002")
    owner = world.directory.number_owner("+3225550177")
    assert owner is not None and (owner.company_id, owner.route) == (world.acme, "1002")
    for body, status, code, field in (
        ({"number": "+3225550177", "route": "1003"}, 409, "number_taken", "number"),
        ({"number": "+33155550100", "route": "1003"}, 409, "number_taken", "number"),
        ({"number": "12", "route": "1003"}, 422, "invalid", "number"),
        ({"number": "+3225550178", "route": "1099"}, 422, "invalid", "route"),
        ({"number": "+3225550178"}, 422, "invalid", "route"),
    ):
        await world.refused("POST", numbers, admin, body, (status, code, field))
    path = f"{numbers}/{created['id']}"
    changed = await world.ok("PATCH", path, admin, {"route": "1003"})
    assert changed == {"number": "+3225550177", "route": "1003", "id": created["id"]}
    assert world.directory.number_owner("+3225550177").route == "1003"  # type: ignore[union-attr]
    await world.ok("DELETE", path, admin)
    assert world.directory.number_owner("+3225550177") is None
    # A status forwarding to a company number the policy does not allow as an outside
    # number keeps that number.
    await world.ok(
        "POST",
        f"/companies/{world.acme}/statuses",
        admin,
        {"key": "hotline", "name": "Hotline", "behaviour": "forward", "forward_to": "+3225550100"},
    )
    await world.ok(
        "PATCH",
        f"/companies/{world.acme}",
        world.engineer,
        {"policy": {"allowed_countries": ["FR"]}},
    )
    [number] = (await world.ok("GET", numbers, admin))["items"]
    message = await world.refused(
        "DELETE", f"{numbers}/{number['id']}", admin, None, (409, "in_use", None)
    )
    assert "'hotline'" in message
    assert world.directory.number_owner("+3225550100") is not None


async def test_trunks_are_managed_with_write_only_passwords(world: World) -> None:
    trunks = f"/companies/{world.acme}/trunks"
    admin = world.admin
    body = {
        "name": "backup",
        "host": "192.0.2.80:5070",
        "transport": "tcp",
        "username": "acme",
        "password": "trunk-secret",
        "register": True,
        "inbound_addresses": ["192.0.2.81"],
        "caller_id": "02 555 01 00",
    }
    created = await world.ok("POST", trunks, admin, body)
    assert created == {
        "name": "backup",
        "host": "192.0.2.80:5070",
        "transport": "tcp",
        "username": "acme",
        "register": True,
        "inbound_addresses": ["192.0.2.81"],
        "caller_id": "+3225550100",
        "id": created["id"],
    }
    [found] = world.directory.trunks_by_source_address("192.0.2.81")
    assert found.name == "backup" and found.password == "trunk-secret"
    for change, status, code, field in (
        ({}, 409, "name_taken", "name"),
        ({"name": "bad name"}, 422, "invalid", "name"),
        ({"name": "b2", "host": "nope:99999"}, 422, "invalid", "host"),
        ({"name": "b2", "inbound_addresses": ["x"]}, 422, "invalid", "inbound_addresses"),
        ({"name": "b2", "caller_id": "12"}, 422, "invalid", "caller_id"),
        ({"name": "b2", "password": None}, 422, "invalid", None),  # registering needs it
    ):
        await world.refused("POST", trunks, admin, body | change, (status, code, field))
    path = f"{trunks}/{created['id']}"
    changed = await world.ok(
        "PATCH", path, admin, {"inbound_addresses": ["192.0.2.82"], "register": False}
    )
    assert changed["inbound_addresses"] == ["192.0.2.82"] and changed["username"] == "acme"
    assert world.directory.trunks_by_source_address("192.0.2.81") == []
    await world.refused("PATCH", path, admin, {"name": "carrier"}, (409, "name_taken", "name"))
    await world.ok("DELETE", path, admin)
    assert world.directory.trunks_by_source_address("192.0.2.82") == []
    await world.refused("GET", path, admin, None, (404, "not_found", None))


async def test_the_openapi_description_documents_the_admin_routes(world: World) -> None:
    spec = (await world.api.get(f"{API}/openapi.json")).json()
    for collection in ("users", "groups", "trunks", "numbers"):
        assert {
            f"{API}/companies/{{company_id}}/{collection}",
            f"{API}/companies/{{company_id}}/{collection}/{{{collection[:-1]}_id}}",
        } <= set(spec["paths"])
    assert {
        f"{API}/companies",
        f"{API}/companies/{{company_id}}/statuses/{{key}}",
        f"{API}/companies/{{company_id}}/voicemail/{{extension}}",
    } <= set(spec["paths"])
    schemas = spec["components"]["schemas"]
    assert "password" in schemas["UserPlan"]["properties"]
    assert "password" not in schemas["UserOut"]["properties"]
    assert "password" not in schemas["TrunkOut"]["properties"]
    patch = schemas["UserPlanPatch"]
    assert "required" not in patch and "sip_password" in patch["properties"]
    assert "pin" in schemas["VoicemailSettings"]["properties"]
    assert "pin" not in schemas["VoicemailBoxOut"]["properties"]
    for schema in (
        "UserPlan",
        "TrunkPlan",
        "NumberPlan",
        "StatusPlan",
        "CompanyEntry",
        "GroupPlan",
        "VoicemailSettings",
        "VoicemailBoxOut",
    ):
        for name, field in schemas[schema]["properties"].items():
            assert field.get("description"), (schema, name)


def _user_id(world: World, company: int, extension: str) -> int:
    user = world.directory.user(company, extension)
    assert user is not None, extension
    return user.id


async def test_groups_follow_the_plans_rules(world: World) -> None:
    groups = f"/companies/{world.acme}/groups"
    admin = world.admin
    created = await world.ok(
        "POST", groups, admin, {"name": "Sales", "extension": "1100", "members": ["1003", "1001"]}
    )
    # Members by extension, in order.
    assert created == {
        "name": "Sales",
        "extension": "1100",
        "members": ["1001", "1003"],
        "id": created["id"],
    }
    # In the directory at once.
    group = world.directory.group(world.acme, "1100")
    assert group is not None and group.id == created["id"]
    assert sorted(group.member_ids) == sorted(
        _user_id(world, world.acme, extension) for extension in ("1001", "1003")
    )
    # Without members (yet).
    empty = await world.ok("POST", groups, admin, {"name": "Nobody", "extension": "1102"})
    assert empty == {"name": "Nobody", "extension": "1102", "members": [], "id": empty["id"]}
    await world.ok("DELETE", f"{groups}/{empty['id']}", admin)
    assert await world.ok("GET", groups, admin) == {"total": 1, "items": [created]}
    path = f"{groups}/{created['id']}"
    assert await world.ok("GET", path, world.engineer) == created
    new = {"name": "Support", "extension": "1101"}
    for change, status, code, field in (
        ({"extension": "1001"}, 409, "extension_taken", "extension"),  # Élodie's
        ({"extension": "1100"}, 409, "extension_taken", "extension"),  # Sales'
        ({"members": ["1099"]}, 422, "invalid", "members"),
        ({"members": ["2001"]}, 422, "invalid", "members"),  # Globex's user
        ({"members": ["1001", "1002", "1001"]}, 422, "invalid", "members"),
        ({"extension": "0110"}, 422, "invalid", "extension"),
        ({"name": None}, 422, "invalid", "name"),
        ({"queue": "x"}, 422, "invalid", "queue"),
    ):
        body = new | change
        message = await world.refused("POST", groups, admin, body, (status, code, field))
        if field == "members":
            assert repr(change["members"][-1]) in message  # type: ignore[index]
    # Voice menus share the extensions too.
    message = await world.refused(
        "POST",
        f"/companies/{world.globex}/groups",
        world.globex_admin,
        new | {"extension": "800"},
        (409, "extension_taken", "extension"),
    )
    assert "'Standard'" in message
    # And a user cannot take a group's extension, new or changed.
    users = f"/companies/{world.acme}/users"
    zoe = {
        "name": "Zoé Lemaire",
        "extension": "1100",
        "email": "zoe@acme.example",
        "password": "app-secret-4",
        "sip_password": "sip-secret-4",
    }
    message = await world.refused("POST", users, admin, zoe, (409, "extension_taken", "extension"))
    assert "'Sales'" in message
    await world.refused(
        "PATCH",
        f"{users}/{_user_id(world, world.acme, '1002')}",
        admin,
        {"extension": "1100", "sip_password": "sip-secret-2"},
        (409, "extension_taken", "extension"),
    )
    # A change: the fields sent; `members` is the whole list.
    changed = await world.ok("PATCH", path, admin, {"name": "Sales team", "members": ["1002"]})
    assert changed == created | {"name": "Sales team", "members": ["1002"]}
    group = world.directory.group(world.acme, "1100")
    assert group is not None and group.name == "Sales team"
    assert group.member_ids == [_user_id(world, world.acme, "1002")]
    assert (await world.ok("PATCH", path, admin, {"extension": "1100"}))["extension"] == "1100"
    for change, status, code, field in (
        ({"extension": "1009"}, 409, "extension_taken", "extension"),
        ({"members": ["1002", "1002"]}, 422, "invalid", "members"),
        ({"members": None}, 422, "invalid", "members"),
        ({"id": 5}, 422, "invalid", "id"),
    ):
        await world.refused("PATCH", path, admin, change, (status, code, field))
    # A member who is deleted leaves the group.
    await world.ok("DELETE", f"{users}/{_user_id(world, world.acme, '1003')}", admin)
    await world.ok("PATCH", path, admin, {"members": ["1001", "1002"]})
    lucas = _user_id(world, world.acme, "1002")
    await world.ok("DELETE", f"{users}/{lucas}", admin)
    assert (await world.ok("GET", path, admin))["members"] == ["1001"]
    # Roles and companies.
    await world.refused("GET", path, world.user, None, (403, "forbidden", None))
    await world.refused("GET", path, world.globex_admin, None, (404, "not_found", None))
    await world.refused(
        "GET",
        f"/companies/{world.globex}/groups/{created['id']}",
        world.engineer,
        None,
        (404, "not_found", None),
    )
    await world.ok("DELETE", path, admin)
    await world.refused("GET", path, admin, None, (404, "not_found", None))
    await world.refused("DELETE", path, admin, None, (404, "not_found", None))
    assert world.directory.group(world.acme, "1100") is None
    assert (await world.ok("GET", groups, admin))["total"] == 0


async def test_numbers_route_to_groups_and_voicemail_boxes(world: World) -> None:
    admin = world.admin
    groups, numbers = (f"/companies/{world.acme}/{kind}" for kind in ("groups", "numbers"))
    group = await world.ok(
        "POST", groups, admin, {"name": "Support", "extension": "1200", "members": ["1002"]}
    )
    path = f"{groups}/{group['id']}"
    to_group = await world.ok("POST", numbers, admin, {"number": "02 555 01 80", "route": "1200"})
    to_box = await world.ok("POST", numbers, admin, {"number": "02 555 01 81", "route": "*971200"})
    to_lucas_box = await world.ok(
        "POST", numbers, admin, {"number": "02 555 01 82", "route": "*971002"}
    )
    assert (to_group["route"], to_box["route"]) == ("1200", "*971200")
    owner = world.directory.number_owner("+3225550181")
    assert owner is not None and owner.route == "*971200"
    for route, message in (
        ("1099", "no user, group or IVR with extension '1099'"),
        ("*971099", "no user or group with extension '1099'"),
        ("*97", None),
        ("97*1200", None),
    ):
        refused = await world.refused(
            "POST",
            numbers,
            admin,
            {"number": "02 555 01 83", "route": route},
            (422, "invalid", "route"),
        )
        if message is not None:
            assert refused == message
    # A voice menu answers; it has no voicemail box.
    refused = await world.refused(
        "POST",
        f"/companies/{world.globex}/numbers",
        world.globex_admin,
        {"number": "+33155550101", "route": "*97800"},
        (422, "invalid", "route"),
    )
    assert refused == "no user or group with extension '800'"
    await world.ok(
        "POST",
        f"/companies/{world.globex}/numbers",
        world.globex_admin,
        {"number": "+33155550101", "route": "800"},
    )
    # A new extension takes the numbers along, those to the group's box too.
    await world.ok("PATCH", path, admin, {"extension": "1201"})
    routes = {n["number"]: n["route"] for n in (await world.ok("GET", numbers, admin))["items"]}
    assert (routes["+3225550180"], routes["+3225550181"]) == ("1201", "*971201")
    assert world.directory.number_owner("+3225550180").route == "1201"  # type: ignore[union-attr]
    # So does a user's.
    await world.ok(
        "PATCH",
        f"/companies/{world.acme}/users/{_user_id(world, world.acme, '1002')}",
        admin,
        {"extension": "1012", "sip_password": "sip-secret-12"},
    )
    assert world.directory.number_owner("+3225550182").route == "*971012"  # type: ignore[union-attr]
    # A group that numbers route to cannot just disappear, nor a user whose box they reach.
    message = await world.refused("DELETE", path, admin, None, (409, "in_use", None))
    assert "+3225550180" in message and "+3225550181" in message
    await world.ok("DELETE", f"{numbers}/{to_group['id']}", admin)
    message = await world.refused("DELETE", path, admin, None, (409, "in_use", None))
    assert "+3225550181" in message and "+3225550180" not in message
    await world.ok("DELETE", f"{numbers}/{to_box['id']}", admin)
    await world.ok("DELETE", path, admin)
    lucas = f"/companies/{world.acme}/users/{_user_id(world, world.acme, '1012')}"
    message = await world.refused("DELETE", lucas, admin, None, (409, "in_use", None))
    assert "+3225550182" in message
    await world.ok("DELETE", f"{numbers}/{to_lucas_box['id']}", admin)
    await world.ok("DELETE", lucas, admin)


DEFAULT_BOX = {
    "enabled": True,
    "has_pin": False,
    "send_email": True,
    "email": None,
    "attach_audio": True,
    "max_seconds": 180,
    "has_greeting": False,
}


async def test_an_admin_sets_a_voicemail_box(world: World) -> None:
    admin = world.admin
    box = f"/companies/{world.acme}/voicemail/1002"
    # No row yet: the defaults.
    assert await world.ok("GET", box, admin) == {"extension": "1002", **DEFAULT_BOX}
    settings = {
        "enabled": True,
        "pin": "2468",
        "send_email": True,
        "email": "Desk@Acme.example",
        "attach_audio": False,
        "max_seconds": 60,
    }
    response = await world.call("PUT", box, admin, settings)
    assert response.status_code == 200, response.text
    # The PIN is set, never shown, nor its hash.
    assert "2468" not in response.text and "argon2" not in response.text
    changed = response.json()
    assert changed == {
        "extension": "1002",
        **DEFAULT_BOX,
        "has_pin": True,
        "email": "desk@acme.example",
        "attach_audio": False,
        "max_seconds": 60,
    }
    assert await world.ok("GET", box, world.engineer) == changed
    # What the phones and the mail use, as a plan's [[voicemail]] would set it.
    voicemail: Voicemail = world.api._transport.app.state.voicemail  # type: ignore[attr-defined]
    lucas = BoxKey(world.acme, user_id=_user_id(world, world.acme, "1002"))
    stored = await voicemail.store.settings(lucas)
    assert stored.pin_hash is not None and pin_matches(stored.pin_hash, "2468")
    assert (stored.email, stored.attach_audio, stored.max_seconds) == (
        "desk@acme.example",
        False,
        60,
    )
    # A greeting is the box owner's own: setting the box keeps it.
    greeting = voicemail.store.greeting_path(lucas)
    greeting.parent.mkdir(parents=True, exist_ok=True)
    greeting.write_bytes(b"RIFF")
    await voicemail.store.set_greeting(lucas, greeting)
    # Every setting is set: those left out are back to their defaults (no PIN).
    again = await world.ok("PUT", box, admin, {"enabled": False})
    assert again == {"extension": "1002", **DEFAULT_BOX, "enabled": False, "has_greeting": True}
    assert (await voicemail.store.settings(lucas)).pin_hash is None
    # A group's box.
    await world.ok(
        "POST",
        f"/companies/{world.acme}/groups",
        admin,
        {"name": "Support", "extension": "1200", "members": ["1002"]},
    )
    group_box = f"/companies/{world.acme}/voicemail/1200"
    assert await world.ok("GET", group_box, admin) == {"extension": "1200", **DEFAULT_BOX}
    set_group = await world.ok("PUT", group_box, admin, {"email": "support@acme.example"})
    assert set_group == {"extension": "1200", **DEFAULT_BOX, "email": "support@acme.example"}
    group = world.directory.group(world.acme, "1200")
    assert group is not None
    group_key = BoxKey(world.acme, group_id=group.id)
    assert (await voicemail.store.settings(group_key)).email == "support@acme.example"
    for change, field in (
        ({"pin": "12"}, "pin"),
        ({"pin": 2468}, "pin"),
        ({"max_seconds": 5}, "max_seconds"),
        ({"email": "nope"}, "email"),
        ({"extension": "1002"}, "extension"),
    ):
        await world.refused("PUT", box, admin, change, (422, "invalid", field))
    await world.refused(
        "GET", f"/companies/{world.acme}/voicemail/abc", admin, None, (422, "invalid", "extension")
    )
    # A deleted group's box goes with it.
    await world.ok("DELETE", f"/companies/{world.acme}/groups/{group.id}", admin)
    async with world.database.session() as session:
        count = select(func.count()).select_from(VoicemailBox)
        assert (
            await session.execute(count.where(VoicemailBox.group_id == group.id))
        ).scalar_one() == 0
    await world.refused("GET", group_box, admin, None, (404, "not_found", None))


async def test_only_the_companys_boxes_are_found(world: World) -> None:
    acme, globex = world.acme, world.globex
    for method, body in (("GET", None), ("PUT", {"max_seconds": 60})):
        # No user nor group there; a voice menu has no box; Globex's user is not Acme's.
        for extension in ("1099", "2001"):
            for who in (world.admin, world.engineer):
                await world.refused(
                    method,
                    f"/companies/{acme}/voicemail/{extension}",
                    who,
                    body,
                    (404, "not_found", None),
                )
        await world.refused(
            method,
            f"/companies/{globex}/voicemail/800",
            world.globex_admin,
            body,
            (404, "not_found", None),
        )
        await world.refused(
            method,
            f"/companies/{globex}/voicemail/2001",
            world.admin,
            body,
            (404, "not_found", None),
        )
        await world.refused(
            method,
            f"/companies/{acme}/voicemail/1001",
            world.user,
            body,
            (403, "forbidden", None),
        )
    # Globex's box is untouched.
    assert await world.ok("GET", f"/companies/{globex}/voicemail/2001", world.globex_admin) == {
        "extension": "2001",
        **DEFAULT_BOX,
    }
