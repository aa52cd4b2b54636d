"""The replay page's inspector in real Chromium against the live daphne server: tabs of
the run named by their pages, rows of every inspector tab that seek the player, a
highlighted row that follows playback, filters, details with redacted headers, and the
same inspector in a replay embed whose lease asks for it.

Recordings are built by hand as tests/test_replay_browser.py builds them (chunk files
and their index, as processing writes them); the rows come from events and commands
stored as the runtime host stores them."""

from datetime import UTC, datetime
from typing import Any

import pytest

from runs import services
from runs.models import Command, Run
from tests.conftest import Tenant, sign_in
from tests.test_replay import T0, page_chunk, ready_recording, store_target
from tests.test_replay_browser import wait_for_iframe_text
from viewers.leases import lease_mint

pytestmark = [pytest.mark.browser]

SECRET = "Bearer sk-live-SECRET-42"
FAVICON = (
    "data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 16 16'%3E"
    "%3Crect width='16' height='16' fill='%234f46e5'/%3E%3C/svg%3E"
)
# Requests of the polling page, one every POLL_MS from T0 + 2 s: enough rows that the
# list scrolls.
POLL_MS = 500
POLLS = 100


@pytest.fixture
def live_setup(transactional_db: None, tenant: Tenant, member: Any) -> Tenant:
    return tenant


def at(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def with_favicon(chunk: list[dict[str, Any]], href: str) -> list[dict[str, Any]]:
    """`chunk` whose page's head links `href` as its icon."""
    html = chunk[1]["data"]["node"]["childNodes"][1]
    head = html["childNodes"][0]
    head["childNodes"].append(
        {
            "type": 2,
            "tagName": "link",
            "attributes": {"rel": "icon", "href": href},
            "childNodes": [],
            "id": 9999,
        }
    )
    return chunk


def seed_inspected_run(tenant: Tenant) -> Run:
    run = Run.objects.create(space=tenant.space, name="inspected", started_at=at(T0 - 3000))
    recording = ready_recording(run, duration_ms=60_000)
    store_target(
        recording,
        "page-1",
        [
            page_chunk(T0, "Welcome", "Hello from the recording", duration_ms=30_000),
            page_chunk(T0 + 30_000, "Checkout", "The checkout page", duration_ms=30_000),
        ],
    )
    store_target(
        recording,
        "page-2",
        [
            with_favicon(
                page_chunk(
                    T0 + 10_000, "Docs", "A second tab", duration_ms=4000, site="docs.example"
                ),
                FAVICON,
            )
        ],
    )
    # A tab that held one frame only.
    store_target(recording, "page-3", [page_chunk(T0 + 20_000, "Blink", "gone", duration_ms=0)[:2]])
    events: list[dict[str, Any]] = [
        # Before the recorder's first frame: the page's own document request.
        {
            "type": "network.request",
            "time": at(T0 - 1500),
            "page_id": "page-1",
            "data": {"requestId": "doc", "method": "GET", "url": "https://shop.example/"},
        },
        {
            "type": "network.request",
            "time": at(T0 + 12_000),
            "page_id": "page-1",
            "data": {
                "requestId": "cart",
                "method": "POST",
                "url": "https://shop.example/api/cart",
                "resourceType": "Fetch",
                "headers": {"Authorization": SECRET, "Accept": "application/json"},
            },
        },
        {
            "type": "network.response",
            "time": at(T0 + 12_100),
            "page_id": "page-1",
            "data": {
                "requestId": "cart",
                "url": "https://shop.example/api/cart",
                "status": 201,
                "encodedDataLength": 321,
                "headers": {"Set-Cookie": "sid=SECRET-COOKIE", "Content-Type": "application/json"},
            },
        },
        {
            "type": "network.request",
            "time": at(T0 + 41_000),
            "page_id": "page-1",
            "data": {
                "requestId": "pay",
                "method": "POST",
                "url": "https://shop.example/api/pay",
                "resourceType": "XHR",
            },
        },
        {
            "type": "network.response",
            "time": at(T0 + 41_300),
            "page_id": "page-1",
            "data": {"requestId": "pay", "url": "https://shop.example/api/pay", "status": 502},
        },
        {
            "type": "network.request",
            "time": at(T0 + 11_000),
            "page_id": "page-2",
            "data": {"requestId": "d", "method": "GET", "url": "https://docs.example/guide"},
        },
        {
            "type": "page.error",
            "time": at(T0 + 42_000),
            "page_id": "page-1",
            "data": {
                "message": "TypeError: total is undefined",
                "stack": "TypeError: total is undefined\n    at pay (checkout.js:12:5)",
            },
        },
        {
            "type": "console.message",
            "time": at(T0 + 5000),
            "page_id": "page-1",
            "data": {"level": "log", "text": "cart ready"},
        },
    ]
    for poll in range(POLLS):
        events.append(
            {
                "type": "network.request",
                "time": at(T0 + 2000 + poll * POLL_MS),
                "page_id": "page-1",
                "data": {
                    "requestId": f"poll-{poll}",
                    "method": "GET",
                    "url": f"https://shop.example/api/status?n={poll}",
                    "resourceType": "Fetch",
                },
            }
        )
    services.events_append(run=run, events=events)
    Command.objects.create(
        run=run,
        method="Page.navigate",
        params={"url": "https://shop.example/checkout"},
        page_id="page-1",
        started_at=at(T0 + 29_500),
        duration_ms=400,
    )
    return run


def player_time(page: Any) -> float:
    value: float = page.evaluate("window.bctrlReplay.time()")
    return value


def wait_until_ready(page: Any) -> None:
    wait_for_iframe_text(page, "Hello from the recording")
    page.wait_for_function(
        "() => document.querySelector('[data-replay]').dataset.decorations === 'ready'"
        " && document.querySelector('[data-inspector]').dataset.inspector === 'ready'"
    )


def test_clicking_inspector_rows_seeks_the_player(
    page: Any, asgi_server: str, live_setup: Tenant
) -> None:
    run = seed_inspected_run(live_setup)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.set_viewport_size({"width": 1440, "height": 900})
    sign_in(page, asgi_server, f"/runs/{run.id}/replay")
    wait_until_ready(page)

    # Tabs of the run named by their pages' titles, the favicon where the page had one.
    names = page.locator(".target-tab .tab-name").all_inner_texts()
    assert names == ["Welcome", "Docs", "Blink"]
    assert page.locator(".target-tab").nth(1).locator("img.tab-icon").get_attribute("src") == (
        FAVICON
    )
    assert "Tab 1" not in page.locator("[data-target-tabs]").inner_text()

    # The activity tab opens first; nothing reads "-0:00", rows before the first frame
    # read 0:00.
    times = page.locator(".inspector-panel:not([hidden]) .rt-time").all_inner_texts()
    assert times and not any(text.startswith("-") for text in times)

    page.get_by_role("tab", name="Network").click()
    network = page.locator("[data-inspector-panel='network']")
    assert network.is_visible()
    assert network.locator(".rt-item").count() == POLLS + 4
    first = network.locator(".rt-item").first
    assert first.locator(".rt-time").inner_text() == "0:00"
    assert "before-start" in (first.get_attribute("class") or "")

    # A click on the cart request moves the player's clock to its time (±0.5 s).
    network.locator(".rt-row", has_text="POST /api/cart").click()
    page.wait_for_function(f"() => Math.abs(window.bctrlReplay.time() - {T0 + 12_000}) < 500")
    assert "0:12 /" in page.locator("[data-clock]").inner_text()
    current = network.locator(".rt-item.is-current")
    assert current.count() == 1 and "POST /api/cart" in current.inner_text()
    # Its details, with the token and the cookie redacted.
    detail = page.locator("[data-inspector-detail]")
    assert detail.is_visible()
    detail_text = detail.inner_text()
    assert "Authorization" in detail_text and "Set-Cookie" in detail_text
    assert "[redacted]" in detail_text and "201" in detail_text
    assert "SECRET" not in page.content()
    page.screenshot(path="/tmp/replay-inspector-network.png")

    # A row in the second chunk: the player loads it and stands at the row's time.
    network.locator(".rt-row", has_text="POST /api/pay").click()
    wait_for_iframe_text(page, "The checkout page")
    assert abs(player_time(page) - (T0 + 41_000)) < 500
    assert "sev-error" in (network.locator(".rt-item.is-current").get_attribute("class") or "")

    # A row of another tab of the run switches to that tab, at the row's time.
    network.locator(".rt-row", has_text="GET /guide").click()
    wait_for_iframe_text(page, "A second tab")
    assert page.locator(".target-tab.active .tab-name").inner_text() == "Docs"
    assert abs(player_time(page) - (T0 + 11_000)) < 500
    page.locator(".target-tab").first.click()
    wait_until_ready(page)

    # Search and filter.
    network.locator("[data-inspector-search]").fill("api/pay")
    assert network.locator(".rt-item").count() == 1
    network.locator("[data-inspector-search]").fill("")
    network.locator("[data-inspector-filter]").select_option("failed")
    assert network.locator(".rt-label").all_inner_texts() == ["POST /api/pay"]

    # Console: the page error with its stack; a click seeks there too.
    page.get_by_role("tab", name="Console").click()
    console = page.locator("[data-inspector-panel='console']")
    console.locator(".rt-row", has_text="TypeError: total is undefined").click()
    page.wait_for_function(f"() => Math.abs(window.bctrlReplay.time() - {T0 + 42_000}) < 500")
    assert "at pay (checkout.js:12:5)" in detail.inner_text()
    console.locator("[data-inspector-filter]").select_option("error")
    assert console.locator(".rt-item").count() == 1

    # Commands.
    page.get_by_role("tab", name="Commands").click()
    commands = page.locator("[data-inspector-panel='commands']")
    commands.locator(".rt-row", has_text="Page.navigate").click()
    page.wait_for_function(f"() => Math.abs(window.bctrlReplay.time() - {T0 + 29_500}) < 500")
    assert "https://shop.example/checkout" in detail.inner_text()
    page.screenshot(path="/tmp/replay-inspector.png")

    # The tab of a single frame says so instead of "0:00 / 0:00".
    page.locator(".target-tab").nth(2).click()
    page.wait_for_function(
        "() => document.querySelector('[data-replay]').dataset.target === 'page-3'"
    )
    page.wait_for_function("() => document.querySelector('[data-clock]').textContent !== ''")
    assert page.locator("[data-clock]").inner_text() != "0:00 / 0:00"
    assert errors == []


ROWS_AND_TIME = """() => {
  const panel = document.querySelector("[data-inspector-panel='network']");
  const list = panel.querySelector("[data-rows]");
  const current = list.querySelector(".rt-item.is-current");
  const box = list.getBoundingClientRect();
  const row = current ? current.getBoundingClientRect() : null;
  const times = Array.from(list.querySelectorAll(".rt-item")).map((li) => Number(li.dataset.time));
  return {
    t: window.bctrlReplay.time(),
    current: current ? Number(current.dataset.index) : -1,
    times,
    visible: !!row && row.top >= box.top - 1 && row.bottom <= box.bottom + 1,
  };
}"""


def test_the_highlighted_row_follows_playback(
    page: Any, asgi_server: str, live_setup: Tenant
) -> None:
    run = seed_inspected_run(live_setup)
    page.set_viewport_size({"width": 1440, "height": 900})
    sign_in(page, asgi_server, f"/runs/{run.id}/replay")
    wait_until_ready(page)
    page.get_by_role("tab", name="Network").click()
    page.locator("[data-speed-value='4']").click()

    # Play, pause, look: each pause shows the row of the paused time, a later one each
    # time, and the list keeps it in view.
    seen: list[int] = []
    for _ in range(4):
        page.locator("[data-play]").click()
        page.wait_for_timeout(1000)
        page.locator("[data-play]").click()
        page.wait_for_function(
            "() => document.querySelector('[data-replay]').dataset.state === 'paused'"
        )
        # The list brings the current row into view on the player's next tick after the pause.
        page.wait_for_function(f"() => ({ROWS_AND_TIME})().visible", timeout=5_000)
        state = page.evaluate(ROWS_AND_TIME)
        current, times, t = state["current"], state["times"], state["t"]
        assert current >= 0
        assert times[current] <= t + 1
        assert current + 1 == len(times) or times[current + 1] > t + 1
        assert state["visible"], state
        seen.append(current)
    assert seen == sorted(seen) and seen[-1] > seen[0] + 5


def test_the_replay_embed_shows_the_inspector_its_lease_asks_for(
    page: Any, asgi_server: str, live_setup: Tenant
) -> None:
    run = seed_inspected_run(live_setup)
    live_setup.space.allowed_embed_origins = ["*"]
    live_setup.space.save()
    token = lease_mint(run=run, kind="replay", components=["network", "console"]).token
    page.set_viewport_size({"width": 1400, "height": 900})
    page.goto(f"{asgi_server}/embed/replay/{token}")
    wait_for_iframe_text(page, "Hello from the recording")
    page.wait_for_function(
        "() => document.querySelector('[data-inspector]').dataset.inspector === 'ready'"
    )
    assert page.get_by_role("tab").filter(has_text="Network").count() == 1
    tabs = page.locator("[data-inspector-tab]").all_inner_texts()
    assert [" ".join(tab.split()) for tab in tabs] == [
        f"Network {POLLS + 4}",
        "Console 2",
    ]
    network = page.locator("[data-inspector-panel='network']")
    network.locator(".rt-row", has_text="POST /api/cart").click()
    page.wait_for_function(f"() => Math.abs(window.bctrlReplay.time() - {T0 + 12_000}) < 500")
    assert "[redacted]" in page.locator("[data-inspector-detail]").inner_text()
    assert "SECRET" not in page.content()
