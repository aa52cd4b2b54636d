"""Runtime start/stop/current-run and the run screenshot, with a fake runtime host."""

import base64
import json
import re
from collections.abc import Iterator
from typing import Any

import pytest

from runs import services
from runs.models import Artifact, Command, Run, Runtime
from runtimes import services as runtime_services
from tests.conftest import DUMMY_ENDPOINT, Tenant, fake_host
from tests.test_cdp_proxy import Browser, launch_chromium
from viewers.leases import lease_check
from viewers.models import ViewerLease

pytestmark = [pytest.mark.django_db(transaction=True)]


@pytest.fixture
def runtime(tenant: Tenant) -> Runtime:
    return runtime_services.runtime_create(space=tenant.space, name="chrome")


def start(tenant: Tenant, runtime: Runtime, body: Any = None, **extra: Any) -> Any:
    return tenant.client.post(
        f"/v1/runtimes/{runtime.id}/start", body or {}, format="json", **extra
    )


def test_start_waits_for_the_host_and_returns_a_connect_url(
    tenant: Tenant, runtime: Runtime
) -> None:
    with fake_host():
        response = start(tenant, runtime, {"recording": False, "keepAliveMs": 60000})
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["runtimeId"] == runtime.id and body["status"] == "running"
    run = Run.objects.get(pk=body["runId"])
    assert run.runtime_id == runtime.id and run.status == "running"

    match = re.fullmatch(r"ws://testserver/cdp/([^/?#]+)", body["connectUrl"])
    assert match is not None, body["connectUrl"]
    token = match[1]
    assert runtime.id not in body["connectUrl"] and run.id not in body["connectUrl"]
    assert lease_check(token, kind=ViewerLease.Kind.CDP).run_id == run.id

    runtime.refresh_from_db()
    assert (runtime.recording_enabled, runtime.keep_alive_ms) == (False, 60000)
    assert runtime.cdp_endpoint == DUMMY_ENDPOINT


def test_the_connect_url_is_wss_behind_https(tenant: Tenant, runtime: Runtime) -> None:
    with fake_host():
        response = start(tenant, runtime, secure=True, HTTP_HOST="localhost:8443")
    assert response.json()["connectUrl"].startswith("wss://localhost:8443/cdp/")


def test_a_running_runtime_cannot_start_again(tenant: Tenant, runtime: Runtime) -> None:
    with fake_host():
        first = start(tenant, runtime)
        second = start(tenant, runtime)
    assert second.status_code == 409
    error = second.json()["error"]
    assert error["code"] == "runtime.already_running"
    assert error["details"]["activeRunId"] == first.json()["runId"]


def test_a_start_with_no_host_running_is_503_at_once_and_leaves_nothing(
    tenant: Tenant, runtime: Runtime
) -> None:
    response = start(tenant, runtime)
    assert response.status_code == 503 and response["Retry-After"]
    error = response.json()["error"]
    assert error["code"] == "runtime.no_host" and "runtime_host" in error["message"]
    runtime.refresh_from_db()
    assert runtime.status == "idle" and not Run.objects.filter(runtime=runtime).exists()


def test_a_start_its_host_does_not_take_is_503_and_cancelled(
    tenant: Tenant, runtime: Runtime, settings: Any
) -> None:
    settings.BCTRL_RUNTIME_START_TIMEOUT_S = 0.3
    runtime_services.host_heartbeat(host_id="silent-host", capacity=4, browsers=0)  # never claims
    response = start(tenant, runtime)
    assert response.status_code == 503
    error = response.json()["error"]
    assert error["code"] == "runtime.start_timeout"
    runtime.refresh_from_db()
    assert runtime.status == "failed" and "silent-host did not take" in runtime.failure_reason
    assert Run.objects.get(pk=error["details"]["runId"]).status == "failed"
    assert runtime_services.runtime_claim(host_id="silent-host") is None  # it will not start later


def test_a_start_the_host_fails_is_502_with_the_reason(tenant: Tenant, runtime: Runtime) -> None:
    with fake_host(fail="Chromium exited with code 127"):
        response = start(tenant, runtime)
    assert response.status_code == 502
    error = response.json()["error"]
    assert error["code"] == "runtime.start_failed"
    assert "Chromium exited with code 127" in error["message"]
    detail = tenant.client.get(f"/v1/runtimes/{runtime.id}").json()
    assert detail["status"] == "failed"
    assert detail["failureReason"] == "Chromium exited with code 127"
    assert detail["activeRunId"] is None


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"recording": "no"}, "recording"),
        ({"keepAliveMs": -1}, "keepAliveMs"),
        ({"keepAliveMs": "5"}, "keepAliveMs"),
        ({"record": True}, "record"),
        ({"viewport": {"width": 100, "height": 800}}, "viewport"),
        ({"viewport": {"width": "1280", "height": 800}}, "viewport"),
        ({"viewport": {"width": 1280}}, "viewport"),
        ({"viewport": {"width": 1280, "height": 800, "depth": 2}}, "viewport"),
        ({"viewport": [1280, 800]}, "viewport"),
        ({"userAgent": "Agent\r\nX-Injected: 1"}, "userAgent"),
        ({"userAgent": "x" * 513}, "userAgent"),
        ({"locale": "english please"}, "locale"),
        ({"locale": 7}, "locale"),
        ({"timezone": "Mars/Olympus_Mons"}, "timezone"),
        ({"timezone": "../../etc/passwd"}, "timezone"),
    ],
)
def test_start_refuses_bad_options(tenant: Tenant, runtime: Runtime, body: Any, field: str) -> None:
    with fake_host():
        response = start(tenant, runtime, body)
    assert response.status_code == 422
    assert field in response.json()["error"]["details"], response.json()
    runtime.refresh_from_db()
    assert runtime.status == "idle"
    assert not runtime.runs.exists()


def test_a_runs_browser_options_are_kept_and_shown(tenant: Tenant, runtime: Runtime) -> None:
    options = {
        "viewport": {"width": 390, "height": 844},
        "userAgent": "QA-Bot/2.0 (+https://example.com/bot)",
        "locale": "de-DE",
        "timezone": "Asia/Tokyo",
    }
    with fake_host():
        answer = start(tenant, runtime, options).json()
    run = tenant.client.get(f"/v1/runs/{answer['runId']}").json()
    assert run["browser"] == options
    plain = tenant.client.post("/v1/runs", {}, content_type="application/json").json()
    assert plain["browser"] == {}


def test_another_spaces_runtime_is_404(
    tenant: Tenant, other_tenant: Tenant, runtime: Runtime
) -> None:
    with fake_host():
        assert start(tenant, runtime).status_code == 200
    for method, path in [
        ("post", "start"),
        ("post", "stop"),
        ("get", ""),
        ("get", "current-run"),
    ]:
        url = f"/v1/runtimes/{runtime.id}/{path}".rstrip("/")
        response = getattr(other_tenant.client, method)(url, format="json")
        assert response.status_code == 404, (path, response.content)
        assert response.json()["error"]["code"] == "not_found"
    run_id = Runtime.objects.get(pk=runtime.pk).runs.get().id
    response = other_tenant.client.post(f"/v1/runs/{run_id}/screenshot")
    assert response.status_code == 404
    assert Runtime.objects.get(pk=runtime.pk).status == "running"


def test_stop_ends_the_run_and_is_harmless_twice(tenant: Tenant, runtime: Runtime) -> None:
    with fake_host():
        started = start(tenant, runtime).json()
        detail = tenant.client.get(f"/v1/runtimes/{runtime.id}").json()
        assert detail["status"] == "running" and detail["activeRunId"] == started["runId"]
        assert detail["failureReason"] is None
        current = tenant.client.get(f"/v1/runtimes/{runtime.id}/current-run")
        assert current.status_code == 200 and current.json()["id"] == started["runId"]

        stopped = tenant.client.post(f"/v1/runtimes/{runtime.id}/stop")
        assert stopped.status_code == 200
        assert stopped.json()["status"] in ("stopping", "stopped")

        def finished() -> bool:
            return Runtime.objects.get(pk=runtime.pk).status == "stopped"

        from tests.test_cdp_proxy import eventually

        eventually(finished)
    again = tenant.client.post(f"/v1/runtimes/{runtime.id}/stop")
    assert again.status_code == 200 and again.json()["status"] == "stopped"
    assert again.json()["activeRunId"] is None
    assert Run.objects.get(pk=started["runId"]).status == "completed"
    current = tenant.client.get(f"/v1/runtimes/{runtime.id}/current-run")
    assert current.status_code == 404
    assert current.json()["error"]["code"] == "runtime.no_active_run"
    token = started["connectUrl"].rsplit("/", 1)[1]
    assert not ViewerLease.objects.filter(revoked_at=None, kind="cdp").exists(), token


def test_stopping_an_idle_runtime_is_harmless(tenant: Tenant, runtime: Runtime) -> None:
    response = tenant.client.post(f"/v1/runtimes/{runtime.id}/stop")
    assert response.status_code == 200 and response.json()["status"] == "idle"


def test_the_runtime_detail_shows_status_active_run_and_failure(
    tenant: Tenant, runtime: Runtime
) -> None:
    body = tenant.client.get(f"/v1/runtimes/{runtime.id}").json()
    assert body["status"] == "idle" and body["activeRunId"] is None
    assert body["failureReason"] is None and body["clientCount"] == 0


# The screenshot, from a real Chromium ------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with launch_chromium() as launched:
        yield launched


def open_page(browser: Browser, html: str) -> str:
    """A new tab showing `html`, opened over CDP as a client would; its target id."""
    from websockets.sync.client import connect

    with connect(browser.endpoint, max_size=None) as client:
        client.send(
            json.dumps(
                {
                    "id": 1,
                    "method": "Target.createTarget",
                    "params": {
                        "url": "data:text/html;base64," + base64.b64encode(html.encode()).decode()
                    },
                }
            )
        )
        while True:
            answer = json.loads(client.recv(timeout=10))
            if answer.get("id") == 1:
                target_id: str = answer["result"]["targetId"]
                return target_id


@pytest.mark.browser
def test_a_screenshot_of_the_runs_page_is_stored_as_an_artifact(
    tenant: Tenant, runtime: Runtime, browser: Browser
) -> None:
    with fake_host(endpoint=browser.endpoint):
        run_id = start(tenant, runtime).json()["runId"]
    target_id = open_page(browser, "<body style='background:#c00'><h1>Checkout</h1></body>")
    # The proxy records which page a client used last; the screenshot prefers it.
    services.commands_record(
        run=Run.objects.get(pk=run_id),
        commands=[{"method": "Page.navigate", "params": {"url": "x"}, "page_id": target_id}],
    )

    response = tenant.client.post(f"/v1/runs/{run_id}/screenshot")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["kind"] == "screenshot" and body["contentType"] == "image/png"
    artifact = Artifact.objects.get(pk=body["id"])
    assert artifact.metadata["pageId"] == target_id
    with artifact.file.open("rb") as stored:
        assert stored.read(8) == b"\x89PNG\r\n\x1a\n"
    assert Run.objects.get(pk=run_id).thumbnail_id == artifact.id
    command = Command.objects.get(run_id=run_id, source="platform")
    assert command.method == "Page.captureScreenshot" and command.page_id == target_id


def test_a_screenshot_needs_a_running_runtime(tenant: Tenant, runtime: Runtime) -> None:
    with fake_host():
        run_id = start(tenant, runtime).json()["runId"]
        tenant.client.post(f"/v1/runtimes/{runtime.id}/stop")
        from tests.test_cdp_proxy import eventually

        eventually(lambda: Runtime.objects.get(pk=runtime.pk).status == "stopped")
    response = tenant.client.post(f"/v1/runs/{run_id}/screenshot")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "runtime.not_running"


def test_a_screenshot_of_an_unreachable_browser_is_502(tenant: Tenant, runtime: Runtime) -> None:
    with fake_host():
        run_id = start(tenant, runtime).json()["runId"]
    response = tenant.client.post(f"/v1/runs/{run_id}/screenshot")
    assert response.status_code == 502
    assert response.json()["error"]["code"] == "runtime.screenshot_failed"
