"""A tenant's hosted browser is confined (runs/confinement.py, runtime_host/egress.py,
runtime_host/sandbox.py): it never opens file:, browser-internal or view-source: URLs, by
any route; never reaches link-local addresses or the platform's own services; reaches
private networks only where the deployment allows; cannot see the server's files; keeps
its downloads in its run's folder. Browser tests drive real Chromium through the real
connectUrl of a runtime on the live daphne, as a tenant's script would."""

import asyncio
import os
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings

from runs.activity import activity_items
from runs.confinement import (
    command_refusal,
    destination_refusal,
    download_behaviour,
    parse_address,
    platform_services,
    url_refusal,
)
from runs.models import Artifact, Event, Run
from runtime_host.egress import EgressProxy
from runtime_host.host import RuntimeHost
from runtime_host.sandbox import bwrap_works
from tests.conftest import Tenant, db, services_required, start_runtime, stop_runtime, wait_for

PROBE = "bctrl-confinement-probe-7d1f"
PASSWD_LINE = "root:x:0:0"


def address(value: str) -> Any:
    parsed = parse_address(value)
    assert parsed is not None
    return parsed


# The rules, without a browser ------------------------------------------------------------


@pytest.mark.parametrize(
    "url", ["file:///etc/passwd", "FILE:///x", "chrome://version", "view-source:http://a/"]
)
def test_it_refuses_file_internal_and_view_source_urls(url: str) -> None:
    assert url_refusal(url) is not None


@pytest.mark.parametrize("url", ["https://example.com/", "about:blank", "data:text/html,hi"])
def test_it_lets_web_urls_through(url: str) -> None:
    assert url_refusal(url) is None


@pytest.mark.parametrize(
    "ip",
    [
        "169.254.169.254",
        "0.0.0.0",  # noqa: S104 (an address under test, not bound)
        "fe80::1",
        "::ffff:169.254.169.254",
        "fd00:ec2::254",
    ],
)
def test_link_local_and_metadata_addresses_are_never_reachable(ip: str, settings: Any) -> None:
    settings.BCTRL_BROWSER_PRIVATE_NETWORKS = "*"
    assert destination_refusal(address(ip), 80) is not None


def test_the_platforms_own_servers_are_never_reachable(settings: Any) -> None:
    settings.SITE_URL = "http://127.0.0.1:8000"
    settings.DATABASE_URL = "postgres://postgres@127.0.0.1:5432/bctrl"
    settings.REDIS_URL = "redis://localhost:6379/0"
    settings.BCTRL_BROWSER_PRIVATE_NETWORKS = "*"
    names = {service.name for service in platform_services()}
    assert {"web server", "database", "Redis"} <= names
    for port in (8000, 5432, 6379):
        assert destination_refusal(address("127.0.0.1"), port) is not None
    # The demo shop of the web server stays open to plain HTTP; its admin does not.
    assert destination_refusal(address("127.0.0.1"), 8000, path="/demo/products") is None
    assert destination_refusal(address("127.0.0.1"), 8000, path="/admin/") is not None
    assert destination_refusal(address("127.0.0.1"), 8001) is None


def test_the_hosts_own_ports_are_not_reachable(settings: Any) -> None:
    settings.BCTRL_BROWSER_PRIVATE_NETWORKS = "*"
    assert destination_refusal(address("127.0.0.1"), 9222, own_ports={9222}) is not None
    assert destination_refusal(address("93.184.216.34"), 9222, own_ports={9222}) is None


def test_private_networks_are_closed_unless_listed(settings: Any) -> None:
    settings.BCTRL_BROWSER_PRIVATE_NETWORKS = ""
    for ip in ("127.0.0.1", "10.1.2.3", "192.168.0.10", "::1", "100.64.0.1"):
        assert destination_refusal(address(ip), 80) is not None, ip
    assert destination_refusal(address("93.184.216.34"), 443) is None
    settings.BCTRL_BROWSER_PRIVATE_NETWORKS = "10.0.0.0/8"
    assert destination_refusal(address("10.1.2.3"), 80) is None
    assert destination_refusal(address("192.168.0.10"), 80) is not None


def test_it_refuses_commands_that_would_leave_the_confinement() -> None:
    files = "/tmp/bctrl-rt/browser"
    assert command_refusal("Page.navigate", {"url": "file:///etc/passwd"}, files_dir=files)
    assert command_refusal("Target.createTarget", {"url": "chrome://version"}, files_dir=files)
    assert command_refusal(
        "Target.createBrowserContext", {"proxyServer": "http://evil:1"}, files_dir=files
    )
    assert command_refusal("DOM.setFileInputFiles", {"files": ["/etc/passwd"]}, files_dir=files)
    assert command_refusal(
        "DOM.setFileInputFiles", {"files": [f"{files}/uploads/../../x"]}, files_dir=files
    )
    assert not command_refusal(
        "DOM.setFileInputFiles", {"files": [f"{files}/uploads/a.pdf"]}, files_dir=files
    )
    assert not command_refusal("Page.navigate", {"url": "https://a.test/"}, files_dir=files)


def test_a_clients_downloads_are_kept_in_the_runtimes_folder() -> None:
    files = "/tmp/bctrl-rt/browser"
    chosen = {"behavior": "allow", "downloadPath": "/work/var", "eventsEnabled": True}
    assert download_behaviour(chosen, files_dir=files) == {
        "behavior": "allow",
        "downloadPath": f"{files}/downloads",
        "eventsEnabled": True,
    }
    assert download_behaviour({"behavior": "default"}, files_dir=files)["downloadPath"] == (
        f"{files}/downloads"
    )
    assert download_behaviour({"behavior": "deny", "downloadPath": "/x"}, files_dir=files) == {
        "behavior": "deny"
    }


# The egress proxy on its own -------------------------------------------------------------


async def _exchange(port: int, request: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    return answer


async def test_the_egress_proxy_refuses_a_tunnel_with_403_and_a_request_without_answer(
    settings: Any,
) -> None:
    settings.BCTRL_BROWSER_PRIVATE_NETWORKS = "*"
    blocked: list[tuple[str, str]] = []
    proxy = EgressProxy(on_blocked=lambda url, reason: blocked.append((url, reason)))
    port = await proxy.start()
    try:
        tunnel = await _exchange(port, b"CONNECT 169.254.169.254:443 HTTP/1.1\r\n\r\n")
        plain = await _exchange(
            port, b"GET http://169.254.169.254/latest/meta-data/ HTTP/1.1\r\nHost: x\r\n\r\n"
        )
    finally:
        await proxy.close()
    assert tunnel.startswith(b"HTTP/1.1 403")
    assert plain == b""
    assert [url for url, _ in blocked] == [
        "https://169.254.169.254:443",
        "http://169.254.169.254/latest/meta-data/",
    ]


async def test_a_checked_request_carries_no_second_one_on_its_connection(settings: Any) -> None:
    received = bytearray()

    async def keeps_alive(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # A server that ignores `Connection: close` and would take more requests.
        received.extend(await reader.readuntil(b"\r\n\r\n"))
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\nok")
        await writer.drain()
        while chunk := await reader.read(1024):
            received.extend(chunk)

    server = await asyncio.start_server(keeps_alive, "127.0.0.1", 0)
    web = f"127.0.0.1:{server.sockets[0].getsockname()[1]}"
    settings.SITE_URL = f"http://{web}"
    settings.BCTRL_BROWSER_PRIVATE_NETWORKS = "*"
    proxy = EgressProxy(on_blocked=lambda url, reason: None)
    port = await proxy.start()
    try:
        answer = await _exchange(
            port,
            f"GET http://{web}/demo/ HTTP/1.1\r\nHost: {web}\r\n\r\n"
            f"GET http://{web}/admin/ HTTP/1.1\r\nHost: {web}\r\n\r\n".encode(),
        )
    finally:
        await proxy.close()
        server.close()
    assert answer.startswith(b"HTTP/1.1 200 OK") and b"Connection: close" in answer
    assert b"keep-alive" not in answer
    assert received.count(b"HTTP/1.1") == 1 and b"/admin/" not in received


# Real Chromium through the connectUrl ----------------------------------------------------

pages = {
    "/": b"<html><head><title>Home</title></head><body><h1>Home</h1></body></html>",
    "/iframe-file": b"<html><body><h1>Frame</h1><iframe src='file:///etc/passwd'></iframe>"
    b"</body></html>",
    "/script-file": b"<html><body><h1>Script</h1><script>"
    b"setTimeout(() => { location.href = 'file:///etc/passwd'; }, 10);</script></body></html>",
    "/download": b"<html><body><a id='dl' href='/file.txt'>get</a></body></html>",
}


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/redirect-file":
            self.send_response(302)
            self.send_header("Location", "file:///etc/passwd")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if self.path == "/file.txt":
            body = b"a file of the run\n"
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Disposition", 'attachment; filename="report.txt"')
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        body = pages.get(self.path.split("?")[0], b"")
        self.send_response(200 if body else 404)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def site() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.fixture
def probe_file() -> Iterator[Path]:
    """A file of the server's own, in var/ beside the generated secret key."""
    path = Path(settings.VAR_DIR) / "confinement-probe.txt"
    path.write_text(PROBE)
    yield path
    path.unlink(missing_ok=True)


async def all_text(context: Any) -> str:
    """Everything the browser's pages and frames show."""
    texts = []
    for page in context.pages:
        for frame in page.frames:
            try:
                texts.append(await asyncio.wait_for(frame.content(), 5))
            except Exception:  # noqa: S112 (a frame that is gone or blank shows nothing)
                continue
    return "\n".join(texts)


async def blocked_events(run: Run) -> list[Event]:
    return await wait_for(
        lambda: list(Event.objects.filter(run=run, type="network.blocked").order_by("seq")),
        message="network.blocked events",
    )


@pytest.mark.browser
@pytest.mark.timeout(120)
async def test_a_hosted_browser_never_opens_file_or_internal_urls(
    asgi_server: str, host_thread: RuntimeHost, tenant: Tenant, site: str, probe_file: Path
) -> None:
    from playwright.async_api import Error, async_playwright

    started = await start_runtime(asgi_server, tenant)
    async with async_playwright() as playwright:
        browser = await playwright.chromium.connect_over_cdp(started.connect_url)
        context = await browser.new_context()
        page = await context.new_page()
        for url in (
            f"file://{probe_file}",
            "file:///etc/passwd",
            "chrome://version",
            f"view-source:{site}/",
        ):
            with pytest.raises(Error) as refused:
                await page.goto(url)
            assert "runtime.blocked" in str(refused.value) or "BLOCKED" in str(refused.value)
        session = await context.new_cdp_session(page)
        with pytest.raises(Error, match=r"runtime\.blocked"):
            await session.send("Target.createTarget", {"url": "file:///etc/passwd"})
        # Routes a page takes by itself: a redirect, an iframe, its own script.
        with pytest.raises(Error):
            await (await context.new_page()).goto(f"{site}/redirect-file")
        await (await context.new_page()).goto(f"{site}/iframe-file")
        script_page = await context.new_page()
        await script_page.goto(f"{site}/script-file")
        # A page the client opens blank then sends to a file: URL by script.
        blank = await context.new_page()
        await blank.evaluate("location.href = 'file:///etc/passwd'")
        await asyncio.sleep(1.0)
        shown = await all_text(context)
        assert PROBE not in shown and PASSWD_LINE not in shown
        await browser.close()
    run = await stop_runtime(asgi_server, tenant, started)
    blocked = await blocked_events(run)
    urls = [event.data["url"] for event in blocked]
    assert f"file://{probe_file}" in urls and "chrome://version" in urls
    items = await db(activity_items)(run)
    loud = [item for item in items if item["type"] == "network.blocked"]
    assert loud and all(item["severity"] == "error" for item in loud)
    assert any("file:///etc/passwd" in item["message"] for item in loud)


@pytest.mark.browser
@pytest.mark.timeout(120)
async def test_a_hosted_browser_cannot_reach_metadata_or_the_platforms_services(
    asgi_server: str, host_thread: RuntimeHost, tenant: Tenant, site: str, settings: Any
) -> None:
    from playwright.async_api import Error, async_playwright

    # A server of the deployment on loopback that no browser may reach.
    service = socket.socket()
    service.bind(("127.0.0.1", 0))
    service.listen()
    service.setblocking(False)
    service_url = f"http://127.0.0.1:{service.getsockname()[1]}"
    settings.BCTRL_BROWSER_BLOCKED_SERVICES = [service_url]
    started = await start_runtime(asgi_server, tenant)
    try:
        async with async_playwright() as playwright:
            browser = await playwright.chromium.connect_over_cdp(started.connect_url)
            page = await (await browser.new_context()).new_page()
            await page.goto(f"{site}/")  # other loopback servers: open in the default
            assert await page.title() == "Home"
            outcome = await page.evaluate(
                """async (urls) => Promise.all(urls.map((url) =>
                    fetch(url, {mode: 'no-cors'}).then(() => 'reached', (e) => e.name)))""",
                [
                    "http://169.254.169.254/latest/meta-data/",
                    f"{asgi_server}/admin/",
                    f"{service_url}/",
                    # The browser's own DevTools endpoint, which the host drives it by.
                    started.runtime.cdp_endpoint.replace("ws://", "http://").split("/dev")[0]
                    + "/json/version",
                ],
            )
            assert outcome == ["TypeError"] * 4
            for url in (f"{asgi_server}/admin/", f"{asgi_server}/v1/runs"):
                with pytest.raises(Error, match="ERR_EMPTY_RESPONSE"):
                    await (await page.context.new_page()).goto(url)
            socket_state = await page.evaluate(
                """(url) => new Promise((done) => {
                    const ws = new WebSocket(url);
                    ws.onopen = () => done('open');
                    ws.onerror = () => done('error');
                })""",
                asgi_server.replace("http://", "ws://") + "/ws/host/runtimes/rt_x",
            )
            assert socket_state == "error"
            # The demo shop on the same server stays reachable.
            answer = await page.goto(f"{asgi_server}/demo/")
            assert answer is not None and answer.status == 200
            await browser.close()
        with pytest.raises(BlockingIOError):
            service.accept()  # nothing ever connected to it
    finally:
        service.close()
    run = await stop_runtime(asgi_server, tenant, started)
    blocked = await blocked_events(run)
    urls = " ".join(event.data["url"] for event in blocked)
    assert "169.254.169.254" in urls and "/admin/" in urls and service_url in urls
    assert all(event.data["reason"] for event in blocked)
    assert any(event.page_id for event in blocked)
    usage = await db(lambda: Event.objects.get(run=run, type="network.usage"))()
    assert usage.data["bytesIn"] > 0 and usage.data["bytesOut"] > 0


@pytest.mark.browser
@pytest.mark.timeout(120)
async def test_private_networks_close_in_production_unless_listed(
    asgi_server: str, host_thread: RuntimeHost, tenant: Tenant, site: str, settings: Any
) -> None:
    from playwright.async_api import Error, async_playwright

    started = await start_runtime(asgi_server, tenant)
    async with async_playwright() as playwright:
        browser = await playwright.chromium.connect_over_cdp(started.connect_url)
        context = await browser.new_context()
        settings.BCTRL_BROWSER_PRIVATE_NETWORKS = ""
        with pytest.raises(Error, match="ERR_EMPTY_RESPONSE"):
            await (await context.new_page()).goto(f"{site}/")
        settings.BCTRL_BROWSER_PRIVATE_NETWORKS = "127.0.0.0/8"
        page = await context.new_page()
        await page.goto(f"{site}/")
        assert await page.title() == "Home"
        await browser.close()
    await stop_runtime(asgi_server, tenant, started)


@pytest.mark.browser
@pytest.mark.timeout(120)
async def test_the_browser_process_sees_neither_the_project_nor_var(
    asgi_server: str, host_thread: RuntimeHost, tenant: Tenant, probe_file: Path
) -> None:
    if not bwrap_works():
        reason = "bubblewrap is not installed or cannot make namespaces here"
        if services_required():
            pytest.fail(f"REQUIRE_SERVICES=1 but {reason}")
        pytest.skip(reason)
    started = await start_runtime(asgi_server, tenant)
    managed = host_thread.browsers[started.runtime.id]
    assert managed.pid is not None
    view = Path(f"/proc/{managed.pid}/root")
    assert (view / "usr/lib/chromium").is_dir()
    assert (view / str(managed.download_dir).lstrip("/")).is_dir()
    for hidden in (probe_file, Path(settings.VAR_DIR), Path(settings.BASE_DIR), Path("/root")):
        assert not (view / str(hidden).lstrip("/")).exists(), hidden
    environment = Path(f"/proc/{managed.pid}/environ").read_bytes().split(b"\0")
    names = {entry.split(b"=", 1)[0].decode() for entry in environment if entry}
    assert not names & {"SECRET_KEY", "DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE"}
    await stop_runtime(asgi_server, tenant, started)


@pytest.mark.browser
@pytest.mark.timeout(120)
async def test_downloads_stay_in_the_runs_folder_and_uploads_come_only_from_its_own(
    asgi_server: str, host_thread: RuntimeHost, tenant: Tenant, site: str, tmp_path: Path
) -> None:
    from playwright.async_api import Error, async_playwright

    started = await start_runtime(asgi_server, tenant)
    async with async_playwright() as playwright:
        browser = await playwright.chromium.connect_over_cdp(started.connect_url)
        context = await browser.new_context()
        page = await context.new_page()
        session = await browser.new_browser_cdp_session()
        # Applied to the runtime's own folder: the platform keeps the run's downloads.
        await session.send(
            "Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(tmp_path)}
        )
        await page.goto(f"{site}/download")
        await page.click("#dl")
        await wait_for(
            lambda: Artifact.objects.filter(run=started.run, kind=Artifact.Kind.DOWNLOAD).exists(),
            message="the download artifact",
        )
        assert os.listdir(tmp_path) == []
        await page.set_content("<input type=file id=f>")
        page_session = await context.new_cdp_session(page)
        document = await page_session.send("DOM.getDocument")
        node = await page_session.send(
            "DOM.querySelector", {"nodeId": document["root"]["nodeId"], "selector": "#f"}
        )
        with pytest.raises(Error, match=r"runtime\.blocked"):
            await page_session.send(
                "DOM.setFileInputFiles", {"files": ["/etc/passwd"], "nodeId": node["nodeId"]}
            )
        with pytest.raises(Error, match=r"runtime\.blocked"):
            await browser.new_context(proxy={"server": "http://127.0.0.1:9"})
        await browser.close()
    await stop_runtime(asgi_server, tenant, started)
