"""Adding a favorite (F5): Élodie types a colleague's name in the search field, opens the
card, taps the star: the colleague is on her home screen, with their status and line
state; the star again removes them. Her other devices follow (favorites.changed)."""

from __future__ import annotations

from pathlib import Path

from playwright.async_api import expect

from web.browser import (
    api_as,
    assert_no_script_errors,
    chromium,
    log_in,
    new_page,
    screenshot,
    user_id,
    web_server,
)


async def test_a_colleague_found_by_search_is_starred_then_unstarred(tmp_path: Path) -> None:
    async with web_server(tmp_path) as server, chromium() as browser:
        camille_id = user_id(server, "1003")
        page = await new_page(browser, server)
        other_device = await new_page(browser, server)
        await log_in(page, "1001")
        await log_in(other_device, "1001")
        await expect(page.get_by_text("Pas encore de favoris.", exact=False)).to_be_visible()

        search = page.get_by_role("searchbox", name="Rechercher un collègue")
        await search.fill("cam")
        result = page.locator(f'.contact-list [data-contact="{camille_id}"]')
        await expect(result).to_contain_text("Camille Lambert")
        await expect(page.get_by_role("heading", name="1 collègue trouvé")).to_be_visible()
        await screenshot(page, "search")

        await result.get_by_role("link").click()
        await expect(page.get_by_role("heading", name="Camille Lambert")).to_be_visible()
        await expect(page.locator(".card-details")).to_contain_text("1003")
        await expect(page.locator(".card-details")).to_contain_text("camille@acme.example")
        star = page.get_by_role("button", name="Ajouter Camille Lambert aux favoris")
        await expect(star).to_have_attribute("aria-pressed", "false")
        await screenshot(page, "contact")
        await star.click()
        unstar = page.get_by_role("button", name="Retirer Camille Lambert des favoris")
        await expect(unstar).to_have_attribute("aria-pressed", "true")

        await page.get_by_role("button", name="Retour").click()
        favorite = page.locator(f'.favorites [data-contact="{camille_id}"]')
        await expect(favorite).to_contain_text("Camille Lambert")
        await expect(favorite).to_contain_text("Disponible")
        await expect(favorite).to_contain_text("Aucun téléphone connecté")
        # Her other device shows it too, live.
        await expect(other_device.locator(f'[data-contact="{camille_id}"]')).to_be_visible()
        async with api_as(server, "1001") as api:
            starred = (await api.get("/api/v1/favorites")).json()
            assert [contact["id"] for contact in starred] == [camille_id]

        await favorite.get_by_role("link").click()
        await unstar.click()
        await expect(star).to_have_attribute("aria-pressed", "false")
        await page.get_by_role("button", name="Retour").click()
        await expect(page.locator(".favorites [data-contact]")).to_have_count(0)
        await expect(other_device.locator(f'[data-contact="{camille_id}"]')).to_have_count(0)
        async with api_as(server, "1001") as api:
            assert (await api.get("/api/v1/favorites")).json() == []
        assert_no_script_errors(page)
