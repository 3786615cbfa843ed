#!/usr/bin/env python3
"""Render the web app's PNG icons from its SVGs (web/public/icons) with Debian's Chromium.

The PNGs are committed: building the app needs neither Chromium nor this script. Run it
after changing icon.svg or maskable.svg:

    .venv/bin/python scripts/generate-icons.py

Needs the `playwright` package (the dev extras) and /usr/bin/chromium.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from playwright.async_api import async_playwright

ICONS = Path(__file__).resolve().parent.parent / "web" / "public" / "icons"

# (source SVG, PNG written, size in pixels)
RENDERS = [
    ("icon.svg", "icon-192.png", 192),
    ("icon.svg", "icon-512.png", 512),
    ("maskable.svg", "apple-touch-icon.png", 180),  # iOS rounds the corners itself
    ("maskable.svg", "maskable-512.png", 512),
]


async def main() -> None:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path="/usr/bin/chromium",
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        try:
            for source, target, size in RENDERS:
                page = await browser.new_page(viewport={"width": size, "height": size})
                svg = (ICONS / source).read_text()
                await page.set_content(
                    "<style>html,body{margin:0;background:transparent}"
                    "svg{display:block;width:100vw;height:100vh}</style>" + svg
                )
                await page.screenshot(path=str(ICONS / target), omit_background=True)
                await page.close()
                print(f"{target}: {size}x{size}")
        finally:
            await browser.close()


if __name__ == "__main__":
    asyncio.run(main())
