"""A start's browser options in real Chromium: a page of the run sees the viewport, user
agent, language and time zone the start asked for, in its own JavaScript and in the
headers a site receives, in tabs it opens later too; a client's own emulation still wins."""

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from runtime_host.host import RuntimeHost
from tests.conftest import Tenant, start_runtime, stop_runtime

pytestmark = [pytest.mark.browser, pytest.mark.timeout(120)]

OPTIONS: dict[str, Any] = {
    "viewport": {"width": 390, "height": 700},
    "userAgent": "QA-Bot/2.0 (+https://example.com/bot)",
    "locale": "de-DE",
    "timezone": "Asia/Tokyo",
}

SEEN = """[innerWidth, innerHeight, navigator.userAgent, navigator.language,
Intl.DateTimeFormat().resolvedOptions().timeZone]"""


class Echo(BaseHTTPRequestHandler):
    """Answers a page that shows the headers its request came with."""

    def do_GET(self) -> None:
        headers = {
            "userAgent": self.headers.get("User-Agent", ""),
            "acceptLanguage": self.headers.get("Accept-Language", ""),
        }
        body = f"<html><body><pre id='headers'>{json.dumps(headers)}</pre></body></html>"
        raw = body.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def echo() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Echo)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


async def test_pages_of_the_run_see_the_options_the_start_asked_for(
    asgi_server: str, host_thread: RuntimeHost, tenant: Tenant, echo: str
) -> None:
    from playwright.async_api import async_playwright

    started = await start_runtime(asgi_server, tenant, OPTIONS)
    async with async_playwright() as playwright:
        browser = await playwright.chromium.connect_over_cdp(started.connect_url)
        context = browser.contexts[0]  # the browser's own context, as agents use it
        page = await context.new_page()
        await page.goto(echo + "/")
        await page.wait_for_function(f"innerWidth === {OPTIONS['viewport']['width']}")
        assert await page.evaluate(SEEN) == [
            390,
            700,
            OPTIONS["userAgent"],
            "de-DE",
            "Asia/Tokyo",
        ]
        sent = json.loads(await page.text_content("#headers") or "{}")
        assert sent["userAgent"] == OPTIONS["userAgent"]
        assert sent["acceptLanguage"].startswith("de-DE")

        async with page.expect_popup() as opened:
            await page.evaluate("window.open('/popup')")
        popup = await opened.value
        await popup.wait_for_load_state()
        await popup.wait_for_function("innerWidth === 390 && innerHeight === 700")

        # A context that emulates its own viewport and locale keeps them.
        own = await browser.new_context(viewport={"width": 1024, "height": 600}, locale="fr-FR")
        mine = await own.new_page()
        await mine.goto(echo + "/")
        width, height, _, language, zone = await mine.evaluate(SEEN)
        assert (width, height, language) == (1024, 600, "fr-FR")
        assert zone == "Asia/Tokyo"
        await browser.close()
    run = await stop_runtime(asgi_server, tenant, started)
    assert run.browser_options == OPTIONS
