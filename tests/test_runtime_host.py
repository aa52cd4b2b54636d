"""The runtime host against real Chromium: the host runs in-process as an asyncio task,
and a client drives the browser with Playwright's `connect_over_cdp`, as a user's
script would through connectUrl (the web proxy is not involved here)."""

import asyncio
import gzip
import os
import signal
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson
import pytest
from asgiref.sync import sync_to_async
from django.core.files.storage import default_storage
from django.db import close_old_connections
from django.utils import timezone

from recordings.models import Recording, RecordingBatch, RecordingTarget
from recordings.processing import recording_process
from runs.models import Artifact, Event, Run, Runtime
from runs.services import runtime_create, runtime_start, runtime_stop
from runs.tasks import sweep_vanished_runtimes
from runtime_host.host import RuntimeHost
from runtime_host.screenshots import capture_screenshot
from runtime_host.sweep import HOST_GONE_REASON
from tests.conftest import CHROMIUM, Tenant

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
}


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
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


def db(function: Callable[..., Any]) -> Callable[..., Any]:
    def call(*args: Any, **kwargs: Any) -> Any:
        close_old_connections()
        return function(*args, **kwargs)

    return sync_to_async(call, thread_sensitive=False)


@pytest.fixture
async def host(transactional_db: None) -> AsyncIterator[RuntimeHost]:
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"Chromium is not installed at {CHROMIUM}")
    runtime_host = RuntimeHost(heartbeat_s=0.5, poll_s=0.05)
    task = asyncio.create_task(runtime_host.run())
    await asyncio.wait_for(runtime_host.ready.wait(), 30)
    yield runtime_host
    runtime_host.shutdown()
    await asyncio.wait_for(task, 60)


async def wait_for(
    check: Callable[[], Any], timeout: float = 30, message: str = "condition"
) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await db(check)()
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {message}")
        await asyncio.sleep(0.1)


async def start_runtime(tenant: Tenant, **options: Any) -> tuple[Runtime, Run]:
    runtime = await db(runtime_create)(space=tenant.space, name="test")
    started = await db(runtime_start)(runtime=runtime, **options)
    running = await wait_for(
        lambda: Runtime.objects.filter(pk=runtime.pk, status=Runtime.Status.RUNNING).first(),
        message="the runtime to run",
    )
    assert running.cdp_endpoint.startswith("ws://127.0.0.1:")
    return running, started.run


async def stop_runtime(runtime: Runtime) -> Run:
    await db(runtime_stop)(runtime=runtime)
    await wait_for(
        lambda: Runtime.objects.filter(pk=runtime.pk, status=Runtime.Status.STOPPED).exists(),
        message="the runtime to stop",
    )
    return await db(lambda: Run.objects.filter(runtime=runtime).order_by("-id").first())()


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
    host: RuntimeHost, tenant: Tenant, site: str
) -> None:
    from playwright.async_api import async_playwright

    runtime, run = await start_runtime(tenant)
    targets: list[str] = []
    async with async_playwright() as playwright:
        browser = await playwright.chromium.connect_over_cdp(runtime.cdp_endpoint)
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

    run = await stop_runtime(runtime)
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
    host: RuntimeHost, tenant: Tenant, site: str
) -> None:
    from playwright.async_api import async_playwright

    runtime, run = await start_runtime(tenant)
    async with async_playwright() as playwright:
        browser = await playwright.chromium.connect_over_cdp(runtime.cdp_endpoint)
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

    run = await stop_runtime(runtime)
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


async def test_recording_disabled_stores_no_batches(
    host: RuntimeHost, tenant: Tenant, site: str
) -> None:
    from playwright.async_api import async_playwright

    runtime, run = await start_runtime(tenant, recording=False)
    async with async_playwright() as playwright:
        browser = await playwright.chromium.connect_over_cdp(runtime.cdp_endpoint)
        page = await browser.contexts[0].new_page()
        await page.goto(site + "/form")
        await page.type("#name", "abc")
        await asyncio.sleep(0.5)
        await browser.close()
    run = await stop_runtime(runtime)
    assert await db(batches_of)(run) == []
    assert await db(events_of)(run, "navigation")  # events are still recorded


async def test_keep_alive_closes_an_idle_runtime(host: RuntimeHost, tenant: Tenant) -> None:
    runtime, run = await start_runtime(tenant, keep_alive_ms=500)
    await wait_for(
        lambda: Runtime.objects.filter(pk=runtime.pk, status=Runtime.Status.STOPPED).exists(),
        message="keep_alive to stop the runtime",
    )
    run = await db(Run.objects.get)(pk=run.pk)
    assert run.status == Run.Status.COMPLETED
    for _ in range(100):  # the host lets go of it right after finishing it
        if not host.browsers:
            break
        await asyncio.sleep(0.05)
    assert not host.browsers


async def test_killed_browser_fails_the_runtime_and_run(host: RuntimeHost, tenant: Tenant) -> None:
    runtime, run = await start_runtime(tenant)
    browser = host.browsers[runtime.id]
    assert browser.pid is not None
    os.kill(browser.pid, signal.SIGKILL)
    failed = await wait_for(
        lambda: Runtime.objects.filter(pk=runtime.pk, status=Runtime.Status.FAILED).first(),
        message="the runtime to fail",
    )
    assert "browser process exited unexpectedly" in failed.failure_reason
    run = await db(Run.objects.get)(pk=run.pk)
    assert run.status == Run.Status.FAILED
    assert "browser process exited unexpectedly" in run.error["message"]
    assert not browser.root.exists()


async def test_events_downloads_and_thumbnail(host: RuntimeHost, tenant: Tenant, site: str) -> None:
    from playwright.async_api import async_playwright

    runtime, run = await start_runtime(tenant)
    async with async_playwright() as playwright:
        browser = await playwright.chromium.connect_over_cdp(runtime.cdp_endpoint)
        context = await browser.new_context()
        page = await context.new_page()
        await page.goto(site + "/noisy")
        await page.wait_for_timeout(300)
        await page.click("#dl")
        await wait_for(
            lambda: Artifact.objects.filter(run=run, kind=Artifact.Kind.DOWNLOAD).exists(),
            message="the download artifact",
        )
        shot = await db(capture_screenshot)(runtime.id)  # the web side's on-demand screenshot
        assert shot.kind == Artifact.Kind.SCREENSHOT and shot.metadata["url"] == site + "/noisy"
        await browser.close()
    run = await stop_runtime(runtime)

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


async def test_vanished_host_is_swept(tenant: Tenant, transactional_db: None) -> None:
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
    runtime, run = await start_runtime(tenant)
    browser = runtime_host.browsers[runtime.id]
    runtime_host.shutdown()
    await asyncio.wait_for(task, 60)
    runtime = await db(Runtime.objects.get)(pk=runtime.pk)
    assert runtime.status == Runtime.Status.STOPPED and runtime.cdp_endpoint == ""
    assert (await db(Run.objects.get)(pk=run.pk)).status == Run.Status.COMPLETED
    assert not browser.profile_dir.exists() and not browser.root.exists()


async def test_recording_switched_off_stops_the_recorders(
    host: RuntimeHost, tenant: Tenant, site: str
) -> None:
    from playwright.async_api import async_playwright

    runtime, run = await start_runtime(tenant)
    async with async_playwright() as playwright:
        browser = await playwright.chromium.connect_over_cdp(runtime.cdp_endpoint)
        page = await browser.contexts[0].new_page()
        await page.goto(site + "/form")
        await wait_for(lambda: batches_of(run), message="a first batch")
        # What the CDP proxy does for `?recording=false`.
        await db(lambda: Runtime.objects.filter(pk=runtime.pk).update(recording_enabled=False))()
        managed = host.browsers[runtime.id]
        for _ in range(100):
            if not managed.recording_enabled:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)
        before = len(await db(batches_of)(run))
        await page.type("#name", "after the switch")
        await page.goto(site + "/next")
        await asyncio.sleep(0.5)
        await browser.close()
    run = await stop_runtime(runtime)
    assert len(await db(batches_of)(run)) == before
