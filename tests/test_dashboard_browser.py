"""The dashboard in real Chromium against a live daphne server: sign in, list, detail, live."""

import io
import re
from datetime import timedelta
from typing import Any, TypeVar

import pytest

from runs import services
from runs.models import Run
from runtimes import services as runtime_services
from tests.conftest import Tenant, sign_in

pytestmark = [pytest.mark.browser]

SHOTS = "/tmp/dashboard-{}.png"
T = TypeVar("T")


def page_screenshot(chromium: Any) -> bytes:
    """A real PNG of a small page, to stand in for a run's screenshot."""
    context = chromium.new_context(viewport={"width": 640, "height": 400})
    try:
        shot = context.new_page()
        shot.set_content(
            "<body style='font:16px system-ui;margin:0'>"
            "<header style='background:#1e293b;color:#fff;padding:14px 20px'>Example Shop</header>"
            "<main style='padding:20px'><h1>Checkout</h1><p>2 items in your cart.</p>"
            "<button style='background:#2563eb;color:#fff;border:0;padding:10px 18px;"
            "border-radius:6px'>Pay now</button></main></body>"
        )
        png: bytes = shot.screenshot()
    finally:
        context.close()
    return png


def seed(tenant: Tenant, png: bytes) -> Run:
    runtime = runtime_services.runtime_create(space=tenant.space, name="chrome-eu-1")
    finished = services.run_create(space=tenant.space, name="nightly crawl")
    services.events_append(run=finished, events=[{"type": "navigation", "data": {"url": "a"}}])
    services.run_stop(run=finished)
    broken = services.run_create(space=tenant.space, name="login smoke test")
    services.run_stop(run=broken, status="failed", error={"message": "Timeout 30000ms"})

    run = services.run_create(space=tenant.space, runtime=runtime, name="checkout flow")
    services.events_append(
        run=run,
        events=[
            {
                "type": "navigation",
                "page_id": "page_1",
                "data": {"url": "https://shop.example/cart"},
            },
            {
                "type": "console.message",
                "page_id": "page_1",
                "data": {"level": "info", "text": "ready"},
            },
        ],
    )
    services.commands_record(
        run=run,
        commands=[
            {
                "method": "Page.navigate",
                "params": {"url": "https://shop.example/cart"},
                "duration_ms": 412,
            },
            {
                "method": "Input.dispatchMouseEvent",
                "params": {"type": "click", "x": 80, "y": 200},
                "duration_ms": 9,
            },
        ],
    )
    services.artifact_store(
        run=run,
        kind="screenshot",
        name="checkout.png",
        content=io.BytesIO(png),
        content_type="image/png",
    )
    run.refresh_from_db()
    return run


@pytest.fixture
def seeded(transactional_db: None, tenant: Tenant, member: Any, chromium: Any) -> Run:
    return seed(tenant, page_screenshot(chromium))


def test_sign_in_list_and_detail(page: Any, asgi_server: str, seeded: Run) -> None:
    errors: list[str] = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.set_viewport_size({"width": 1280, "height": 820})
    sign_in(page, asgi_server)

    row = page.locator(f"tr[data-run-id='{seeded.id}']")
    row.wait_for()
    assert "checkout flow" in row.inner_text()
    thumb = row.locator("img.thumb")
    thumb.wait_for()
    page.wait_for_function(
        "img => img.complete && img.naturalWidth > 0", arg=thumb.element_handle()
    )
    assert thumb.evaluate("img => img.naturalWidth") == 640
    assert page.locator(".pill-failed").count() == 1
    page.screenshot(path=SHOTS.format("runs"), full_page=True)

    row.locator("a.run-name").click()
    page.wait_for_url(re.compile(rf"/runs/{seeded.id}"))
    usage = page.locator(".usage").inner_text()
    assert "Events" in usage and "Commands" in usage and "Artifacts" in usage
    assert page.locator("[data-total-events]").inner_text() == str(seeded.event_count)
    page.screenshot(path=SHOTS.format("detail"), full_page=True)

    page.click("a[href='#events']")
    events = page.locator("#events tbody tr")
    assert events.count() == seeded.event_count
    assert "console.message" in page.locator("#events").inner_text()
    page.screenshot(path=SHOTS.format("detail-events"), full_page=True)

    page.click("a[href='#commands']")
    assert "Page.navigate" in page.locator("#commands").inner_text()
    page.click("a[href='#artifacts']")
    preview = page.locator("#artifacts img")
    page.wait_for_function(
        "img => img.complete && img.naturalWidth > 0", arg=preview.element_handle()
    )
    page.screenshot(path=SHOTS.format("detail-artifacts"), full_page=True)
    assert not [e for e in errors if "Content Security Policy" in e], errors

    page.set_viewport_size({"width": 390, "height": 800})
    page.goto(asgi_server + "/")
    page.screenshot(path=SHOTS.format("mobile"), full_page=True)
    assert page.evaluate("document.documentElement.scrollWidth") <= 390


def test_the_activity_shows_named_steps_with_their_protocol_calls_folded_in(
    page: Any, asgi_server: str, transactional_db: None, tenant: Tenant, member: Any
) -> None:
    run = services.run_create(space=tenant.space, name="pay")
    now = run.started_at + timedelta(seconds=1)

    def command(ms: int, method: str, **params: Any) -> dict[str, Any]:
        at = now + timedelta(milliseconds=ms)
        return {"method": method, "params": params, "page_id": "p", "started_at": at,
                "ended_at": at + timedelta(milliseconds=3)}  # fmt: skip

    services.commands_record(
        run=run,
        commands=[
            *(command(i * 20, "Runtime.callFunctionOn") for i in range(4)),
            command(100, "Input.dispatchMouseEvent", type="mousePressed", x=80, y=200),
            command(150, "Input.dispatchMouseEvent", type="mouseReleased", x=80, y=200),
        ],
    )
    services.events_append(
        run=run,
        events=[
            {"type": "input", "page_id": "p", "time": now + timedelta(milliseconds=110),
             "data": {"kind": "click", "role": "button", "name": "Pay now"}},
        ],
    )  # fmt: skip
    services.run_stop(run=run)
    sign_in(page, asgi_server, f"/runs/{run.id}")

    activity = page.locator("#activity")
    step = activity.locator(".tl-item", has_text='Clicked button "Pay now"')
    assert step.count() == 1
    calls = step.locator("details.tl-children")
    assert not calls.locator("text=Runtime.callFunctionOn (4 times)").is_visible()
    calls.locator("summary").click()
    assert calls.locator("text=Runtime.callFunctionOn (4 times)").is_visible()
    top = activity.locator(":scope > ol > .tl-item > .tl-body > .tl-line").all_inner_texts()
    assert any('Clicked button "Pay now"' in line for line in top), top
    assert not any("Runtime." in line or "automation" in line for line in top), top
    page.screenshot(path=SHOTS.format("activity-steps"), full_page=True)


def test_failed_run_and_empty_state(
    page: Any, asgi_server: str, transactional_db: None, tenant: Tenant, member: Any
) -> None:
    page.set_viewport_size({"width": 1280, "height": 900})
    sign_in(page, asgi_server)
    assert "No runs yet" in page.inner_text("main")
    page.screenshot(path=SHOTS.format("empty"), full_page=True)

    run = services.run_create(space=tenant.space, name="login smoke test")
    services.run_stop(run=run, status="failed", error={"message": "Timeout 30000ms exceeded"})
    page.goto(f"{asgi_server}/runs/{run.id}")
    assert "Timeout 30000ms exceeded" in page.inner_text(".banner")
    assert page.inner_text("[data-live-indicator]") == "Run ended"


def test_events_arrive_live(page: Any, asgi_server: str, seeded: Run) -> None:
    page.set_viewport_size({"width": 1280, "height": 820})
    sign_in(page, asgi_server)
    page.goto(f"{asgi_server}/runs/{seeded.id}#tab-events")
    indicator = page.locator("[data-live-indicator]")
    page.wait_for_function(
        "el => ['live', 'offline'].includes(el.dataset.state)",
        arg=indicator.element_handle(),
        timeout=15_000,
    )
    assert indicator.get_attribute("data-state") == "live"
    assert indicator.inner_text() == "Live"

    services.events_append(
        run=seeded,
        events=[{"type": "console.message", "page_id": "page_1", "data": {"text": "arrived live"}}],
    )
    new_seq = seeded.event_count + 1
    page.locator(f"#events tr[data-seq='{new_seq}']").wait_for(timeout=15_000)
    assert "arrived live" in page.locator("#events tbody").inner_text()
    assert page.inner_text("[data-event-count]") == str(new_seq)
    assert page.inner_text("[data-total-events]") == str(new_seq)
    page.screenshot(path=SHOTS.format("live"), full_page=True)

    services.run_stop(run=seeded)
    page.wait_for_function(
        "el => el.dataset.state === 'ended'", arg=indicator.element_handle(), timeout=15_000
    )
    assert indicator.inner_text() == "Run ended"
    assert page.inner_text("[data-run-status]").strip().lower() == "completed"


def test_api_docs_render_under_their_policy(page: Any, asgi_server: str) -> None:
    errors: list[str] = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.set_viewport_size({"width": 1280, "height": 820})
    page.goto(f"{asgi_server}/docs/")
    page.locator(".swagger-ui .info .title").wait_for(timeout=20_000)
    assert "bctrl API" in page.inner_text(".swagger-ui .info .title")
    page.locator(".opblock").first.wait_for()
    page.screenshot(path=SHOTS.format("docs"))
    assert not [e for e in errors if "Content Security Policy" in e], errors
