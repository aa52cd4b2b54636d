"""The replay page's DOM/Video toggle in real Chromium against a live daphne server: the
tab's MP4 (recordings.video) shows in place of the DOM replay and follows the player's
playhead. The recording is made the way a host makes one (tests/test_video.py)."""

from typing import Any

import pytest

from recordings.models import RecordingVideo
from tests.conftest import Tenant, sign_in
from tests.test_video import recorded_run

pytestmark = [pytest.mark.browser]

# The colour of the video's middle pixel, as the page shows it.
VIDEO_PIXEL = """() => {
  const video = document.querySelector('[data-video]');
  const canvas = document.createElement('canvas');
  canvas.width = video.videoWidth;
  canvas.height = video.videoHeight;
  const context = canvas.getContext('2d');
  context.drawImage(video, 0, 0);
  return Array.from(context.getImageData(canvas.width / 2, canvas.height / 2, 1, 1).data);
}"""


def colour(page: Any) -> str:
    red, green, blue, _ = page.evaluate(VIDEO_PIXEL)
    return "red" if red > 150 > blue else "blue" if blue > 150 > red else f"{red},{green},{blue}"


def at_video_time(page: Any, seconds: float) -> None:
    """Until the video element shows `seconds` (a seek has landed and painted)."""
    page.wait_for_function(
        "(s) => { const v = document.querySelector('[data-video]');"
        " return !v.seeking && v.readyState >= 2 && Math.abs(v.currentTime - s) < 0.05; }",
        arg=seconds,
    )


@pytest.mark.timeout(120)
def test_the_toggle_shows_the_tabs_video_on_the_players_clock(
    transactional_db: None, asgi_server: str, tenant: Tenant, member: Any, page: Any
) -> None:
    run, _ = recorded_run(tenant)  # red for 2 s, then blue; encoded on commit
    video = RecordingVideo.objects.get(recording__run=run)
    assert video.status == RecordingVideo.Status.READY and video.start_ms is not None
    sign_in(page, asgi_server, f"/runs/{run.id}/replay")
    toggle = page.locator("[data-view-toggle]")
    toggle.wait_for(state="visible")
    assert page.locator("[data-video]").is_hidden()  # the DOM replay first

    toggle.get_by_role("button", name="Video").click()
    page.locator("[data-video]").wait_for(state="visible")
    assert page.evaluate("window.bctrlReplay.view()") == "video"
    assert toggle.get_by_role("button", name="Video").get_attribute("aria-pressed") == "true"

    # Seeking the player seeks the video: red before the change, blue after it.
    page.evaluate(f"window.bctrlReplay.seek({video.start_ms + 3000})")
    at_video_time(page, 3.0)
    assert colour(page) == "blue"
    page.evaluate(f"window.bctrlReplay.seek({video.start_ms + 1000})")
    at_video_time(page, 1.0)
    assert colour(page) == "red"
    assert abs(page.evaluate("window.bctrlReplay.time()") - (video.start_ms + 1000)) < 1

    # Playing plays both on the one clock; the scrubber's markers are the same.
    page.locator("[data-play]").click()
    page.wait_for_function(
        "() => { const v = document.querySelector('[data-video]');"
        " return !v.paused && v.currentTime > 1.3; }"
    )
    page.locator("[data-play]").click()
    page.wait_for_function("() => document.querySelector('[data-video]').paused")
    clock = page.evaluate("(start) => (window.bctrlReplay.time() - start) / 1000", video.start_ms)
    assert abs(page.evaluate("window.bctrlReplay.videoTime()") - clock) < 0.3
    assert page.locator("[data-markers] .scrub-marker").count() >= 1

    toggle.get_by_role("button", name="DOM").click()
    page.locator("[data-video]").wait_for(state="hidden")
    assert page.evaluate("window.bctrlReplay.view()") == "dom"
