"""Login (docs/api.md "Authentication" through the app): a wrong password is said to be
wrong; the right one opens the home screen; the session survives a reload (the refresh
token is kept, never the access token); logging out ends it on the server too."""

from __future__ import annotations

from pathlib import Path

import httpx
from playwright.async_api import expect

from web.browser import (
    assert_no_script_errors,
    base_url,
    chromium,
    new_page,
    screenshot,
    web_server,
)


async def test_login_is_remembered_until_logout(tmp_path: Path) -> None:
    async with web_server(tmp_path) as server, chromium() as browser:
        page = await new_page(browser, server)
        await page.goto("/")
        await expect(page.get_by_role("heading", name="Nuage")).to_be_visible()
        await screenshot(page, "login")
        await page.get_by_label("Email").fill("elodie@acme.example")
        await page.get_by_label("Password").fill("not-her-password")
        await page.get_by_role("button", name="Sign in").click()
        await expect(
            page.get_by_role("alert").filter(has_text="Wrong email or password.")
        ).to_be_visible()
        await expect(page.get_by_label("Password")).to_have_value("")

        await page.get_by_label("Password").fill("app-1001")
        async with page.expect_response("**/api/v1/auth/login") as login:
            await page.get_by_role("button", name="Sign in").click()
        access_token = (await (await login.value).json())["access_token"]
        # The company speaks French: the app does too once logged in.
        status = page.get_by_role("button", name="Statut : Disponible. Changer de statut")
        await expect(status).to_be_visible()
        await expect(page.get_by_role("heading", name="Acme")).to_be_visible()
        # The refresh token is kept (and the company's language); the access token only
        # in memory.
        stored = await page.evaluate("({...localStorage, ...sessionStorage})")
        assert sorted(stored) == ["nuage.company-lang", "nuage.refresh"]
        assert not [key for key, value in stored.items() if access_token in value]
        refresh_token = await page.evaluate("localStorage.getItem('nuage.refresh')")

        await page.reload()
        await expect(status).to_be_visible()
        await expect(page.get_by_label("Password")).to_have_count(0)
        # The reload refreshed the tokens: the first refresh token no longer works.
        rotated = await page.evaluate("localStorage.getItem('nuage.refresh')")
        assert rotated != refresh_token

        await page.get_by_role("link", name="Ouvrir le menu").click()
        await page.get_by_role("link", name="Paramètres").click()
        await page.get_by_role("button", name="Se déconnecter").click()
        await expect(page.get_by_role("button", name="Sign in")).to_be_visible()
        assert await page.evaluate("Object.keys(localStorage)") == []
        await page.reload()
        await expect(page.get_by_role("button", name="Sign in")).to_be_visible()
        assert_no_script_errors(page)
        # Logged out on the server too: the session's refresh token is refused.
        async with httpx.AsyncClient(base_url=base_url(server)) as client:
            refused = await client.post("/api/v1/auth/refresh", json={"refresh_token": rotated})
            assert refused.status_code == 401
