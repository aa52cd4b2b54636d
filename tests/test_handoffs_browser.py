"""A handoff end to end in real Chromium: an agent (its own Playwright through the
connectUrl, and bctrl's MCP server over streamable HTTP with the `mcp` SDK's client) asks
for a person and waits; the person opens the live URL it was given, takes control, types
the code into the remote page, and says "Done" with a note; the agent's wait returns with
that note, and the browser is the automation's again."""

import asyncio
import queue
import threading
from typing import Any
from urllib.parse import urlsplit

import pytest

from runs.activity import activity_items
from runs.models import Event, Run
from tests.conftest import Tenant, sign_in

from .test_live_browser import REMOTE_PAGE, click_picture
from .test_mcp import agent, call

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_person_does_the_step_an_automation_asked_for_and_its_wait_returns_the_note(
    asgi_server: str, chromium: Any, tenant: Tenant, member: Any, started: dict[str, Any]
) -> None:
    automation = chromium.browser_type.connect_over_cdp(started["connectUrl"])
    remote = automation.new_context(viewport={"width": 1000, "height": 600}).new_page()
    remote.set_content(REMOTE_PAGE)
    run_id = started["runId"]

    async def ask_then_wait(asked: "queue.Queue[dict[str, Any]]") -> dict[str, Any]:
        async with agent("http", asgi_server, tenant.raw_key) as session:
            handoff = await call(
                session,
                "request_handoff",
                run_id=run_id,
                instructions="Type the code from the owner's phone",
                wait_seconds=0,
            )
            asked.put(handoff)  # the agent hands the live URL to a person
            return dict(
                await call(
                    session,
                    "wait_for_handoff",
                    run_id=run_id,
                    handoff_id=handoff["handoffId"],
                    wait_seconds=90,
                )
            )

    asked: queue.Queue[dict[str, Any]] = queue.Queue()
    waited: dict[str, Any] = {}
    waiter = threading.Thread(target=lambda: waited.update(asyncio.run(ask_then_wait(asked))))
    waiter.start()
    handoff = asked.get(timeout=60)
    assert handoff["status"] == "open"

    # The space's members see at a glance that the run asks for a person.
    dashboard = chromium.new_context().new_page()
    sign_in(dashboard, asgi_server)
    badge = dashboard.locator(f"[data-run-id='{run_id}'] [data-handoff]")
    assert "Needs a person: Type the code from the owner's phone" in badge.inner_text()
    dashboard.goto(f"{asgi_server}/runs/{run_id}")
    assert "Type the code from the owner's phone" in dashboard.inner_text(".handoff-banner")
    dashboard.close()

    # The person opens the live URL the automation was given.
    person = chromium.new_context(viewport={"width": 1400, "height": 1000}).new_page()
    person.goto(asgi_server + urlsplit(handoff["liveUrl"]).path)  # SITE_URL is not the test's
    box = person.locator("[data-live-handoff]")
    box.wait_for(state="visible", timeout=20_000)
    assert "Type the code from the owner's phone" in box.inner_text()
    person.wait_for_function(
        "() => Number(document.querySelector('[data-live-view]').dataset.frames || 0) > 0",
        timeout=20_000,
    )
    person.click("[data-live-control]")
    person.wait_for_selector("[data-live-view][data-control='you']")
    click_picture(person, 100 / 1000, 330 / 600)
    person.keyboard.type("771204")
    remote.wait_for_function("document.getElementById('code').value === '771204'")
    person.fill("[data-live-handoff-note]", "Code typed, the account is open")
    person.click("[data-live-handoff-done]")

    # Done: the box goes, control is handed back, the automation's wait returns the note.
    box.wait_for(state="hidden", timeout=10_000)
    person.wait_for_selector("[data-live-view][data-control='free']")
    waiter.join(60)
    assert waited["status"] == "completed", waited
    assert waited["note"] == "Code typed, the account is open"
    assert waited["completedBy"].startswith("Viewer ")
    remote.click("#press")  # the automation's input is accepted again
    assert remote.inner_text("#out") == "pressed 1"

    types = list(
        Event.objects.filter(run_id=run_id, type__regex=r"^(handoff|control)\.")
        .order_by("seq")
        .values_list("type", flat=True)
    )
    assert types == [
        "handoff.requested",
        "control.requested",
        "control.granted",
        "handoff.completed",
        "control.released",
    ]
    # The activity says who did what was asked, never what they typed.
    said = [item["message"] for item in activity_items(Run.objects.get(pk=run_id))]
    done = [m for m in said if "did what was asked" in m]
    assert len(done) == 1 and done[0].endswith(
        'Type the code from the owner\'s phone — "Code typed, the account is open"'
    ), said
    assert "771204" not in str(said)
    assert "771204" not in str(Event.objects.filter(run_id=run_id).values_list("data"))
    automation.close()
    person.close()
