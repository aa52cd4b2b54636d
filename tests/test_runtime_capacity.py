"""Runtimes as a fleet: each host says with its heartbeat what it holds and can hold; a
start goes to the live host with the most room and is answered at once when there is
none (429 runtime.capacity, or 503 runtime.no_host), leaving nothing behind, unless
`waitMs` lets it wait for room (runs/services.py runtime_place, runtimes/launch.py)."""

import os
import threading
import time
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from runs.models import Run, Runtime, RuntimeHost
from runtimes import services as runtime_services
from runtimes.launch import queued_starts
from runtimes.sweep import runtimes_sweep_vanished
from tests.conftest import Tenant, fake_host

pytestmark = [pytest.mark.django_db(transaction=True)]


def start(tenant: Tenant, runtime: Runtime, query: str = "") -> Any:
    return tenant.client.post(f"/v1/runtimes/{runtime.id}/start{query}", {}, format="json")


def runtimes(tenant: Tenant, count: int) -> list[Runtime]:
    return [
        runtime_services.runtime_create(space=tenant.space, name=f"rt{n}") for n in range(count)
    ]


def test_a_start_beyond_capacity_is_429_at_once_and_leaves_nothing_behind(
    tenant: Tenant,
) -> None:
    first, second, third = runtimes(tenant, 3)
    with fake_host(capacity=2):
        assert start(tenant, first).status_code == 200
        assert start(tenant, second).status_code == 200
        began = time.monotonic()
        refused = start(tenant, third)
        took = time.monotonic() - began
    assert refused.status_code == 429 and int(refused["Retry-After"]) >= 1
    error = refused.json()["error"]
    assert error["code"] == "runtime.capacity"
    assert "BCTRL_RUNTIME_MAX_BROWSERS" in error["message"] and "waitMs" in error["message"]
    assert error["details"] == {"hosts": 1, "capacity": 2}
    assert took < 5  # at once, not after the start timeout (30 s)
    third.refresh_from_db()
    assert third.status == Runtime.Status.IDLE
    assert not Run.objects.filter(runtime=third).exists()


def test_a_start_goes_to_the_host_with_the_most_room(tenant: Tenant) -> None:
    *placed, extra = runtimes(tenant, 5)
    with fake_host(host_id="small", capacity=1), fake_host(host_id="large", capacity=3):
        hosts = []
        for runtime in placed:
            assert start(tenant, runtime).status_code == 200
            runtime.refresh_from_db()
            hosts.append(runtime.host_id)
        assert start(tenant, extra).status_code == 429
    # 3 places on one host, 1 on the other: the first start takes the larger room, and the
    # fleet fills up completely before it refuses.
    assert hosts[:2] == ["large", "large"]
    assert sorted(hosts) == ["large", "large", "large", "small"]


def test_a_host_short_of_memory_takes_no_start(tenant: Tenant, settings: Any) -> None:
    settings.BCTRL_RUNTIME_BROWSER_MEMORY_MB = 500
    (runtime,) = runtimes(tenant, 1)
    runtime_services.host_heartbeat(
        host_id="tight", capacity=4, browsers=0, memory_total=8 << 30, memory_available=200 << 20
    )
    refused = start(tenant, runtime)
    assert refused.status_code == 429
    assert "BCTRL_RUNTIME_BROWSER_MEMORY_MB" in refused.json()["error"]["message"]


def test_a_host_that_stopped_heartbeating_takes_no_start(tenant: Tenant) -> None:
    (runtime,) = runtimes(tenant, 1)
    runtime_services.host_heartbeat(host_id="gone", capacity=4, browsers=0)
    RuntimeHost.objects.filter(pk="gone").update(heartbeat_at=timezone.now() - timedelta(minutes=5))
    refused = start(tenant, runtime)
    assert refused.status_code == 503
    assert refused.json()["error"]["code"] == "runtime.no_host"


def test_a_start_with_wait_ms_waits_for_room_and_then_starts(tenant: Tenant) -> None:
    first, second = runtimes(tenant, 2)
    answers: list[Any] = []
    with fake_host(capacity=1):
        assert start(tenant, first).status_code == 200
        waiting = threading.Thread(
            target=lambda: answers.append(start(tenant, second, "?waitMs=10000"))
        )
        waiting.start()
        deadline = time.monotonic() + 10
        while queued_starts() == 0:
            assert time.monotonic() < deadline, "the start never queued"
            time.sleep(0.05)
        tenant.client.post(f"/v1/runtimes/{first.id}/stop")
        waiting.join(15)
    assert answers and answers[0].status_code == 200
    assert answers[0].json()["runtimeId"] == second.id
    assert queued_starts() == 0


def test_a_start_that_waited_in_vain_is_429_and_leaves_nothing(tenant: Tenant) -> None:
    first, second = runtimes(tenant, 2)
    with fake_host(capacity=1):
        assert start(tenant, first).status_code == 200
        refused = start(tenant, second, "?waitMs=600")
    assert refused.status_code == 429
    assert not Run.objects.filter(runtime=second).exists()


@pytest.mark.parametrize("value", ["-1", "abc", "600001"])
def test_an_invalid_wait_is_422(tenant: Tenant, value: str, settings: Any) -> None:
    settings.BCTRL_RUNTIME_START_WAIT_MAX_MS = 600_000
    (runtime,) = runtimes(tenant, 1)
    assert start(tenant, runtime, f"?waitMs={value}").status_code == 422


def test_a_start_placed_on_a_host_that_died_before_taking_it_is_failed(tenant: Tenant) -> None:
    (runtime,) = runtimes(tenant, 1)
    runtime_services.host_heartbeat(host_id="doomed", capacity=4, browsers=0)
    started = runtime_services.runtime_start(runtime=runtime)
    past = timezone.now() - timedelta(minutes=5)
    RuntimeHost.objects.filter(pk="doomed").update(heartbeat_at=past)
    Runtime.objects.filter(pk=runtime.pk).update(updated_at=past)
    assert runtimes_sweep_vanished() == 1
    runtime.refresh_from_db()
    assert runtime.status == Runtime.Status.FAILED
    assert Run.objects.get(pk=started.run.pk).status == Run.Status.FAILED


def test_staff_see_the_hosts_their_load_and_the_queue(
    tenant: Tenant, client: Any, django_user_model: Any
) -> None:
    runtime_services.host_heartbeat(
        host_id="host-a", capacity=4, browsers=1, memory_total=8 << 30, memory_available=6 << 30
    )
    (runtime,) = runtimes(tenant, 1)
    runtime_services.runtime_start(runtime=runtime)  # placed on host-a, not yet taken
    staff = django_user_model.objects.create_user("root", password="x" * 12, is_staff=True)
    client.force_login(staff)
    page = client.get("/hosts").content.decode().replace("\xa0", " ")
    assert "host-a" in page and "1 of 4" in page and "6.0 GB free of 8.0 GB" in page
    assert "1 browser starting" in page and runtime.id in page
    member = django_user_model.objects.create_user("ada", password="x" * 12)
    client.force_login(member)
    assert client.get("/hosts").status_code == 404


def test_a_start_its_host_does_not_take_moves_to_another_host(
    tenant: Tenant, settings: Any
) -> None:
    settings.BCTRL_RUNTIME_CLAIM_TIMEOUT_S = 0.3
    (runtime,) = runtimes(tenant, 1)
    # The most room, but its process died since its last heartbeat: it never takes it.
    runtime_services.host_heartbeat(host_id="dead-but-fresh", capacity=8, browsers=0)
    with fake_host(host_id="alive", capacity=1):
        answer = start(tenant, runtime)
    assert answer.status_code == 200
    runtime.refresh_from_db()
    assert runtime.host_id == "alive"


def test_a_restarted_host_forgets_the_dead_hosts_of_its_machine() -> None:
    import socket

    from runtime_host.host import pid_alive

    hostname = socket.gethostname()
    runtime_services.host_heartbeat(
        host_id="crashed", capacity=4, browsers=0, hostname=hostname, pid=1 << 30
    )
    runtime_services.host_heartbeat(
        host_id="me", capacity=4, browsers=0, hostname=hostname, pid=os.getpid()
    )
    runtime_services.host_heartbeat(
        host_id="elsewhere", capacity=4, browsers=0, hostname="other", pid=1 << 30
    )
    assert runtime_services.hosts_retire_dead(hostname=hostname, alive=pid_alive) == 1
    assert set(RuntimeHost.objects.values_list("id", flat=True)) == {"me", "elsewhere"}
