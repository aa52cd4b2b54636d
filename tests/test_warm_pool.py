"""The runtime host's warm pool in real Chromium: a start takes the pre-launched browser
and the pool refills; a start that asks for launch-only options launches its own; a warm
browser that dies is replaced; a run on a warm browser is recorded from its first page
and starts with nothing of an earlier run."""

import asyncio
import os
import signal

import pytest

from runs.models import Event
from runtime_host.browser import ManagedBrowser
from runtime_host.host import RuntimeHost
from tests.conftest import Tenant, db, refused, start_runtime, stop_runtime

pytestmark = [pytest.mark.browser, pytest.mark.timeout(180)]


async def warm_browser(
    host: RuntimeHost, other_than: ManagedBrowser | None = None
) -> ManagedBrowser:
    for _ in range(300):
        ready = [b for b in host.warm if b is not other_than and not b.stopping]
        if ready:
            return ready[0]
        await asyncio.sleep(0.05)
    raise AssertionError("the host kept no warm browser")


async def test_a_start_takes_the_warm_browser_and_the_pool_refills(
    asgi_server: str, host_thread: RuntimeHost, tenant: Tenant
) -> None:
    from playwright.async_api import async_playwright

    assert host_thread.warm_target == 1
    warm = await warm_browser(host_thread)
    first = await start_runtime(asgi_server, tenant)
    assert host_thread.browsers[first.runtime.id] is warm
    refilled = await warm_browser(host_thread, other_than=warm)
    assert refilled is not warm and not refilled.bound

    async with async_playwright() as playwright:
        browser = await playwright.chromium.connect_over_cdp(first.connect_url)
        page = await browser.contexts[0].new_page()
        await page.goto(asgi_server + "/demo/")
        await page.evaluate("localStorage.setItem('left', 'behind')")
        await browser.close()
    run = await stop_runtime(asgi_server, tenant, first)
    navigations = await db(lambda: list(Event.objects.filter(run=run, type="navigation")))()
    assert any(e.data["url"].endswith("/demo/") for e in navigations)

    second = await start_runtime(asgi_server, tenant)
    assert host_thread.browsers[second.runtime.id] is refilled
    async with async_playwright() as playwright:
        browser = await playwright.chromium.connect_over_cdp(second.connect_url)
        page = await browser.contexts[0].new_page()
        await page.goto(asgi_server + "/demo/")
        assert await page.evaluate("localStorage.getItem('left')") is None
        await browser.close()
    await stop_runtime(asgi_server, tenant, second)


async def test_launch_only_options_launch_a_browser_of_their_own(
    asgi_server: str, host_thread: RuntimeHost, tenant: Tenant
) -> None:
    warm = await warm_browser(host_thread)
    started = await start_runtime(asgi_server, tenant, {"timezone": "Asia/Tokyo"})
    assert host_thread.browsers[started.runtime.id] is not warm
    assert warm in host_thread.warm
    await stop_runtime(asgi_server, tenant, started)


async def test_a_warm_browser_that_dies_is_replaced(
    asgi_server: str, host_thread: RuntimeHost, tenant: Tenant
) -> None:
    warm = await warm_browser(host_thread)
    assert warm.pid is not None
    os.kill(warm.pid, signal.SIGKILL)
    replacement = await warm_browser(host_thread, other_than=warm)
    started = await start_runtime(asgi_server, tenant)
    assert host_thread.browsers[started.runtime.id] is replacement
    await stop_runtime(asgi_server, tenant, started)


async def test_a_start_is_pushed_to_its_host_which_need_not_poll_for_it(
    asgi_server: str, host_thread: RuntimeHost, tenant: Tenant
) -> None:
    # The host would next look at the database in an hour: only its own link, which
    # the web server pushes each start placed on it (and each stop) to, can bring it this
    # start in the 30 s a start may take, and the stop after it.
    host_thread.poll_s = 3600
    for _ in range(100):  # its current nap (of the fixture's interval) ends
        if host_thread.starts_link is not None:
            break
        await asyncio.sleep(0.05)
    assert host_thread.starts_link is not None, "the host's own link did not open"
    await asyncio.sleep(0.2)
    started = await start_runtime(asgi_server, tenant)
    assert started.runtime.id in host_thread.browsers
    await stop_runtime(asgi_server, tenant, started)


def test_the_hosts_own_link_refuses_a_token_of_another_host(asgi_server: str) -> None:
    from runtimes.hostlink import host_starts_token

    ws = asgi_server.replace("http://", "ws://", 1) + "/ws/host/hosts/host-a"
    answer = refused(ws, {"Authorization": f"Bearer {host_starts_token('host-b')}"})
    assert answer.status == 403
    assert refused(ws, {"Authorization": "Bearer nonsense"}).status == 403
    assert refused(ws).status == 403
