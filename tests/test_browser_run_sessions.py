"""Browser Run's session API (seed 003; runtimes/browser_run.py) driven by the official
`cloudflare` package, unchanged, pointed at the live daphne (`asgi_server`), with a
runtime host (`host_thread`) running the browsers and Playwright connecting to the
websocket URLs the package is given."""

import asyncio
import json
import urllib.error
import urllib.request
from typing import Any

import pytest
from cloudflare import AsyncCloudflare, NotFoundError, PermissionDeniedError
from django.conf import settings

from recordings.models import Recording
from runs.models import Event, Run, Runtime
from runtime_host.host import RuntimeHost
from tests.conftest import Tenant, db, make_tenant, wait_for

pytestmark = [pytest.mark.browser, pytest.mark.timeout(120)]


def client(server: str, tenant: Tenant) -> AsyncCloudflare:
    return AsyncCloudflare(api_token=tenant.raw_key, base_url=f"{server}/client/v4")


def ws(server: str) -> str:
    return server.replace("http://", "ws://", 1)


def auth(tenant: Tenant) -> dict[str, str]:
    return {"Authorization": f"Bearer {tenant.raw_key}"}


async def browse(url: str, tenant: Tenant, page_url: str) -> None:
    """What a Playwright user does with a webSocketDebuggerUrl."""
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.connect_over_cdp(url, headers=auth(tenant))
        context = browser.contexts[0] if browser.contexts else await browser.new_context()
        page = context.pages[0] if context.pages else await context.new_page()
        await page.goto(page_url)
        # Something happens past the 1 s a recording needs to be viewable.
        await page.wait_for_timeout(1200)
        await page.evaluate("document.body.append('Still here')")
        await page.wait_for_timeout(300)
        await browser.close()


async def test_the_official_package_creates_connects_lists_views_and_closes_a_session(
    asgi_server: str, host_thread: RuntimeHost, tenant: Tenant
) -> None:
    cf = client(asgi_server, tenant)
    devtools = cf.browser_rendering.devtools
    account = tenant.space.id
    created = await devtools.browser.create(account_id=account, keep_alive=60_000)
    assert created.session_id.startswith("run_")
    assert created.web_socket_debugger_url == (
        f"{ws(asgi_server)}/client/v4/accounts/{account}/browser-rendering/devtools/browser/"
        f"{created.session_id}"
    )
    await browse(created.web_socket_debugger_url, tenant, f"{asgi_server}/demo/")

    listed = await devtools.session.list(account_id=account)
    mine = next(s for s in listed if s.session_id == created.session_id)
    assert mine.end_time is None and mine.web_socket_debugger_url is not None
    assert mine.connection_id and mine.connection_start_time and mine.connection_end_time

    version = await devtools.browser.version(created.session_id, account_id=account)
    assert version.browser.startswith(("Chrome/", "HeadlessChrome/"))
    assert version.web_socket_debugger_url == created.web_socket_debugger_url
    targets = await devtools.browser.targets.list(created.session_id, account_id=account)
    page = next(t for t in targets if t.type == "page")
    assert page.web_socket_debugger_url and "/page/" in page.web_socket_debugger_url
    tab = await devtools.browser.targets.create(
        created.session_id, account_id=account, url=f"{asgi_server}/demo/products"
    )
    assert tab.type == "page" and tab.url.endswith("/demo/products")
    fetched = await devtools.browser.targets.get(
        tab.id, account_id=account, session_id=created.session_id
    )
    assert fetched.id == tab.id
    activated = await devtools.browser.targets.activate(
        tab.id, account_id=account, session_id=created.session_id
    )
    assert activated.message
    closed_tab = await devtools.browser.targets.close(
        tab.id, account_id=account, session_id=created.session_id
    )
    assert closed_tab.message
    with pytest.raises(PermissionDeniedError):  # no file: target, by this route either
        await devtools.browser.targets.create(
            created.session_id, account_id=account, url="file:///etc/passwd"
        )

    live = await devtools.browser.live_view.create(
        created.session_id, account_id=account, mode="tab", expires_in_ms=60_000, target_id=page.id
    )
    assert live.id == page.id and live.options.mode == "tab"
    # A live viewer URL on the public address (SITE_URL), here the live server's.
    assert live.devtools_frontend_url.startswith(f"{settings.SITE_URL}/embed/live/")
    viewer_url = live.devtools_frontend_url.replace(settings.SITE_URL, asgi_server, 1)
    with urllib.request.urlopen(viewer_url, timeout=10) as viewer:  # noqa: S310
        assert viewer.status == 200 and b"live" in viewer.read().lower()
    readonly = await devtools.browser.live_view.create(
        created.session_id, account_id=account, guardrails={"mode": "readonly"}
    )
    assert readonly.options.guardrails is not None

    closing = await devtools.browser.delete(created.session_id, account_id=account)
    assert closing.status in ("closing", "closed")
    await wait_for(
        lambda: Run.objects.filter(pk=created.session_id).exclude(status="running").exists(),
        message="the session to close",
    )
    closed = await devtools.session.get(created.session_id, account_id=account)
    assert closed is not None
    assert closed.end_time is not None and closed.end_time >= (closed.start_time or 0)
    assert closed.close_reason == 1 and closed.close_reason_text == "NormalClosure"
    assert closed.web_socket_debugger_url is None
    again = await devtools.browser.delete(created.session_id, account_id=account)
    assert again.status == "closed"
    # Sessions are runs: the activity says who connected.
    types = await db(
        lambda: list(Event.objects.filter(run_id=created.session_id).values_list("type", flat=True))
    )()
    assert "connection.opened" in types and "connection.closed" in types


async def test_recording_is_opt_in_on_this_surface(
    asgi_server: str, host_thread: RuntimeHost, tenant: Tenant
) -> None:
    cf = client(asgi_server, tenant)
    devtools = cf.browser_rendering.devtools
    account = tenant.space.id
    plain = await devtools.browser.create(account_id=account)
    recorded = await devtools.browser.create(account_id=account, recording=True)
    for session in (plain, recorded):
        assert session.web_socket_debugger_url is not None
        await browse(session.web_socket_debugger_url, tenant, f"{asgi_server}/demo/")
        await devtools.browser.delete(session.session_id, account_id=account)
    for session, enabled in ((plain, False), (recorded, True)):
        runtime = await db(lambda s=session: Runtime.objects.get(runs__id=s.session_id))()
        assert runtime.recording_enabled is enabled
    await wait_for(
        lambda: Recording.objects.filter(
            run_id=recorded.session_id, status=Recording.Status.READY
        ).exists(),
        message="the recording to be ready",
    )
    assert not await db(
        lambda: Recording.objects.filter(run_id=plain.session_id, target_count__gt=0).exists()
    )()
    path = f"/client/v4/accounts/{account}/browser-rendering/recording/{recorded.session_id}"
    body = await asyncio.to_thread(get_json, asgi_server + path, tenant)
    assert body["sessionId"] == recorded.session_id and body["duration"] >= 1000
    assert any(events for events in body["events"].values())


def get_json(url: str, tenant: Tenant) -> Any:
    request = urllib.request.Request(url, headers=auth(tenant))  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=20) as answer:  # noqa: S310
            return json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        raise AssertionError(f"{url} answered {exc.code}: {exc.read()!r}") from exc


async def test_a_websocket_acquires_and_connects_in_one_step(
    asgi_server: str, host_thread: RuntimeHost, tenant: Tenant
) -> None:
    account = tenant.space.id
    url = (
        f"{ws(asgi_server)}/client/v4/accounts/{account}/browser-rendering/devtools/browser"
        "?recording=true&keep_alive=600000"
    )
    await browse(url, tenant, f"{asgi_server}/demo/")
    session = await db(lambda: Run.objects.filter(space=tenant.space).latest("started_at"))()
    runtime = await db(lambda: Runtime.objects.get(pk=session.runtime_id))()
    assert runtime.recording_enabled and runtime.keep_alive_ms == 600_000
    listed = await client(asgi_server, tenant).browser_rendering.devtools.session.list(
        account_id=account
    )
    assert session.id in [s.session_id for s in listed]
    await client(asgi_server, tenant).browser_rendering.devtools.browser.delete(
        session.id, account_id=account
    )


def test_every_refusal_is_a_status_with_cloudflares_error_body(
    asgi_server: str, tenant: Tenant, transactional_db: None
) -> None:
    other = make_tenant("initech")
    base = f"{ws(asgi_server)}/client/v4/accounts"
    for url, headers, status in (
        (f"{base}/{tenant.space.id}/browser-rendering/devtools/browser", {}, 401),
        (f"{base}/{other.space.id}/browser-rendering/devtools/browser", auth(tenant), 404),
        (
            f"{base}/{tenant.space.id}/browser-rendering/devtools/browser/run_nope",
            auth(tenant),
            404,
        ),
    ):
        answer = raw_handshake(url, headers)
        assert answer["status"] == status
        assert answer["body"]["success"] is False and answer["body"]["errors"][0]["message"]


def raw_handshake(url: str, headers: dict[str, str]) -> dict[str, Any]:
    import websockets
    from websockets.sync.client import connect

    try:
        connect(url, additional_headers=headers, open_timeout=10).close()
    except websockets.exceptions.InvalidStatus as exc:
        return {"status": exc.response.status_code, "body": json.loads(exc.response.body)}
    raise AssertionError("the handshake was accepted")


async def test_another_spaces_sessions_are_not_found(
    asgi_server: str, host_thread: RuntimeHost, tenant: Tenant
) -> None:
    other = await db(make_tenant)("initech")
    mine = await client(asgi_server, tenant).browser_rendering.devtools.browser.create(
        account_id=tenant.space.id
    )
    theirs = client(asgi_server, other).browser_rendering.devtools
    with pytest.raises(NotFoundError) as not_found:
        await theirs.session.get(mine.session_id, account_id=other.space.id)
    assert not_found.value.status_code == 404
    assert not_found.value.body["success"] is False  # type: ignore[index]
    with pytest.raises(NotFoundError):
        await theirs.browser.delete(mine.session_id, account_id=other.space.id)
    with pytest.raises(NotFoundError):
        await theirs.session.list(account_id=tenant.space.id)
    url = (
        f"{ws(asgi_server)}/client/v4/accounts/{other.space.id}/browser-rendering/devtools/"
        f"browser/{mine.session_id}"
    )
    assert (await asyncio.to_thread(raw_handshake, url, auth(other)))["status"] == 404
    plain = urllib.request.Request(  # noqa: S310
        f"{asgi_server}/client/v4/accounts/{tenant.space.id}/browser-rendering/devtools/browser/"
        f"{mine.session_id}",
        headers=auth(tenant),
    )
    with pytest.raises(urllib.error.HTTPError) as upgrade:
        await asyncio.to_thread(urllib.request.urlopen, plain, timeout=10)
    assert upgrade.value.code == 426
    await client(asgi_server, tenant).browser_rendering.devtools.browser.delete(
        mine.session_id, account_id=tenant.space.id
    )


async def test_seed_003s_mcp_client_drives_a_recorded_session(
    asgi_server: str, host_thread: RuntimeHost, tenant: Tenant
) -> None:
    """Seed 003's own example: chrome-devtools-mcp (npm) configured with the devtools
    websocket URL and the key in --wsHeaders, driven by the `mcp` SDK's stdio client."""
    from mcp import ClientSession, StdioServerParameters
    from mcp.client.stdio import stdio_client

    binary = settings.BASE_DIR / "node_modules" / ".bin" / "chrome-devtools-mcp"
    assert binary.exists(), "`make test` installs chrome-devtools-mcp from package.json"
    account = tenant.space.id
    endpoint = (
        f"{ws(asgi_server)}/client/v4/accounts/{account}/browser-rendering/devtools/browser"
        "?recording=true&keep_alive=600000"
    )
    server = StdioServerParameters(
        command=str(binary),
        args=[
            f"--wsEndpoint={endpoint}",
            f"--wsHeaders={json.dumps(auth(tenant))}",
            "--no-usage-statistics",
            "--no-performance-crux",
        ],
    )
    async with stdio_client(server) as (read, write), ClientSession(read, write) as mcp:
        await mcp.initialize()
        opened = await mcp.call_tool("new_page", {"url": f"{asgi_server}/demo/products"})
        assert not opened.is_error, opened.content
        await asyncio.sleep(1.5)
        pages = await mcp.call_tool("list_pages", {})
        assert "/demo/products" in json.dumps([c.model_dump() for c in pages.content])
    session = await db(lambda: Run.objects.filter(space=tenant.space).latest("started_at"))()
    await client(asgi_server, tenant).browser_rendering.devtools.browser.delete(
        session.id, account_id=account
    )
    await wait_for(
        lambda: Recording.objects.filter(run=session, status=Recording.Status.READY).exists(),
        message="the recording to be ready",
    )
    path = f"/client/v4/accounts/{account}/browser-rendering/recording/{session.id}"
    body = await asyncio.to_thread(get_json, asgi_server + path, tenant)
    hrefs = [
        event["data"].get("href", "")
        for events in body["events"].values()
        for event in events
        if event["type"] == 4  # rrweb's Meta event: the page's address
    ]
    assert any(href.endswith("/demo/products") for href in hrefs), hrefs
