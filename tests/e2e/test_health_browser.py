"""A real browser opens the status page: it sees the WhatsApp state and a QR code it can scan."""

from __future__ import annotations

import io
import shutil

import pytest
import zxingcpp
from nats.aio.client import Client as NATS

from tests.integration.test_health_nats import beating, health, health_settings, sender_beat
from tests.support.waiting import eventually
from tests.unit.test_health_page import QR

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TOKEN = "browser-token"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        CHROMIUM is None, reason="no Chromium on this machine (apt-get install chromium)"
    ),
]


async def test_status_page_in_chromium_shows_state_and_a_scannable_qr(
    nats_url: str, nc: NATS
) -> None:
    from PIL import Image
    from playwright.async_api import async_playwright

    settings = health_settings(nats_url, health_token=TOKEN)
    url = f"http://127.0.0.1:{settings.health_port}/?token={TOKEN}"
    async with (
        health(settings),
        async_playwright() as playwright,
        beating(sender_beat(nc, "pairing", qr=QR, pair_code="WXYZ-1234"), 1.0),
    ):
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = await browser.new_page(viewport={"width": 800, "height": 1000})

            async def pairing_shown() -> bool:
                await page.goto(url)
                return (await page.locator("#state").inner_text()).strip() == "pairing"

            await eventually(pairing_shown, timeout=15, interval=0.3, what="state 'pairing'")
            assert "token" not in page.url  # it set a session cookie and left the address bar
            qr = page.locator("#qr svg")
            assert await qr.is_visible()
            box = await qr.bounding_box()
            assert box is not None and box["width"] >= 150, box
            shot = Image.open(io.BytesIO(await page.locator("#qr").screenshot()))
            assert [b.text for b in zxingcpp.read_barcodes(shot)] == [QR]
            assert "WXYZ-1234" in await page.locator("#pair-code").inner_text()
        finally:
            await browser.close()


async def test_status_page_refreshes_itself_when_the_phone_is_linked(
    nats_url: str, nc: NATS
) -> None:
    from playwright.async_api import async_playwright

    settings = health_settings(nats_url)
    url = f"http://127.0.0.1:{settings.health_port}/"
    async with health(settings), async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = await browser.new_page()
            async with beating(sender_beat(nc, "pairing", qr=QR), 1.0):

                async def pairing_shown() -> bool:
                    await page.goto(url)
                    return await page.locator("#qr svg").count() == 1

                await eventually(pairing_shown, timeout=15, interval=0.3, what="QR shown")
            async with beating(sender_beat(nc, "connected"), 1.0):
                # No navigation from the test: the page's own refresh must pick it up.
                await page.locator("#state", has_text="connected").wait_for(timeout=15_000)
                assert await page.locator("#qr").count() == 0
        finally:
            await browser.close()
