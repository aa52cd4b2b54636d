"""A start's upstream proxy: validated, its credentials never answered; in real Chromium
the run's traffic goes through an HTTP or a SOCKS5 proxy that asks for a password (the
page loads, the proxy saw the destination, the run counts the bytes), a proxy that refuses
the credentials or that sits on a forbidden address leaves the page with a network error
and the run with a blocked event."""

import asyncio
import base64
import struct
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from runs.models import Event, Run, Runtime
from runtime_host.host import RuntimeHost
from runtimes import services as runtime_services
from tests.conftest import Tenant, db, fake_host, start_runtime, stop_runtime
from tests.test_runtime_options import echo  # noqa: F401 - the echo site, a fixture

USER, PASSWORD = "agent", "s3cret-proxy-pass"


@dataclass
class Proxy:
    """A forwarding proxy in a thread: HTTP CONNECT with Basic auth, or SOCKS5 with a
    username and password. `seen` holds the destinations it opened."""

    kind: str
    port: int = 0
    seen: list[str] = field(default_factory=list)
    loop: asyncio.AbstractEventLoop | None = None

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            target = await (
                self.http(reader, writer) if self.kind == "http" else self.socks(reader, writer)
            )
            if target is None:
                return
            host, port = target
            self.seen.append(f"{host}:{port}")
            up_reader, up_writer = await asyncio.open_connection(host, port)

            async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
                while chunk := await source.read(65536):
                    sink.write(chunk)
                    await sink.drain()
                sink.close()

            await asyncio.gather(
                pipe(reader, up_writer), pipe(up_reader, writer), return_exceptions=True
            )
        finally:
            writer.close()

    async def http(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> tuple[str, int] | None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
        method, authority, _ = head.split("\r\n", 1)[0].split(" ")
        expected = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        if f"Proxy-Authorization: Basic {expected}" not in head:
            writer.write(b"HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n")
            await writer.drain()
            return None
        assert method == "CONNECT"
        host, _, port = authority.rpartition(":")
        writer.write(b"HTTP/1.1 200 Connection Established\r\n\r\n")
        await writer.drain()
        return host, int(port)

    async def socks(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> tuple[str, int] | None:
        _, count = await reader.readexactly(2)
        methods = await reader.readexactly(count)
        if 2 not in methods:
            writer.write(bytes([5, 0xFF]))
            return None
        writer.write(bytes([5, 2]))
        _, size = await reader.readexactly(2)
        user = (await reader.readexactly(size)).decode()
        size = (await reader.readexactly(1))[0]
        password = (await reader.readexactly(size)).decode()
        if (user, password) != (USER, PASSWORD):
            writer.write(bytes([1, 1]))
            return None
        writer.write(bytes([1, 0]))
        _, _, _, kind = await reader.readexactly(4)
        if kind == 3:
            host = (await reader.readexactly((await reader.readexactly(1))[0])).decode()
        else:
            raw = await reader.readexactly(4 if kind == 1 else 16)
            host = ".".join(str(b) for b in raw) if kind == 1 else raw.hex()
        (port,) = struct.unpack("!H", await reader.readexactly(2))
        writer.write(bytes([5, 0, 0, 1, 0, 0, 0, 0, 0, 0]))
        return host, port


def serve(proxy: Proxy) -> Iterator[Proxy]:
    ready = threading.Event()

    def run() -> None:
        loop = asyncio.new_event_loop()
        proxy.loop = loop
        server = loop.run_until_complete(asyncio.start_server(proxy.handle, "127.0.0.1", 0))
        proxy.port = server.sockets[0].getsockname()[1]
        ready.set()
        loop.run_forever()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    ready.wait(5)
    yield proxy
    assert proxy.loop is not None
    proxy.loop.call_soon_threadsafe(proxy.loop.stop)


@pytest.fixture(scope="module")
def http_proxy() -> Iterator[Proxy]:
    yield from serve(Proxy("http"))


@pytest.fixture(scope="module")
def socks_proxy() -> Iterator[Proxy]:
    yield from serve(Proxy("socks5"))


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "proxy",
    [
        "http://proxy:3128",
        {"server": "ftp://proxy:21"},
        {"server": "http://proxy"},
        {"server": "http://proxy:0"},
        {"server": "http://proxy:70000"},
        {"server": "http://user:pass@proxy:3128"},
        {"server": "http://proxy:3128/path"},
        {"server": "http://proxy:3128", "password": "no user"},
        {"server": "http://proxy:3128", "bypass": "*"},
    ],
)
def test_a_bad_proxy_is_422_and_nothing_starts(tenant: Tenant, proxy: Any) -> None:
    runtime = runtime_services.runtime_create(space=tenant.space, name="chrome")
    with fake_host():
        answer = tenant.client.post(
            f"/v1/runtimes/{runtime.id}/start", {"proxy": proxy}, format="json"
        )
    assert answer.status_code == 422
    assert "proxy" in answer.json()["error"]["details"]
    assert not runtime.runs.exists()


@pytest.mark.django_db(transaction=True)
def test_the_credentials_are_never_answered_nor_kept_in_clear(tenant: Tenant) -> None:
    runtime = runtime_services.runtime_create(space=tenant.space, name="chrome")
    proxy = {"server": "socks5://proxy.example.com:1080", "username": USER, "password": PASSWORD}
    with fake_host():
        answer = tenant.client.post(
            f"/v1/runtimes/{runtime.id}/start", {"proxy": proxy}, format="json"
        ).json()
    run = tenant.client.get(f"/v1/runs/{answer['runId']}").json()
    assert run["browser"] == {"proxy": {"server": "socks5://proxy.example.com:1080"}}
    stored = Run.objects.get(pk=answer["runId"])
    assert PASSWORD.encode() not in bytes(stored.browser_secrets)
    assert USER not in str(stored.browser_options)


async def visit_through(
    server: str, tenant: Tenant, page_url: str, proxy: dict[str, Any]
) -> tuple[Run, str | None]:
    """Starts a runtime with `proxy`, opens `page_url` and answers the run once stopped,
    with the page's text, or None when the page could not load."""
    from playwright.async_api import Error, async_playwright

    started = await start_runtime(server, tenant, {"proxy": proxy})
    text: str | None = None
    async with async_playwright() as playwright:
        browser = await playwright.chromium.connect_over_cdp(started.connect_url)
        page = await browser.contexts[0].new_page()
        try:
            await page.goto(page_url, timeout=15_000)
            text = await page.text_content("#headers")
        except Error:
            text = None
        await browser.close()
    return await stop_runtime(server, tenant, started), text


def blocked_reasons(run: Run) -> list[str]:
    return [e.data["reason"] for e in Event.objects.filter(run=run, type="network.blocked")]


@pytest.mark.browser
@pytest.mark.timeout(180)
async def test_traffic_goes_through_the_upstream_proxy(
    asgi_server: str,
    host_thread: RuntimeHost,
    tenant: Tenant,
    echo: str,  # noqa: F811
    http_proxy: Proxy,
    socks_proxy: Proxy,
) -> None:
    destination = echo.removeprefix("http://")
    for proxy in (http_proxy, socks_proxy):
        server = f"{proxy.kind}://127.0.0.1:{proxy.port}"
        run, text = await visit_through(
            asgi_server,
            tenant,
            echo + "/through",
            {"server": server, "username": USER, "password": PASSWORD},
        )
        assert text is not None and "userAgent" in text, proxy.kind
        assert destination in proxy.seen, (proxy.kind, proxy.seen)
        assert run.network_bytes_in > 500 and run.network_bytes_out > 100
        assert run.browser_options["proxy"] == {"server": server}

    wrong, text = await visit_through(
        asgi_server,
        tenant,
        echo + "/wrong",
        {"server": f"http://127.0.0.1:{http_proxy.port}", "username": USER, "password": "nope"},
    )
    assert text is None
    reasons = await db(blocked_reasons)(wrong)
    assert any("answered 407" in reason for reason in reasons), reasons
    assert all(PASSWORD not in reason and "nope" not in reason for reason in reasons)

    metadata, text = await visit_through(
        asgi_server, tenant, echo + "/metadata", {"server": "http://169.254.169.254:80"}
    )
    assert text is None
    reasons = await db(blocked_reasons)(metadata)
    assert any("upstream proxy http://169.254.169.254:80 is refused" in r for r in reasons)
    runtime = await db(Runtime.objects.get)(pk=metadata.runtime_id)
    assert runtime.status == "stopped"
