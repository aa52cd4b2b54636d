"""The runtime host against real Chromium, driven as a user's script drives it: the
client starts a runtime through the API of a live daphne (`asgi_server`), a runtime
host in a thread (`host_thread`) launches the browser, and the client connects
Playwright's `connect_over_cdp` to the `connectUrl` the start answered, through the CDP
proxy, with seed 003's query options (`recording=false`, `keep_alive=<ms>`) on it.

Tests of the host's own duties (the sweep of vanished hosts, a clean shutdown) run a
host on the test's event loop and need no client."""

import asyncio
import gzip
import os
import signal
import threading
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson
import pytest
from bctrl import Bctrl
from django.core.files.storage import default_storage
from django.utils import timezone

from recordings.inspector import inspector_data
from recordings.models import Recording, RecordingBatch, RecordingTarget
from recordings.processing import recording_process
from runs.cdp import REDACTED
from runs.models import Artifact, Command, Event, Run, Runtime
from runtime_host.host import RuntimeHost
from runtimes.services import host_heartbeat, runtime_create, runtime_start
from runtimes.sweep import HOST_GONE_REASON
from runtimes.tasks import sweep_vanished_runtimes
from tests.conftest import (
    CHROMIUM,
    CHROMIUM_ARGS,
    MEMBER_PASSWORD,
    Tenant,
    db,
    start_runtime,
    stop_runtime,
    wait_for,
)

pytestmark = [pytest.mark.browser, pytest.mark.timeout(120)]

SECRET = "SECRET-TYPED-4242"

PAGES: dict[str, tuple[str, bytes]] = {
    "/": ("text/html", b"<html><body><h1>Home</h1><p>hello</p></body></html>"),
    "/form": (
        "text/html",
        b"<html><body><h1>Form</h1><input id='name' type='text'>"
        b"<a id='go' href='/next'>next</a></body></html>",
    ),
    "/next": ("text/html", b"<html><body><h1>Next page</h1></body></html>"),
    "/opener": (
        "text/html",
        b"<html><body><h1>Opener</h1>"
        b"<button id='open' onclick=\"window.open('/popup')\">open</button></body></html>",
    ),
    "/popup": ("text/html", b"<html><body><h1>Popup</h1><p>a same-origin popup</p></body></html>"),
    "/noisy": (
        "text/html",
        b"<html><body><h1>Noisy</h1><a id='dl' href='/file.txt'>get</a><script>"
        b"console.error('something broke here');"
        b"fetch('/missing').then((r) => r.text()).catch(() => {});"
        b"fetch('http://127.0.0.1:9/refused').catch(() => {});"
        b"setTimeout(() => { throw new Error('boom from the page'); }, 0);"
        b"</script></body></html>",
    ),
    "/headers": (
        "text/html",
        b"<html><body><h1>Headers</h1><script>"
        b"document.cookie = 'sid=COOKIE-SECRET-1';"
        b"fetch('/echo', {headers: {Authorization: 'Bearer TOKEN-SECRET-2', 'X-Trace': 'seen'}})"
        b".then((r) => r.text()).then(() => { document.title = 'done'; });"
        b"</script></body></html>",
    ),
}
HEADER_SECRETS = ("COOKIE-SECRET-1", "TOKEN-SECRET-2", "SETCOOKIE-SECRET-3")


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/echo":
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Set-Cookie", "session=SETCOOKIE-SECRET-3; Path=/")
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")
            return
        if self.path == "/file.txt":
            body = b"downloaded content\n"
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Disposition", 'attachment; filename="report.txt"')
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        page = PAGES.get(self.path)
        if page is None:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Type", page[0])
        self.send_header("Content-Length", str(len(page[1])))
        self.end_headers()
        self.wfile.write(page[1])

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def site() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def batches_of(run: Run) -> list[RecordingBatch]:
    return list(RecordingBatch.objects.filter(recording__run=run).order_by("target", "seq"))


def batch_events(batch: RecordingBatch) -> list[dict[str, Any]]:
    with default_storage.open(batch.path, "rb") as handle:
        raw = gzip.decompress(handle.read())
    events: list[dict[str, Any]] = orjson.loads(raw)
    return events


def batch_text(batch: RecordingBatch) -> str:
    with default_storage.open(batch.path, "rb") as handle:
        return gzip.decompress(handle.read()).decode()


def events_of(run: Run, type: str) -> list[Event]:
    return list(Event.objects.filter(run=run, type=type).order_by("seq"))


async def test_tabs_and_popup_record_each_page_target(
    asgi_server: str, host_thread: RuntimeHost, tenant: Tenant, site: str
) -> None:
    from playwright.async_api import async_playwright

    started = await start_runtime(asgi_server, tenant)
    targets: list[str] = []
    async with async_playwright() as playwright:
        browser = await playwright.chromium.connect_over_cdp(started.connect_url)
        context = await browser.new_context()
        first = await context.new_page()
        await first.goto(site + "/")
        second = await context.new_page()
        await second.goto(site + "/opener")
        async with second.expect_popup() as popup_info:
            await second.click("#open")
        popup = await popup_info.value
        await popup.wait_for_load_state("domcontentloaded")
        await popup.wait_for_selector("h1")
        for page in (first, second, popup):
            session = await context.new_cdp_session(page)
            info = await session.send("Target.getTargetInfo")
            targets.append(info["targetInfo"]["targetId"])
        await asyncio.sleep(1.0)  # let the recorders flush a batch or two
        await browser.close()

    run = await stop_runtime(asgi_server, tenant, started)
    assert run.status == Run.Status.COMPLETED
    batches = await db(batches_of)(run)
    recorded = {batch.target for batch in batches}
    assert set(targets) <= recorded, (targets, recorded)

    recording = await db(lambda: Recording.objects.get(run=run))()
    if recording.status != Recording.Status.READY:
        await db(recording_process)(recording_id=recording.id, force=True)
    outputs = await db(
        lambda: {t.target: t for t in RecordingTarget.objects.filter(recording=recording)}
    )()
    for target in targets:
        assert outputs[target].playable, outputs[target].problem
        events = await db(
            lambda t=target: sorted(
                [
                    e
                    for b in RecordingBatch.objects.filter(recording=recording, target=t)
                    for e in batch_events(b)
                ],
                key=lambda e: e["timestamp"],
            )
        )()
        kinds = [e["type"] for e in events]
        assert 4 in kinds and 2 in kinds
        meta = kinds.index(4)
        assert kinds[meta + 1] == 2  # Meta immediately followed by a FullSnapshot

    created = await db(events_of)(run, "target.created")
    assert set(targets) <= {e.data["targetId"] for e in created}
    navigations = await db(events_of)(run, "navigation")
    assert any(e.data["url"] == site + "/popup" for e in navigations)


async def test_navigation_after_click_keeps_masked_input(
    asgi_server: str, host_thread: RuntimeHost, tenant: Tenant, site: str
) -> None:
    from playwright.async_api import async_playwright

    started = await start_runtime(asgi_server, tenant)
    async with async_playwright() as playwright:
        browser = await playwright.chromium.connect_over_cdp(started.connect_url)
        context = await browser.new_context()
        page = await context.new_page()
        await page.goto(site + "/form")
        session = await context.new_cdp_session(page)
        target = (await session.send("Target.getTargetInfo"))["targetInfo"]["targetId"]
        await page.type("#name", SECRET)
        await page.click("#go")
        await page.wait_for_url(site + "/next")
        await page.wait_for_selector("h1")
        await browser.close()

    run = await stop_runtime(asgi_server, tenant, started)
    batches = [b for b in await db(batches_of)(run) if b.target == target]
    assert batches
    texts = await db(lambda: [batch_text(b) for b in batches])()
    assert all(SECRET not in text for text in texts)
    events = await db(
        lambda: sorted([e for b in batches for e in batch_events(b)], key=lambda e: e["timestamp"])
    )()
    # IncrementalSnapshot / Input, masked: the typed text became asterisks.
    inputs = [e for e in events if e["type"] == 3 and e["data"].get("source") == 5]
    assert inputs
    assert inputs[-1]["data"]["text"] == "*" * len(SECRET)
    metas = [e for e in events if e["type"] == 4]
    assert any(m["data"]["href"].endswith("/next") for m in metas)
    next_meta = next(m for m in metas if m["data"]["href"].endswith("/next"))
    assert inputs[-1]["timestamp"] <= next_meta["timestamp"]
    # Nor did the proxy store the keys it forwarded in the clear.
    keys = await db(
        lambda: [
            c.params
            for c in Command.objects.filter(run=run, method="Input.dispatchKeyEvent")
            if "text" in c.params
        ]
    )()
    assert len(keys) >= len(SECRET)
    assert all(params["text"] == REDACTED and params["key"] == REDACTED for params in keys)


async def test_recording_disabled_stores_no_batches(
    asgi_server: str, host_thread: RuntimeHost, tenant: Tenant, site: str
) -> None:
    from playwright.async_api import async_playwright

    started = await start_runtime(asgi_server, tenant, recording="false")
    async with async_playwright() as playwright:
        # As a script does: its first page right after connecting, with no wait for the
        # switch to reach the host.
        browser = await playwright.chromium.connect_over_cdp(started.connect_url)
        page = await browser.contexts[0].new_page()
        await page.goto(site + "/form")
        await page.type("#name", "abc")
        await asyncio.sleep(0.5)
        await browser.close()
    run = await stop_runtime(asgi_server, tenant, started)
    assert await db(batches_of)(run) == []
    assert await db(events_of)(run, "navigation")  # events are still recorded


async def test_keep_alive_closes_an_idle_runtime(
    asgi_server: str, host_thread: RuntimeHost, tenant: Tenant, site: str
) -> None:
    from playwright.async_api import async_playwright

    started = await start_runtime(asgi_server, tenant, keep_alive="500")
    async with async_playwright() as playwright:
        browser = await playwright.chromium.connect_over_cdp(started.connect_url)
        page = await browser.contexts[0].new_page()
        await page.goto(site + "/")
        await asyncio.sleep(1.0)  # a client that stays is not idle
        runtime = await db(Runtime.objects.get)(pk=started.runtime.pk)
        assert (runtime.status, runtime.keep_alive_ms) == (Runtime.Status.RUNNING, 500)
        await browser.close()
    await wait_for(
        lambda: Runtime.objects.filter(
            pk=started.runtime.pk, status=Runtime.Status.STOPPED
        ).exists(),
        message="keep_alive to stop the runtime",
    )
    run = await db(Run.objects.get)(pk=started.run.pk)
    assert run.status == Run.Status.COMPLETED
    for _ in range(100):  # the host lets go of it right after finishing it
        if not host_thread.browsers:
            break
        await asyncio.sleep(0.05)
    assert not host_thread.browsers


async def test_killed_browser_fails_the_runtime_and_run(
    asgi_server: str, host_thread: RuntimeHost, tenant: Tenant, site: str
) -> None:
    from playwright.async_api import async_playwright

    started = await start_runtime(asgi_server, tenant)
    managed = host_thread.browsers[started.runtime.id]
    assert managed.pid is not None
    async with async_playwright() as playwright:
        browser = await playwright.chromium.connect_over_cdp(started.connect_url)
        page = await browser.contexts[0].new_page()
        await page.goto(site + "/")
        os.kill(managed.pid, signal.SIGKILL)
        failed = await wait_for(
            lambda: Runtime.objects.filter(
                pk=started.runtime.pk, status=Runtime.Status.FAILED
            ).first(),
            message="the runtime to fail",
        )
        for _ in range(100):  # the proxy closes the client's connection too
            if not browser.is_connected():
                break
            await asyncio.sleep(0.05)
        assert not browser.is_connected()
    assert "browser process exited unexpectedly" in failed.failure_reason
    run = await db(Run.objects.get)(pk=started.run.pk)
    assert run.status == Run.Status.FAILED
    assert "browser process exited unexpectedly" in run.error["message"]
    assert not managed.root.exists()


async def test_events_downloads_and_thumbnail(
    asgi_server: str, host_thread: RuntimeHost, tenant: Tenant, site: str
) -> None:
    from playwright.async_api import async_playwright

    started = await start_runtime(asgi_server, tenant)
    run = started.run
    client = Bctrl(api_key=tenant.raw_key, base_url=asgi_server)
    async with async_playwright() as playwright:
        browser = await playwright.chromium.connect_over_cdp(started.connect_url)
        context = await browser.new_context()
        page = await context.new_page()
        await page.goto(site + "/noisy")
        await page.wait_for_timeout(300)
        await page.click("#dl")
        await wait_for(
            lambda: Artifact.objects.filter(run=run, kind=Artifact.Kind.DOWNLOAD).exists(),
            message="the download artifact",
        )
        answer = await asyncio.to_thread(client.runs.screenshot, run.id)
        shot = await db(Artifact.objects.get)(pk=answer.id)
        assert shot.kind == Artifact.Kind.SCREENSHOT and shot.metadata["url"] == site + "/noisy"
        await browser.close()
    run = await stop_runtime(asgi_server, tenant, started)

    types = await db(lambda: set(Event.objects.filter(run=run).values_list("type", flat=True)))()
    for expected in (
        "navigation",
        "network.request",
        "network.response",
        "network.failed",
        "console.message",
        "page.error",
        "download",
        "target.created",
    ):
        assert expected in types, (expected, types)
    console = await db(events_of)(run, "console.message")
    assert any(e.data == {"level": "error", "text": "something broke here"} for e in console)
    errors = await db(events_of)(run, "page.error")
    assert any("boom from the page" in e.data["message"] for e in errors)
    responses = await db(events_of)(run, "network.response")
    assert any(e.data["url"].endswith("/missing") and e.data["status"] == 404 for e in responses)
    download = (await db(events_of)(run, "download"))[0]
    assert download.data["suggestedFilename"] == "report.txt"
    artifact = await db(Artifact.objects.get)(pk=download.data["artifactId"])
    assert artifact.kind == Artifact.Kind.DOWNLOAD
    content = await db(lambda: artifact.file.open("rb").read())()
    assert content == b"downloaded content\n"

    thumbnail = await db(lambda: Run.objects.select_related("thumbnail").get(pk=run.pk).thumbnail)()
    assert thumbnail is not None and thumbnail.kind == Artifact.Kind.SCREENSHOT
    assert thumbnail.metadata.get("final") is True  # the one taken as the run ended
    assert thumbnail.content_type == "image/png" and thumbnail.size > 0


async def test_network_headers_are_recorded_with_cookies_and_authorization_redacted(
    asgi_server: str, host_thread: RuntimeHost, tenant: Tenant, site: str
) -> None:
    from playwright.async_api import async_playwright

    started = await start_runtime(asgi_server, tenant)
    run = started.run
    async with async_playwright() as playwright:
        browser = await playwright.chromium.connect_over_cdp(started.connect_url)
        page = await (await browser.new_context()).new_page()
        await page.goto(site + "/headers")
        await page.wait_for_function("document.title === 'done'")
        # Chromium reports the headers as received apart, and drops them for a tab that
        # closes first: the tab stays open until the host wrote the response.
        echo_recorded = Event.objects.filter(
            run=run, type="network.response", data__url=site + "/echo"
        ).exists
        await wait_for(echo_recorded, message="the response of /echo")
        await browser.close()
    run = await stop_runtime(asgi_server, tenant, started)

    requests = await db(events_of)(run, "network.request")
    [sent] = [e.data for e in requests if e.data["url"] == site + "/echo"]
    assert sent["headers"]["Authorization"] == REDACTED
    assert sent["headers"]["X-Trace"] == "seen"
    responses = await db(events_of)(run, "network.response")
    [answer] = [e.data for e in responses if e.data["url"] == site + "/echo"]
    assert answer["status"] == 200
    assert isinstance(answer["durationMs"], int) and answer["durationMs"] >= 0
    set_cookie = {k.lower(): v for k, v in answer["headers"].items()}["set-cookie"]
    assert set_cookie == REDACTED
    wire = {k.lower(): v for k, v in answer["requestHeaders"].items()}
    assert wire["cookie"] == REDACTED and wire["authorization"] == REDACTED
    # Nowhere in what the run stored.
    stored = await db(lambda: orjson.dumps(list(Event.objects.filter(run=run).values("data"))))()
    assert not any(secret.encode() in stored for secret in HEADER_SECRETS)


async def test_the_replay_of_a_recorded_run_seeks_to_its_network_rows(
    asgi_server: str, host_thread: RuntimeHost, tenant: Tenant, member: Any, site: str
) -> None:
    """The whole way: a script drives the browser, the host records the page and its
    requests, processing cuts the recording, and in the replay page a click on the
    request's row in the inspector puts the player at that request, on the same clock."""
    from playwright.async_api import async_playwright

    started = await start_runtime(asgi_server, tenant)
    async with async_playwright() as playwright:
        browser = await playwright.chromium.connect_over_cdp(started.connect_url)
        page = await (await browser.new_context()).new_page()
        await page.goto(site + "/headers")
        await page.wait_for_function("document.title === 'done'")
        await page.wait_for_timeout(1500)
        await page.goto(site + "/next")
        await page.wait_for_timeout(1000)
        await browser.close()
        run = await stop_runtime(asgi_server, tenant, started)
        recording = await db(lambda: Recording.objects.get(run=run))()
        if recording.status != Recording.Status.READY:
            await db(recording_process)(recording_id=recording.id, force=True)
        rows = (await db(inspector_data)(run))["network"]
        [echo] = [row for row in rows if row["url"] == site + "/echo"]
        target = await db(
            lambda: RecordingTarget.objects.get(recording__run=run, target=echo["pageId"])
        )()
        # The request's time lies within its tab's recording (the page's script sends it
        # a few ms before the recorder's first frame, at DOMContentLoaded): one clock.
        assert target.start_timestamp - 500 <= echo["timeMs"] <= target.end_timestamp

        viewer = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        replay = await viewer.new_page(viewport={"width": 1440, "height": 900})
        await replay.goto(f"{asgi_server}/runs/{run.id}/replay")
        await replay.fill("input[name=username]", member.username)
        await replay.fill("input[name=password]", MEMBER_PASSWORD)
        await replay.click("button[type=submit]")
        await replay.wait_for_function(
            "() => document.querySelector('[data-inspector]')"
            " && document.querySelector('[data-inspector]').dataset.inspector === 'ready'",
            timeout=20_000,
        )
        names = await replay.locator(".target-tab .tab-name").all_inner_texts()
        assert names and not any(name.startswith("Tab ") for name in names), names
        await replay.get_by_role("tab", name="Network").click()
        await replay.locator("[data-inspector-panel='network'] .rt-row", has_text="/echo").click()
        await replay.wait_for_function(
            f"() => Math.abs(window.bctrlReplay.time() - {echo['timeMs']}) < 500"
        )
        detail = await replay.locator("[data-inspector-detail]").inner_text()
        assert "[redacted]" in detail and "X-Trace" in detail
        html = await replay.content()
        assert not any(secret in html for secret in HEADER_SECRETS)
        await viewer.close()


async def test_a_client_with_recording_false_stops_the_recorders(
    asgi_server: str, host_thread: RuntimeHost, tenant: Tenant, site: str
) -> None:
    from playwright.async_api import async_playwright

    started = await start_runtime(asgi_server, tenant)
    run = started.run
    async with async_playwright() as playwright:
        browser = await playwright.chromium.connect_over_cdp(started.connect_url)
        page = await browser.contexts[0].new_page()
        await page.goto(site + "/form")
        await wait_for(lambda: batches_of(run), message="a first batch")
        # A second client switches recording off for the runtime.
        second = await playwright.chromium.connect_over_cdp(
            started.connect_url + "?recording=false"
        )
        managed = host_thread.browsers[started.runtime.id]
        for _ in range(100):
            if not managed.recording_enabled:
                break
            await asyncio.sleep(0.05)
        assert not managed.recording_enabled
        await asyncio.sleep(0.5)
        before = len(await db(batches_of)(run))
        await page.type("#name", "after the switch")
        await page.goto(site + "/next")
        await asyncio.sleep(0.5)
        await second.close()
        await browser.close()
    run = await stop_runtime(asgi_server, tenant, started)
    assert len(await db(batches_of)(run)) == before


# The host's own duties, without a client ----------------------------------------------


async def test_vanished_host_is_swept(tenant: Tenant, transactional_db: None) -> None:
    await db(host_heartbeat)(host_id="gone-host", capacity=4, browsers=0)
    runtime = await db(runtime_create)(space=tenant.space)
    started = await db(runtime_start)(runtime=runtime)
    await db(
        lambda: Runtime.objects.filter(pk=runtime.pk).update(
            status=Runtime.Status.RUNNING,
            host_id="gone-host",
            cdp_endpoint="ws://127.0.0.1:1/devtools/browser/x",
            heartbeat_at=timezone.now() - timedelta(minutes=5),
        )
    )()
    fresh = await db(runtime_create)(space=tenant.space)
    await db(runtime_start)(runtime=fresh)
    await db(
        lambda: Runtime.objects.filter(pk=fresh.pk).update(
            status=Runtime.Status.RUNNING, host_id="live-host", heartbeat_at=timezone.now()
        )
    )()
    swept = await db(sweep_vanished_runtimes)()
    assert swept == 1
    runtime = await db(Runtime.objects.get)(pk=runtime.pk)
    assert runtime.status == Runtime.Status.FAILED
    assert runtime.failure_reason == HOST_GONE_REASON
    run = await db(Run.objects.get)(pk=started.run.pk)
    assert run.status == Run.Status.FAILED
    assert (await db(Runtime.objects.get)(pk=fresh.pk)).status == Runtime.Status.RUNNING


async def test_host_shutdown_stops_its_runtimes_cleanly(
    tenant: Tenant, transactional_db: None
) -> None:
    runtime_host = RuntimeHost(heartbeat_s=0.5, poll_s=0.05)
    task = asyncio.create_task(runtime_host.run())
    await asyncio.wait_for(runtime_host.ready.wait(), 30)
    runtime = await db(runtime_create)(space=tenant.space, name="test")
    started = await db(runtime_start)(runtime=runtime)
    await wait_for(
        lambda: Runtime.objects.filter(pk=runtime.pk, status=Runtime.Status.RUNNING).exists(),
        message="the runtime to run",
    )
    browser = runtime_host.browsers[runtime.id]
    runtime_host.shutdown()
    await asyncio.wait_for(task, 60)
    runtime = await db(Runtime.objects.get)(pk=runtime.pk)
    assert runtime.status == Runtime.Status.STOPPED and runtime.cdp_endpoint == ""
    assert (await db(Run.objects.get)(pk=started.run.pk)).status == Run.Status.COMPLETED
    assert not browser.profile_dir.exists() and not browser.root.exists()
