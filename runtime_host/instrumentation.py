"""The instrumentation of a bound browser over our CDP connection: every target is
attached (auto-attach, paused until its setup is sent), and what happens in it becomes
the run's events: tabs opened and closed, navigations, console messages, page errors and
dialogs here; the network (runtime_host/network.py), downloads
(runtime_host/downloads.py) and what the page capture reports
(runtime_host/page_capture.py) by their own parts, to which events are handed on."""

import contextlib
from collections.abc import Callable
from typing import Any

import orjson

from runs.cdp_client import CdpConnection
from runtime_host.downloads import Downloads
from runtime_host.live import LiveLink
from runtime_host.network import NetworkLog
from runtime_host.page_capture import PageCapture
from runtime_host.parts import HostedBrowser
from runtime_host.profiles import ProfileSync
from runtime_host.screenshots import Screenshots
from runtime_host.targets import Target

CONSOLE_LEVELS = {"warning": "warning", "error": "error", "assert": "error", "debug": "debug"}
CONSOLE_LEVELS.update({"info": "info", "trace": "debug"})
MAX_TEXT = 4000
AUTO_ATTACH = {"autoAttach": True, "waitForDebuggerOnStart": True, "flatten": True}


def _text_of(value: dict[str, Any]) -> str:
    if "value" in value:
        raw = value["value"]
        return raw if isinstance(raw, str) else orjson.dumps(raw).decode()
    return str(value.get("unserializableValue") or value.get("description") or value.get("type"))


class Instrumentation:
    def __init__(
        self,
        browser: HostedBrowser,
        *,
        network: NetworkLog,
        capture: PageCapture,
        downloads: Downloads,
        screenshots: Screenshots,
        profile: ProfileSync,
        live: LiveLink,
    ) -> None:
        self.browser = browser
        self.targets = browser.targets
        self.network = network
        self.capture = capture
        self.downloads = downloads
        self.screenshots = screenshots
        self.profile = profile
        self.live = live

    @property
    def cdp(self) -> CdpConnection:
        assert self.browser.cdp is not None
        return self.browser.cdp

    def on_event(self, method: str, params: dict[str, Any], session_id: str) -> None:
        """Every event of the connection, in the order the browser sent them."""
        if method == "Target.attachedToTarget":
            self._attached(params, session_id)
            return
        targets = self.targets
        if method == "Target.detachedFromTarget":
            target = targets.by_session.pop(params.get("sessionId", ""), None)
            if target is not None:
                self.network.write_finishing(target)  # no headers will come for them now
            if target is not None and targets.sessions_by_target.get(target.target_id) == (
                params.get("sessionId")
            ):
                del targets.sessions_by_target[target.target_id]
            return
        if not session_id:
            self._browser_event(method, params)
            return
        target = targets.by_session.get(session_id)
        if target is None:
            return
        if method.startswith("Network."):
            self.network.handle(method, target, params)
            return
        handler = TARGET_HANDLERS.get(method)
        if handler is not None:
            handler(self, target, params)

    def _browser_event(self, method: str, params: dict[str, Any]) -> None:
        page_infos = self.targets.page_infos
        writer = self.browser.writer
        if method == "Target.targetCreated":
            info = params["targetInfo"]
            self.downloads.context_created(info.get("browserContextId", ""))
            if info.get("type") == "page":
                page_infos[info["targetId"]] = {"type": "page", "url": info.get("url", "")}
                self.targets.touch(info["targetId"])
                writer.event(
                    "target.created",
                    {"targetId": info["targetId"], "type": "page", "url": info.get("url", "")},
                    page_id=info["targetId"],
                )
        elif method == "Target.targetInfoChanged":
            info = params["targetInfo"]
            if info["targetId"] in page_infos:
                page_infos[info["targetId"]]["url"] = info.get("url", "")
                page_infos[info["targetId"]]["title"] = info.get("title", "")
        elif method == "Target.targetDestroyed":
            target_id = params["targetId"]
            known = page_infos.pop(target_id, None)
            if target_id in self.targets.page_order:
                self.targets.page_order.remove(target_id)
            if known is not None:
                writer.event(
                    "target.closed",
                    {"targetId": target_id, "type": known["type"], "url": known["url"]},
                    page_id=target_id,
                )
        elif method == "Browser.downloadWillBegin":
            self.downloads.will_begin(params)
        elif method == "Browser.downloadProgress":
            self.downloads.progress(params)

    def _attached(self, params: dict[str, Any], parent_session: str) -> None:
        info = params["targetInfo"]
        session = params["sessionId"]
        kind = info.get("type", "")
        targets = self.targets
        parent = targets.by_session.get(parent_session)
        page_id = info["targetId"] if kind == "page" else (parent.page_id if parent else "")
        target = Target(info["targetId"], kind, info.get("url", ""), session, page_id)
        targets.by_session[session] = target
        send = self.cdp.send_nowait
        # Setup goes out back-to-back and the target is resumed right after it; replies
        # are awaited later (awaiting them before resuming hangs noopener popups).
        if kind == "page":
            targets.sessions_by_target[target.target_id] = session
            if target.target_id not in targets.page_infos:
                targets.page_infos[target.target_id] = {"type": "page", "url": target.url}
            targets.touch(target.target_id)
            if self.profile.seed_script:
                send(
                    "Page.addScriptToEvaluateOnNewDocument",
                    {"source": self.profile.seed_script},
                    session,
                )
            send("Page.enable", {}, session)
            send("Page.setInterceptFileChooserDialog", {"enabled": True}, session)
            send("Runtime.enable", {}, session)
            self.capture.send_to_page(target)
            send("Network.enable", {}, session)
            send("Target.setAutoAttach", AUTO_ATTACH, session)
            send("Runtime.runIfWaitingForDebugger", {}, session)
            if self.browser.options.get("viewport"):
                self.browser.spawn(self._fit_viewport(target))
        elif kind == "iframe":
            # An out-of-process frame: its inputs are told from its own documents.
            send("Page.enable", {}, session)
            send("Page.setInterceptFileChooserDialog", {"enabled": True}, session)
            send("Runtime.enable", {}, session)
            self.capture.send_input_capture(session)
            send("Network.enable", {}, session)
            send("Target.setAutoAttach", AUTO_ATTACH, session)
            send("Runtime.runIfWaitingForDebugger", {}, session)
        else:
            # Workers, browser_ui, tabs…: they only need to be let go.
            send("Runtime.runIfWaitingForDebugger", {}, session)

    async def _fit_viewport(self, target: Target) -> None:
        """Sizes the page's window so that its contents are the run's viewport exactly
        (--window-size counts the window's frame; a page emulating its own viewport, as a
        Playwright context does, keeps it)."""
        viewport = self.browser.options["viewport"]
        with contextlib.suppress(Exception):  # the page may be gone already
            window = await self.cdp.send(
                "Browser.getWindowForTarget", {"targetId": target.target_id}
            )
            await self.cdp.send(
                "Browser.setContentsSize",
                {"windowId": window["windowId"], **viewport},
            )

    # Per-target events ------------------------------------------------------------------

    def _frame_navigated(self, target: Target, params: dict[str, Any]) -> None:
        frame = params.get("frame") or {}
        if frame.get("parentId") or target.type != "page":
            return
        url = frame.get("url", "") + frame.get("urlFragment", "")
        target.url = url
        if target.target_id in self.targets.page_infos:
            self.targets.page_infos[target.target_id]["url"] = url
        self.targets.touch(target.target_id)
        data: dict[str, Any] = {"url": url, "frameId": frame.get("id", "")}
        if params.get("type") and params.get("type") != "Navigation":
            data["transition"] = params["type"]
        self.browser.writer.event("navigation", data, page_id=target.page_id)
        self.live.navigated(target.target_id)
        self.browser.spawn(self.capture.check(target))

    def _load_fired(self, target: Target, params: dict[str, Any]) -> None:
        if target.type != "page":
            return
        self.browser.spawn(self.capture.check(target, delay=0))
        self.screenshots.page_loaded(target)

    def _console(self, target: Target, params: dict[str, Any]) -> None:
        text = " ".join(_text_of(arg) for arg in params.get("args") or [])
        level = CONSOLE_LEVELS.get(params.get("type", "log"), "log")
        self.browser.writer.event(
            "console.message", {"level": level, "text": text[:MAX_TEXT]}, page_id=target.page_id
        )

    def _exception(self, target: Target, params: dict[str, Any]) -> None:
        details = params.get("exceptionDetails") or {}
        exception = details.get("exception") or {}
        description = exception.get("description") or ""
        message = description.split("\n", 1)[0] if description else details.get("text", "")
        data: dict[str, Any] = {"message": message[:MAX_TEXT]}
        if "\n" in description:
            data["stack"] = description[:MAX_TEXT]
        self.browser.writer.event("page.error", data, page_id=target.page_id)

    def _dialog_closed(self, target: Target, params: dict[str, Any]) -> None:
        self.browser.writer.event(
            "dialog.closed", {"accepted": bool(params.get("result"))}, page_id=target.page_id
        )

    def _dialog(self, target: Target, params: dict[str, Any]) -> None:
        self.browser.writer.event(
            "dialog",
            {"type": params.get("type", ""), "message": params.get("message", "")[:MAX_TEXT]},
            page_id=target.page_id,
        )


TARGET_HANDLERS: dict[str, Callable[[Instrumentation, Target, dict[str, Any]], None]] = {
    "Page.frameNavigated": Instrumentation._frame_navigated,
    "Page.loadEventFired": Instrumentation._load_fired,
    "Page.javascriptDialogOpening": Instrumentation._dialog,
    "Page.javascriptDialogClosed": Instrumentation._dialog_closed,
    "Page.fileChooserOpened": lambda instrumentation, target, params: (
        instrumentation.live.choosers.opened(target, params)
    ),
    "Page.screencastFrame": lambda instrumentation, target, params: instrumentation.live.frame(
        target, params
    ),
    "Runtime.bindingCalled": lambda instrumentation, target, params: (
        instrumentation.capture.binding_called(target, params)
    ),
    "Runtime.consoleAPICalled": Instrumentation._console,
    "Runtime.exceptionThrown": Instrumentation._exception,
}
