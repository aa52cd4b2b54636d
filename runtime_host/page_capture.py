"""What runs in a run's pages for the host: the rrweb recorder (while the run records)
and the input capture (always: activity names its steps from it), both in the page's
isolated world (runtime_host/recorder.py has their sources). Injected when a page
attaches, injected again where a popup skipped them, switched on and off with the run's
recording, ended at stop; what they report comes back as bindings: rrweb batches for
the run's writer, and inputs that become `input` events named from Chromium's
accessibility tree."""

import asyncio
import contextlib
from datetime import datetime
from typing import Any

import orjson
from django.utils import timezone

from runs.cdp_client import CdpConnection
from runtime_host.parts import HostedBrowser
from runtime_host.recorder import (
    BINDING_NAME,
    END_EXPRESSION,
    INPUT_BINDING_NAME,
    INPUTS_PRESENT_EXPRESSION,
    RUNNING_EXPRESSION,
    WORLD_NAME,
    input_source,
    recorder_source,
    set_enabled_expression,
    take_element_expression,
)
from runtime_host.steps import accessible_element, input_event, named, record_of
from runtime_host.targets import Target

# How long naming an input's element may take before the page's own guess stands.
INPUT_RESOLVE_TIMEOUT_S = 1.0


async def evaluate_in_world(
    cdp: CdpConnection,
    target: Target,
    expression: str,
    timeout: float = 5.0,
    await_promise: bool = False,
) -> Any:
    """`expression`'s value in the page's isolated world (WORLD_NAME), where the host's
    scripts run apart from the page's own (with `await_promise`, what its promise gives)."""
    world = await cdp.send(
        "Page.createIsolatedWorld",
        {"frameId": target.target_id, "worldName": WORLD_NAME},
        target.session_id,
        timeout=timeout,
    )
    result = await cdp.send(
        "Runtime.evaluate",
        {
            "expression": expression,
            "contextId": world["executionContextId"],
            "returnByValue": True,
            "awaitPromise": await_promise,
        },
        target.session_id,
        timeout=timeout,
    )
    return (result.get("result") or {}).get("value")


def recorder_script() -> dict[str, Any]:
    """Page.addScriptToEvaluateOnNewDocument's params for the recorder."""
    return {"source": recorder_source(), "worldName": WORLD_NAME, "runImmediately": True}


class PageCapture:
    def __init__(self, browser: HostedBrowser) -> None:
        self.browser = browser

    @property
    def cdp(self) -> CdpConnection:
        assert self.browser.cdp is not None
        return self.browser.cdp

    # Injection ----------------------------------------------------------------------

    def send_input_capture(self, session: str) -> None:
        """The input capture (static/js/inputs.js) in every frame of a target, whether or
        not the run is recorded: activity names its steps from it."""
        self.cdp.send_nowait(
            "Runtime.addBinding",
            {"name": INPUT_BINDING_NAME, "executionContextName": WORLD_NAME},
            session,
        )
        self.cdp.send_nowait(
            "Page.addScriptToEvaluateOnNewDocument",
            {"source": input_source(), "worldName": WORLD_NAME, "runImmediately": True},
            session,
        )

    def send_to_page(self, target: Target) -> None:
        """Both in a new page (the recorder while the run records), sent before the page
        is resumed; the recorder's script id is kept so that switching the recording off
        removes it."""
        self.cdp.send_nowait(
            "Runtime.addBinding",
            {"name": BINDING_NAME, "executionContextName": WORLD_NAME},
            target.session_id,
        )
        self.send_input_capture(target.session_id)
        if self.browser.recording_enabled:
            script = self.cdp.send_nowait(
                "Page.addScriptToEvaluateOnNewDocument", recorder_script(), target.session_id
            )
            self.browser.spawn(self._remember_script(target, script))

    async def _remember_script(self, target: Target, pending: "asyncio.Future[Any]") -> None:
        with contextlib.suppress(Exception):
            result = await asyncio.wait_for(pending, 10)
            target.script_id = result.get("identifier", "")

    async def check(self, target: Target, delay: float = 0.3) -> None:
        """Same-origin popups skip new-document scripts on their first real page: inject
        the input capture and the recorder into the page's world when they are not
        running there."""
        await asyncio.sleep(delay)
        browser = self.browser
        if browser.stopping:
            return
        with contextlib.suppress(Exception):
            present = await evaluate_in_world(self.cdp, target, INPUTS_PRESENT_EXPRESSION)
            if present is False and not browser.stopping:
                await evaluate_in_world(self.cdp, target, input_source())
        if not browser.recording_enabled:
            return
        with contextlib.suppress(Exception):
            running = await evaluate_in_world(self.cdp, target, RUNNING_EXPRESSION)
            if running is False and browser.recording_enabled and not browser.stopping:
                await evaluate_in_world(self.cdp, target, recorder_source())

    async def switch(self, enabled: bool) -> None:
        """Starts or stops the recorder in every open page and in the pages to come."""
        for target in self.browser.targets.pages():
            with contextlib.suppress(Exception):
                if enabled:
                    result = await self.cdp.send(
                        "Page.addScriptToEvaluateOnNewDocument",
                        recorder_script(),
                        target.session_id,
                    )
                    target.script_id = result.get("identifier", "")
                    await evaluate_in_world(self.cdp, target, set_enabled_expression(True))
                else:
                    if target.script_id:
                        await self.cdp.send(
                            "Page.removeScriptToEvaluateOnNewDocument",
                            {"identifier": target.script_id},
                            target.session_id,
                        )
                        target.script_id = ""
                    await evaluate_in_world(self.cdp, target, set_enabled_expression(False))

    async def end(self) -> None:
        """Each page's recorder writes its last event and flushes (at stop)."""
        await asyncio.gather(
            *(
                evaluate_in_world(self.cdp, page, END_EXPRESSION, timeout=2)
                for page in self.browser.targets.pages()
            ),
            return_exceptions=True,
        )

    # What the pages report ----------------------------------------------------------

    def binding_called(self, target: Target, params: dict[str, Any]) -> None:
        if params.get("name") == INPUT_BINDING_NAME:
            self.browser.spawn(self._input(target, params, timezone.now()))
            return
        if params.get("name") != BINDING_NAME or not self.browser.recording_enabled:
            return
        try:
            events = orjson.loads(params.get("payload") or "[]")
        except orjson.JSONDecodeError:
            return
        if isinstance(events, list):
            self.browser.writer.rrweb(target.target_id, [e for e in events if isinstance(e, dict)])

    async def _input(self, target: Target, params: dict[str, Any], at: datetime) -> None:
        """An input the page's capture told (static/js/inputs.js), as an `input` event
        (or `page.title`) timed when it happened. The element is named from Chromium's
        accessibility tree, over this connection, as soon as the host hears of it; the
        page's own guess stands when the element is already gone."""
        record = record_of(params.get("payload"))
        event = input_event(record) if record is not None else None
        if event is None or record is None:
            return
        kind, data = event
        writer = self.browser.writer
        if kind == "page.title":
            writer.event(kind, data, page_id=target.page_id, time=at)
            return
        mark, context_id = record.get("mark"), params.get("executionContextId")
        if type(mark) is int and type(context_id) is int and self.browser.cdp is not None:
            data = named(data, await self._accessible(target, context_id, mark))
        writer.event(kind, data, page_id=target.page_id, time=at)

    async def _accessible(self, target: Target, context_id: int, mark: int) -> dict[str, str]:
        with contextlib.suppress(Exception):
            taken = await self.cdp.send(
                "Runtime.evaluate",
                {"expression": take_element_expression(mark), "contextId": context_id},
                target.session_id,
                timeout=INPUT_RESOLVE_TIMEOUT_S,
            )
            object_id = (taken.get("result") or {}).get("objectId")
            if not object_id:
                return {}
            try:
                tree = await self.cdp.send(
                    "Accessibility.getPartialAXTree",
                    {"objectId": object_id, "fetchRelatives": False},
                    target.session_id,
                    timeout=INPUT_RESOLVE_TIMEOUT_S,
                )
            finally:
                self.cdp.send_nowait(
                    "Runtime.releaseObject", {"objectId": object_id}, target.session_id
                )
            return accessible_element(tree.get("nodes") or [])
        return {}
