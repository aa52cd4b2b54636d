"""Viewer embeds in real Chromium, framed by a host page of another origin.

The embed is served by the live daphne server on http://127.0.0.1:<port>; the host page
by a tiny http.server addressed as http://localhost:<port2>: another origin and another
site, so the embed is a third-party iframe. Chromium is launched with third-party
cookies blocked (`--test-third-party-cookie-phaseout`); the embed needs none and sets
none (checked).
"""

import os
import threading
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from django.utils import timezone

from runs.models import Run
from tests.conftest import CHROMIUM, CHROMIUM_ARGS, Tenant
from tests.test_replay import T0, page_chunk, ready_recording, store_target
from tests.test_replay_browser import IFRAME_TEXT
from viewers.leases import lease_mint
from viewers.models import ViewerLease

pytestmark = [pytest.mark.browser]

RECORDED_TEXT = "Hello from the embedded recording"


class HostPages:
    """An HTTP server of one HTML page, the product that embeds a viewer, addressed by
    `hostname` (Chromium resolves every `*.localhost` to the loopback address)."""

    def __init__(self, hostname: str = "localhost") -> None:
        self.html = "<!doctype html><title>host</title>"
        pages = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = pages.html.encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.origin = f"http://{hostname}:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def embedding(self, src: str) -> str:
        self.html = f"""<!doctype html>
<html><head><title>Host product</title></head><body>
<h1>Our product</h1>
<script>
  window.bctrlMessages = [];
  window.addEventListener("message", (event) => {{
    window.bctrlMessages.push({{origin: event.origin, data: event.data}});
  }});
</script>
<iframe id="viewer" src="{src}" width="1200" height="760"></iframe>
</body></html>"""
        return self.origin + "/"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def host() -> Iterator[HostPages]:
    pages = HostPages()
    yield pages
    pages.close()


@pytest.fixture(scope="module")
def cookieless_chromium() -> Iterator[Any]:
    """Chromium as a browser that blocks third-party cookies."""
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"Chromium is not installed at {CHROMIUM}; `make test` installs it")
    from playwright.sync_api import sync_playwright

    os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=[*CHROMIUM_ARGS, "--test-third-party-cookie-phaseout"],
        )
        yield browser
        browser.close()


@pytest.fixture
def tab(cookieless_chromium: Any) -> Iterator[Any]:
    context = cookieless_chromium.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    yield page
    context.close()


@pytest.fixture
def live_tenant(transactional_db: None, tenant: Tenant) -> Tenant:
    return tenant


def recorded_run(tenant: Tenant, origins: list[str]) -> Run:
    tenant.space.allowed_embed_origins = origins
    tenant.space.save()
    run = Run.objects.create(space=tenant.space, name="embedded run")
    recording = ready_recording(run, duration_ms=6000)
    store_target(
        recording,
        "page-1",
        [page_chunk(T0, "Welcome", RECORDED_TEXT, duration_ms=6000)],
        markers=[{"time": T0, "kind": "navigation", "label": "Welcome"}],
    )
    return run


def embed_frame(page: Any, timeout_s: float = 10) -> Any:
    """The iframe's frame, once it has navigated somewhere (the embed or an error page)."""
    import time

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for frame in page.frames:
            if frame != page.main_frame and frame.url not in ("", "about:blank"):
                return frame
        page.wait_for_timeout(100)
    raise AssertionError(f"no iframe navigated: {[f.url for f in page.frames]}")


def test_replay_plays_in_a_third_party_iframe_and_posts_the_playhead(
    tab: Any, asgi_server: str, live_tenant: Tenant, host: HostPages
) -> None:
    run = recorded_run(live_tenant, [host.origin])
    token = lease_mint(run=run, kind="replay").token
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    responses: list[Any] = []
    tab.on("response", lambda response: responses.append(response))
    tab.goto(host.embedding(f"{asgi_server}/embed/replay/{token}"))

    frame = embed_frame(tab)
    assert frame.url == f"{asgi_server}/embed/replay/{token}"
    frame.wait_for_function(f"() => ({IFRAME_TEXT})().includes({RECORDED_TEXT!r})", timeout=15_000)
    frame.wait_for_function(
        "() => document.querySelector('[data-replay]').dataset.state === 'paused'"
    )
    # Paused at the start: the first playhead message came with the first seek.
    tab.wait_for_function(
        "() => window.bctrlMessages.some(m => m.data && m.data.type === 'bctrl.replay.time')"
    )
    frame.click("[data-play]")
    tab.wait_for_function(
        """() => window.bctrlMessages.filter(
             m => m.data && m.data.type === 'bctrl.replay.time' && m.data.playing
           ).length >= 3""",
        timeout=10_000,
    )
    messages = tab.evaluate("window.bctrlMessages")
    times = [m["data"] for m in messages if m["data"].get("type") == "bctrl.replay.time"]
    assert {m["origin"] for m in messages} == {asgi_server}
    assert all(set(m) == {"type", "timeMs", "playing", "target", "epochMs"} for m in times)
    assert all(m["target"] == "page-1" for m in times)
    playing = [m["timeMs"] for m in times if m["playing"]]
    assert playing == sorted(playing) and playing[-1] > 0
    assert token not in str(messages)

    # No activity panel without the component; no cookie anywhere; no errors.
    assert frame.locator(".replay-side").is_hidden()
    assert tab.context.cookies() == []
    embed_responses = [r for r in responses if r.url.startswith(f"{asgi_server}/embed/")]
    assert embed_responses
    assert all("set-cookie" not in r.headers for r in embed_responses)
    assert errors == []
    assert ViewerLease.objects.get(run=run).use_count == 1


def test_an_origin_not_allowed_cannot_frame_the_embed(
    tab: Any, asgi_server: str, live_tenant: Tenant, host: HostPages
) -> None:
    run = recorded_run(live_tenant, ["http://example.com"])
    token = lease_mint(run=run, kind="replay").token
    console: list[str] = []
    tab.on("console", lambda message: console.append(message.text))
    tab.goto(host.embedding(f"{asgi_server}/embed/replay/{token}"))
    tab.wait_for_timeout(1500)

    frame = embed_frame(tab)
    assert frame.url.startswith("chrome-error://") or frame.url.startswith(asgi_server)
    # Whatever the frame shows, it is not the player.
    assert frame.locator("[data-replay]").count() == 0
    assert any("frame-ancestors" in text for text in console), console


def test_an_expired_link_says_so_inside_the_frame(
    tab: Any, asgi_server: str, live_tenant: Tenant, host: HostPages
) -> None:
    run = recorded_run(live_tenant, [host.origin])
    minted = lease_mint(run=run, kind="replay", lifetime_s=600)
    ViewerLease.objects.filter(pk=minted.lease.pk).update(
        expires_at=timezone.now() - timedelta(seconds=5)
    )
    tab.goto(host.embedding(f"{asgi_server}/embed/replay/{minted.token}"))
    frame = embed_frame(tab)
    frame.wait_for_selector("[data-refused]")
    assert frame.inner_text("[data-refused]") == "This viewer link has expired. Ask for a new one."
    assert run.id not in frame.content()
    assert frame.locator("[data-replay]").count() == 0


def test_activity_embed_follows_the_stream_until_revoked(
    tab: Any, asgi_server: str, live_tenant: Tenant, host: HostPages
) -> None:
    from runs import services
    from viewers.leases import lease_revoke

    live_tenant.space.allowed_embed_origins = [host.origin]
    live_tenant.space.save()
    run = services.run_create(space=live_tenant.space, name="watched run")
    minted = lease_mint(run=run, kind="activity")
    tab.goto(host.embedding(f"{asgi_server}/embed/activity/{minted.token}"))
    frame = embed_frame(tab)
    frame.wait_for_selector(".tl-item[data-type='run.started']")
    services.events_append(
        run=run,
        events=[{"type": "navigation", "page_id": "p1", "data": {"url": "https://shop.example/"}}],
    )
    frame.wait_for_selector(".tl-item[data-type='browser.navigate'], .tl-item >> nth=1")
    lease_revoke(lease=minted.lease)
    frame.wait_for_function(
        "() => document.querySelector('[data-embed-activity]').dataset.state === 'refused'",
        timeout=10_000,
    )
    assert frame.inner_text("[data-activity-status]") == "This viewer link was revoked."
    assert tab.context.cookies() == []


# Where embeds open: any site, or the space's list -------------------------------------

LIVE_PAGE = "<!doctype html><title>Checkout under watch</title><h1>Pay now</h1>"


def embedding_all(pages: HostPages, server: str, tokens: dict[str, str]) -> str:
    """A page of `pages`' origin with the three embeds, and what a live view's socket
    opened from that page itself answers (`window.liveSocket`)."""
    ws = server.replace("http://", "ws://", 1) + f"/ws/live/{tokens['live']}"
    frames = "".join(
        f'<iframe name="{kind}" src="{server}/embed/{kind}/{token}" width="900" height="600">'
        "</iframe>"
        for kind, token in tokens.items()
    )
    pages.html = f"""<!doctype html>
<html><head><title>Host product</title></head><body>
<h1>Our product</h1>
{frames}
<script>
  window.liveSocket = new Promise((resolve) => {{
    const socket = new WebSocket({ws!r});
    socket.onmessage = (event) => {{
      resolve("message:" + JSON.parse(event.data).type);
      socket.close();
    }};
    socket.onclose = (event) => resolve("closed:" + event.code);
  }});
</script>
</body></html>"""
    return pages.origin + "/"


def shared_run(
    tenant: Tenant, started: dict[str, Any], chromium: Any
) -> tuple[dict[str, str], Any]:
    """A replay of a recorded run, the activity and a live view with control of a running
    one: their tokens, and the automation's browser (close it after)."""
    automation = chromium.browser_type.connect_over_cdp(started["connectUrl"])
    automation.new_context().new_page().set_content(LIVE_PAGE)
    recorded = recorded_run(tenant, list(tenant.space.allowed_embed_origins))
    live = Run.objects.get(pk=started["runId"])
    tokens = {
        "replay": lease_mint(run=recorded, kind="replay").token,
        "activity": lease_mint(run=live, kind="activity").token,
        "live": lease_mint(run=live, kind="live", control="input").token,
    }
    return tokens, automation


def assert_embeds_open(tab: Any) -> None:
    replay, activity, live = (tab.frame(name=kind) for kind in ("replay", "activity", "live"))
    replay.wait_for_function(f"() => ({IFRAME_TEXT})().includes({RECORDED_TEXT!r})", timeout=15_000)
    activity.wait_for_selector(".tl-item[data-type='run.started']")
    live.wait_for_function(
        "() => Number(document.querySelector('[data-live-view]').dataset.frames || 0) > 0",
        timeout=20_000,
    )
    live.wait_for_selector(".live-tab:has-text('Checkout under watch')")
    times = live.eval_on_selector_all(
        "[data-activity-list] > .tl-item",
        "items => items.map(i => i.querySelector('time').dateTime)",
    )
    assert times and times[0] == max(times)  # the live view's activity: newest on top
    live.click("[data-live-control]")  # the lease's control: "input" works framed too
    live.wait_for_selector("[data-live-view][data-control='you']")
    assert tab.evaluate("window.liveSocket") == "message:hello"


@pytest.fixture
def elsewhere() -> Iterator[dict[str, HostPages]]:
    """Two more sites, whose hosts are not among ALLOWED_HOSTS (whose pages may always
    open a live view's socket): only the embed origins let them in."""
    sites = {name: HostPages(f"{name}.localhost") for name in ("allowed", "third")}
    yield sites
    for site in sites.values():
        site.close()


def test_a_new_space_is_embedded_by_a_page_of_another_origin(
    tab: Any,
    asgi_server: str,
    live_tenant: Tenant,
    started: dict[str, Any],
    elsewhere: dict[str, HostPages],
) -> None:
    assert live_tenant.space.allowed_embed_origins == ["*"]
    tokens, automation = shared_run(live_tenant, started, tab.context.browser)
    console: list[str] = []
    tab.on("console", lambda message: console.append(message.text))
    tab.goto(embedding_all(elsewhere["third"], asgi_server, tokens))
    assert_embeds_open(tab)
    assert not [text for text in console if "frame-ancestors" in text]
    tab.screenshot(path="/tmp/embeds-any-site.png")
    automation.close()


def test_a_restricted_space_is_embedded_by_its_origin_and_refused_elsewhere(
    tab: Any,
    asgi_server: str,
    live_tenant: Tenant,
    started: dict[str, Any],
    elsewhere: dict[str, HostPages],
) -> None:
    from runs.services import space_embed_origins_set

    allowed, third = elsewhere["allowed"], elsewhere["third"]
    space_embed_origins_set(space=live_tenant.space, origins=[allowed.origin])
    tokens, automation = shared_run(live_tenant, started, tab.context.browser)
    try:
        # A third origin: every frame is blocked, and the live socket refused.
        console: list[str] = []
        tab.on("console", lambda message: console.append(message.text))
        tab.goto(embedding_all(third, asgi_server, tokens))
        assert tab.evaluate("window.liveSocket") == "closed:1006"
        tab.wait_for_timeout(1000)
        blocked = [text for text in console if "frame-ancestors" in text]
        assert len(blocked) == 3, console
        assert all(allowed.origin in text for text in blocked)
        for kind in ("replay", "activity", "live"):
            frame = tab.frame(name=kind)
            assert frame is not None
            assert frame.url.startswith("chrome-error://"), (kind, frame.url)
            shown = frame.locator("[data-replay], [data-embed-activity], [data-live-view]")
            assert shown.count() == 0

        # The allowed origin: all three open, and its socket too.
        tab.goto(embedding_all(allowed, asgi_server, tokens))
        assert_embeds_open(tab)
        tab.screenshot(path="/tmp/embeds-allowed-origin.png")
    finally:
        automation.close()
