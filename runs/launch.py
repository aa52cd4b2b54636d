"""Starting a runtime and waiting until a runtime host has its browser up: what
`POST /v1/runtimes/{id}/start` and Browser Run's `devtools/browser` acquire both do."""

import asyncio

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import transaction

from runs import services
from runs.api.errors import ApiError, Conflict
from runs.live import run_change_listener
from runs.models import Runtime

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
    """Stops a start that no host took in time, so it does not start later unseen."""
    with transaction.atomic():
        locked = Runtime.objects.select_for_update().get(pk=runtime.pk)
        if locked.status == Runtime.Status.STARTING and not locked.host_id:
            return services.runtime_finished(
                runtime=locked,
                state="failed",
                reason=f"No runtime host took the runtime within {timeout_s:g} s.",
            )
    return services.runtime_stop(runtime=runtime)


async def launch(
    runtime: Runtime,
    *,
    recording: bool = True,
    keep_alive_ms: int | None = None,
    api_key: object = None,
) -> services.RuntimeStart:
    """Opens a run of `runtime` and returns once its browser runs; raises the API's
    errors (409 runtime.already_running, 502 runtime.start_failed, 503 runtime.no_host or
    runtime.start_timeout) and leaves no start behind when it fails."""
    started = await sync_to_async(services.runtime_start)(
        runtime=runtime, recording=recording, keep_alive_ms=keep_alive_ms, api_key=api_key
    )
    timeout_s = float(settings.BCTRL_RUNTIME_START_TIMEOUT_S)
    current = await wait_for_start(runtime.id, started.run.id, timeout_s)
    details = {"runId": started.run.id}
    if current.status == Runtime.Status.STARTING:
        claimed = bool(current.host_id)
        await sync_to_async(abandon_start)(current, timeout_s)
        if not claimed:
            raise ApiError(
                f"No runtime host took runtime {current.id} within {timeout_s:g} s; "
                "start one with `manage.py runtime_host` (or `make run`). The start "
                "was cancelled.",
                code="runtime.no_host",
                status_code=503,
                details=details,
            )
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
    return services.RuntimeStart(runtime=current, run=started.run, token=started.token)
