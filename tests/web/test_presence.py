"""The status menu (F2) and live favorites (F4): Lucas changes his status in his browser;
Élodie, who has him in her favorites, sees it in hers within a second (measured in the
browsers, on one clock: the click in his, the change of her screen in hers)."""

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

# Records when the favorite's status shows `key` (the app marks it in data-status).
WATCH = """([id, key]) => {
  window.__seen = null;
  const observer = new MutationObserver(() => {
    const badge = document.querySelector(`[data-contact="${id}"] [data-status]`);
    if (badge && badge.getAttribute("data-status") === key && window.__seen === null) {
      window.__seen = performance.timeOrigin + performance.now();
      observer.disconnect();
    }
  });
  observer.observe(document.body, { subtree: true, childList: true, attributes: true });
}"""

# Records when the status option `key` is clicked.
CLICK_TIME = """(key) => {
  window.__clicked = null;
  document.addEventListener("click", (event) => {
    if (event.target.closest(`[data-status="${key}"]`)) {
      window.__clicked = performance.timeOrigin + performance.now();
    }
  }, { capture: true, once: true });
}"""


async def test_a_status_change_shows_in_a_colleague_s_favorites_within_a_second(
    tmp_path: Path,
) -> None:
    async with web_server(tmp_path) as server, chromium() as browser:
        lucas_id = user_id(server, "1002")
        async with api_as(server, "1001") as elodie_api:
            assert (await elodie_api.put(f"/api/v1/favorites/{lucas_id}")).status_code == 204
        elodie = await new_page(browser, server)
        lucas = await new_page(browser, server)
        await log_in(elodie, "1001")
        await log_in(lucas, "1002")
        row = elodie.locator(f'[data-contact="{lucas_id}"]')
        await expect(row).to_contain_text("Lucas Dubois")
        await expect(row).to_contain_text("Disponible")
        await screenshot(elodie, "home")

        delays = []
        for name, key in (
            ("Ne pas déranger", "dnd"),
            ("En réunion", "meeting"),
            ("Disponible", "available"),
        ):
            await elodie.evaluate(WATCH, [lucas_id, key])
            # The status bar opens the menu; the current status, tapped, lists the others.
            await lucas.get_by_role("button", name="Changer de statut").click()
            await lucas.get_by_role("button", name="Touchez pour voir les autres statuts").click()
            await expect(lucas.locator(".status-option")).to_have_count(5)
            if key == "dnd":
                await screenshot(lucas, "status-menu")
            await lucas.evaluate(CLICK_TIME, key)
            await lucas.locator(f'.status-option[data-status="{key}"]').click()
            # Lucas is back home, under his new status.
            await expect(lucas.locator(".statusbar")).to_have_attribute("data-status", key)
            await expect(row.locator("[data-status]")).to_have_attribute("data-status", key)
            await expect(row).to_contain_text(name)
            clicked = await lucas.evaluate("window.__clicked")
            seen = await elodie.evaluate("window.__seen")
            assert clicked is not None and seen is not None
            delays.append(seen - clicked)
        print(f"\nstatus change to a colleague's favorites: {[round(d) for d in delays]} ms")
        assert max(delays) < 1000, delays
        assert_no_script_errors(elodie)
        assert_no_script_errors(lucas)
