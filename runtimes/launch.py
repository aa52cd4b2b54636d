"""Starting a runtime and waiting until a runtime host has its browser up: what
`POST /v1/runtimes/{id}/start` and Browser Run's `devtools/browser` acquire both do."""

import asyncio
import contextlib
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.cache import cache
from django.db import transaction

from runs.errors import ApiError, Conflict
from runs.live import run_change_listener
from runs.models import Runtime
from runtimes import services as runtime_services

START_POLL_S = 0.025


async def wait_for_start(runtime_id: str, run_id: str, timeout_s: float) -> Runtime:
    """The runtime once it is no longer `starting`, or as it is when `timeout_s` passed.

    Polls the database every START_POLL_S; a notice on the run's channel-layer group
    (the host's `started` event) wakes it sooner when the host shares the layer.
    """
    get = sync_to_async(lambda: Runtime.objects.get(pk=runtime_id))
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    async with run_change_listener(run_id) as listener:
        while True:
            runtime = await get()
            remaining = deadline - loop.time()
            if runtime.status != Runtime.Status.STARTING or remaining <= 0:
                return runtime
            await listener.wait(min(START_POLL_S, remaining))


def abandon_start(runtime: Runtime, timeout_s: float) -> Runtime:
    """Stops a start that its host did not take in time, so it does not start later
    unseen."""
    with transaction.atomic():
        locked = Runtime.objects.select_for_update().get(pk=runtime.pk)
        if locked.status == Runtime.Status.STARTING and locked.heartbeat_at is None:
            return runtime_services.runtime_finished(
                runtime=locked,
                state="failed",
                reason=f"Runtime host {locked.host_id} did not take the start within "
                f"{timeout_s:g} s.",
            )
    return runtime_services.runtime_stop(runtime=runtime)


QUEUE_KEY = "bctrl:runtime-start-queue"
ROOM_POLL_S = 0.25


def queued_starts() -> int:
    """Starts waiting for room now (`?waitMs=`), on every web process (the cache is
    Redis when configured)."""
    return max(0, int(cache.get(QUEUE_KEY, 0) or 0))


async def _placed(runtime: Runtime, wait_ms: int, **options: Any) -> runtime_services.RuntimeStart:
    """runtime_start, retried while no host has room, for up to `wait_ms`."""
    start = sync_to_async(runtime_services.runtime_start)
    deadline = asyncio.get_running_loop().time() + wait_ms / 1000
    queued = False
    try:
        while True:
            try:
                return await start(runtime=runtime, **options)
            except ApiError as exc:
                waiting = exc.code in ("runtime.capacity", "runtime.no_host")
                if not waiting or asyncio.get_running_loop().time() >= deadline:
                    raise
            if not queued:
                queued = True
                await sync_to_async(_queue_add)(1)
            await asyncio.sleep(ROOM_POLL_S)
    finally:
        if queued:
            await sync_to_async(_queue_add)(-1)


def _queue_add(delta: int) -> None:
    with contextlib.suppress(Exception):  # the count is for the dashboard only
        if delta > 0:
            cache.add(QUEUE_KEY, 0, timeout=None)
            cache.incr(QUEUE_KEY, delta)
        else:
            cache.decr(QUEUE_KEY, -delta)


async def launch(
    runtime: Runtime,
    *,
    recording: bool = True,
    keep_alive_ms: int | None = None,
    api_key: object = None,
    wait_ms: int = 0,
    browser_options: dict[str, Any] | None = None,
    profile_id: str | None = None,
    persist: bool = False,
    proxy: dict[str, Any] | None = None,
) -> runtime_services.RuntimeStart:
    """Opens a run of `runtime` on the host with the most room and returns once its
    browser runs. Without room it answers at once (429 runtime.capacity, 503
    runtime.no_host) unless `wait_ms` lets it wait for some; other failures: 409
    runtime.already_running, 502 runtime.start_failed, 503 runtime.start_timeout. A
    failed start leaves no start behind."""
    started = await _placed(
        runtime,
        wait_ms,
        recording=recording,
        keep_alive_ms=keep_alive_ms,
        api_key=api_key,
        browser_options=browser_options or {},
        profile_id=profile_id,
        persist=persist,
        proxy=proxy,
    )
    timeout_s = float(settings.BCTRL_RUNTIME_START_TIMEOUT_S)
    deadline = asyncio.get_running_loop().time() + timeout_s
    taken = False
    while True:
        # A host takes a start within a poll or two; one that does not may have died
        # since its last heartbeat: the start moves to another host. Once taken, the
        # launch has the rest of the start's time (it is slower on a loaded machine).
        remaining = deadline - asyncio.get_running_loop().time()
        claim_s = float(settings.BCTRL_RUNTIME_CLAIM_TIMEOUT_S)
        wait_s = remaining if taken else min(remaining, claim_s)
        current = await wait_for_start(runtime.id, started.run.id, max(0.0, wait_s))
        if current.status != Runtime.Status.STARTING or remaining <= wait_s:
            break
        taken = current.heartbeat_at is not None
        if not taken:
            await sync_to_async(runtime_services.runtime_replace)(runtime=current)
    details = {"runId": started.run.id}
    if current.status == Runtime.Status.STARTING:
        await sync_to_async(abandon_start)(current, timeout_s)
        raise ApiError(
            f"The browser of runtime {current.id} did not start within {timeout_s:g} s; "
            "the start was cancelled.",
            code="runtime.start_timeout",
            status_code=503,
            details=details,
        )
    if current.status == Runtime.Status.FAILED:
        raise ApiError(
            f"Runtime {current.id} failed to start: {current.failure_reason or 'unknown'}",
            code="runtime.start_failed",
            status_code=502,
            details={**details, "reason": current.failure_reason},
        )
    if current.status != Runtime.Status.RUNNING:
        raise Conflict(
            f"Runtime {current.id} was stopped while it started ({current.status}).",
            code="runtime.stopped",
            details=details,
        )
    return runtime_services.RuntimeStart(runtime=current, run=started.run, token=started.token)
