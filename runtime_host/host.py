"""The runtime host: claims runtimes waiting to start, runs their browsers, heartbeats,
and stops them when asked, when idle past keep_alive, or when the host shuts down.

Starts and stops reach it two ways: its own link to its web server pushes each start
placed on it and each stop asked of it (runtimes.hostlink.HostStartsConsumer), which it acts
on at once; and it polls the database every `poll_s`, which finds any whose push was lost
(a link down, a channel layer restarting). The link also tells the web server when a
runtime is running, so the start request waiting for it answers without its own poll."""

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from datetime import datetime
from typing import Any

import orjson
import websockets
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import close_old_connections
from django.utils import timezone
from playwright.async_api import async_playwright

from runs.models import Run, Runtime
from runs.selectors import active_run_of
from runs.services import upload_placed, uploads_pending
from runtime_host.browser import ManagedBrowser, needs_own_launch, pid_alive
from runtime_host.live import RECONNECT_S
from runtimes.hostlink import host_starts_path, host_starts_token
from runtimes.services import (
    host_gone,
    host_heartbeat,
    hosts_retire_dead,
    runtime_claim,
    runtime_finished,
    runtime_running,
)

logger = logging.getLogger(__name__)

STATE_POLL_S = 0.5
# Warm launches that fail in a row before the host stops refilling its pool.
WARM_MAX_FAILURES = 3


def memory() -> tuple[int, int]:
    """This machine's total and available memory in bytes (/proc/meminfo), or zeros."""
    values: dict[str, int] = {}
    with contextlib.suppress(OSError, ValueError), open("/proc/meminfo") as handle:
        for line in handle:
            name, _, rest = line.partition(":")
            if name in ("MemTotal", "MemAvailable"):
                values[name] = int(rest.split()[0]) * 1024
    return values.get("MemTotal", 0), values.get("MemAvailable", 0)


def new_host_id() -> str:
    return f"{socket.gethostname()[:60]}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


async def in_thread(function: Any, *args: Any, **kwargs: Any) -> Any:
    def call() -> Any:
        close_old_connections()
        return function(*args, **kwargs)

    return await sync_to_async(call, thread_sensitive=False)()


def _claim(host_id: str) -> tuple[Runtime, Run | None] | None:
    runtime = runtime_claim(host_id=host_id)
    if runtime is None:
        return None
    return runtime, active_run_of(runtime)


def _place(browser: ManagedBrowser, artifact: Any) -> None:
    upload_placed(artifact=artifact, path=browser.place_upload(artifact))


def _states(ids: list[str]) -> dict[str, dict[str, Any]]:
    rows = Runtime.objects.filter(pk__in=ids).values(
        "id",
        "status",
        "host_id",
        "recording_enabled",
        "keep_alive_ms",
        "client_count",
        "last_client_at",
    )
    return {row["id"]: dict(row) for row in rows}


class RuntimeHost:
    def __init__(
        self,
        host_id: str | None = None,
        max_browsers: int | None = None,
        heartbeat_s: float | None = None,
        poll_s: float = 0.25,
        warm_browsers: int | None = None,
    ) -> None:
        self.host_id = host_id or new_host_id()
        self.max_browsers = max_browsers or settings.BCTRL_RUNTIME_MAX_BROWSERS
        self.heartbeat_s = heartbeat_s or settings.BCTRL_RUNTIME_HEARTBEAT_S
        self.poll_s = poll_s
        self.browsers: dict[str, ManagedBrowser] = {}
        self.tasks: dict[str, asyncio.Task[None]] = {}
        self.stop_requested = asyncio.Event()
        self.ready = asyncio.Event()
        self.wake = asyncio.Event()  # a start or stop was pushed: act now
        self.starts_link: Any = None  # the open websocket of the host's own link
        self.playwright: Any = None
        self._running_at: dict[str, datetime] = {}
        self._background: set[asyncio.Future[Any]] = set()
        # Pre-launched, never-used browsers that a start takes (_take_warm), and how
        # many are being launched; refilled in the background.
        self.warm_target = (
            settings.BCTRL_RUNTIME_WARM_BROWSERS if warm_browsers is None else warm_browsers
        )
        self.warm: list[ManagedBrowser] = []
        self._warming = 0
        self._warm_failures = 0

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.ensure_future(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def shutdown(self) -> None:
        self.stop_requested.set()

    async def run(self) -> None:
        manager = async_playwright()
        self.playwright = await manager.start()
        logger.info("Runtime host %s ready (up to %s browsers)", self.host_id, self.max_browsers)
        await in_thread(hosts_retire_dead, hostname=socket.gethostname(), alive=pid_alive)
        self._refill()
        await self._heartbeat()  # takes starts from now on
        link = asyncio.ensure_future(self._link_starts())
        self.ready.set()
        last_beat = time.monotonic()
        last_states = 0.0
        pushed = False
        try:
            while not self.stop_requested.is_set():
                now = time.monotonic()
                if now - last_beat >= self.heartbeat_s:
                    last_beat = now
                    self._drop_dead_warm()
                    await self._heartbeat()
                await self._claim_all()
                if (pushed or now - last_states >= STATE_POLL_S) and self.browsers:
                    last_states = now
                    await self._watch_states()
                pushed = await self._nap()
        finally:
            logger.info("Runtime host %s stopping %d runtimes", self.host_id, len(self.browsers))
            link.cancel()
            with contextlib.suppress(BaseException):
                await link
            with contextlib.suppress(Exception):
                await in_thread(host_gone, host_id=self.host_id)
            await asyncio.gather(
                *(b.stop() for b in list(self.browsers.values())),
                *(b.stop(finish=False) for b in self.warm),
                return_exceptions=True,
            )
            self.warm.clear()
            await asyncio.gather(*self.tasks.values(), return_exceptions=True)
            with contextlib.suppress(Exception):
                await self.playwright.stop()
            await in_thread(lambda: None)

    async def _nap(self) -> bool:
        """Waits `poll_s`, or less when something is pushed (True) or the host is asked
        to stop."""
        waits = [asyncio.ensure_future(e.wait()) for e in (self.wake, self.stop_requested)]
        try:
            await asyncio.wait(waits, timeout=self.poll_s, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for wait in waits:
                wait.cancel()
        woken = self.wake.is_set()
        self.wake.clear()
        return woken

    async def _link_starts(self) -> None:
        """Keeps the host's own link to its web server open: each message is a start to
        claim or a stop to carry out now."""
        url = settings.BCTRL_HOST_LINK_URL.rstrip("/") + host_starts_path(self.host_id)
        attempt = 0
        while not self.stop_requested.is_set():
            token = host_starts_token(self.host_id)
            try:
                async with websockets.connect(
                    url,
                    additional_headers={"Authorization": f"Bearer {token}"},
                    max_size=2**16,
                    compression=None,
                    open_timeout=10,
                    ping_interval=20,
                ) as link:
                    attempt = 0
                    self.starts_link = link
                    self.wake.set()  # a start pushed while the link was down
                    async for _ in link:
                        self.wake.set()
            except (OSError, TimeoutError, websockets.exceptions.WebSocketException) as exc:
                if attempt == 0:
                    logger.info("Host link of %s: %s (polling meanwhile)", self.host_id, exc)
            finally:
                self.starts_link = None
            await asyncio.sleep(RECONNECT_S[min(attempt, len(RECONNECT_S) - 1)])
            attempt += 1

    async def _say_running(self, run_id: str) -> None:
        link = self.starts_link
        if link is None:
            return
        with contextlib.suppress(Exception):
            await link.send(orjson.dumps({"type": "running", "runId": run_id}).decode())

    # The warm pool ----------------------------------------------------------------------

    def _take_warm(self, options: dict[str, Any]) -> ManagedBrowser | None:
        if needs_own_launch(options):
            return None
        while self.warm:
            browser = self.warm.pop(0)
            if browser.fits(options):
                return browser
            self._spawn(browser.stop(finish=False))  # died meanwhile
        return None

    def _refill(self) -> None:
        """Launches warm browsers up to the pool's size, within the host's capacity."""
        room = self.max_browsers - len(self.tasks)
        wanted = min(self.warm_target, room) - len(self.warm) - self._warming
        if self.stop_requested.is_set() or self._warm_failures >= WARM_MAX_FAILURES:
            return
        for _ in range(max(0, wanted)):
            self._warming += 1
            self._spawn(self._warm_one())

    async def _warm_one(self) -> None:
        browser = ManagedBrowser(self.playwright)
        try:
            await browser.launch()
        except Exception as exc:
            self._warm_failures += 1
            logger.warning("Launching a warm browser failed: %s", exc)
            await browser.stop(finish=False)
            return
        finally:
            self._warming -= 1
        self._warm_failures = 0
        if self.stop_requested.is_set():
            await browser.stop(finish=False)
            return
        self.warm.append(browser)

    def _drop_dead_warm(self) -> None:
        for browser in [b for b in self.warm if b.stopping]:
            self.warm.remove(browser)
        self._refill()

    async def _place_uploads(self) -> None:
        """Copies the files uploaded for its browsers (POST /v1/runtimes/{id}/files) into
        their uploads folders."""
        by_run = {b.run.id: b for b in self.browsers.values() if b.bound and not b.stopping}
        try:
            pending = await in_thread(uploads_pending, run_ids=list(by_run))
            for artifact in pending:
                await in_thread(_place, by_run[artifact.run_id], artifact)
        except Exception:
            logger.exception("Placing uploaded files failed")

    async def _heartbeat(self) -> None:
        memory_total, memory_available = memory()
        try:
            await in_thread(
                host_heartbeat,
                host_id=self.host_id,
                hostname=socket.gethostname(),
                pid=os.getpid(),
                capacity=self.max_browsers,
                browsers=len(self.tasks),
                warm=len(self.warm),
                memory_total=memory_total,
                memory_available=memory_available,
                load=os.getloadavg()[0],
            )
        except Exception:
            logger.exception("Heartbeat failed")

    async def _claim_all(self) -> None:
        while len(self.tasks) < self.max_browsers and not self.stop_requested.is_set():
            try:
                claimed = await in_thread(_claim, self.host_id)
            except Exception:
                logger.exception("Claiming a runtime failed")
                return
            if claimed is None:
                return
            runtime, run = claimed
            self.tasks[runtime.id] = asyncio.create_task(self._serve(runtime, run))

    async def _serve(self, runtime: Runtime, run: Run | None) -> None:
        try:
            if run is None:
                await in_thread(
                    runtime_finished, runtime=runtime, state="failed", reason="runtime has no run"
                )
                return
            started = time.monotonic()
            taken = self._take_warm(run.browser_options or {})
            browser = taken or ManagedBrowser(self.playwright)
            self.browsers[runtime.id] = browser
            try:
                if taken is None:
                    await browser.launch(run.browser_options)
                endpoint = await browser.bind(runtime, run)
            except Exception as exc:
                logger.exception("Launching runtime %s failed", runtime.id)
                reason = f"browser failed to start: {exc}"
                if browser.bound:  # its stop finishes the runtime
                    await browser.stop(state="failed", reason=reason)
                    return
                await browser.stop(finish=False)
                await in_thread(runtime_finished, runtime=runtime, state="failed", reason=reason)
                return
            finally:
                self._refill()
            await in_thread(
                runtime_running,
                runtime=runtime,
                cdp_endpoint=endpoint,
                files_dir=browser.files_dir,
            )
            self._running_at[runtime.id] = timezone.now()
            await self._say_running(run.id)
            logger.info(
                "Runtime %s running at %s (%.2fs, %s)",
                runtime.id,
                endpoint,
                time.monotonic() - started,
                "warm" if taken is not None else "launched",
            )
            await browser.finished.wait()
        except Exception:
            logger.exception("Runtime %s failed in the host", runtime.id)
            browser_obj = self.browsers.get(runtime.id)
            if browser_obj is not None:
                await browser_obj.stop(state="failed", reason="runtime host error")
        finally:
            self.browsers.pop(runtime.id, None)
            self.tasks.pop(runtime.id, None)
            self._running_at.pop(runtime.id, None)

    async def _watch_states(self) -> None:
        try:
            states = await in_thread(_states, list(self.browsers))
        except Exception:
            logger.exception("Reading runtime states failed")
            return
        await self._place_uploads()
        now = timezone.now()
        for runtime_id, browser in list(self.browsers.items()):
            if browser.stopping or runtime_id not in self._running_at:
                continue
            state = states.get(runtime_id)
            if (
                state is None
                or state["host_id"] != self.host_id
                or state["status"]
                in (
                    Runtime.Status.STOPPED,
                    Runtime.Status.FAILED,
                )
            ):
                # Deleted, swept or taken over: close the browser, write nothing more.
                self._spawn(browser.stop(finish=False))
                continue
            if state["status"] == Runtime.Status.STOPPING:
                self._spawn(browser.stop())
                continue
            if state["recording_enabled"] != browser.recording_enabled:
                self._spawn(browser.set_recording(state["recording_enabled"]))
            keep_alive = state["keep_alive_ms"]
            if keep_alive and state["client_count"] == 0:
                since = state["last_client_at"] or self._running_at[runtime_id]
                if (now - since).total_seconds() * 1000 > keep_alive:
                    logger.info("Runtime %s idle past keep_alive; stopping", runtime_id)
                    self._spawn(browser.stop(reason="idle"))
