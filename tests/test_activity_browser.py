"""Activity in the words of the page, against real Chromium: a client drives a runtime
through the CDP proxy (Playwright, or raw CDP `Input.*` commands at an element's
coordinates) and the run's activity names each step from the element that was under the
input, as the runtime host resolved it (labelled and unlabelled fields, a list, a
checkbox, an upload, a button in an iframe, a second tab), with the protocol plumbing
folded into the steps and typed text never shown."""

import asyncio
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, cast

import orjson
import pytest
import websockets

from runs.activity import activity_items
from runs.models import Event
from runtime_host.host import RuntimeHost
from tests.conftest import Tenant, db, start_runtime, stop_runtime, wait_for

pytestmark = [pytest.mark.browser, pytest.mark.timeout(180)]

SECRET = "4242424242424242"

FORM = b"""<!doctype html><html><head><title>Order form</title></head><body>
<h1>Order</h1>
<label for="card">Card number</label> <input id="card" autocomplete="off">
<label>Password <input id="secret" type="password"></label>
<input id="bare">
<input id="search" placeholder="Search products">
<label for="colour">Colour</label>
<select id="colour"><option value="">Pick one</option><option value="r">Red</option>
<option value="b">Blue</option></select>
<label><input id="agree" type="checkbox"> I agree</label>
<label for="attachment">Attachment</label> <input id="attachment" type="file">
<button id="place" type="button" onclick="this.textContent='Placed'">Place order</button>
<button id="icon" type="button" aria-label="Close"></button>
<button id="find" type="button"><svg width="12" height="12"><title>Find</title>
<circle cx="6" cy="6" r="5"/></svg></button>
<button id="confirm" type="button" onclick="confirm('Are you sure?')">Ask</button>
<a id="tab" href="/second" target="_blank">Open help</a>
<iframe id="frame" src="/frame" width="400" height="120"></iframe>
<iframe id="remote" src="REMOTE/remote" width="400" height="120"></iframe>
</body></html>"""
FRAME = b"""<!doctype html><html><body>
<button id="inner" type="button">Accept cookies</button></body></html>"""
# Served from another site (localhost rather than 127.0.0.1): an out-of-process frame,
# a target of its own for the runtime host.
REMOTE = b"""<!doctype html><html><body><label for="code">Promo code</label>
<input id="code"> <button id="apply" type="button">Apply</button></body></html>"""
SECOND = b"""<!doctype html><html><head><title>Help</title></head><body>
<button id="help" type="button">Contact us</button></body></html>"""


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        port = cast(ThreadingHTTPServer, self.server).server_port
        remote = f"http://localhost:{port}".encode()
        pages = {"/form": FORM.replace(b"REMOTE", remote), "/frame": FRAME, "/second": SECOND}
        body = {**pages, "/remote": REMOTE}.get(self.path)
        if body is None:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def site() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def messages(items: list[dict[str, Any]]) -> list[str]:
    return [item["message"] for item in items]


def top_level_commands(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [item for item in items if item["type"] in ("command", "automation")]


async def test_playwright_steps_are_named_from_the_page(
    asgi_server: str, host_thread: RuntimeHost, tenant: Tenant, site: str, tmp_path: Any
) -> None:
    from playwright.async_api import async_playwright

    upload = tmp_path / "receipt.pdf"
    upload.write_bytes(b"%PDF-1.4 a receipt")
    started = await start_runtime(asgi_server, tenant)
    async with async_playwright() as playwright:
        browser = await playwright.chromium.connect_over_cdp(started.connect_url)
        context = browser.contexts[0] if browser.contexts else await browser.new_context()
        page = await context.new_page()
        await page.goto(site + "/form")
        await page.fill("#card", SECRET)
        await page.locator("#secret").press_sequentially("hunter22", delay=20)
        await page.fill("#bare", "abc")
        await page.locator("#search").press_sequentially("shoes", delay=20)
        await page.press("#search", "Enter")
        await page.select_option("#colour", "r")
        await page.check("#agree")
        await page.set_input_files("#attachment", str(upload))
        await page.click("#place")
        await page.click("#icon")
        await page.click("#find")
        page.once("dialog", lambda dialog: asyncio.ensure_future(dialog.accept()))
        await page.click("#confirm")
        await page.frame_locator("#frame").locator("#inner").click()
        remote = page.frame_locator("#remote")
        await remote.locator("#code").press_sequentially("SPRING", delay=20)
        await remote.locator("#apply").click()
        async with context.expect_page() as opened:
            await page.click("#tab")
        second = await opened.value
        await second.wait_for_load_state()
        await second.click("#help")
        await asyncio.sleep(1.5)
        await browser.close()
    run = await stop_runtime(asgi_server, tenant, started)

    items = await db(activity_items)(run)
    said = messages(items)
    text = "\n".join(said)
    assert SECRET not in text and "hunter22" not in text and "shoes" not in text
    assert any(m.startswith("Navigated to Order form — ") for m in said), said
    assert 'Typed 16 characters into "Card number"' in said, said
    assert 'Typed 8 characters into "Password"' in said, said
    assert "Typed 3 characters into an unlabelled field" in said, said
    assert 'Typed 5 characters into "Search products"' in said, said
    assert 'Pressed Enter in "Search products"' in said, said
    assert 'Selected "Red" in "Colour"' in said, said
    assert 'Checked "I agree"' in said, said
    assert 'Uploaded receipt.pdf to "Attachment"' in said, said
    assert 'Clicked button "Place order"' in said, said
    assert 'Clicked button "Close"' in said, said
    # No text a page script can read names this one: Chromium's accessibility tree does.
    assert 'Clicked button "Find"' in said, said
    assert 'Dialog "Are you sure?" accepted' in said, said
    assert 'Clicked button "Accept cookies"' in said, said
    assert 'Typed 6 characters into "Promo code"' in said, said
    assert 'Clicked button "Apply"' in said, said
    assert "SPRING" not in text
    assert 'Clicked link "Open help"' in said, said
    assert any(m.startswith("Opened a new tab") for m in said), said
    assert 'Clicked button "Contact us"' in said, said
    place = next(i for i in items if i["message"] == 'Clicked button "Place order"')
    assert place["role"] == "button" and place["name"] == "Place order"
    assert place["children"], "the click's protocol calls fold into it"
    steps = [i for i in items if i["type"] in ("browser.click", "browser.type")]
    assert all(i["name"] for i in steps if "unlabelled" not in i["message"]), steps
    assert len(top_level_commands(items)) <= len(items) // 10, said
    assert not [i for i in items if i["severity"] == "error"], said


async def raw_cdp_session(connect_url: str, site: str) -> None:
    """What an agent without Playwright does: open a tab, navigate, find an element's box
    with a script and press and release the mouse at its centre (a button, a labelled
    and an unlabelled field, a button inside an iframe), type with key events, then do
    the same in a second tab."""
    async with websockets.connect(connect_url, max_size=None) as ws:
        ids = iter(range(1, 10_000))

        async def call(method: str, params: dict[str, Any], session: str = "") -> Any:
            number = next(ids)
            message: dict[str, Any] = {"id": number, "method": method, "params": params}
            if session:
                message["sessionId"] = session
            await ws.send(orjson.dumps(message).decode())
            while True:
                answer = orjson.loads(await ws.recv())
                if answer.get("id") == number:
                    assert "error" not in answer, answer
                    return answer["result"]

        async def open_tab(path: str) -> str:
            target = (await call("Target.createTarget", {"url": "about:blank"}))["targetId"]
            attached = await call("Target.attachToTarget", {"targetId": target, "flatten": True})
            await call("Page.navigate", {"url": site + path}, attached["sessionId"])
            await asyncio.sleep(1.0)
            return str(attached["sessionId"])

        async def centre(session: str, expression: str) -> tuple[float, float]:
            """The centre of the box of the element `expression` finds, in the page."""
            script = f"JSON.stringify(({expression}).getBoundingClientRect())"
            box = await call(
                "Runtime.evaluate", {"expression": script, "returnByValue": True}, session
            )
            rect = orjson.loads(box["result"]["value"])
            return rect["x"] + rect["width"] / 2, rect["y"] + rect["height"] / 2

        async def click(session: str, x: float, y: float) -> None:
            for kind in ("mousePressed", "mouseReleased"):
                await call(
                    "Input.dispatchMouseEvent",
                    {"type": kind, "x": x, "y": y, "button": "left", "clickCount": 1},
                    session,
                )

        async def type_text(session: str, text: str) -> None:
            for char in text:
                await call("Input.dispatchKeyEvent", {"type": "keyDown", "text": char}, session)
                await call("Input.dispatchKeyEvent", {"type": "keyUp"}, session)

        form = await open_tab("/form")
        await click(form, *await centre(form, "document.querySelector('#place')"))
        await click(form, *await centre(form, "document.querySelector('#card')"))
        await type_text(form, "1234")
        await asyncio.sleep(2.5)  # a pause: the next typing is a step of its own
        await click(form, *await centre(form, "document.querySelector('#bare')"))
        await type_text(form, "xy")
        # The iframe's button, at its place in the page: the frame's box plus its own.
        frame = "document.querySelector('#frame')"
        ix, iy = await centre(form, f"{frame}.contentDocument.querySelector('#inner')")
        box = await call(
            "Runtime.evaluate",
            {
                "expression": f"JSON.stringify({frame}.getBoundingClientRect())",
                "returnByValue": True,
            },
            form,
        )
        rect = orjson.loads(box["result"]["value"])
        await click(form, rect["x"] + ix, rect["y"] + iy)
        second = await open_tab("/second")
        await click(second, *await centre(second, "document.querySelector('#help')"))
        await asyncio.sleep(1.5)


async def test_raw_cdp_input_gets_the_same_words(
    asgi_server: str, host_thread: RuntimeHost, tenant: Tenant, site: str
) -> None:
    started = await start_runtime(asgi_server, tenant)
    await raw_cdp_session(started.connect_url, site)
    # The second tab's title is reported by its page, a moment after its navigation.
    await wait_for(
        lambda: Event.objects.filter(
            run=started.run, type="page.title", data__title="Help"
        ).exists(),
        timeout=15,
        message="the second tab's title",
    )
    run = await stop_runtime(asgi_server, tenant, started)

    items = await db(activity_items)(run)
    said = messages(items)
    told = "\n".join(said)  # the whole list when an assertion fails
    assert 'Clicked button "Place order"' in said, told
    assert 'Clicked field "Card number"' in said, told
    assert 'Typed 4 characters into "Card number"' in said, told
    assert "Clicked an unlabelled field" in said, told
    assert "Typed 2 characters into an unlabelled field" in said, told
    assert 'Clicked button "Accept cookies"' in said, told
    assert any(m.startswith("Navigated to Help — ") for m in said), told
    assert 'Clicked button "Contact us"' in said, told
    assert not [m for m in said if "Target." in m or "Runtime." in m], told
