"""One managed browser: launch through Playwright, instrument every target over CDP,
turn what happens into run events and rrweb batches, and stop cleanly or fail loudly."""

import asyncio
import contextlib
import io
import logging
import os
import shutil
import signal
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import close_old_connections
from django.utils import timezone

from runs.cdp import redact_headers
from runs.cdp_client import CdpConnection
from runs.confinement import url_refusal
from runs.models import Artifact, Run, Runtime
from runs.profiles import clean_state, domains_of, empty_state, profile_save, profile_state
from runs.sealed import unseal
from runs.services import run_network_usage, safe_filename
from runtime_host.egress import (
    EgressProxy,
    UpstreamProxy,
    destination_key,
    devtools_port,
    host_ports,
)
from runtime_host.flags import CHROMIUM_FLAGS, option_args, option_env
from runtime_host.live import LiveLink
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
from runtime_host.sandbox import Sandbox
from runtime_host.steps import accessible_element, input_event, named, record_of
from runtime_host.video import VideoCapture
from runtime_host.writer import RunWriter

logger = logging.getLogger(__name__)

# Local storage keys of the profile seed script, left out of what a profile saves.
PROFILE_MARK = "__bctrl_profile"
STORAGE_EXPRESSION = (
    "(() => { try { return {origin: location.origin, items: Object.entries(localStorage)"
    f".filter(([key]) => !key.startsWith('{PROFILE_MARK}'))}}; }}"
    " catch (error) { return null; } })()"
)

CHROMIUM_ARGS = [
    *CHROMIUM_FLAGS,
    "--remote-debugging-port=0",
    "--remote-debugging-address=127.0.0.1",
    # Playwright adds it when it launches Chrome: without it a full-page screenshot of a
    # background tab can time out.
    "--enable-features=CDPScreenshotNewSurface",
    # Everything through the egress proxy (runtime_host/egress.py), loopback included
    # (Chromium bypasses a proxy for it unless told); no UDP around it (WebRTC, QUIC).
    "--proxy-bypass-list=<-loopback>",
    "--force-webrtc-ip-handling-policy=disable_non_proxied_udp",
    "--disable-quic",
]
PORT_FILE_POLL_S = 0.02
CONSOLE_LEVELS = {"warning": "warning", "error": "error", "assert": "error", "debug": "debug"}
CONSOLE_LEVELS.update({"info": "info", "trace": "debug"})
MAX_TEXT = 4000
SHOT_CACHE_INTERVAL_S = 2.0
MAX_PENDING_EXTRAS = 1000
# How long a finished response waits for its ExtraInfo headers before it is written.
EXTRA_INFO_WAIT_S = 1.0
# How long a refusal of the egress proxy waits for the page's failure of that request.
BLOCK_MATCH_S = 2.0
# How long naming an input's element may take before the page's own guess stands.
INPUT_RESOLVE_TIMEOUT_S = 1.0


class LaunchError(Exception):
    pass


@dataclass
class Target:
    target_id: str
    type: str
    url: str
    session_id: str
    page_id: str  # the page target this one belongs to (itself for a page)
    script_id: str = ""  # Page.addScriptToEvaluateOnNewDocument identifier
    requests: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Network.requestWillBeSentExtraInfo that came before its request, by request id.
    request_extras: dict[str, dict[str, str]] = field(default_factory=dict)
    # Finished responses waiting a moment for their ExtraInfo headers, by request id.
    finishing: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass
class Download:
    url: str
    name: str
    page_id: str


def find_browser_process(marker: str) -> tuple[int, Path] | None:
    """The Chromium browser process (not a renderer or helper, nor the bwrap around it)
    launched with `marker` in its arguments, and its profile folder."""
    needle = marker.encode()
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/cmdline", "rb") as handle:
                argv = handle.read().split(b"\0")
        except OSError:
            continue
        if argv[0].rsplit(b"/", 1)[-1] == b"bwrap":
            continue
        if needle in argv and not any(arg.startswith(b"--type=") for arg in argv):
            for arg in argv:
                if arg.startswith(b"--user-data-dir="):
                    return int(entry.name), Path(arg.split(b"=", 1)[1].decode())
    return None


def _took(known: dict[str, Any], params: dict[str, Any]) -> dict[str, int]:
    """{"durationMs"}: from the request's CDP timestamp to this event's, when both exist."""
    start, end = known.get("timestamp"), params.get("timestamp")
    if not isinstance(start, int | float) or not isinstance(end, int | float) or end < start:
        return {}
    return {"durationMs": round((end - start) * 1000)}


def _text_of(value: dict[str, Any]) -> str:
    if "value" in value:
        raw = value["value"]
        return raw if isinstance(raw, str) else orjson.dumps(raw).decode()
    return str(value.get("unserializableValue") or value.get("description") or value.get("type"))


# Start options that only a launch can give (Chromium's switches and environment): a
# start that asks for one launches a browser of its own instead of taking a warm one.
LAUNCH_OPTIONS = ("userAgent", "locale", "timezone")


def needs_own_launch(options: dict[str, Any]) -> bool:
    return any(options.get(name) for name in LAUNCH_OPTIONS)


class ManagedBrowser:
    """A runtime's browser, in two steps: `launch()` starts Chromium behind its egress
    proxy in its sandbox with a CDP connection of ours (a warm browser of the host's pool
    stops there, fresh and never used), `bind()` makes it the browser of a runtime's run
    and attaches the instrumentation; the host then calls `runtime_running`. `finished`
    is set when it is gone."""

    runtime: Runtime
    run: Run
    writer: RunWriter

    def __init__(self, playwright: Any) -> None:
        self.playwright = playwright
        self.bound = False
        self.launched_with: dict[str, Any] = {}
        self.recording_enabled = True
        self.options: dict[str, Any] = {}
        self.profile: dict[str, Any] | None = None
        self.profile_state = empty_state()
        self._profile_script = ""
        self.root = Path(tempfile.mkdtemp(prefix="bctrl-browser-"))
        self.profile_dir = self.root / "profile"  # Playwright's own, once launched
        self.sandbox: Sandbox | None = None
        self.egress = EgressProxy(on_blocked=self._egress_blocked, own_ports=host_ports)
        self.blocked: dict[str, list[str]] = {}  # host:port → the proxy's refusals
        self.browser: Any = None
        self.cdp: CdpConnection | None = None
        self.cdp_endpoint = ""
        self.pid: int | None = None
        self.targets: dict[str, Target] = {}  # by session id
        self.sessions_by_target: dict[str, str] = {}
        self.page_infos: dict[str, dict[str, Any]] = {}  # page target id → {type, url}
        self.page_order: list[str] = []  # pages, least recently active first
        self.contexts_with_downloads: set[str] = set()
        self.downloads: dict[str, Download] = {}
        self.running_since = time.monotonic()
        self.stopping = False
        self.finished = asyncio.Event()
        self._background: set[asyncio.Task[Any]] = set()
        self._last_shot_at = 0.0
        self._shot_scheduled = False
        self._shot_target: Target | None = None
        self._cached_shot: tuple[bytes, str, str] | None = None
        self.video = VideoCapture(self)
        self.live = LiveLink(self, self.video)

    @property
    def name(self) -> str:
        return self.runtime.id if self.bound else "a warm browser"

    # Launch -------------------------------------------------------------------------

    async def launch(self, options: dict[str, Any] | None = None) -> None:
        """Launches Chromium with the start options only a launch can give (none for a
        warm browser) and connects to it."""
        self.launched_with = {name: (options or {}).get(name) for name in LAUNCH_OPTIONS}
        self.sandbox = Sandbox(self.root)
        proxy_port = await self.egress.start()
        # Playwright launches the browser (its own pipe connection keeps the process in
        # hand: close, kill, the `disconnected` event) and Chromium also opens a DevTools
        # port for clients and for our instrumentation connection. `launch()` (not a
        # persistent context) opens no window and instruments nothing of the clients',
        # so it starts in ~0.2 s; Playwright makes and deletes the temporary profile.
        marker = f"--bctrl-runtime={self.root.name}-{os.getpid()}"
        self.browser = await self.playwright.chromium.launch(
            executable_path=self.sandbox.executable(settings.BCTRL_CHROMIUM_PATH),
            env=self.sandbox.environment(option_env(options or {})),
            headless=True,
            args=[
                *CHROMIUM_ARGS,
                *option_args(options or {}),
                marker,
                f"--proxy-server=http://127.0.0.1:{proxy_port}",
            ],
            downloads_path=str(self.download_dir),
            timeout=settings.BCTRL_RUNTIME_LAUNCH_TIMEOUT_S * 1000,
        )
        self.browser.on(
            "disconnected", lambda *_: self._spawn(self._on_disconnected("browser disconnected"))
        )
        found = find_browser_process(marker)
        if found is None:
            raise LaunchError("the browser process was not found")
        self.pid, self.profile_dir = found
        self.cdp_endpoint = await self._read_port_file()
        host_ports.add(devtools_port(self.cdp_endpoint))
        self.cdp = await CdpConnection.connect(self.cdp_endpoint, self._on_event)
        self._spawn(self._watch_connection(self.cdp))

    def fits(self, options: dict[str, Any]) -> bool:
        """Whether a start with these options can take this (launched, unbound) browser."""
        launched = {name: options.get(name) for name in LAUNCH_OPTIONS}
        return not self.bound and not self.stopping and launched == self.launched_with

    async def bind(self, runtime: Runtime, run: Run) -> str:
        """Makes the launched browser the one of `run`: its rules, its writer, the
        instrumentation of every target from now on, its profile and live link. Returns
        the CDP endpoint."""
        assert self.cdp is not None and not self.bound
        self.runtime = runtime
        self.run = run
        self.bound = True
        self.recording_enabled = runtime.recording_enabled
        self.options = run.browser_options or {}
        self.profile = self.options.get("profile")
        self.egress.allowed_domains = (runtime.config or {}).get("allowedDomains")
        self.egress.upstream = upstream_of(run)
        self.writer = RunWriter(run)
        self.writer.start()
        await asyncio.gather(
            self.cdp.send("Target.setDiscoverTargets", {"discover": True}),
            self.cdp.send(
                "Browser.setDownloadBehavior",
                {
                    "behavior": "allowAndName",
                    "downloadPath": str(self.download_dir),
                    "eventsEnabled": True,
                },
            ),
            self.cdp.send(
                "Target.setAutoAttach",
                {"autoAttach": True, "waitForDebuggerOnStart": True, "flatten": True},
            ),
        )
        if self.profile:
            await self._load_profile()
        self._spawn(self.live.run())
        self.running_since = time.monotonic()
        return self.cdp_endpoint

    async def _read_port_file(self) -> str:
        port_file = self.profile_dir / "DevToolsActivePort"
        deadline = time.monotonic() + settings.BCTRL_RUNTIME_LAUNCH_TIMEOUT_S
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                lines = port_file.read_text().split("\n")
                if len(lines) >= 2 and lines[0].strip() and lines[1].strip():
                    return f"ws://127.0.0.1:{lines[0].strip()}{lines[1].strip()}"
            await asyncio.sleep(PORT_FILE_POLL_S)
        raise LaunchError("Chromium did not write DevToolsActivePort")

    @property
    def download_dir(self) -> Path:
        assert self.sandbox is not None
        return self.sandbox.downloads

    @property
    def files_dir(self) -> str:
        return str(self.sandbox.shared) if self.sandbox is not None else ""

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.ensure_future(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def place_upload(self, artifact: Any) -> str:
        """Copies an uploaded file (an `upload` artifact of the run) into the browser's
        uploads folder, under its own name unless another file has it, and returns the
        path the browser's file inputs take."""
        assert self.sandbox is not None
        folder = self.sandbox.uploads
        stem, suffix = os.path.splitext(safe_filename(artifact.name))
        target = folder / f"{stem}{suffix}"
        number = 1
        while target.exists():
            number += 1
            target = folder / f"{stem} ({number}){suffix}"
        with artifact.file.open("rb") as source, open(target, "xb") as copy:
            shutil.copyfileobj(source, copy, 256 * 1024)
        return str(target)

    # CDP events ---------------------------------------------------------------------

    def _on_event(self, method: str, params: dict[str, Any], session_id: str) -> None:
        if method == "Target.attachedToTarget":
            self._attached(params, session_id)
            return
        if method == "Target.detachedFromTarget":
            target = self.targets.pop(params.get("sessionId", ""), None)
            if target is not None:
                self._write_finishing(target)  # no headers will come for them now
            if target is not None and self.sessions_by_target.get(target.target_id) == (
                params.get("sessionId")
            ):
                del self.sessions_by_target[target.target_id]
            return
        if not session_id:
            self._browser_event(method, params)
            return
        target = self.targets.get(session_id)
        if target is None:
            return
        handler = TARGET_HANDLERS.get(method)
        if handler is not None:
            handler(self, target, params)

    def _browser_event(self, method: str, params: dict[str, Any]) -> None:
        if method == "Target.targetCreated":
            info = params["targetInfo"]
            self._ensure_downloads(info.get("browserContextId", ""))
            if info.get("type") == "page":
                self.page_infos[info["targetId"]] = {"type": "page", "url": info.get("url", "")}
                self._touch(info["targetId"])
                self.writer.event(
                    "target.created",
                    {"targetId": info["targetId"], "type": "page", "url": info.get("url", "")},
                    page_id=info["targetId"],
                )
        elif method == "Target.targetInfoChanged":
            info = params["targetInfo"]
            if info["targetId"] in self.page_infos:
                self.page_infos[info["targetId"]]["url"] = info.get("url", "")
                self.page_infos[info["targetId"]]["title"] = info.get("title", "")
        elif method == "Target.targetDestroyed":
            target_id = params["targetId"]
            known = self.page_infos.pop(target_id, None)
            if target_id in self.page_order:
                self.page_order.remove(target_id)
            if known is not None:
                self.writer.event(
                    "target.closed",
                    {"targetId": target_id, "type": known["type"], "url": known["url"]},
                    page_id=target_id,
                )
        elif method == "Browser.downloadWillBegin":
            frame_id = params.get("frameId", "")
            self.downloads[params["guid"]] = Download(
                url=params.get("url", ""),
                name=params.get("suggestedFilename") or "download",
                page_id=frame_id if frame_id in self.page_infos else "",
            )
        elif method == "Browser.downloadProgress":
            state = params.get("state")
            if state in ("completed", "canceled"):
                download = self.downloads.pop(params["guid"], None)
                if download is not None and state == "completed":
                    self._spawn(self._store_download(params, download))

    def _ensure_downloads(self, browser_context_id: str) -> None:
        """Downloads of every browser context (clients' contexts too) land in our folder."""
        if not browser_context_id or browser_context_id in self.contexts_with_downloads:
            return
        self.contexts_with_downloads.add(browser_context_id)
        assert self.cdp is not None
        self.cdp.send_nowait(
            "Browser.setDownloadBehavior",
            {
                "behavior": "allowAndName",
                "browserContextId": browser_context_id,
                "downloadPath": str(self.download_dir),
                "eventsEnabled": True,
            },
        )

    def _attached(self, params: dict[str, Any], parent_session: str) -> None:
        assert self.cdp is not None
        info = params["targetInfo"]
        session = params["sessionId"]
        kind = info.get("type", "")
        parent = self.targets.get(parent_session)
        page_id = info["targetId"] if kind == "page" else (parent.page_id if parent else "")
        target = Target(info["targetId"], kind, info.get("url", ""), session, page_id)
        self.targets[session] = target
        send = self.cdp.send_nowait
        auto_attach = {"autoAttach": True, "waitForDebuggerOnStart": True, "flatten": True}
        # Setup goes out back-to-back and the target is resumed right after it; replies
        # are awaited later (awaiting them before resuming hangs noopener popups).
        if kind == "page":
            self.sessions_by_target[target.target_id] = session
            if target.target_id not in self.page_infos:
                self.page_infos[target.target_id] = {"type": "page", "url": target.url}
            self._touch(target.target_id)
            if self._profile_script:
                send(
                    "Page.addScriptToEvaluateOnNewDocument",
                    {"source": self._profile_script},
                    session,
                )
            send("Page.enable", {}, session)
            send("Runtime.enable", {}, session)
            send(
                "Runtime.addBinding",
                {"name": BINDING_NAME, "executionContextName": WORLD_NAME},
                session,
            )
            self._send_input_capture(session)
            script = None
            if self.recording_enabled:
                script = send(
                    "Page.addScriptToEvaluateOnNewDocument", self._script_params(), session
                )
            send("Network.enable", {}, session)
            send("Target.setAutoAttach", auto_attach, session)
            send("Runtime.runIfWaitingForDebugger", {}, session)
            if script is not None:
                self._spawn(self._remember_script(target, script))
            if self.options.get("viewport"):
                self._spawn(self._fit_viewport(target))
        elif kind == "iframe":
            # An out-of-process frame: its inputs are told from its own documents.
            send("Page.enable", {}, session)
            send("Runtime.enable", {}, session)
            self._send_input_capture(session)
            send("Network.enable", {}, session)
            send("Target.setAutoAttach", auto_attach, session)
            send("Runtime.runIfWaitingForDebugger", {}, session)
        else:
            # Workers, browser_ui, tabs…: they only need to be let go.
            send("Runtime.runIfWaitingForDebugger", {}, session)

    async def _load_profile(self) -> None:
        """Sets the profile's cookies in the browser's own context before any client
        connects, and prepares the script that gives each page of a profile origin its
        local storage before the page's scripts run (once per origin and run)."""
        assert self.cdp is not None and self.profile is not None
        self.profile_state = await sync_to_async(profile_state, thread_sensitive=False)(
            profile_id=self.profile["id"]
        )
        if self.profile_state["cookies"]:
            await self.cdp.send("Storage.setCookies", {"cookies": self.profile_state["cookies"]})
        seeds = {
            origin: storage["localStorage"]
            for origin, storage in self.profile_state["origins"].items()
        }
        if seeds:
            mark = orjson.dumps(f"{PROFILE_MARK}:{self.run.id}").decode()
            self._profile_script = (
                f"(() => {{ const items = ({orjson.dumps(seeds).decode()})[location.origin];"
                f" if (!items) return; const mark = {mark};"
                " try { if (localStorage.getItem(mark)) return;"
                " for (const [key, value] of items) localStorage.setItem(key, value);"
                " localStorage.setItem(mark, '1'); } catch (error) {} })();"
            )
        self.writer.event(
            "profile.loaded",
            {"profileId": self.profile["id"], "name": self.profile["name"]},
        )

    async def _save_profile(self) -> None:
        """Saves the browser's cookies and the local storage of its open pages into the
        profile (origins not open keep what they had)."""
        assert self.cdp is not None and self.profile is not None
        try:
            answer = await self.cdp.send("Storage.getCookies", {}, timeout=5)
            pages = [t for t in self.targets.values() if t.type == "page"]
            storages = await asyncio.gather(
                *(self._evaluate_in_world(p, STORAGE_EXPRESSION, timeout=2) for p in pages),
                return_exceptions=True,
            )
            origins = dict(self.profile_state["origins"])
            for storage in storages:
                if isinstance(storage, dict) and storage.get("origin", "null") != "null":
                    origins[storage["origin"]] = {"localStorage": storage["items"]}
            state = clean_state(answer.get("cookies", []), origins)
            saved = await sync_to_async(profile_save, thread_sensitive=False)(
                profile_id=self.profile["id"], run=self.run, state=state
            )
        except Exception as exc:
            logger.warning("Runtime %s: saving profile failed: %s", self.runtime.id, exc)
            self.writer.event(
                "profile.save_failed", {"profileId": self.profile["id"], "reason": str(exc)}
            )
            return
        if saved:
            self.writer.event(
                "profile.saved",
                {
                    "profileId": self.profile["id"],
                    "name": self.profile["name"],
                    "domains": domains_of(state),
                    "cookieCount": len(state["cookies"]),
                },
            )

    async def _fit_viewport(self, target: Target) -> None:
        """Sizes the page's window so that its contents are the run's viewport exactly
        (--window-size counts the window's frame; a page emulating its own viewport, as a
        Playwright context does, keeps it)."""
        assert self.cdp is not None
        viewport = self.options["viewport"]
        with contextlib.suppress(Exception):  # the page may be gone already
            window = await self.cdp.send(
                "Browser.getWindowForTarget", {"targetId": target.target_id}
            )
            await self.cdp.send(
                "Browser.setContentsSize",
                {"windowId": window["windowId"], **viewport},
            )

    def _script_params(self) -> dict[str, Any]:
        return {"source": recorder_source(), "worldName": WORLD_NAME, "runImmediately": True}

    async def _remember_script(self, target: Target, pending: "asyncio.Future[Any]") -> None:
        with contextlib.suppress(Exception):
            result = await asyncio.wait_for(pending, 10)
            target.script_id = result.get("identifier", "")

    def _send_input_capture(self, session: str) -> None:
        """The input capture (static/js/inputs.js) in every frame of a target, whether or
        not the run is recorded: activity names its steps from it."""
        assert self.cdp is not None
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

    def _touch(self, target_id: str) -> None:
        if target_id in self.page_order:
            self.page_order.remove(target_id)
        self.page_order.append(target_id)

    # Per-target handlers --------------------------------------------------------------

    def _frame_navigated(self, target: Target, params: dict[str, Any]) -> None:
        frame = params.get("frame") or {}
        if frame.get("parentId") or target.type != "page":
            return
        url = frame.get("url", "") + frame.get("urlFragment", "")
        target.url = url
        if target.target_id in self.page_infos:
            self.page_infos[target.target_id]["url"] = url
        self._touch(target.target_id)
        data: dict[str, Any] = {"url": url, "frameId": frame.get("id", "")}
        if params.get("type") and params.get("type") != "Navigation":
            data["transition"] = params["type"]
        self.writer.event("navigation", data, page_id=target.page_id)
        self._spawn(self._check_recorder(target))

    def _load_fired(self, target: Target, params: dict[str, Any]) -> None:
        if target.type != "page":
            return
        self._spawn(self._check_recorder(target, delay=0))
        self._shot_target = target
        if not self._shot_scheduled:
            self._shot_scheduled = True
            waited = time.monotonic() - self._last_shot_at
            self._spawn(self._cache_screenshot(max(0.3, SHOT_CACHE_INTERVAL_S - waited)))

    async def _cache_screenshot(self, delay: float) -> None:
        """Keeps a recent picture of the last loaded page (at most one every
        SHOT_CACHE_INTERVAL_S): a client that closes its pages before the runtime stops
        leaves nothing else for the run's final screenshot."""
        await asyncio.sleep(delay)  # also lets the page paint
        self._shot_scheduled = False
        self._last_shot_at = time.monotonic()
        target = self._shot_target
        if target is None or self.stopping:
            return
        with contextlib.suppress(Exception):
            shot = await self.screenshot(target.target_id)
            if shot is not None:
                self._cached_shot = (shot[0], target.target_id, target.url)

    async def _check_recorder(self, target: Target, delay: float = 0.3) -> None:
        """Same-origin popups skip new-document scripts on their first real page: inject
        the input capture and the recorder into the page's world when they are not
        running there."""
        await asyncio.sleep(delay)
        if self.stopping:
            return
        with contextlib.suppress(Exception):
            present = await self._evaluate_in_world(target, INPUTS_PRESENT_EXPRESSION)
            if present is False and not self.stopping:
                await self._evaluate_in_world(target, input_source())
        if not self.recording_enabled:
            return
        with contextlib.suppress(Exception):
            running = await self._evaluate_in_world(target, RUNNING_EXPRESSION)
            if running is False and self.recording_enabled and not self.stopping:
                await self._evaluate_in_world(target, recorder_source())

    async def _evaluate_in_world(
        self, target: Target, expression: str, timeout: float = 5.0
    ) -> Any:
        assert self.cdp is not None
        world = await self.cdp.send(
            "Page.createIsolatedWorld",
            {"frameId": target.target_id, "worldName": WORLD_NAME},
            target.session_id,
            timeout=timeout,
        )
        result = await self.cdp.send(
            "Runtime.evaluate",
            {
                "expression": expression,
                "contextId": world["executionContextId"],
                "returnByValue": True,
            },
            target.session_id,
            timeout=timeout,
        )
        return (result.get("result") or {}).get("value")

    def _binding_called(self, target: Target, params: dict[str, Any]) -> None:
        if params.get("name") == INPUT_BINDING_NAME:
            self._spawn(self._input(target, params, timezone.now()))
            return
        if params.get("name") != BINDING_NAME or not self.recording_enabled:
            return
        try:
            events = orjson.loads(params.get("payload") or "[]")
        except orjson.JSONDecodeError:
            return
        if isinstance(events, list):
            self.writer.rrweb(target.target_id, [e for e in events if isinstance(e, dict)])

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
        if kind == "page.title":
            self.writer.event(kind, data, page_id=target.page_id, time=at)
            return
        mark, context_id = record.get("mark"), params.get("executionContextId")
        if type(mark) is int and type(context_id) is int and self.cdp is not None:
            data = named(data, await self._accessible(target, context_id, mark))
        self.writer.event(kind, data, page_id=target.page_id, time=at)

    async def _accessible(self, target: Target, context_id: int, mark: int) -> dict[str, str]:
        assert self.cdp is not None
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

    def _request(self, target: Target, params: dict[str, Any]) -> None:
        request = params.get("request") or {}
        url = request.get("url", "")
        if url.startswith("data:"):
            return
        request_id = params["requestId"]
        redirected = target.requests.pop(request_id, None)
        if redirected is not None and params.get("redirectResponse"):
            response = params["redirectResponse"]
            data = {
                "requestId": request_id,
                "url": redirected["url"],
                "status": response.get("status"),
                "mimeType": response.get("mimeType", ""),
                "encodedDataLength": response.get("encodedDataLength", 0),
                "headers": redact_headers(response.get("headers")),
            }
            self.writer.event(
                "network.response", {**data, **_took(redirected, params)}, page_id=target.page_id
            )
        known: dict[str, Any] = {"url": url, "method": request.get("method", "")}
        if isinstance(params.get("timestamp"), int | float):
            known["timestamp"] = params["timestamp"]
        extra = target.request_extras.pop(request_id, None)
        if extra is not None:
            known["requestHeaders"] = extra
        target.requests[request_id] = known
        self.writer.event(
            "network.request",
            {
                "requestId": request_id,
                "method": request.get("method", ""),
                "url": url,
                "resourceType": params.get("type", "Other"),
                "headers": redact_headers(request.get("headers")),
            },
            page_id=target.page_id,
        )

    def _request_extra(self, target: Target, params: dict[str, Any]) -> None:
        """The headers the request went out with (cookies included), which Chromium
        reports apart from the request and sometimes before it."""
        headers = redact_headers(params.get("headers"))
        known = target.requests.get(params.get("requestId", ""))
        if known is not None:
            known["requestHeaders"] = headers
        elif len(target.request_extras) < MAX_PENDING_EXTRAS:
            target.request_extras[params.get("requestId", "")] = headers

    def _response(self, target: Target, params: dict[str, Any]) -> None:
        known = target.requests.get(params["requestId"])
        if known is None:
            return
        response = params.get("response") or {}
        extra_came = "rawResponseHeaders" in known
        known["response"] = {
            "requestId": params["requestId"],
            "url": response.get("url", known["url"]),
            "status": response.get("status"),
            "mimeType": response.get("mimeType", ""),
            "resourceType": params.get("type", ""),
            "headers": known.pop("rawResponseHeaders", None)
            or redact_headers(response.get("headers")),
        }
        timing = response.get("timing")
        if timing:
            known["response"]["timing"] = timing
        # Chromium sends the headers as received (Set-Cookie) apart, sometimes after the end.
        known["awaitsExtra"] = bool(params.get("hasExtraInfo")) and not extra_came

    def _response_extra(self, target: Target, params: dict[str, Any]) -> None:
        """The response's headers as received (Set-Cookie included), redacted."""
        finished = target.finishing.pop(params.get("requestId", ""), None)
        if finished is not None:  # it ended first: written now, with these headers
            finished["data"]["headers"] = redact_headers(params.get("headers"))
            self._write_response(target, finished)
            return
        known = target.requests.get(params.get("requestId", ""))
        if known is None:
            return
        headers = redact_headers(params.get("headers"))
        if "response" in known:
            known["response"]["headers"] = headers
            known["awaitsExtra"] = False
        else:
            known["rawResponseHeaders"] = headers

    def _finished(self, target: Target, params: dict[str, Any]) -> None:
        known = target.requests.pop(params["requestId"], None)
        if known is None or "response" not in known:
            return
        data = {
            **known["response"],
            "encodedDataLength": params.get("encodedDataLength", 0),
            **_took(known, params),
        }
        if "requestHeaders" in known:
            data["requestHeaders"] = known["requestHeaders"]
        finished = {"data": data, "time": timezone.now()}
        if known.get("awaitsExtra") and len(target.finishing) < MAX_PENDING_EXTRAS:
            target.finishing[params["requestId"]] = finished
            self._spawn(self._write_response_later(target, params["requestId"]))
            return
        self._write_response(target, finished)

    def _write_response(self, target: Target, finished: dict[str, Any]) -> None:
        self.writer.event(
            "network.response", finished["data"], page_id=target.page_id, time=finished["time"]
        )

    def _write_finishing(self, target: Target) -> None:
        """Writes the target's responses still waiting for their headers, as they are."""
        for request_id in list(target.finishing):  # in the order they ended
            self._write_response(target, target.finishing.pop(request_id))

    async def _write_response_later(self, target: Target, request_id: str) -> None:
        """A response whose ExtraInfo headers did not come: written as it is."""
        await asyncio.sleep(EXTRA_INFO_WAIT_S)
        finished = target.finishing.pop(request_id, None)
        if finished is not None:
            self._write_response(target, finished)

    def _failed(self, target: Target, params: dict[str, Any]) -> None:
        known = target.requests.pop(params["requestId"], None)
        if known is None:
            return
        reason = self._blocked_reason(known["url"], params.get("errorText", ""))
        if reason is not None:
            data = {"requestId": params["requestId"], "url": known["url"], "reason": reason}
            data["method"] = known["method"]
            self.writer.event("network.blocked", data, page_id=target.page_id)
            return
        data = {
            "requestId": params["requestId"],
            "url": known["url"],
            "errorText": params.get("errorText", ""),
            "method": known["method"],
        }
        if params.get("canceled"):
            data["canceled"] = True
        if "response" in known:
            data["status"] = known["response"]["status"]
        data.update(_took(known, params))
        self.writer.event("network.failed", data, page_id=target.page_id)

    # Confinement ---------------------------------------------------------------------

    def _egress_blocked(self, url: str, reason: str) -> None:
        """The egress proxy refused a connection. The page's own failure of that request
        (Network.loadingFailed) follows and becomes the `network.blocked` event with its
        page; one that never comes (a websocket, a worker's request) is written anyway."""
        key = destination_key(url)
        self.blocked.setdefault(key, []).append(reason)
        self._spawn(self._unmatched_block(key, url, reason))

    async def _unmatched_block(self, key: str, url: str, reason: str) -> None:
        await asyncio.sleep(BLOCK_MATCH_S)
        pending = self.blocked.get(key)
        if pending and reason in pending:
            pending.remove(reason)
            self.writer.event("network.blocked", {"url": url, "reason": reason})

    def _blocked_reason(self, url: str, error_text: str) -> str | None:
        if error_text == "net::ERR_BLOCKED_BY_ADMINISTRATOR":
            return url_refusal(url) or "the browser's policy blocks this URL"
        pending = self.blocked.get(destination_key(url))
        return pending.pop(0) if pending else None

    def _console(self, target: Target, params: dict[str, Any]) -> None:
        text = " ".join(_text_of(arg) for arg in params.get("args") or [])
        level = CONSOLE_LEVELS.get(params.get("type", "log"), "log")
        self.writer.event(
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
        self.writer.event("page.error", data, page_id=target.page_id)

    def _dialog_closed(self, target: Target, params: dict[str, Any]) -> None:
        self.writer.event(
            "dialog.closed", {"accepted": bool(params.get("result"))}, page_id=target.page_id
        )

    def _dialog(self, target: Target, params: dict[str, Any]) -> None:
        self.writer.event(
            "dialog",
            {"type": params.get("type", ""), "message": params.get("message", "")[:MAX_TEXT]},
            page_id=target.page_id,
        )

    # Downloads and screenshots ----------------------------------------------------------

    async def _store_download(self, params: dict[str, Any], download: Download) -> None:
        path = Path(params.get("filePath") or self.download_dir / params["guid"])
        if not path.resolve().is_relative_to(self.download_dir.resolve()):
            # Only what the browser wrote into its own folder is the run's file.
            logger.warning("Download %s of run %s is outside its folder", path, self.run.id)
            return

        def store() -> str:
            from runs.services import artifact_store

            close_old_connections()
            with open(path, "rb") as handle:
                artifact = artifact_store(
                    run=self.run,
                    kind=Artifact.Kind.DOWNLOAD,
                    name=download.name,
                    content=handle,
                    metadata={"url": download.url},
                )
            return artifact.id

        try:
            await self.writer.flush()  # the events before it keep their order
            artifact_id = await sync_to_async(store, thread_sensitive=False)()
        except Exception:
            logger.exception("Storing download %s of run %s failed", download.name, self.run.id)
            return
        self.writer.event(
            "download",
            {"url": download.url, "suggestedFilename": download.name, "artifactId": artifact_id},
            page_id=download.page_id,
        )

    def last_active_page(self) -> Target | None:
        pages = [self.targets[s] for t in self.page_order if (s := self.sessions_by_target.get(t))]
        real = [page for page in pages if page.url and not page.url.startswith("about:")]
        candidates = real or pages
        return candidates[-1] if candidates else None

    async def screenshot(self, target_id: str | None = None) -> tuple[bytes, Target] | None:
        assert self.cdp is not None
        session = self.sessions_by_target.get(target_id) if target_id else None
        target = self.targets.get(session) if session else self.last_active_page()
        if target is None:
            return None
        return await self.cdp.capture_png(target.session_id, timeout=10), target

    async def _final_screenshot(self) -> None:
        with contextlib.suppress(Exception):
            shot = None
            with contextlib.suppress(Exception):
                shot = await self.screenshot()
            if shot is not None:
                data, target_id, url = shot[0], shot[1].target_id, shot[1].url
            elif self._cached_shot is not None:
                data, target_id, url = self._cached_shot
            else:
                return

            def store() -> None:
                from runs.services import artifact_store

                close_old_connections()
                artifact_store(
                    run=self.run,
                    kind=Artifact.Kind.SCREENSHOT,
                    name="final.png",
                    content=io.BytesIO(data),
                    content_type="image/png",
                    metadata={"targetId": target_id, "url": url, "final": True},
                )

            await sync_to_async(store, thread_sensitive=False)()

    # Recording switch -----------------------------------------------------------------

    async def set_recording(self, enabled: bool) -> None:
        if enabled == self.recording_enabled or self.cdp is None:
            return
        self.recording_enabled = enabled
        pages = [t for t in self.targets.values() if t.type == "page"]
        for target in pages:
            with contextlib.suppress(Exception):
                if enabled:
                    result = await self.cdp.send(
                        "Page.addScriptToEvaluateOnNewDocument",
                        self._script_params(),
                        target.session_id,
                    )
                    target.script_id = result.get("identifier", "")
                    await self._evaluate_in_world(target, set_enabled_expression(True))
                else:
                    if target.script_id:
                        await self.cdp.send(
                            "Page.removeScriptToEvaluateOnNewDocument",
                            {"identifier": target.script_id},
                            target.session_id,
                        )
                        target.script_id = ""
                    await self._evaluate_in_world(target, set_enabled_expression(False))

    # Stop and failure -------------------------------------------------------------------

    async def _watch_connection(self, cdp: CdpConnection) -> None:
        await cdp.closed.wait()
        await self._on_disconnected(f"CDP connection closed: {cdp.close_reason or 'no reason'}")

    async def _on_disconnected(self, detail: str) -> None:
        if self.stopping:
            return
        logger.warning("Browser of %s is gone: %s", self.name, detail)
        await self.stop(state="failed", reason=f"browser process exited unexpectedly ({detail})")

    async def stop(self, state: str = "stopped", reason: str = "", finish: bool = True) -> None:
        """Final screenshot, flush of every recorder and pending batch, browser closed,
        profile deleted, then the runtime is finished. A second call waits for the first."""
        if self.stopping:
            await self.finished.wait()
            return
        self.stopping = True
        try:
            await self._shutdown(alive=state != "failed")
        except Exception:
            logger.exception("Stopping %s failed", self.name)
        if finish and self.bound:
            from runtimes.services import runtime_finished

            def finished() -> None:
                close_old_connections()
                runtime_finished(runtime=self.runtime, state=state, reason=reason)

            try:
                await sync_to_async(finished, thread_sensitive=False)()
            except Exception:
                logger.exception("Finishing runtime %s failed", self.runtime.id)
        self.finished.set()

    async def _shutdown(self, alive: bool) -> None:
        if not self.bound:
            await self._release()
            return
        await self.live.close()
        self.video.close()
        if alive and self.cdp is not None and not self.cdp.closed.is_set():
            await self._final_screenshot()
            pages = [t for t in self.targets.values() if t.type == "page"]
            await asyncio.gather(
                *(self._evaluate_in_world(p, END_EXPRESSION, timeout=2) for p in pages),
                return_exceptions=True,
            )
            # Binding calls are events sent before the evaluate replies; give the reader
            # a turn to hand them over.
            await asyncio.sleep(0.05)
            if self.profile and self.profile.get("persist"):
                await self._save_profile()
        for target in list(self.targets.values()):
            self._write_finishing(target)
        await self.writer.flush()
        await self._release()
        for key, reasons in self.blocked.items():
            for reason in reasons:
                self.writer.event("network.blocked", {"url": key, "reason": reason})
        usage = {"bytesIn": self.egress.bytes_in, "bytesOut": self.egress.bytes_out}
        self.writer.event("network.usage", usage)
        with contextlib.suppress(Exception):  # the event has them too
            await sync_to_async(run_network_usage, thread_sensitive=False)(
                run=self.run, bytes_in=usage["bytesIn"], bytes_out=usage["bytesOut"]
            )
        await self.writer.close()

    async def _release(self) -> None:
        """Closes the browser, its proxy and connection, and deletes its folders."""
        await self._close_browser()
        await self.egress.close()
        host_ports.discard(devtools_port(self.cdp_endpoint))
        if self.cdp is not None:
            await self.cdp.close()
        pending = [t for t in self._background if t is not asyncio.current_task()]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        shutil.rmtree(self.root, ignore_errors=True)
        if self.profile_dir != self.root / "profile":
            shutil.rmtree(self.profile_dir, ignore_errors=True)

    async def _close_browser(self) -> None:
        if self.browser is None:
            return
        try:
            await asyncio.wait_for(self.browser.close(), settings.BCTRL_RUNTIME_CLOSE_TIMEOUT_S)
        except Exception as exc:
            logger.warning("Closing browser of %s failed (%s); killing it", self.name, exc)
            self.kill()
        if self.pid is not None:
            # Playwright closed its side; make sure no process of ours outlives the runtime.
            for _ in range(50):
                if not pid_alive(self.pid):
                    break
                await asyncio.sleep(0.05)
            else:
                self.kill()

    def kill(self) -> None:
        if self.pid is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(self.pid, signal.SIGKILL)


def upstream_of(run: Run) -> UpstreamProxy | None:
    """The upstream proxy a start named, with its credentials unsealed (runs.sealed)."""
    if not run.browser_options.get("proxy") or not run.browser_secrets:
        return None
    return UpstreamProxy.of(unseal(run.browser_secrets)["proxy"])


def pid_alive(pid: int) -> bool:
    """Whether a process of this machine runs (a zombie does not count)."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().split(") ", 1)[-1][:1] != "Z"
    except OSError:
        return False


TARGET_HANDLERS = {
    "Page.frameNavigated": ManagedBrowser._frame_navigated,
    "Page.loadEventFired": ManagedBrowser._load_fired,
    "Page.javascriptDialogOpening": ManagedBrowser._dialog,
    "Page.javascriptDialogClosed": ManagedBrowser._dialog_closed,
    "Page.screencastFrame": lambda browser, target, params: browser.live.frame(target, params),
    "Runtime.bindingCalled": ManagedBrowser._binding_called,
    "Runtime.consoleAPICalled": ManagedBrowser._console,
    "Runtime.exceptionThrown": ManagedBrowser._exception,
    "Network.requestWillBeSent": ManagedBrowser._request,
    "Network.requestWillBeSentExtraInfo": ManagedBrowser._request_extra,
    "Network.responseReceived": ManagedBrowser._response,
    "Network.responseReceivedExtraInfo": ManagedBrowser._response_extra,
    "Network.loadingFinished": ManagedBrowser._finished,
    "Network.loadingFailed": ManagedBrowser._failed,
}
