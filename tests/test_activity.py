"""The activity timeline: `runs.activity` and `GET /v1/runs/{id}/activity`."""

import io
import json
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
from django.utils import timezone

from runs import activity as activity_module
from runs import services
from runs.activity import activity, activity_items
from runs.models import Run
from tests.conftest import Tenant

PAGE = "page_A"
OTHER_PAGE = "page_B"


class Timeline:
    """A run and a clock, to record realistic events and commands at given seconds."""

    def __init__(self, tenant: Tenant) -> None:
        self.tenant = tenant
        self.run: Run = services.run_create(space=tenant.space, name="checkout")
        # An hour ago: what the run did is settled (see test_plumbing_waits_for_its_step).
        Run.objects.filter(pk=self.run.pk).update(started_at=timezone.now() - timedelta(hours=1))
        self.run.refresh_from_db()
        self.t0 = self.run.started_at + timedelta(seconds=1)

    def at(self, seconds: float) -> datetime:
        return self.t0 + timedelta(seconds=seconds)

    def events(self, *events: tuple[float, str, dict[str, Any]], page: str = PAGE) -> None:
        services.events_append(
            run=self.run,
            events=[
                {"type": type, "data": data, "page_id": page, "time": self.at(seconds)}
                for seconds, type, data in events
            ],
        )

    def event(self, seconds: float, type: str, data: dict[str, Any], page: str = PAGE) -> None:
        self.events((seconds, type, data), page=page)

    def commands(self, *commands: dict[str, Any]) -> list[str]:
        return [c.id for c in services.commands_record(run=self.run, commands=list(commands))]

    def command(
        self,
        seconds: float,
        method: str,
        params: dict[str, Any] | None = None,
        *,
        status: str = "succeeded",
        page: str = PAGE,
        took: float = 0.01,
        error: Any = None,
    ) -> str:
        return self.commands(
            cmd(self, seconds, method, params, status=status, page=page, took=took, error=error)
        )[0]

    def items(self) -> list[dict[str, Any]]:
        """The items between the run's own first and last items."""
        return [item for item in activity_items(self.run) if not item["type"].startswith("run.")]

    def only(self, type: str) -> dict[str, Any]:
        found = [item for item in self.items() if item["type"] == type]
        assert len(found) == 1, [item["message"] for item in self.items()]
        return found[0]


def cmd(
    timeline: Timeline,
    seconds: float,
    method: str,
    params: dict[str, Any] | None = None,
    *,
    status: str = "succeeded",
    page: str = PAGE,
    took: float = 0.01,
    error: Any = None,
) -> dict[str, Any]:
    started = timeline.at(seconds)
    return {
        "method": method,
        "params": params or {},
        "status": status,
        "page_id": page,
        "started_at": started,
        "ended_at": None if status == "pending" else started + timedelta(seconds=took),
        "error": error,
    }


def keystrokes(timeline: Timeline, start: float, text: str, *, step: float = 0.08) -> list[dict]:
    """What Playwright's keyboard.type sends: keyDown (with text) and keyUp per character."""
    commands = []
    for index, char in enumerate(text):
        moment = start + index * step
        commands.append(
            cmd(
                timeline,
                moment,
                "Input.dispatchKeyEvent",
                {"type": "keyDown", "key": char, "text": char},
            )
        )
        commands.append(
            cmd(timeline, moment + 0.03, "Input.dispatchKeyEvent", {"type": "keyUp", "key": char})
        )
    return commands


def press(timeline: Timeline, seconds: float, key: str, **params: Any) -> list[dict]:
    text = {"Enter": "\r"}.get(key)
    down = {"type": "keyDown", "key": key, **({"text": text} if text else {}), **params}
    return [
        cmd(timeline, seconds, "Input.dispatchKeyEvent", down),
        cmd(timeline, seconds + 0.03, "Input.dispatchKeyEvent", {"type": "keyUp", "key": key}),
    ]


def mouse(timeline: Timeline, seconds: float, type: str, x: float, y: float, **params: Any) -> dict:
    return cmd(
        timeline, seconds, "Input.dispatchMouseEvent", {"type": type, "x": x, "y": y, **params}
    )


def click(timeline: Timeline, seconds: float, x: float, y: float, **params: Any) -> list[dict]:
    params = {"button": "left", "clickCount": 1, **params}
    return [
        mouse(timeline, seconds, "mousePressed", x, y, **params),
        mouse(timeline, seconds + 0.05, "mouseReleased", x, y, **params),
    ]


@pytest.fixture
def timeline(tenant: Tenant) -> Timeline:
    return Timeline(tenant)


# Typing -----------------------------------------------------------------------------


def test_a_burst_of_keystrokes_is_one_type_item(timeline: Timeline) -> None:
    timeline.commands(*keystrokes(timeline, 0, "hunter2 rocks"), *press(timeline, 1.2, "Enter"))

    item = timeline.only("browser.type")

    assert item["message"] == "Typed 13 characters, pressed Enter"
    assert item["time"] == timeline.at(0).isoformat().replace("+00:00", "Z")
    assert item["durationMs"] == 1240  # first keyDown to the end of the last keyUp
    assert item["status"] == "succeeded"
    assert item["severity"] == "info"
    assert item["pageId"] == PAGE
    assert [child["message"] for child in item["children"]] == [
        "Typed 13 characters",
        "Pressed Enter",
    ]
    assert len(item["source"]["commands"]) == 28


def test_typed_text_is_never_echoed(timeline: Timeline) -> None:
    timeline.commands(*keystrokes(timeline, 0, "s3cr3t-passw0rd"))

    assert "s3cr3t" not in json.dumps(activity_items(timeline.run))
    assert "passw0rd" not in json.dumps(activity_items(timeline.run))


def test_redacted_text_is_typed_redacted_text(timeline: Timeline) -> None:
    timeline.command(0, "Input.insertText", {"text": "[redacted]"})
    timeline.commands(*keystrokes(timeline, 0.5, "ok"))

    assert timeline.only("browser.type")["message"] == "Typed 2 characters and redacted text"


def test_keys_the_proxy_redacted_count_as_typed_characters(timeline: Timeline) -> None:
    hidden = {"key": "[redacted]", "text": "[redacted]", "code": "[redacted]"}
    timeline.command(0, "Input.dispatchKeyEvent", {"type": "keyDown", **hidden})
    timeline.command(0.1, "Input.dispatchKeyEvent", {"type": "keyUp", **hidden})
    timeline.command(0.2, "Input.dispatchKeyEvent", {"type": "keyDown", **hidden})

    item = timeline.only("browser.type")
    assert item["message"] == "Typed 2 characters"


def test_grouped_set_up_calls_alone_are_one_collapsed_automation_item(timeline: Timeline) -> None:
    timeline.command(0, "cdp.internal", {"count": 12, "methods": {"Page.enable": 12}})

    item = timeline.only("automation")
    assert item["message"] == "12 automation calls"
    assert [child["message"] for child in item["children"]] == ["Automation set-up calls"]


def test_redacted_inserted_text_counts_the_length_the_proxy_kept(timeline: Timeline) -> None:
    timeline.command(0, "Input.insertText", {"text": "[redacted]", "length": 16})

    assert timeline.only("browser.type")["message"] == "Typed 16 characters"


def test_inserted_text_counts_its_characters(timeline: Timeline) -> None:
    timeline.command(0, "Input.insertText", {"text": "héllo wörld"})

    assert timeline.only("browser.type")["message"] == "Typed 11 characters"


def test_special_keys_and_shortcuts_are_named_and_repeats_counted(timeline: Timeline) -> None:
    timeline.commands(
        *press(timeline, 0, "a", modifiers=2),
        *press(timeline, 0.2, "Backspace"),
        *press(timeline, 0.4, "Backspace"),
        *press(timeline, 0.6, "Shift"),
        *press(timeline, 0.8, "Tab"),
    )

    assert timeline.only("browser.type")["message"] == "Pressed Control+a, Backspace 2 times, Tab"


def test_raw_key_down_and_char_count_each_character_once(timeline: Timeline) -> None:
    key_event = "Input.dispatchKeyEvent"
    for index, char in enumerate("abc"):
        moment = index * 0.1
        timeline.commands(
            cmd(timeline, moment, key_event, {"type": "rawKeyDown", "key": char}),
            cmd(timeline, moment + 0.01, key_event, {"type": "char", "key": char, "text": char}),
            cmd(timeline, moment + 0.02, key_event, {"type": "keyUp", "key": char}),
        )

    assert timeline.only("browser.type")["message"] == "Typed 3 characters"


def test_a_pause_of_two_seconds_splits_a_typing_burst(timeline: Timeline) -> None:
    timeline.commands(*keystrokes(timeline, 0, "abc"), *keystrokes(timeline, 2.5, "de"))

    assert [item["message"] for item in timeline.items()] == [
        "Typed 3 characters",
        "Typed 2 characters",
    ]


def test_typing_on_another_page_starts_a_new_burst(timeline: Timeline) -> None:
    timeline.commands(*keystrokes(timeline, 0, "abc"))
    timeline.command(0.3, "Input.insertText", {"text": "xy"}, page=OTHER_PAGE)

    items = timeline.items()
    assert [(item["pageId"], item["message"]) for item in items] == [
        (PAGE, "Typed 3 characters"),
        (OTHER_PAGE, "Typed 2 characters"),
    ]


def test_another_command_or_a_navigation_interrupts_a_typing_burst(timeline: Timeline) -> None:
    timeline.commands(*keystrokes(timeline, 0, "ab"))
    timeline.command(0.3, "Runtime.evaluate", {"expression": "1"})
    timeline.commands(*keystrokes(timeline, 0.5, "cd"))
    timeline.event(0.8, "navigation", {"url": "https://shop.test/results"})
    timeline.commands(*keystrokes(timeline, 1.0, "ef"))

    items = timeline.items()
    assert [item["message"] for item in items] == [
        "Typed 2 characters",
        "Typed 2 characters",
        "Navigated to https://shop.test/results",
        "Typed 2 characters",
    ]
    # The script call prepared the second burst: it is that step's child.
    assert items[1]["children"][0]["message"] == "Runtime.evaluate"


def test_background_events_and_mouse_moves_do_not_interrupt_typing(timeline: Timeline) -> None:
    timeline.commands(*keystrokes(timeline, 0, "abc"))
    timeline.events(
        (0.05, "network.request", {"requestId": "1", "method": "GET", "url": "https://s.test/q"}),
        (0.1, "console.message", {"level": "log", "text": "keypress"}),
        (0.12, "network.failed",
         {"requestId": "1", "url": "https://s.test/q", "errorText": "net::ERR_CONNECTION_RESET"}),
    )  # fmt: skip
    timeline.commands(mouse(timeline, 0.15, "mouseMoved", 10, 10))

    assert [item["type"] for item in timeline.items()] == [
        "browser.type",
        "console.message",
        "network.failed",
    ]
    assert timeline.only("browser.type")["message"] == "Typed 3 characters"


# Mouse ------------------------------------------------------------------------------


def test_a_press_and_release_is_one_click_and_mouse_moves_are_noise(timeline: Timeline) -> None:
    timeline.commands(
        *[mouse(timeline, i * 0.01, "mouseMoved", i * 10, i * 5) for i in range(20)],
        *click(timeline, 0.3, 120.4, 45.6),
    )

    items = timeline.items()
    assert len(items) == 1
    assert items[0]["type"] == "browser.click"
    assert items[0]["message"] == "Clicked at (120, 46)"
    assert items[0]["durationMs"] == 60
    assert len(items[0]["source"]["commands"]) == 2


def test_a_double_click_and_a_right_click_say_so(timeline: Timeline) -> None:
    timeline.commands(
        *click(timeline, 0, 50, 50),
        *click(timeline, 0.15, 50, 50, clickCount=2),
        *click(timeline, 3, 80, 90, button="right"),
    )

    assert [item["message"] for item in timeline.items()] == [
        "Double-clicked at (50, 50)",
        "Right-clicked at (80, 90)",
    ]


def test_a_press_released_far_away_is_a_drag(timeline: Timeline) -> None:
    timeline.commands(
        mouse(timeline, 0, "mousePressed", 10, 10, button="left"),
        *[mouse(timeline, 0.1 + i * 0.02, "mouseMoved", 10 + i * 20, 10) for i in range(10)],
        mouse(timeline, 0.4, "mouseReleased", 200, 10, button="left"),
    )

    item = timeline.only("browser.drag")
    assert item["message"] == "Dragged from (10, 10) to (200, 10)"


def test_a_burst_of_wheel_events_is_one_scroll_item(timeline: Timeline) -> None:
    timeline.commands(
        *[mouse(timeline, i * 0.1, "mouseWheel", 400, 300, deltaX=0, deltaY=120) for i in range(5)],
        mouse(timeline, 0.6, "mouseWheel", 400, 300, deltaX=0, deltaY=-100),
        mouse(timeline, 5, "mouseWheel", 400, 300, deltaX=-50, deltaY=0),
    )

    assert [item["message"] for item in timeline.items()] == [
        "Scrolled down 500 px",
        "Scrolled left 50 px",
    ]
    assert timeline.items()[0]["durationMs"] == 610


# Navigation -------------------------------------------------------------------------


def test_a_navigate_command_and_its_navigation_event_are_one_navigate_item(
    timeline: Timeline,
) -> None:
    command_id = timeline.command(0, "Page.navigate", {"url": "http://shop.test"}, took=0.8)
    timeline.event(0.7, "navigation", {"url": "https://shop.test/", "transition": "typed"})

    item = timeline.only("browser.navigate")
    assert item["message"] == "Navigated to https://shop.test/"
    assert item["id"] == f"act_{command_id}"
    assert item["status"] == "succeeded"
    assert item["durationMs"] == 800
    assert item["source"] == {"events": [1], "commands": [command_id]}


def test_a_navigation_without_a_command_is_its_own_item(timeline: Timeline) -> None:
    timeline.commands(*click(timeline, 0, 300, 200))
    timeline.event(0.4, "navigation", {"url": "https://shop.test/cart", "transition": "link"})
    timeline.event(3, "navigation", {"url": "https://shop.test/cart", "transition": "reload"})

    assert [item["message"] for item in timeline.items()] == [
        "Clicked at (300, 200)",
        "Navigated to https://shop.test/cart",
        "Reloaded /cart",
    ]


def test_a_failed_navigate_command_is_an_error(timeline: Timeline) -> None:
    timeline.command(
        0,
        "Page.navigate",
        {"url": "https://nope.invalid"},
        status="failed",
        error={"message": "net::ERR_NAME_NOT_RESOLVED"},
    )

    item = timeline.only("browser.navigate")
    assert (
        item["message"] == "Navigation to https://nope.invalid failed: net::ERR_NAME_NOT_RESOLVED"
    )
    assert (item["status"], item["severity"]) == ("failed", "error")


def test_a_navigate_command_still_waiting_is_running(timeline: Timeline) -> None:
    timeline.command(0, "Page.navigate", {"url": "https://slow.test"}, status="pending")

    item = timeline.only("browser.navigate")
    assert (item["message"], item["status"]) == ("Navigating to https://slow.test", "running")


def test_a_navigation_long_after_the_command_is_a_separate_item(timeline: Timeline) -> None:
    timeline.command(0, "Page.navigate", {"url": "https://a.test/"})
    timeline.event(0.5, "navigation", {"url": "https://a.test/"})
    timeline.event(30, "navigation", {"url": "https://a.test/next"})

    assert [item["message"] for item in timeline.items()] == [
        "Navigated to https://a.test/",
        "Navigated to /next",
    ]


# Network and console ----------------------------------------------------------------


def test_successful_requests_are_not_items_but_failures_and_http_errors_are(
    timeline: Timeline,
) -> None:
    def request(seconds: float, rid: str, method: str, url: str) -> tuple[float, str, dict]:
        data = {"requestId": rid, "method": method, "url": url, "resourceType": "Fetch"}
        return (seconds, "network.request", data)

    def response(seconds: float, rid: str, url: str, status: int) -> tuple[float, str, dict]:
        data = {"requestId": rid, "url": url, "status": status, "mimeType": "application/json",
                "encodedDataLength": 120}  # fmt: skip
        return (seconds, "network.response", data)

    timeline.events(
        request(0, "1", "GET", "https://shop.test/"),
        response(0.1, "1", "https://shop.test/", 200),
        request(0.2, "2", "POST", "https://shop.test/api/cart"),
        response(0.3, "2", "https://shop.test/api/cart", 503),
        request(0.4, "3", "GET", "https://shop.test/missing.png"),
        response(0.5, "3", "https://shop.test/missing.png", 404),
        request(0.6, "4", "GET", "https://cdn.test/app.js"),
        (0.7, "network.failed", {"requestId": "4", "url": "https://cdn.test/app.js",
                                 "errorText": "net::ERR_CONNECTION_REFUSED"}),
        response(0.8, "5", "https://shop.test/redirect", 302),
    )  # fmt: skip

    assert [(i["type"], i["severity"], i["message"]) for i in timeline.items()] == [
        ("network.http_error", "error", "POST https://shop.test/api/cart returned HTTP 503"),
        ("network.http_error", "warning", "GET https://shop.test/missing.png returned HTTP 404"),
        (
            "network.failed",
            "error",
            "Request failed: GET https://cdn.test/app.js — net::ERR_CONNECTION_REFUSED",
        ),
    ]


def test_console_errors_and_warnings_stand_alone_and_info_messages_are_grouped(
    timeline: Timeline,
) -> None:
    timeline.events(
        (0, "console.message", {"level": "log", "text": "app booting"}),
        (0.1, "console.message", {"level": "info", "text": "config loaded"}),
        (0.2, "console.message", {"level": "debug", "text": "3 widgets"}),
        (0.3, "console.message", {"level": "warning", "text": "deprecated API"}),
        (0.4, "console.message", {"level": "error", "text": "TypeError: x is undefined"}),
        (0.5, "console.message", {"level": "log", "text": "retrying"}),
    )

    items = timeline.items()
    assert [(i["severity"], i["message"]) for i in items] == [
        ("info", "3 console messages, starting with Console log: app booting"),
        ("warning", "Console warning: deprecated API"),
        ("error", "Console error: TypeError: x is undefined"),
        ("info", "Console log: retrying"),
    ]
    assert [child["message"] for child in items[0]["children"]] == [
        "Console log: app booting",
        "Console info: config loaded",
        "Console debug: 3 widgets",
    ]
    assert items[0]["source"]["events"] == [1, 2, 3]
    assert items[0]["durationMs"] == 200
    assert all(item["type"] == "console.message" for item in items)


def test_a_pause_or_another_item_closes_a_console_group(timeline: Timeline) -> None:
    timeline.events(
        (0, "console.message", {"level": "log", "text": "one"}),
        (3, "console.message", {"level": "log", "text": "two"}),
    )
    timeline.command(3.1, "Page.captureScreenshot")
    timeline.event(3.2, "console.message", {"level": "log", "text": "three"})

    assert [item["message"] for item in timeline.items()] == [
        "Console log: one",
        "Console log: two",
        "Took a screenshot",
        "Console log: three",
    ]


# One item per event -----------------------------------------------------------------


def test_page_and_browser_events_each_get_a_readable_item(timeline: Timeline) -> None:
    timeline.events(
        (0, "runtime.lifecycle", {"state": "starting"}),
        (1, "runtime.lifecycle", {"state": "started"}),
        (2, "target.created", {"targetId": "T2", "type": "page", "url": "about:blank"}),
        (2.1, "target.created", {"targetId": "W1", "type": "service_worker", "url": "sw.js"}),
        (3, "page.error", {"message": "ReferenceError: foo is not defined\n    at app.js:1"}),
        (4, "dialog", {"type": "confirm", "message": "Leave without saving?"}),
        (5, "download", {"url": "https://s.test/r.pdf", "suggestedFilename": "report.pdf"}),
        (6, "control.requested", {"who": "ada@example.com", "viewer": "user:1"}),
        (6.5, "control.granted", {"who": "ada@example.com", "viewer": "user:1"}),
        (7, "control.requested", {"who": "Viewer x1", "viewer": "lease:x1"}),
        (8, "control.released", {"who": "ada@example.com", "viewer": "user:1", "reason": "idle"}),
        (9, "target.closed", {"targetId": "T2", "type": "page", "url": "https://s.test/help"}),
        (10, "runtime.lifecycle", {"state": "failed", "reason": "Chromium crashed"}),
        (11, "custom.checkpoint", {"name": "cart"}),
    )  # fmt: skip

    assert [(i["type"], i["severity"], i["message"]) for i in timeline.items()] == [
        ("runtime.lifecycle", "info", "Browser starting"),
        ("runtime.lifecycle", "info", "Browser started"),
        ("tab.opened", "info", "Opened a new tab"),
        ("page.error", "error", "Page error: ReferenceError: foo is not defined"),
        ("dialog", "info", 'Dialog "Leave without saving?" shown'),
        ("download", "info", "Downloaded report.pdf"),
        (
            "control.takeover",
            "info",
            "ada@example.com controlled the browser for 1.5 s (idle for too long)",
        ),
        ("control.requested", "info", "Viewer x1 asked for control while ada@example.com held it"),
        ("tab.closed", "info", "Closed a tab: https://s.test/help"),
        ("runtime.lifecycle", "error", "Browser failed: Chromium crashed"),
        ("event", "info", "custom.checkpoint"),
    ]


def test_a_stored_artifact_appears_as_an_item(timeline: Timeline) -> None:
    services.artifact_store(
        run=timeline.run, kind="screenshot", name="cart.png", content=io.BytesIO(b"x" * 2048)
    )

    item = timeline.only("artifact.created")
    assert item["message"] == "Captured a screenshot cart.png (2.0 KB)"
    assert item["source"]["events"] == [1]


# Other commands ---------------------------------------------------------------------


def test_a_screenshot_is_a_step_and_a_failed_command_stays_loud(timeline: Timeline) -> None:
    timeline.command(0, "Page.captureScreenshot", took=0.25)
    timeline.command(6, "Runtime.evaluate", status="failed", error={"message": "Bad expression"})
    timeline.command(6.5, "Runtime.evaluate", status="failed", error={"message": "Bad again"})

    items = timeline.items()
    assert [(i["type"], i["message"], i["status"], i["severity"]) for i in items] == [
        ("browser.screenshot", "Took a screenshot", "succeeded", "info"),
        ("command", "Runtime.evaluate failed (2 times)", "failed", "error"),
    ]
    assert items[0]["durationMs"] == 250


def test_plumbing_folds_into_the_step_it_prepared_or_followed(timeline: Timeline) -> None:
    # What Playwright sends around a click: checks before it, a release after it.
    for index in range(4):
        timeline.command(index * 0.1, "Runtime.callFunctionOn", {"functionDeclaration": "f"})
    timeline.commands(*click(timeline, 0.5, 10, 10))
    timeline.command(0.7, "Runtime.releaseObject", {"objectId": "1"})

    item = timeline.only("browser.click")
    assert len(timeline.items()) == 1
    assert [child["message"] for child in item["children"]] == [
        "Runtime.callFunctionOn (4 times)",
        "Runtime.releaseObject",
    ]
    assert len(item["source"]["commands"]) == 7


def test_plumbing_that_no_step_claims_is_one_collapsed_item(timeline: Timeline) -> None:
    timeline.commands(*click(timeline, 0, 10, 10))
    for index in range(5):
        timeline.command(10 + index * 0.5, "Runtime.evaluate", {"expression": "document.title"})
    timeline.command(12.6, "DOM.getDocument", status="pending")
    timeline.command(30, "Runtime.evaluate", {"expression": "1"})

    items = timeline.items()
    assert [(i["type"], i["message"], i["status"]) for i in items] == [
        ("browser.click", "Clicked at (10, 10)", "succeeded"),
        ("automation", "6 automation calls", "running"),
        ("automation", "1 automation call", "succeeded"),
    ]
    assert [child["message"] for child in items[1]["children"]] == [
        "Runtime.evaluate (5 times)",
        "DOM.getDocument",
    ]


def test_housekeeping_errors_are_not_failures(timeline: Timeline) -> None:
    timeline.commands(*click(timeline, 0, 10, 10))
    for index, message in enumerate(
        ("Cannot find context with specified id", "Execution context was destroyed.")
    ):
        timeline.command(
            0.3 + index * 0.1, "Runtime.releaseObject", status="failed", error={"message": message}
        )
    timeline.command(
        0.6, "cdp.internal", {"count": 3}, status="failed", error={"message": "No target"}
    )

    item = timeline.only("browser.click")
    assert len(timeline.items()) == 1
    assert (item["status"], item["severity"]) == ("succeeded", "info")
    assert [c["status"] for c in item["children"]] == ["info", "info", "info"]
    assert "Cannot find context" in item["children"][0]["message"]


def test_plumbing_waits_for_its_step_while_the_run_is_live(tenant: Tenant) -> None:
    run = services.run_create(space=tenant.space, name="live")
    started = timezone.now()
    services.commands_record(
        run=run,
        commands=[
            {
                "method": "Runtime.callFunctionOn",
                "params": {},
                "status": "succeeded",
                "page_id": PAGE,
                "started_at": started,
                "ended_at": started + timedelta(milliseconds=5),
            }
        ],
    )

    assert [item["type"] for item in activity_items(run)] == ["run.started"]


# Steps named from the page ---------------------------------------------------------


def page_input(timeline: Timeline, seconds: float, kind: str, **data: Any) -> None:
    timeline.event(seconds, "input", {"kind": kind, **data})


def test_a_click_is_named_from_the_element_the_page_reported(timeline: Timeline) -> None:
    timeline.commands(*click(timeline, 0, 58, 246))
    page_input(timeline, 0.02, "click", role="button", name="Place order", x=58, y=246)
    timeline.commands(*click(timeline, 1, 10, 10))
    page_input(timeline, 1.02, "click", role="link", name="Shop now")
    timeline.commands(*click(timeline, 2, 20, 20))
    page_input(timeline, 2.02, "click", role="button", name="")
    timeline.commands(*click(timeline, 3, 30, 30))
    page_input(timeline, 3.02, "click", role="", name="Trail Runner 2")

    items = timeline.items()
    assert [item["message"] for item in items] == [
        'Clicked button "Place order"',
        'Clicked link "Shop now"',
        "Clicked an unlabelled button",
        'Clicked "Trail Runner 2"',
    ]
    assert (items[0]["role"], items[0]["name"]) == ("button", "Place order")


def test_typing_is_named_from_the_field_and_never_shows_the_text(timeline: Timeline) -> None:
    timeline.commands(*keystrokes(timeline, 0, "4242424242424242", step=0.02))
    page_input(timeline, 0.01, "type", role="textbox", name="Card number")
    timeline.command(2, "Runtime.callFunctionOn")
    timeline.commands(*keystrokes(timeline, 2.2, "hunter2"))
    page_input(timeline, 2.21, "type", role="textbox", name="Password", masked=True)
    timeline.command(4, "Runtime.callFunctionOn")
    timeline.commands(*keystrokes(timeline, 4.2, "shoes"), *press(timeline, 4.8, "Enter"))
    page_input(timeline, 4.21, "type", role="searchbox", name="Search")
    timeline.command(6, "Runtime.callFunctionOn")
    timeline.commands(*press(timeline, 6.2, "Enter"))
    page_input(timeline, 6.21, "type", role="searchbox", name="Search")
    timeline.command(8, "Runtime.callFunctionOn")
    timeline.command(8.2, "Input.insertText", {"text": "[redacted]", "length": 3})
    page_input(timeline, 8.21, "type", role="textbox", name="")

    messages = [item["message"] for item in timeline.items()]
    assert messages == [
        'Typed 16 characters into "Card number"',
        'Typed 7 characters into "Password"',
        'Typed 5 characters into "Search", pressed Enter',
        'Pressed Enter in "Search"',
        "Typed 3 characters into an unlabelled field",
    ]
    assert "4242" not in str(activity_items(timeline.run))


def test_choices_are_steps_named_from_the_page(timeline: Timeline) -> None:
    timeline.command(0, "Runtime.callFunctionOn")
    page_input(timeline, 0.1, "select", role="combobox", name="Colour", options=["Red"])
    timeline.commands(*click(timeline, 1, 5, 5))
    page_input(timeline, 1.01, "click", role="checkbox", name="I agree")
    page_input(timeline, 1.05, "check", role="checkbox", name="I agree", checked=True)
    timeline.commands(*click(timeline, 2, 5, 5))
    page_input(timeline, 2.01, "click", role="checkbox", name="I agree")
    page_input(timeline, 2.05, "check", role="checkbox", name="I agree", checked=False)
    timeline.command(3, "DOM.setFileInputFiles", {"files": ["/x/receipt.pdf"]})
    page_input(
        timeline,
        3.1,
        "upload",
        role="button",
        name="Attachment",
        files=["receipt.pdf"],
        fileCount=1,
    )

    items = timeline.items()
    assert [(item["type"], item["message"]) for item in items] == [
        ("browser.select", 'Selected "Red" in "Colour"'),
        ("browser.check", 'Checked "I agree"'),
        ("browser.check", 'Unchecked "I agree"'),
        ("browser.upload", 'Uploaded receipt.pdf to "Attachment"'),
    ]
    assert [child["message"] for child in items[0]["children"]] == ["Runtime.callFunctionOn"]
    assert [child["message"] for child in items[3]["children"]] == ["DOM.setFileInputFiles"]


def test_input_no_command_made_is_a_step_of_its_own(timeline: Timeline) -> None:
    """A person in the live view: the host sends the input, the page reports it."""
    page_input(timeline, 0, "click", role="button", name="Pay", x=5, y=6)
    page_input(timeline, 3, "type", role="textbox", name="Notes")

    assert [item["message"] for item in timeline.items()] == [
        'Clicked button "Pay"',
        'Typed into "Notes"',
    ]


def test_input_refused_during_a_takeover_says_so(timeline: Timeline) -> None:
    busy = {"message": "runtime.controller_busy: a person is controlling this browser"}
    timeline.commands(
        cmd(timeline, 0, "Input.dispatchMouseEvent",
            {"type": "mousePressed", "x": 5, "y": 5, "button": "left"},
            status="failed", error=busy),
    )  # fmt: skip
    # The person's own click a moment later is theirs, not the refused one's.
    page_input(timeline, 0.3, "click", role="button", name="Pay")

    items = timeline.items()
    assert [item["message"] for item in items] == [
        "Clicked at (5, 5) — refused: a person was controlling the browser",
        'Clicked button "Pay"',
    ]
    assert (items[0]["status"], items[0]["severity"]) == ("failed", "error")


def test_a_navigation_says_the_pages_title_and_its_error_status(timeline: Timeline) -> None:
    timeline.command(0, "Page.navigate", {"url": "https://shop.test/demo/"})
    timeline.event(0.3, "navigation", {"url": "https://shop.test/demo/"})
    timeline.event(0.4, "page.title", {"url": "https://shop.test/demo/", "title": "Shop"})
    timeline.command(2, "Page.navigate", {"url": "https://shop.test/demo/checkout"})
    timeline.event(2.3, "navigation", {"url": "https://shop.test/demo/checkout"})
    timeline.event(
        2.4, "page.title", {"url": "https://shop.test/demo/checkout", "title": "Checkout"}
    )
    timeline.events(
        (4, "network.request", {"requestId": "9", "method": "GET",
                                "url": "https://shop.test/demo/gone", "resourceType": "Document"}),
        (4.2, "network.response", {"requestId": "9", "url": "https://shop.test/demo/gone",
                                   "status": 404}),
        (4.3, "navigation", {"url": "https://shop.test/demo/gone"}),
        (4.4, "page.title", {"url": "https://shop.test/demo/gone", "title": "Not found"}),
        (6, "network.request", {"requestId": "10", "method": "GET",
                                "url": "https://shop.test/x.csv", "resourceType": "Document"}),
        (6.1, "network.failed", {"requestId": "10", "url": "https://shop.test/x.csv",
                                 "errorText": "net::ERR_ABORTED"}),
        (7, "network.request", {"requestId": "11", "method": "GET",
                                "url": "https://down.test/", "resourceType": "Document"}),
        (7.1, "network.failed", {"requestId": "11", "url": "https://down.test/",
                                 "errorText": "net::ERR_CONNECTION_REFUSED"}),
    )  # fmt: skip

    items = timeline.items()
    assert [(i["message"], i["severity"]) for i in items] == [
        ("Navigated to Shop — https://shop.test/demo/", "info"),
        ("Navigated to Checkout — /demo/checkout", "info"),
        ("Navigated to Not found — /demo/gone (HTTP 404)", "warning"),
        ("Navigation to https://down.test/ failed: net::ERR_CONNECTION_REFUSED", "error"),
    ]


def test_a_title_reported_before_its_navigation_names_it(timeline: Timeline) -> None:
    # The page's capture may report its title before the host writes the navigation.
    timeline.event(0.2, "page.title", {"url": "https://shop.test/help", "title": "Help"})
    timeline.event(0.3, "navigation", {"url": "https://shop.test/help"})
    timeline.event(1.2, "page.title", {"url": "https://shop.test/other", "title": "Other"})
    timeline.event(1.3, "navigation", {"url": "https://shop.test/faq"})
    assert [item["message"] for item in timeline.items()] == [
        "Navigated to Help — https://shop.test/help",
        "Navigated to /faq",  # a title of another address is not its
    ]


def test_a_navigate_command_the_proxy_could_not_place_takes_its_events_page(
    timeline: Timeline,
) -> None:
    # A raw client's Page.navigate on a session the proxy had not yet tied to its tab
    # (sent right after Target.attachToTarget) has no page; its navigation event and the
    # page's title do, and name the step.
    timeline.command(0, "Page.navigate", {"url": "https://shop.test/help"}, page="", took=0.3)
    timeline.event(0.2, "navigation", {"url": "https://shop.test/help"})
    timeline.event(0.4, "page.title", {"url": "https://shop.test/help", "title": "Help"})
    timeline.command(2, "Page.navigate", {"url": "https://shop.test/faq"}, page="", took=0.3)
    timeline.event(2.1, "page.title", {"url": "https://shop.test/faq", "title": "FAQ"})
    timeline.event(2.2, "navigation", {"url": "https://shop.test/faq"})
    assert [item["message"] for item in timeline.items()] == [
        "Navigated to Help — https://shop.test/help",
        "Navigated to FAQ — /faq",
    ]


def test_a_navigate_command_whose_event_never_came_is_named_by_the_pages_title(
    timeline: Timeline,
) -> None:
    timeline.command(0, "Page.navigate", {"url": "https://shop.test/"}, took=0.3)
    timeline.event(0.2, "navigation", {"url": "https://shop.test/"})
    # The host missed this navigation's event; the page's capture told its title.
    timeline.command(2, "Page.navigate", {"url": "https://shop.test/help"}, took=0.3)
    timeline.event(2.5, "page.title", {"url": "https://shop.test/help", "title": "Help"})
    # A title of another address than the command's is not its.
    timeline.command(4, "Page.navigate", {"url": "https://shop.test/faq"}, took=0.3)
    timeline.event(4.5, "page.title", {"url": "https://shop.test/other", "title": "Other"})
    assert [item["message"] for item in timeline.items()] == [
        "Navigated to https://shop.test/",
        "Navigated to Help — /help",
        "Navigated to https://shop.test/faq",
    ]


def test_a_dialog_says_how_it_was_answered(timeline: Timeline) -> None:
    timeline.event(0, "dialog", {"type": "confirm", "message": "Are you sure?"})
    timeline.command(0.5, "Page.handleJavaScriptDialog", {"accept": True})
    timeline.event(0.6, "dialog.closed", {"accepted": True})
    timeline.event(2, "dialog", {"type": "confirm", "message": "Delete?"})
    timeline.event(2.5, "dialog.closed", {"accepted": False})
    timeline.event(4, "dialog", {"type": "alert", "message": "Saved"})

    assert [item["message"] for item in timeline.items()] == [
        'Dialog "Are you sure?" accepted',
        'Dialog "Delete?" dismissed',
        'Alert "Saved" shown',
    ]


# The run's own items and ordering ---------------------------------------------------


def test_a_run_starts_with_a_started_item_and_ends_with_a_completed_one(
    timeline: Timeline,
) -> None:
    timeline.event(0, "navigation", {"url": "https://a.test/"})
    run = services.run_stop(run=timeline.run)

    items = activity_items(run)
    assert [item["type"] for item in items] == ["run.started", "browser.navigate", "run.completed"]
    assert items[0]["id"] == f"act_{run.id}_started"
    assert items[0]["message"] == "Run checkout started"
    assert items[-1]["time"] == run.ended_at.isoformat().replace("+00:00", "Z")  # type: ignore[union-attr]
    assert items[-1]["message"].startswith("Run completed in ")
    assert items[-1]["status"] == "succeeded"


def test_a_failed_run_ends_with_an_error_quoting_its_message(timeline: Timeline) -> None:
    run = services.run_stop(
        run=timeline.run, status="failed", error={"message": "Login page never loaded"}
    )

    last = activity_items(run)[-1]
    assert (last["type"], last["status"], last["severity"]) == ("run.failed", "failed", "error")
    assert last["message"].endswith(": Login page never loaded")


def test_items_are_sorted_by_time_across_events_and_commands(timeline: Timeline) -> None:
    timeline.events(
        (0.5, "console.message", {"level": "error", "text": "first"}),
        (2.5, "page.error", {"message": "third"}),
    )
    timeline.commands(*click(timeline, 1.5, 1, 1), *click(timeline, 3.5, 2, 2))

    assert [item["message"] for item in timeline.items()] == [
        "Console error: first",
        "Clicked at (1, 1)",
        "Page error: third",
        "Clicked at (2, 2)",
    ]


def test_the_item_shape(timeline: Timeline) -> None:
    timeline.event(0, "page.error", {"message": "boom"})

    item = timeline.only("page.error")
    assert set(item) == {
        "id", "time", "type", "message", "status", "severity", "durationMs", "pageId",
        "role", "name", "children", "source",
    }  # fmt: skip
    assert (item["role"], item["name"]) == (None, None)
    assert item["id"].startswith("act_evt_")
    assert item["source"] == {"events": [1], "commands": []}


# Stable ids ------------------------------------------------------------------------


def test_an_items_id_stays_the_same_as_its_burst_grows(timeline: Timeline) -> None:
    first = timeline.commands(*keystrokes(timeline, 0, "ab"))
    before = timeline.only("browser.type")

    timeline.commands(*keystrokes(timeline, 0.5, "cdef"))
    after = timeline.only("browser.type")

    assert before["id"] == after["id"] == f"act_{first[0]}"
    assert (before["message"], after["message"]) == ("Typed 2 characters", "Typed 6 characters")


def test_ids_handed_out_stay_valid_as_a_run_grows(timeline: Timeline) -> None:
    script: list[Callable[[], Any]] = [
        lambda: timeline.command(0, "Page.navigate", {"url": "https://a.test/"}),
        lambda: timeline.event(0.4, "navigation", {"url": "https://a.test/"}),
        lambda: timeline.event(0.5, "console.message", {"level": "log", "text": "hi"}),
        lambda: timeline.event(0.6, "console.message", {"level": "log", "text": "again"}),
        lambda: timeline.commands(*click(timeline, 1, 5, 5)),
        lambda: timeline.commands(*keystrokes(timeline, 1.2, "abc")),
        lambda: timeline.commands(*press(timeline, 1.6, "Enter")),
        lambda: timeline.commands(*click(timeline, 2, 5, 5)),
        lambda: timeline.commands(*click(timeline, 2.1, 5, 5, clickCount=2)),
        lambda: timeline.command(3, "Runtime.evaluate"),
        lambda: timeline.command(3.5, "Runtime.evaluate"),
        lambda: timeline.event(3.6, "network.failed", {"url": "https://u.test", "errorText": "x"}),
        lambda: timeline.command(4, "Runtime.evaluate"),
    ]  # fmt: skip
    seen: set[str] = set()
    for step in script:
        step()
        ids = {item["id"] for item in activity_items(timeline.run)}
        assert seen <= ids, f"lost {seen - ids}"
        seen |= ids
    assert len(seen) == len(activity_items(timeline.run))


# The endpoint ----------------------------------------------------------------------


def test_the_endpoint_returns_the_timeline(tenant: Tenant, timeline: Timeline) -> None:
    timeline.commands(*keystrokes(timeline, 0, "abc"))

    response = tenant.client.get(f"/v1/runs/{timeline.run.id}/activity")

    assert response.status_code == 200
    body = response.json()
    assert body["truncated"] is False
    assert [item["type"] for item in body["data"]] == ["run.started", "browser.type"]
    assert body["data"] == activity_items(timeline.run)


def test_another_tenants_run_is_not_found(other_tenant: Tenant, timeline: Timeline) -> None:
    response = other_tenant.client.get(f"/v1/runs/{timeline.run.id}/activity")

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_an_unknown_run_is_not_found(tenant: Tenant) -> None:
    response = tenant.client.get("/v1/runs/run_nope/activity")

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_without_an_api_key_the_activity_is_refused(timeline: Timeline) -> None:
    from rest_framework.test import APIClient

    response = APIClient().get(f"/v1/runs/{timeline.run.id}/activity")

    assert response.status_code == 401


@pytest.fixture
def noisy(timeline: Timeline) -> Timeline:
    timeline.events(
        (0, "console.message", {"level": "log", "text": "hello"}),
        (1, "console.message", {"level": "warning", "text": "careful"}),
        (2, "page.error", {"message": "boom"}),
    )
    timeline.commands(*click(timeline, 3, 1, 1))
    return timeline


def test_the_severity_filter_keeps_items_at_least_that_severe(
    tenant: Tenant, noisy: Timeline
) -> None:
    url = f"/v1/runs/{noisy.run.id}/activity"

    warnings = tenant.client.get(url, {"severity": "warning"}).json()["data"]
    errors = tenant.client.get(url, {"severity": "error"}).json()["data"]

    assert [item["message"] for item in warnings] == [
        "Console warning: careful",
        "Page error: boom",
    ]
    assert [item["message"] for item in errors] == ["Page error: boom"]


def test_the_type_filter_keeps_the_listed_types(tenant: Tenant, noisy: Timeline) -> None:
    url = f"/v1/runs/{noisy.run.id}/activity"

    data = tenant.client.get(url, {"type": "browser.click,page.error"}).json()["data"]
    both = tenant.client.get(f"{url}?type=run.started&type=page.error").json()["data"]

    assert [item["type"] for item in data] == ["page.error", "browser.click"]
    assert [item["type"] for item in both] == ["run.started", "page.error"]


@pytest.mark.parametrize(
    ("params", "field"),
    [({"severity": "critical"}, "severity"), ({"type": "browser.click,browser.hover"}, "type")],
)
def test_an_unknown_severity_or_type_is_refused(
    tenant: Tenant, timeline: Timeline, params: dict[str, str], field: str
) -> None:
    response = tenant.client.get(f"/v1/runs/{timeline.run.id}/activity", params)

    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert field in error["details"]


@pytest.mark.parametrize("events", [5, 400])
def test_the_endpoint_runs_a_fixed_number_of_queries_however_big_the_run(
    tenant: Tenant, timeline: Timeline, django_assert_num_queries: Any, events: int
) -> None:
    timeline.events(
        *[(i * 0.01, "console.message", {"level": "log", "text": f"m{i}"}) for i in range(events)]
    )
    timeline.commands(*keystrokes(timeline, 0, "x" * (events // 2)))
    url = f"/v1/runs/{timeline.run.id}/activity"
    tenant.client.get(url)  # records the key's use, which is written at most once a minute

    # 1. the API key and its space, 2. the run (scoped to the space),
    # 3. the run's events, 4. the run's commands.
    with django_assert_num_queries(4):
        response = tenant.client.get(url)

    assert response.status_code == 200


def test_a_huge_run_keeps_its_latest_items_and_says_it_was_truncated(
    timeline: Timeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(activity_module, "MAX_ITEMS", 3)
    timeline.events(*[(i, "page.error", {"message": f"error {i}"}) for i in range(5)])

    result = activity(timeline.run)

    assert result.truncated is True
    assert [item["message"] for item in result.items] == [
        "Run checkout started",
        "Page error: error 2",
        "Page error: error 3",
        "Page error: error 4",
    ]


def test_a_run_with_more_records_than_read_says_it_was_truncated(
    timeline: Timeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(activity_module, "MAX_RECORDS", 4)
    timeline.events(*[(i, "page.error", {"message": f"error {i}"}) for i in range(5)])

    result = activity(timeline.run)

    assert result.truncated is True
    assert [item["message"] for item in result.items][1:] == [
        f"Page error: error {i}" for i in range(1, 5)
    ]
    assert activity(timeline.run, types=["page.error"]).items[0]["message"] == "Page error: error 1"


def test_a_run_of_exactly_the_limit_is_not_truncated(
    timeline: Timeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(activity_module, "MAX_RECORDS", 5)
    monkeypatch.setattr(activity_module, "MAX_ITEMS", 5)
    timeline.events(*[(i, "page.error", {"message": f"error {i}"}) for i in range(5)])

    assert activity(timeline.run).truncated is False


def test_a_download_and_a_screenshot_carry_the_file_they_were_stored_as(
    timeline: Timeline,
) -> None:
    timeline.events(
        (0, "artifact.created",
         {"artifactId": "art_1", "kind": "download", "name": "receipt.csv", "size": 230}),
        (0.1, "download", {"url": "https://s.test/r", "suggestedFilename": "receipt.csv",
                           "artifactId": "art_1"}),
    )  # fmt: skip
    timeline.command(2, "Page.captureScreenshot", took=0.2)
    timeline.event(2.3, "artifact.created", {"kind": "screenshot", "name": "shot.png"})

    items = timeline.items()
    assert [item["message"] for item in items] == ["Downloaded receipt.csv", "Took a screenshot"]
    assert [child["message"] for child in items[0]["children"]] == [
        "Saved download receipt.csv (230 bytes)"
    ]
    assert [child["message"] for child in items[1]["children"]] == [
        "Captured a screenshot shot.png"
    ]


def test_a_long_address_is_shortened_after_its_first_visit(timeline: Timeline) -> None:
    token = "x" * 200
    timeline.event(0, "navigation", {"url": "https://shop.test/"})
    timeline.event(3, "navigation", {"url": f"https://shop.test/orders/{token}"})

    message = timeline.items()[1]["message"]
    assert message.startswith("Navigated to /orders/xxx") and message.endswith("…")
    assert len(message) < 80


def test_a_missing_favicon_is_no_error(timeline: Timeline) -> None:
    timeline.events(
        (0, "network.request", {"requestId": "1", "method": "GET",
                                "url": "https://s.test/favicon.ico", "resourceType": "Other"}),
        (0.1, "network.response", {"requestId": "1", "url": "https://s.test/favicon.ico",
                                   "status": 404}),
        (0.2, "network.response", {"requestId": "2", "url": "https://s.test/logo.png",
                                   "status": 404}),
    )  # fmt: skip

    assert [item["message"] for item in timeline.items()] == [
        "GET https://s.test/logo.png returned HTTP 404"
    ]


def test_a_wheel_scroll_no_command_made_is_a_step_and_one_with_commands_is_not_doubled(
    timeline: Timeline,
) -> None:
    timeline.commands(
        cmd(timeline, 0, "Input.dispatchMouseEvent",
            {"type": "mouseWheel", "x": 5, "y": 5, "deltaX": 0, "deltaY": 300}),
    )  # fmt: skip
    page_input(timeline, 0.45, "scroll", dx=0, dy=300)
    page_input(timeline, 5, "scroll", dx=0, dy=-120)

    assert [item["message"] for item in timeline.items()] == [
        "Scrolled down 300 px",
        "Scrolled up 120 px",
    ]


def test_the_filters_see_what_a_finished_item_says(tenant: Tenant, timeline: Timeline) -> None:
    """A failed click and a failed navigation are errors, and a drag is a drag, when
    filtered as well as when listed."""
    busy = {"message": "runtime.controller_busy: a person is controlling this browser"}
    timeline.commands(
        cmd(timeline, 0, "Input.dispatchMouseEvent",
            {"type": "mousePressed", "x": 5, "y": 5, "button": "left"},
            status="failed", error=busy),
        mouse(timeline, 3, "mousePressed", 10, 10, button="left"),
        *[mouse(timeline, 3.1 + i * 0.02, "mouseMoved", 10 + i * 20, 10) for i in range(10)],
        mouse(timeline, 3.4, "mouseReleased", 200, 10, button="left"),
    )  # fmt: skip
    timeline.command(
        6,
        "Page.navigate",
        {"url": "https://nope.invalid"},
        status="failed",
        error={"message": "net::ERR_NAME_NOT_RESOLVED"},
    )
    url = f"/v1/runs/{timeline.run.id}/activity"

    errors = tenant.client.get(url, {"severity": "error"}).json()["data"]
    drags = tenant.client.get(url, {"type": "browser.drag"}).json()["data"]

    assert [item["message"] for item in errors] == [
        "Clicked at (5, 5) — refused: a person was controlling the browser",
        "Navigation to https://nope.invalid failed: net::ERR_NAME_NOT_RESOLVED",
    ]
    assert [item["message"] for item in drags] == ["Dragged from (10, 10) to (200, 10)"]
