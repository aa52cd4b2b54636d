"""One managed browser's lifecycle: launch Chromium through Playwright in its sandbox
behind its egress proxy, bind it to a runtime's run (which starts its instrumentation,
runtime_host/instrumentation.py, and its live link), and stop it cleanly or fail
loudly when it dies. What happens in the browser is the business of its parts: the
instrumentation and the network log, the page capture (recorder and inputs), downloads,
screenshots, the profile, the live view and the video."""

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import tempfile
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import close_old_connections

from runs.cdp_client import CdpConnection
from runs.models import Run, Runtime
from runs.sealed import unseal
from runs.services import run_network_usage, safe_filename
from runtime_host.downloads import Downloads
from runtime_host.egress import (
    EgressProxy,
    UpstreamProxy,
    devtools_port,
    host_ports,
)
from runtime_host.flags import CHROMIUM_FLAGS, option_args, option_env
from runtime_host.instrumentation import Instrumentation
from runtime_host.live import LiveLink
from runtime_host.network import NetworkLog
from runtime_host.page_capture import PageCapture
from runtime_host.profiles import ProfileSync
from runtime_host.sandbox import Sandbox
from runtime_host.screenshots import Screenshots
from runtime_host.targets import Targets
from runtime_host.video import VideoCapture
from runtime_host.writer import RunWriter
from runtimes.services import runtime_finished

logger = logging.getLogger(__name__)

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


class LaunchError(Exception):
    pass


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
        self.root = Path(tempfile.mkdtemp(prefix="bctrl-browser-"))
        self.profile_dir = self.root / "profile"  # Playwright's own, once launched
        self.sandbox: Sandbox | None = None
        self.browser: Any = None
        self.cdp: CdpConnection | None = None
        self.cdp_endpoint = ""
        self.pid: int | None = None
        self.targets = Targets()
        self.running_since = time.monotonic()
        self.stopping = False
        self.finished = asyncio.Event()
        self._background: set[asyncio.Task[Any]] = set()
        # Its parts, which reach back to it only through their own Protocols.
        self.network = NetworkLog(self)
        self.egress = EgressProxy(on_blocked=self.network.egress_blocked, own_ports=host_ports)
        self.capture = PageCapture(self)
        self.downloads = Downloads(self)
        self.screenshots = Screenshots(self)
        self.profile = ProfileSync(self)
        self.video = VideoCapture(self)
        self.live = LiveLink(self, self.video)
        self.instrumentation = Instrumentation(
            self,
            network=self.network,
            capture=self.capture,
            downloads=self.downloads,
            screenshots=self.screenshots,
            profile=self.profile,
            live=self.live,
        )

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
            "disconnected", lambda *_: self.spawn(self._on_disconnected("browser disconnected"))
        )
        found = find_browser_process(marker)
        if found is None:
            raise LaunchError("the browser process was not found")
        self.pid, self.profile_dir = found
        self.cdp_endpoint = await self._read_port_file()
        host_ports.add(devtools_port(self.cdp_endpoint))
        self.cdp = await CdpConnection.connect(self.cdp_endpoint, self.instrumentation.on_event)
        self.spawn(self._watch_connection(self.cdp))

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
        self.egress.allowed_domains = (runtime.config or {}).get("allowedDomains")
        self.egress.upstream = upstream_of(run)
        self.writer = RunWriter(run)
        self.writer.start()
        await asyncio.gather(
            self.cdp.send("Target.setDiscoverTargets", {"discover": True}),
            self.cdp.send("Browser.setDownloadBehavior", self.downloads.behavior()),
            self.cdp.send(
                "Target.setAutoAttach",
                {"autoAttach": True, "waitForDebuggerOnStart": True, "flatten": True},
            ),
        )
        if self.options.get("profile"):
            await self.profile.load(self.options["profile"])
        self.spawn(self.live.run())
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
    def upload_dir(self) -> Path:
        assert self.sandbox is not None
        return self.sandbox.uploads

    @property
    def files_dir(self) -> str:
        return str(self.sandbox.shared) if self.sandbox is not None else ""

    def spawn(self, coroutine: Coroutine[Any, Any, Any]) -> None:
        """Runs `coroutine` in the background until it ends or the browser is released."""
        task = asyncio.ensure_future(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def place_upload(self, artifact: Any) -> str:
        """Copies an uploaded file (an `upload` artifact of the run) into the browser's
        uploads folder, under its own name unless another file has it, and returns the
        path the browser's file inputs take."""
        assert self.sandbox is not None
        with artifact.file.open("rb") as source:
            return str(self.sandbox.place_upload(safe_filename(artifact.name), source))

    # Recording switch -----------------------------------------------------------------

    async def set_recording(self, enabled: bool) -> None:
        """Switches the run's recording on or off in every page, open and to come."""
        if enabled == self.recording_enabled or self.cdp is None:
            return
        self.recording_enabled = enabled
        await self.capture.switch(enabled)

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
            await self.screenshots.store_final()
            await self.capture.end()
            # Binding calls are events sent before the evaluate replies; give the reader
            # a turn to hand them over.
            await asyncio.sleep(0.05)
            if self.profile.persists:
                await self.profile.save()
        for target in self.targets.attached():
            self.network.write_finishing(target)
        await self.writer.flush()
        await self._release()
        self.network.write_refusals_left()
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
