"""The replay page in real Chromium against a live daphne server.

Recordings are built by hand (tests/test_replay.py): chunk files of gzip members and
their index, as processing writes them.
"""

import re
from datetime import UTC, datetime
from typing import Any

import pytest

from recordings.models import Recording
from runs.models import Event, Run
from tests.conftest import Tenant, sign_in
from tests.test_replay import (
    STARTED_AT,
    T0,
    Nodes,
    add_batch,
    page_chunk,
    ready_recording,
    store_target,
)

pytestmark = [pytest.mark.browser]

SHOTS = "/tmp/replay-{}.png"
IFRAME_TEXT = """() => {
  const frame = document.querySelector('[data-viewport] iframe');
  return frame && frame.contentDocument && frame.contentDocument.body
    ? frame.contentDocument.body.innerText : '';
}"""


@pytest.fixture
def live_setup(transactional_db: None, tenant: Tenant, member: Any) -> Tenant:
    return tenant


def iframe_text(page: Any) -> str:
    text: str = page.evaluate(IFRAME_TEXT)
    return text


def wait_for_iframe_text(page: Any, text: str, timeout: int = 20_000) -> None:
    page.wait_for_function(f"() => ({IFRAME_TEXT})().includes({text!r})", timeout=timeout)


LATE = T0 + 20 * 60_000


def seed_three_chunks(tenant: Tenant) -> Run:
    run = Run.objects.create(
        space=tenant.space,
        name="checkout flow",
        started_at=datetime.fromtimestamp((T0 - 2000) / 1000, tz=UTC),
    )
    for seq, (when, url) in enumerate(
        [(T0, "https://shop.example/"), (LATE, "https://shop.example/late")], start=1
    ):
        Event.objects.create(
            run=run,
            seq=seq,
            type="navigation",
            page_id="page-1",
            time=datetime.fromtimestamp(when / 1000, tz=UTC),
            data={"url": url},
        )
    middle = T0 + 60_000
    # The automation asked for a person, who took over in the live view for two seconds
    # on the middle page and said it was done.
    asked = {"handoffId": "hof_1", "instructions": "Type the code"}
    for seq, (when, type, extra) in enumerate(
        [
            (middle, "handoff.requested", asked),
            (middle + 500, "control.requested", {}),
            (middle + 600, "control.granted", {}),
            (middle + 2500, "handoff.completed", {"handoffId": "hof_1", "note": "done"}),
            (middle + 2600, "control.released", {"reason": "requested"}),
        ],
        start=3,
    ):
        Event.objects.create(
            run=run,
            seq=seq,
            type=type,
            time=datetime.fromtimestamp(when / 1000, tz=UTC),
            data={"who": "ada", "viewer": "user:1", **extra},
        )
    recording = ready_recording(run, duration_ms=LATE + 4000 - T0)
    store_target(
        recording,
        "page-1",
        [
            page_chunk(T0, "Welcome", "Hello from the recording", duration_ms=3000),
            page_chunk(middle, "Cart", "A middle page", duration_ms=3000),
            page_chunk(LATE, "Thanks", "The late page", duration_ms=4000),
        ],
        markers=[
            {"time": T0, "kind": "navigation", "label": "Welcome page"},
            {"time": T0 + 1500, "kind": "click", "label": "Clicked Start"},
            {"time": middle, "kind": "navigation", "label": "Cart page"},
            {"time": middle + 2000, "kind": "console.error", "label": "TypeError: x is undefined"},
            {"time": LATE, "kind": "navigation", "label": "The late page"},
        ],
        inactivity=[
            {"start": T0 + 3000, "end": middle},
            {"start": middle + 3000, "end": LATE},
        ],
    )
    store_target(
        recording,
        "page-2",
        [page_chunk(T0 + 30_000, "Docs", "A second tab", duration_ms=2000, site="docs.example")],
    )
    return run


def chunk_requests(page: Any) -> list[str]:
    """What each chunk request asked for: its Range header, or `chunk=<i>` for the URL of
    one chunk that the replay page preloads."""
    seen: list[str] = []

    def note(request: Any) -> None:
        if "/chunks" in request.url:
            query = request.url.partition("?")[2]
            seen.append(query if query.startswith("chunk=") else request.headers.get("range", ""))

    page.on("request", note)
    return seen


def test_replays_seeks_and_fetches_only_needed_chunks(
    page: Any, asgi_server: str, live_setup: Tenant
) -> None:
    run = seed_three_chunks(live_setup)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.set_viewport_size({"width": 1440, "height": 900})
    ranges = chunk_requests(page)
    sign_in(page, asgi_server, f"/runs/{run.id}/replay")

    wait_for_iframe_text(page, "Hello from the recording")
    page.wait_for_function(
        "() => document.querySelector('[data-replay]').dataset.state === 'paused'"
    )
    # One request for the first chunk: the page's preload, which the player's fetch took.
    assert ranges == ["chunk=0"]
    # The scrubber spans the whole target from the index; markers and inactivity drawn,
    # after the first frame.
    page.wait_for_function(
        "() => document.querySelector('[data-replay]').dataset.decorations === 'ready'"
    )
    assert page.locator(".scrub-marker").count() == 5
    assert page.locator(".scrub-inactive").count() == 2
    takeover = page.locator(".scrub-takeover")
    assert takeover.count() == 2  # the takeover, and the handoff around it
    assert page.locator("[data-takeover]").get_attribute("title") == (
        "ada controlled the browser for 2.0 s (handed back)"
    )
    assert page.locator("[data-handoff]").get_attribute("title") == (
        'ada did what was asked (2.5 s): Type the code — "done"'
    )
    assert "0:00 / 20:04" in page.locator("[data-clock]").inner_text()
    assert page.locator(".target-tab").count() == 2
    page.screenshot(path=SHOTS.format("first-frame"))

    # A click on the late page's timeline item seeks there: one more chunk, not the middle.
    page.locator(".rt-item[data-kind='navigation'] .rt-label", has_text="The late page").click()
    wait_for_iframe_text(page, "The late page")
    assert len(ranges) == 2, ranges
    assert page.locator(".rt-item.is-current .rt-label").inner_text() in (
        "The late page",
        "Navigated to /late",
    )
    assert "20:00" in page.locator("[data-clock]").inner_text()
    held = page.evaluate("window.bctrlReplay.chunksHeld()")
    assert held == ["page-1#0", "page-1#2"]
    page.screenshot(path=SHOTS.format("seeked"))

    # Play: the clock runs, the replayer keeps up; pause stops it.
    page.locator("[data-play]").click()
    page.wait_for_function(
        "() => document.querySelector('[data-clock]').textContent.startsWith('20:02')",
        timeout=5000,
    )
    page.locator("[data-play]").click()
    assert page.locator("[data-replay]").get_attribute("data-state") == "paused"

    # The other tab.
    page.locator(".target-tab").nth(1).click()
    wait_for_iframe_text(page, "A second tab")
    assert len(ranges) == 3
    assert errors == []


def test_playback_prefetches_skips_inactivity_and_bounds_memory(
    page: Any, asgi_server: str, live_setup: Tenant
) -> None:
    run = seed_three_chunks(live_setup)
    page.set_viewport_size({"width": 1280, "height": 820})
    ranges = chunk_requests(page)
    sign_in(page, asgi_server, f"/runs/{run.id}/replay")
    wait_for_iframe_text(page, "Hello from the recording")

    page.locator("[data-skip]").check()
    page.locator("[data-speed-value='4']").click()
    page.locator("[data-play]").click()
    # 3 s of activity at 4x, the minute of inactivity skipped, next chunk prefetched.
    wait_for_iframe_text(page, "A middle page", timeout=8000)
    assert len(ranges) == 2
    wait_for_iframe_text(page, "The late page", timeout=8000)
    assert len(ranges) == 3
    page.wait_for_function(
        "() => document.querySelector('[data-replay]').dataset.state === 'ended'", timeout=8000
    )
    held = page.evaluate("window.bctrlReplay.chunksHeld()")
    assert len(held) <= 3
    page.screenshot(path=SHOTS.format("ended"))

    # Seeking back to the start loads chunk 0 again if it was dropped, never more than 3 held.
    page.locator(".rt-item[data-kind='click']").first.click()
    wait_for_iframe_text(page, "Hello from the recording")
    assert len(page.evaluate("window.bctrlReplay.chunksHeld()")) <= 3


def malicious_chunk(start: int) -> list[dict[str, Any]]:
    nodes = Nodes()
    payload = (
        "window.parent.pwned = 1; window.pwned = 1; document.title = 'pwned';"
        "console.log('pwned-by-script'); alert('pwned');"
    )
    document = nodes.document(
        "Innocent page",
        [
            nodes.el("h1", {}, nodes.text("Nothing to see")),
            nodes.el("script", {}, nodes.text(payload)),
            nodes.el("script", {"src": "data:text/javascript,window.parent.pwned=5"}),
            nodes.el(
                "img",
                {"src": "x", "onerror": "window.parent.pwned = 2; console.log('pwned-by-onerror')"},
            ),
            nodes.el(
                "a",
                {
                    "id": "bad",
                    "href": "javascript:window.parent.pwned=3;console.log('pwned-by-href')",
                },
                nodes.text("a link"),
            ),
            nodes.el(
                "iframe",
                {"srcdoc": "<script>parent.parent.pwned=4;console.log('pwned-srcdoc')</script>"},
            ),
            nodes.el("svg", {"onload": "window.parent.pwned = 6"}),
        ],
    )
    return [
        {
            "type": 4,
            "timestamp": start,
            "data": {"href": "https://evil.example/", "width": 800, "height": 500},
        },
        {
            "type": 2,
            "timestamp": start + 5,
            "data": {"node": document, "initialOffset": {"left": 0, "top": 0}},
        },
        {
            "type": 3,
            "timestamp": start + 1500,
            "data": {"source": 1, "positions": [{"x": 5, "y": 5, "id": 1, "timeOffset": 0}]},
        },
    ]


def seed_malicious(tenant: Tenant) -> Run:
    run = Run.objects.create(space=tenant.space, name="hostile page")
    recording = ready_recording(run, duration_ms=1500)
    store_target(recording, "page-1", [malicious_chunk(T0)])
    return run


def test_a_hostile_recording_executes_nothing(
    page: Any, asgi_server: str, live_setup: Tenant
) -> None:
    run = seed_malicious(live_setup)
    dialogs: list[str] = []
    messages: list[str] = []

    def on_dialog(dialog: Any) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", on_dialog)
    page.on("console", lambda msg: messages.append(msg.text))
    sign_in(page, asgi_server, f"/runs/{run.id}/replay")
    wait_for_iframe_text(page, "Nothing to see")

    page.locator("[data-play]").click()
    page.wait_for_function(
        "() => document.querySelector('[data-replay]').dataset.state === 'ended'", timeout=8000
    )
    # A click on the javascript: link, from the parent (the replayer iframe is same-origin).
    page.evaluate(
        "() => document.querySelector('[data-viewport] iframe').contentDocument"
        ".getElementById('bad').click()"
    )
    page.wait_for_timeout(500)

    assert page.evaluate("window.pwned") is None
    assert page.title() != "pwned"
    frame_title = page.evaluate(
        "() => document.querySelector('[data-viewport] iframe').contentDocument.title"
    )
    assert frame_title == "Innocent page"
    assert dialogs == []
    assert not [text for text in messages if "pwned" in text and "Blocked" not in text]
    sandbox = page.evaluate(
        "() => document.querySelector('[data-viewport] iframe').getAttribute('sandbox')"
    )
    assert sandbox == "allow-same-origin"
    # Recorded scripts are rebuilt inert.
    assert (
        page.evaluate(
            "() => document.querySelector('[data-viewport] iframe').contentDocument"
            ".querySelectorAll('script').length"
        )
        == 0
    )


def seed_live(tenant: Tenant) -> tuple[Run, Recording]:
    run = Run.objects.create(space=tenant.space, name="still recording", started_at=STARTED_AT)
    recording = Recording.objects.create(space=run.space, run=run)
    add_batch(recording, "page-1", 1, page_chunk(T0, "Live", "First batch", duration_ms=1000))
    return run, recording


def test_a_recording_in_progress_plays_live(
    page: Any, asgi_server: str, live_setup: Tenant
) -> None:
    run, recording = seed_live(live_setup)
    page.set_viewport_size({"width": 1280, "height": 820})
    sign_in(page, asgi_server, f"/runs/{run.id}/replay")
    wait_for_iframe_text(page, "First batch")
    assert page.locator("[data-live-badge]").is_visible()
    assert page.locator("[data-replay]").get_attribute("data-mode") == "live"
    # Before processing names it by its title, the tab reads the recorded page's address.
    page.wait_for_function(
        "() => document.querySelector('.target-tab .tab-name').textContent === 'shop.example/'"
    )
    assert page.locator("[data-clock]").inner_text().endswith("· live")

    # A new batch: a text mutation of the paragraph; the page follows it.
    paragraph_text_id = page_chunk(T0, "Live", "First batch")[1]["data"]["node"]["childNodes"][1][
        "childNodes"
    ][1]["childNodes"][1]["childNodes"][1]["childNodes"][0]["id"]
    mutation = {
        "type": 3,
        "timestamp": T0 + 1200,
        "data": {
            "source": 0,
            "texts": [{"id": paragraph_text_id, "value": "Second batch arrived"}],
            "attributes": [],
            "removes": [],
            "adds": [],
        },
    }
    add_batch(recording, "page-1", 2, [mutation])
    wait_for_iframe_text(page, "Second batch arrived", timeout=8000)
    page.screenshot(path=SHOTS.format("live"))


def test_run_detail_links_to_the_replay(page: Any, asgi_server: str, live_setup: Tenant) -> None:
    run = seed_malicious(live_setup)
    sign_in(page, asgi_server, f"/runs/{run.id}/replay")
    page.goto(f"{asgi_server}/runs/{run.id}")
    page.locator("[data-replay-link]").click()
    page.wait_for_url(re.compile(rf"/runs/{run.id}/replay$"))
    wait_for_iframe_text(page, "Nothing to see")
