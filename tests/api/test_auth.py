"""Login, tokens and the error shape, against the API in process on a real database."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from e2e.server import acme_plan
from nuage.pbx.provision import apply_plan
from nuage.store.database import Database

pytestmark = pytest.mark.db

ELODIE = {"email": "elodie@acme.example", "password": "app-1001"}


async def login(api: httpx.AsyncClient, **credentials: str) -> dict[str, object]:
    response = await api.post("/api/v1/auth/login", json=credentials or ELODIE)
    assert response.status_code == 200, response.text
    tokens: dict[str, object] = response.json()
    return tokens


def bearer(token: object) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_a_user_logs_in_and_reads_their_profile(api: httpx.AsyncClient) -> None:
    tokens = await login(api)
    assert tokens["token_type"] == "bearer" and tokens["expires_in"] == 900
    me = await api.get("/api/v1/me", headers=bearer(tokens["access_token"]))
    assert me.status_code == 200
    body = me.json()
    assert (body["name"], body["extension"], body["role"]) == ("Élodie Martin", "1001", "user")
    assert (body["company"]["domain"], body["company"]["country"]) == ("acme.example", "BE")
    # Emails are matched case-insensitively, as the login screen types them.
    await login(api, email="Elodie@ACME.example", password="app-1001")


async def test_refresh_replaces_both_tokens_and_logout_ends_the_session(
    api: httpx.AsyncClient,
) -> None:
    tokens = await login(api)
    renewed = await api.post(
        "/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
    )
    assert renewed.status_code == 200
    new = renewed.json()
    assert (await api.get("/api/v1/me", headers=bearer(tokens["access_token"]))).status_code == 401
    assert (await api.get("/api/v1/me", headers=bearer(new["access_token"]))).status_code == 200
    # The old refresh token was used: it cannot be used again.
    again = await api.post("/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert again.status_code == 401 and again.json()["error"]["code"] == "invalid_token"
    out = await api.post("/api/v1/auth/logout", headers=bearer(new["access_token"]))
    assert out.status_code == 204
    assert (await api.get("/api/v1/me", headers=bearer(new["access_token"]))).status_code == 401
    refused = await api.post("/api/v1/auth/refresh", json={"refresh_token": new["refresh_token"]})
    assert refused.status_code == 401


async def test_errors_have_one_shape_and_say_which_field(api: httpx.AsyncClient) -> None:
    missing = await api.get("/api/v1/me")
    assert missing.status_code == 401
    assert missing.json() == {
        "error": {"code": "unauthorized", "message": "An access token is needed"}
    }
    assert missing.headers["www-authenticate"] == "Bearer"
    forged = await api.get("/api/v1/me", headers=bearer("0" * 32 + ".forged"))
    assert forged.status_code == 401 and forged.json()["error"]["code"] == "invalid_token"
    invalid = await api.post("/api/v1/auth/login", json={"password": "x"})
    assert invalid.status_code == 422
    assert invalid.json()["error"]["code"] == "invalid"
    assert invalid.json()["error"]["field"] == "email"
    unknown = await api.get("/api/v1/nothing-here")
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "not_found"


async def test_wrong_passwords_are_refused_alike_then_throttled(api: httpx.AsyncClient) -> None:
    for credentials in (
        {"email": "elodie@acme.example", "password": "wrong"},
        {"email": "nobody@acme.example", "password": "app-1001"},
    ):
        refused = await api.post("/api/v1/auth/login", json=credentials)
        assert refused.status_code == 401
        assert refused.json()["error"] == {
            "code": "invalid_credentials",
            "message": "Wrong email or password",
        }
    await api.post("/api/v1/auth/login", json={"email": "x@y.z", "password": "wrong"})
    # Three failures from this address: even the right password waits now.
    blocked = await api.post("/api/v1/auth/login", json=ELODIE)
    assert blocked.status_code == 429
    assert blocked.json()["error"]["code"] == "too_many_requests"


async def test_the_openapi_description_is_published(api: httpx.AsyncClient) -> None:
    spec = (await api.get("/api/v1/openapi.json")).json()
    assert {"/api/v1/auth/login", "/api/v1/auth/refresh", "/api/v1/me"} <= set(spec["paths"])


async def test_search_finds_colleagues_whatever_the_accents_and_case(
    api: httpx.AsyncClient,
) -> None:
    headers = bearer((await login(api))["access_token"])

    async def names(query: str) -> list[str]:
        response = await api.get("/api/v1/directory", params={"q": query}, headers=headers)
        assert response.status_code == 200
        return [contact["name"] for contact in response.json()]

    assert await names("Ele") == ["Élodie Martin"]
    assert await names("élo") == ["Élodie Martin"]
    assert await names("LAMB") == ["Camille Lambert"]
    assert await names("100") == ["Camille Lambert", "Élodie Martin", "Lucas Dubois"]
    assert await names("zz") == []
    assert await names("dz") == []
    [elodie] = (await api.get("/api/v1/directory", params={"q": "1001"}, headers=headers)).json()
    assert elodie["numbers"] == ["+3225550100"] and elodie["line_state"] == "offline"


async def test_favorites_are_starred_listed_and_removed(api: httpx.AsyncClient) -> None:
    headers = bearer((await login(api))["access_token"])
    people = (await api.get("/api/v1/directory", headers=headers)).json()
    ids = {person["extension"]: person["id"] for person in people}
    for extension in ("1003", "1002", "1003"):  # the second star of 1003 changes nothing
        added = await api.put(f"/api/v1/favorites/{ids[extension]}", headers=headers)
        assert added.status_code == 204
    listed = (await api.get("/api/v1/favorites", headers=headers)).json()
    assert [person["extension"] for person in listed] == ["1003", "1002"]
    assert (await api.put(f"/api/v1/favorites/{ids['1001']}", headers=headers)).status_code == 400
    removed = await api.delete(f"/api/v1/favorites/{ids['1003']}", headers=headers)
    assert removed.status_code == 204
    listed = (await api.get("/api/v1/favorites", headers=headers)).json()
    assert [person["extension"] for person in listed] == ["1002"]
    # Lucas's favorites are his own.
    tokens = await login(api, email="lucas@acme.example", password="app-1002")
    lucas = bearer(tokens["access_token"])
    assert (await api.get("/api/v1/favorites", headers=lucas)).json() == []


async def test_another_companys_ids_are_not_found(
    api: httpx.AsyncClient, database: Database, tmp_path: Path
) -> None:
    other = tmp_path / "other.toml"
    other.write_text(
        acme_plan(5999)
        .replace("acme.example", "globex.example")
        .replace('name = "Acme"', 'name = "Globex"')
        .replace("+3225550100", "+3225550199")
    )
    await apply_plan(database, other)
    app_directory = api._transport.app.state.directory  # type: ignore[attr-defined]
    await app_directory.load()
    globex = bearer(
        (await login(api, email="elodie@globex.example", password="app-1001"))["access_token"]
    )
    acme = bearer((await login(api))["access_token"])
    people = (await api.get("/api/v1/directory", headers=acme)).json()
    acme_ids = [person["id"] for person in people]
    globex_names = {
        person["email"] for person in (await api.get("/api/v1/directory", headers=globex)).json()
    }
    assert all(email.endswith("@globex.example") for email in globex_names)
    for user_id in acme_ids:
        for method, path in (
            ("GET", f"/api/v1/directory/{user_id}"),
            ("PUT", f"/api/v1/favorites/{user_id}"),
            ("DELETE", f"/api/v1/favorites/{user_id}"),
        ):
            response = await api.request(method, path, headers=globex)
            assert response.status_code == 404, (method, path)
            assert response.json()["error"]["code"] == "not_found"


async def test_a_user_chooses_a_status_colleagues_see_it(api: httpx.AsyncClient) -> None:
    elodie = bearer((await login(api))["access_token"])
    tokens = await login(api, email="lucas@acme.example", password="app-1002")
    lucas = bearer(tokens["access_token"])
    listed = (await api.get("/api/v1/statuses", headers=elodie)).json()
    assert [status["key"] for status in listed] == ["available", "meeting", "lunch", "dnd", "away"]
    assert listed[0]["name"] == "Disponible"  # the company's language is French
    assert (await api.get("/api/v1/me/status", headers=elodie)).json()["key"] == "available"
    chosen = await api.put("/api/v1/me/status", headers=elodie, json={"key": "dnd"})
    assert chosen.status_code == 200 and chosen.json()["behaviour"] == "busy"
    [card] = (await api.get("/api/v1/directory", params={"q": "1001"}, headers=lucas)).json()
    assert card["status"] == "dnd"
    unknown = await api.put("/api/v1/me/status", headers=elodie, json={"key": "beach"})
    assert unknown.status_code == 422 and "unknown status" in unknown.json()["error"]["message"]
