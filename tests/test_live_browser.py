"""The live view in real Chromium: a live daphne, a runtime host in a thread linked to
it, an automation script through the real connectUrl, and a person on the dashboard's
live page who watches, takes control, clicks and types, and hands back."""

import time
from typing import Any

import pytest
from bctrl import Bctrl
from playwright.sync_api import Error as PlaywrightError

from runs.activity import activity_items
from runs.models import Artifact, Event, Run
from tests.conftest import Refusal, Tenant, refused, sign_in
from viewers.leases import lease_mint
from viewers.models import ViewerLease

pytestmark = pytest.mark.django_db(transaction=True)

SHOTS = "/tmp/live-{}.png"

# A page whose button and input sit where the test can point at them in the picture.
REMOTE_PAGE = """
<!doctype html><title>Two-factor check</title>
<style>
  body { margin: 0; background: rgb(255, 255, 255); font: 20px sans-serif; }
  #press { position: absolute; left: 0; top: 0; width: 400px; height: 200px; }
  #code { position: absolute; left: 0; top: 300px; width: 400px; height: 60px; font-size: 24px; }
</style>
<button id="press">Press me</button>
<input id="code" autocomplete="off">
<p id="out" style="position:absolute; top: 400px">waiting</p>
<script>
  let presses = 0;
  document.getElementById("press").addEventListener("click", () => {
    presses += 1;
    document.getElementById("out").textContent = "pressed " + presses;
    document.body.style.background = "rgb(0, 160, 0)";
  });
  window.wheels = 0;
  addEventListener("wheel", () => { window.wheels += 1; });
  window.ticks = 0;
  setInterval(() => { window.ticks += 1; }, 50);
</script>
"""


def canvas_pixel(page: Any, fx: float, fy: float) -> list[int]:
    return page.evaluate(
        """([fx, fy]) => {
            const canvas = document.querySelector("[data-live-canvas]");
            const x = Math.floor(canvas.width * fx), y = Math.floor(canvas.height * fy);
            return Array.from(canvas.getContext("2d").getImageData(x, y, 1, 1).data);
        }""",
        [fx, fy],
    )


def click_picture(page: Any, fx: float, fy: float) -> None:
    box = page.locator("[data-live-canvas]").bounding_box()
    page.mouse.click(box["x"] + box["width"] * fx, box["y"] + box["height"] * fy)


def automation_page(chromium: Any, started: dict[str, Any], content: str) -> tuple[Any, Any]:
    """The automation: its own Playwright through the connectUrl, working in a new page
    that shows `content`."""
    automation = chromium.browser_type.connect_over_cdp(started["connectUrl"])
    remote = automation.new_context(viewport={"width": 1000, "height": 600}).new_page()
    remote.set_content(content)
    return automation, remote


def live_page(chromium: Any, asgi_server: str, started: dict[str, Any]) -> Any:
    """A member signed in on the dashboard's live page of the run."""
    viewer = chromium.new_context(viewport={"width": 1400, "height": 1000}).new_page()
    sign_in(viewer, asgi_server, f"/runs/{started['runId']}/live")
    return viewer


def frames_shown(page: Any) -> int:
    return int(page.get_attribute("[data-live-view]", "data-frames") or 0)


def test_a_person_watches_takes_over_and_hands_back_while_the_automation_runs(
    asgi_server: str, chromium: Any, member: Any, started: dict[str, Any]
) -> None:
    automation, remote = automation_page(chromium, started, REMOTE_PAGE)

    viewer = live_page(chromium, asgi_server, started)
    view = viewer.locator("[data-live-view]")
    # The picture of the remote page arrives, with its tab and address.
    viewer.wait_for_function(
        "() => Number(document.querySelector('[data-live-view]').dataset.frames || 0) > 0",
        timeout=20_000,
    )
    assert view.get_attribute("data-state") == "live"
    low_bandwidth = viewer.get_attribute("[data-low-bandwidth]", "href")
    assert low_bandwidth == f"/runs/{started['runId']}/replay"
    viewer.wait_for_selector("[data-live-tabs] .live-tab:has-text('Two-factor check')")
    assert canvas_pixel(viewer, 0.9, 0.9)[:3] == [255, 255, 255]

    # Take control; the automation's input is refused meanwhile, its reads are not.
    viewer.click("[data-live-control]")
    viewer.wait_for_selector("[data-live-view][data-control='you']")
    assert "You are in control." in viewer.inner_text("[data-live-holder]")
    ticks = remote.evaluate("window.ticks")
    with pytest.raises(PlaywrightError, match=r"runtime\.controller_busy"):
        remote.keyboard.press("x")

    # A click on the button in the picture runs the remote page's handler, and the
    # changed page comes back as a new picture.
    click_picture(viewer, 100 / 1000, 100 / 600)
    remote.wait_for_function("document.getElementById('out').textContent === 'pressed 1'")
    viewer.wait_for_function(
        """() => {
            const canvas = document.querySelector("[data-live-canvas]");
            const [r, g, b] = canvas.getContext("2d").getImageData(
                Math.floor(canvas.width * 0.9), Math.floor(canvas.height * 0.9), 1, 1).data;
            return r < 60 && g > 120 && b < 60;
        }""",
        timeout=10_000,
    )

    # Typing into the remote input: focus it in the picture, then type on the keyboard.
    click_picture(viewer, 100 / 1000, 330 / 600)
    viewer.keyboard.type("482913")
    remote.wait_for_function("document.getElementById('code').value === '482913'")
    viewer.screenshot(path=SHOTS.format("in-control"))
    box = viewer.locator("[data-live-canvas]").bounding_box()
    viewer.mouse.move(box["x"] + 50, box["y"] + 50)
    viewer.mouse.wheel(0, 300)
    # The wheel reaches the page before control is handed back.
    remote.wait_for_function("window.wheels > 0", timeout=10_000)
    assert remote.evaluate("window.ticks") > ticks  # the automation's page kept running

    # Hand back: the automation types again.
    viewer.click("[data-live-control]")
    viewer.wait_for_selector("[data-live-view][data-control='free']")
    remote.click("#press")
    assert remote.inner_text("#out") == "pressed 2"

    types = list(
        Event.objects.filter(run_id=started["runId"], type__startswith="control.")
        .order_by("seq")
        .values_list("type", "data")
    )
    assert [t for t, _ in types] == ["control.requested", "control.granted", "control.released"]
    assert types[1][1]["who"] == "ada" and types[2][1]["reason"] == "requested"
    assert "482913" not in str(Event.objects.filter(run_id=started["runId"]).values_list("data"))

    # The activity names what the person did through the picture as it names the
    # automation's steps, and says the automation's input was refused meanwhile.
    deadline = time.monotonic() + 10
    while True:
        said = [item["message"] for item in activity_items(Run.objects.get(pk=started["runId"]))]
        scrolled = any(m.startswith("Scrolled down") for m in said)
        if said.count('Clicked button "Press me"') >= 2 and scrolled:
            break
        if time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert said.count('Clicked button "Press me"') == 2, "\n".join(said)  # the person, the script
    assert "Typed into an unlabelled field" in said, "\n".join(said)
    assert any(m.startswith("Scrolled down") for m in said), "\n".join(said)
    assert "Typed 1 character — refused: a person was controlling the browser" in said, said
    assert "482913" not in str(said)

    automation.close()
    viewer.close()


TOP_ITEMS = "[data-activity-list] > .tl-item"


def test_the_live_page_shows_the_newest_step_on_top_and_follows_the_run_to_its_end(
    asgi_server: str, chromium: Any, member: Any, tenant: Tenant, started: dict[str, Any]
) -> None:
    from runs import services

    automation = chromium.browser_type.connect_over_cdp(started["connectUrl"])
    automation.new_context().new_page().set_content("<title>Ending</title><h1>Bye</h1>")
    viewer = chromium.new_context(viewport={"width": 1280, "height": 800}).new_page()
    sign_in(viewer, asgi_server, f"/runs/{started['runId']}/live")
    viewer.wait_for_function(
        "() => Number(document.querySelector('[data-live-view]').dataset.frames || 0) > 0",
        timeout=20_000,
    )
    assert viewer.inner_text("[data-run-status]").strip() == "Running"

    # More steps than the panel holds: the newest is the first, in sight without scrolling.
    run = Run.objects.get(pk=started["runId"])
    services.events_append(
        run=run,
        events=[
            {"type": "navigation", "page_id": "p1", "data": {"url": f"https://shop.test/{n}"}}
            for n in range(40)
        ],
    )
    viewer.wait_for_function(
        f"() => document.querySelectorAll({TOP_ITEMS!r}).length >= 40", timeout=15_000
    )
    times = viewer.eval_on_selector_all(
        TOP_ITEMS, "items => items.map(item => item.querySelector('time').dateTime)"
    )
    assert times[0] == max(times) and times != sorted(times)
    panel = viewer.locator("[data-embed-activity]")
    assert panel.evaluate("panel => panel.scrollHeight > panel.clientHeight")  # it overflows
    first = viewer.locator(TOP_ITEMS).first.bounding_box()
    assert (
        viewer.evaluate("window.scrollY") == 0 and panel.evaluate("panel => panel.scrollTop") == 0
    )
    assert first is not None and first["y"] + first["height"] <= 800
    viewer.screenshot(path=SHOTS.format("newest-on-top"))

    # The run ends: the notice, and the header's status, from "running" to "completed".
    Bctrl(api_key=tenant.raw_key, base_url=asgi_server).runtimes.stop(started["runtimeId"])
    viewer.wait_for_selector("[data-live-ended]:not([hidden])", timeout=20_000)
    assert viewer.get_attribute("[data-live-view]", "data-state") == "ended"
    assert viewer.get_attribute("[data-live-replay]", "href") == f"/runs/{started['runId']}/replay"
    assert viewer.inner_text("[data-run-status]").strip() == "Completed"
    assert viewer.locator("[data-run-status] .pill-completed").is_visible()
    # The activity stream sends the items' final state (no step left "running") and ends,
    # within its poll of the database after the live socket said the run ended.
    viewer.wait_for_function(
        "() => document.querySelectorAll('.pill-running').length === 0", timeout=10_000
    )
    assert viewer.locator("[data-live-control]").is_hidden()
    viewer.screenshot(path=SHOTS.format("ended"))
    deadline = time.monotonic() + 20
    while Run.objects.get(pk=started["runId"]).is_active:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    automation.close()
    viewer.close()


def test_a_refused_live_view_handshake_answers_its_status_over_the_network(
    asgi_server: str, tenant: Tenant
) -> None:
    ws = asgi_server.replace("http://", "ws://", 1)
    origin = {"Origin": asgi_server}
    assert refused(ws + "/ws/live/not-a-lease", origin) == Refusal(
        403, {"code": "lease.invalid", "message": "This viewer link is not valid."}
    )
    assert refused(ws + "/ws/runs/run_nope/live", origin).status == 401


def test_the_view_only_embed_shows_the_picture_and_offers_no_control(
    asgi_server: str, chromium: Any, started: dict[str, Any]
) -> None:
    automation, remote = automation_page(chromium, started, REMOTE_PAGE)
    run = Run.objects.get(pk=started["runId"])
    token = lease_mint(run=run, kind=ViewerLease.Kind.LIVE).token

    viewer = chromium.new_context().new_page()
    viewer.goto(f"{asgi_server}/embed/live/{token}")
    viewer.wait_for_function(
        "() => Number(document.querySelector('[data-live-view]').dataset.frames || 0) > 0",
        timeout=20_000,
    )
    assert viewer.locator("[data-live-control]").count() == 0
    assert "View only." in viewer.inner_text("[data-live-holder]")
    click_picture(viewer, 100 / 1000, 100 / 600)
    viewer.wait_for_timeout(500)
    assert remote.inner_text("#out") == "waiting"  # nothing reached the browser

    # The view follows the tab the automation works in; a viewer may pin another.
    second = remote.context.new_page()
    second.set_content("<title>Second tab</title><h1>Two</h1>")
    viewer.wait_for_selector(".live-tab[aria-current='true']:has-text('Second tab')")
    assert viewer.locator(".live-tab").count() == 2
    viewer.click(".live-tab:has-text('Two-factor check')")
    viewer.wait_for_selector(".live-tab[aria-current='true']:has-text('Two-factor check')")
    viewer.wait_for_selector(".live-follow")
    second.evaluate("document.title")  # the automation again: a pinned view stays
    viewer.wait_for_timeout(300)
    assert "Two-factor check" in viewer.inner_text(".live-tab[aria-current='true']")
    viewer.click(".live-follow")
    viewer.wait_for_selector(".live-tab[aria-current='true']:has-text('Second tab')")
    automation.close()
    viewer.close()


def test_a_long_paste_reaches_the_remote_page_whole_in_several_messages(
    asgi_server: str, chromium: Any, member: Any, started: dict[str, Any]
) -> None:
    automation, remote = automation_page(chromium, started, REMOTE_PAGE)
    viewer = live_page(chromium, asgi_server, started)
    viewer.wait_for_function(
        "() => Number(document.querySelector('[data-live-view]').dataset.frames || 0) > 0",
        timeout=20_000,
    )
    viewer.click("[data-live-control]")
    viewer.wait_for_selector("[data-live-view][data-control='you']")
    click_picture(viewer, 100 / 1000, 330 / 600)
    remote.wait_for_function("document.activeElement.id === 'code'")

    # Recovery codes with quotes, accents and characters outside the BMP: 12,600
    # characters, 21,000 bytes of JSON, where one message may hold 4,096.
    recovery = " ".join(f'{n:04d}-Straße-€-🔑-"q"' for n in range(600))
    viewer.evaluate(
        """(text) => {
            const data = new DataTransfer();
            data.setData("text/plain", text);
            document.dispatchEvent(new ClipboardEvent("paste", {clipboardData: data}));
        }""",
        recovery,
    )
    remote.wait_for_function(
        "(length) => document.getElementById('code').value.length >= length",
        arg=len(recovery.encode("utf-16-le")) // 2,
        timeout=20_000,
    )
    assert remote.input_value("#code") == recovery
    assert viewer.get_attribute("[data-live-view]", "data-state") == "live"
    assert viewer.get_attribute("[data-live-view]", "data-control") == "you"
    automation.close()
    viewer.close()


CHOOSER_PAGE = """
<!doctype html><title>Identity check</title>
<label>Your passport scan <input type="file" id="scan"></label>
<p id="out">nothing yet</p>
<script>
  document.getElementById("scan").addEventListener("change", async (event) => {
    const file = event.target.files[0];
    document.getElementById("out").textContent = file.name + ": " + (await file.text());
  });
</script>
"""


def test_a_person_answers_the_pages_file_chooser_with_a_file_from_their_computer(
    asgi_server: str, chromium: Any, member: Any, started: dict[str, Any]
) -> None:
    # The automation reaches an upload it cannot do and clicks it: the page's chooser opens.
    automation, remote = automation_page(chromium, started, CHOOSER_PAGE)
    remote.click("#scan")

    viewer = live_page(chromium, asgi_server, started)
    chooser = viewer.locator("[data-live-chooser]")
    chooser.wait_for(state="visible", timeout=20_000)
    assert chooser.locator("[data-live-chooser-ask]").inner_text() == "The page asks for a file."
    assert "Take control" in chooser.inner_text()
    assert viewer.locator("[data-live-chooser-input]").is_disabled()

    viewer.click("[data-live-control]")
    viewer.wait_for_selector("[data-live-view][data-control='you']")
    viewer.wait_for_selector("[data-live-chooser-input]:enabled")
    viewer.set_input_files(
        "[data-live-chooser-input]",
        files=[{"name": "passport.txt", "mimeType": "text/plain", "buffer": b"P<UTOERIKSSON"}],
    )
    # The page's own input got the person's file, as if picked in its dialog.
    remote.wait_for_function(
        "document.getElementById('out').textContent === 'passport.txt: P<UTOERIKSSON'",
        timeout=20_000,
    )
    viewer.wait_for_selector("[data-live-chooser-status]:has-text('Sent passport.txt')")
    viewer.screenshot(path=SHOTS.format("file-chooser"))
    # Answered, the chooser is gone from the view.
    chooser.wait_for(state="hidden", timeout=10_000)

    # The file is kept with the run, as an upload.
    files = Artifact.objects.filter(run_id=started["runId"], kind=Artifact.Kind.UPLOAD)
    assert [(f.name, f.size) for f in files] == [("passport.txt", 13)]
    # The activity says what the person did, in the page's words.
    deadline = time.monotonic() + 10
    while True:
        said = [item["message"] for item in activity_items(Run.objects.get(pk=started["runId"]))]
        if any("passport.txt" in m for m in said) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert 'Uploaded passport.txt to "Your passport scan"' in said, "\n".join(said)
    automation.close()
    viewer.close()
