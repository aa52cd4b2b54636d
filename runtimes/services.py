"""The runtime lifecycle: the API asks (start, stop); a runtime host process does (claim,
running, finished). They meet in the database, so any number of web processes and hosts
can share the work."""

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Count
from django.utils import timezone

from runs.errors import ApiError, Conflict
from runs.live import notify_host
from runs.models import Artifact, Run, Runtime, RuntimeHost, Space
from runs.profiles import profile_claim, profile_take
from runs.sealed import seal
from runs.selectors import active_run_of, live_hosts
from runs.services import event_emit, run_create, run_stop
from viewers.leases import MAX_LIFETIME_S, lease_mint, lease_revoke
from viewers.models import ViewerLease

logger = logging.getLogger(__name__)


def runtime_create(
    *, space: Space, name: str = "", config: dict[str, Any] | None = None
) -> Runtime:
    return Runtime.objects.create(space=space, name=name, config=config or {})


RUNTIME_BUSY = (Runtime.Status.STARTING, Runtime.Status.RUNNING, Runtime.Status.STOPPING)


@dataclass(frozen=True)
class RuntimeStart:
    runtime: Runtime
    run: Run
    token: str


CAPACITY_RETRY_AFTER_S = 2
UPLOAD_POLL_S = 0.05  # how often a wait for an upload's placing looks


def host_heartbeat(
    *,
    host_id: str,
    capacity: int,
    browsers: int,
    warm: int = 0,
    memory_total: int = 0,
    memory_available: int = 0,
    load: float = 0.0,
    hostname: str = "",
    pid: int | None = None,
) -> None:
    """A runtime host says it is alive, what it holds and what it can hold; its running
    runtimes are alive with it."""
    now = timezone.now()
    RuntimeHost.objects.update_or_create(
        id=host_id,
        defaults={
            "hostname": hostname,
            "pid": pid,
            "capacity": capacity,
            "browsers": browsers,
            "warm": warm,
            "memory_total": memory_total,
            "memory_available": memory_available,
            "load": load,
            "heartbeat_at": now,
        },
    )
    Runtime.objects.filter(host_id=host_id, status__in=RUNTIME_BUSY).exclude(
        heartbeat_at=None
    ).update(heartbeat_at=now)


def host_gone(*, host_id: str) -> None:
    """A host that shuts down takes no more starts."""
    RuntimeHost.objects.filter(pk=host_id).delete()


def runtime_place(*, exclude: tuple[str, ...] = ()) -> RuntimeHost:
    """The live host with the most room for one more browser (call inside a transaction:
    the host rows stay locked until it ends, so two starts never take the same place).

    Room is capacity less the runtimes placed on the host, and no more than its available
    memory holds at BCTRL_RUNTIME_BROWSER_MEMORY_MB each. None alive: 503
    runtime.no_host; none with room: 429 runtime.capacity; both with Retry-After."""
    hosts = list(live_hosts().exclude(pk__in=exclude).select_for_update())
    if not hosts:
        raise ApiError(
            "No runtime host is running: start one with `manage.py runtime_host` (or `make run`).",
            code="runtime.no_host",
            status_code=503,
            retry_after=CAPACITY_RETRY_AFTER_S,
        )
    placed = dict(
        Runtime.objects.filter(host_id__in=[h.id for h in hosts], status__in=RUNTIME_BUSY)
        .values_list("host_id")
        .annotate(count=Count("id"))
    )
    per_browser = settings.BCTRL_RUNTIME_BROWSER_MEMORY_MB * 1024 * 1024

    def room(host: RuntimeHost) -> int:
        free = host.capacity - placed.get(host.id, 0)
        if per_browser and host.memory_total:
            free = min(free, host.memory_available // per_browser)
        return free

    best = max(hosts, key=lambda host: (room(host), -host.load))
    if room(best) <= 0:
        capacity = sum(host.capacity for host in hosts)
        raise ApiError(
            f"Every runtime host is full: {capacity} browsers on {len(hosts)} "
            f"host{'s' if len(hosts) != 1 else ''} (BCTRL_RUNTIME_MAX_BROWSERS per host, and "
            "BCTRL_RUNTIME_BROWSER_MEMORY_MB of available memory each). Stop a runtime, add "
            "a host, or start with ?waitMs= to wait for room.",
            code="runtime.capacity",
            status_code=429,
            retry_after=CAPACITY_RETRY_AFTER_S,
            details={"hosts": len(hosts), "capacity": capacity},
        )
    return best


def runtime_start(
    *,
    runtime: Runtime,
    recording: bool = True,
    keep_alive_ms: int | None = None,
    api_key: Any = None,
    browser_options: dict[str, Any] | None = None,
    profile_id: str | None = None,
    persist: bool = False,
    proxy: dict[str, Any] | None = None,
) -> RuntimeStart:
    """Opens a run and places the runtime on the host with the most room, which launches
    the browser; 409 if it is running, 429/503 (and nothing written) when no host has
    room (runtime_place)."""
    with transaction.atomic():
        locked = Runtime.objects.select_for_update().get(pk=runtime.pk)
        if locked.status in RUNTIME_BUSY:
            active = active_run_of(locked)
            raise Conflict(
                f"Runtime {locked.id} is {locked.status}.",
                code="runtime.already_running",
                details={"activeRunId": active.id if active else None},
            )
        host = runtime_place()
        options = dict(browser_options or {})
        profile = None
        if profile_id:
            profile = profile_claim(space=locked.space, profile_id=profile_id, persist=persist)
            options["profile"] = {"id": profile.id, "name": profile.name, "persist": persist}
        run = run_create(
            space=locked.space,
            runtime=locked,
            browser_options=options,
            browser_secrets=seal({"proxy": proxy}) if proxy else b"",
        )
        if profile is not None and persist:
            profile_take(profile=profile, run=run)
        Runtime.objects.filter(pk=locked.pk).update(
            status=Runtime.Status.STARTING,
            host_id=host.id,
            cdp_endpoint="",
            heartbeat_at=None,
            failure_reason="",
            recording_enabled=recording,
            keep_alive_ms=keep_alive_ms,
            client_count=0,
            last_client_at=None,
        )
        minted = lease_mint(
            run=run, kind=ViewerLease.Kind.CDP, lifetime_s=MAX_LIFETIME_S, api_key=api_key
        )
        event_emit(run=run, type="runtime.lifecycle", data={"state": "starting"})
        notify_host(host.id)
    locked.refresh_from_db()
    return RuntimeStart(runtime=locked, run=run, token=minted.token)


def runtime_replace(*, runtime: Runtime) -> bool:
    """Moves a start that its host has not taken to another live host (the first may have
    died since its last heartbeat); False when there is no other with room, or the start
    was taken meanwhile."""
    with transaction.atomic():
        locked = Runtime.objects.select_for_update().get(pk=runtime.pk)
        if locked.status != Runtime.Status.STARTING or locked.heartbeat_at is not None:
            return False
        try:
            host = runtime_place(exclude=(locked.host_id,))
        except ApiError:
            return False
        Runtime.objects.filter(pk=locked.pk).update(host_id=host.id)
    logger.warning(
        "Runtime %s: %s did not take it; placed on %s", runtime.id, locked.host_id, host.id
    )
    return True


def hosts_retire_dead(*, hostname: str, alive: Callable[[int], bool]) -> int:
    """Forgets the hosts of this machine whose process is gone (a host restarted after a
    crash), so that no start is placed on them; their runtimes are failed by the sweep."""
    retired = 0
    for host in RuntimeHost.objects.filter(hostname=hostname, pid__isnull=False):
        if host.pid is not None and not alive(host.pid):
            RuntimeHost.objects.filter(pk=host.pk).delete()
            retired += 1
    return retired


def runtime_stop(*, runtime: Runtime) -> Runtime:
    """Asks the runtime's host to stop it; a runtime no host claimed yet stops at once."""
    with transaction.atomic():
        locked = Runtime.objects.select_for_update().get(pk=runtime.pk)
        if locked.status == Runtime.Status.STARTING and locked.heartbeat_at is None:
            return runtime_finished(runtime=locked, state="stopped")  # not launched yet
        if locked.status in (Runtime.Status.STARTING, Runtime.Status.RUNNING):
            Runtime.objects.filter(pk=locked.pk).update(status=Runtime.Status.STOPPING)
            notify_host(locked.host_id)
    locked.refresh_from_db()
    return locked


def runtime_claim(*, host_id: str) -> Runtime | None:
    """A host takes one runtime placed on it and waiting to start (its first heartbeat
    marks it taken)."""
    waiting = Runtime.objects.filter(
        status=Runtime.Status.STARTING, host_id=host_id, heartbeat_at=None
    )
    for candidate in waiting[:5]:
        taken = Runtime.objects.filter(
            pk=candidate.pk, status=Runtime.Status.STARTING, heartbeat_at=None
        ).update(heartbeat_at=timezone.now())
        if taken:
            return Runtime.objects.select_related("space").get(pk=candidate.pk)
    return None


def runtime_running(*, runtime: Runtime, cdp_endpoint: str, files_dir: str = "") -> None:
    Runtime.objects.filter(pk=runtime.pk, status=Runtime.Status.STARTING).update(
        status=Runtime.Status.RUNNING,
        cdp_endpoint=cdp_endpoint,
        files_dir=files_dir,
        heartbeat_at=timezone.now(),
    )
    run = active_run_of(runtime)
    if run is not None:
        event_emit(run=run, type="runtime.lifecycle", data={"state": "started"})


def runtime_finished(*, runtime: Runtime, state: str, reason: str = "") -> Runtime:
    """The browser is gone: the runtime is stopped (or failed, with the reason), its run
    ends the same way, and the connectUrl's credential is revoked."""
    failed = state == "failed"
    with transaction.atomic():
        Runtime.objects.filter(pk=runtime.pk).update(
            status=Runtime.Status.FAILED if failed else Runtime.Status.STOPPED,
            failure_reason=reason if failed else "",
            cdp_endpoint="",
            files_dir="",
            client_count=0,
            controller_key="",
            controller_name="",
            controller_since=None,
            controller_active_at=None,
        )
        run = active_run_of(runtime)
        if run is not None:
            data = {"state": state, **({"reason": reason} if reason else {})}
            event_emit(run=run, type="runtime.lifecycle", data=data)
            for lease in run.viewer_leases.filter(kind=ViewerLease.Kind.CDP, revoked_at=None):
                lease_revoke(lease=lease)
            run_stop(
                run=run,
                status=Run.Status.FAILED if failed else Run.Status.COMPLETED,
                error={"code": "runtime.failed", "message": reason} if failed else None,
            )
    runtime.refresh_from_db()
    return runtime


def upload_wait_placed(artifact: Artifact) -> bool:
    """Whether the runtime host placed an upload (runs.services.runtime_upload) in its
    browser's uploads folder within BCTRL_RUNTIME_UPLOAD_WAIT_S."""
    deadline = time.monotonic() + settings.BCTRL_RUNTIME_UPLOAD_WAIT_S
    while not artifact.metadata.get("placed") and time.monotonic() < deadline:
        time.sleep(UPLOAD_POLL_S)
        artifact.refresh_from_db(fields=["metadata"])
    return bool(artifact.metadata.get("placed"))
