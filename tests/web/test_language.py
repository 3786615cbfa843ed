"""Languages (P9): the company's (French here) once logged in; the user's choice in the
settings applies at once, everywhere, survives a reload, and can go back to the
company's."""

from __future__ import annotations

from pathlib import Path

from playwright.async_api import expect

from web.browser import assert_no_script_errors, chromium, log_in, new_page, screenshot, web_server


async def test_the_language_chosen_applies_at_once_and_stays(tmp_path: Path) -> None:
    async with web_server(tmp_path) as server, chromium() as browser:
        page = await new_page(browser, server)
        await log_in(page, "1001")
        await expect(page.get_by_role("heading", name="Favoris")).to_be_visible()
        await expect(page.locator("html")).to_have_attribute("lang", "fr")

        await page.get_by_role("link", name="Ouvrir le menu").click()
        await expect(page.get_by_role("navigation", name="Menu")).to_be_visible()
        await screenshot(page, "menu")
        await page.get_by_role("link", name="Paramètres").click()
        company = page.get_by_role("radio", name="La langue de l'entreprise (Français)")
        await expect(company).to_be_checked()
        await screenshot(page, "settings")

        await page.get_by_role("radio", name="Nederlands").check()
        await expect(page.get_by_role("heading", name="Instellingen")).to_be_visible()
        await expect(page.get_by_role("button", name="Afmelden")).to_be_visible()
        await expect(page.locator("html")).to_have_attribute("lang", "nl")
        await page.get_by_role("button", name="Terug").click()
        await expect(page.get_by_role("heading", name="Favorieten")).to_be_visible()
        await expect(
            page.get_by_role("button", name="Status: Disponible. Status wijzigen")
        ).to_be_visible()

        await page.reload()
        await expect(page.get_by_role("heading", name="Favorieten")).to_be_visible()

        await page.goto("/settings")
        await page.get_by_role("radio", name="English").check()
        await expect(page.get_by_role("heading", name="Settings")).to_be_visible()
        await page.get_by_role("radio", name="The company's language (Français)").check()
        await expect(page.get_by_role("heading", name="Paramètres")).to_be_visible()
        assert await page.evaluate("localStorage.getItem('nuage.lang')") is None
        assert_no_script_errors(page)
