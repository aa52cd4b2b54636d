"""The CDP proxy behind connectUrl: Playwright through the live server (`asgi_server`,
bctrl's daphne) to a real Chromium; refusals over the network, where they answer the
handshake with an HTTP status and error body, and through Channels'
WebsocketCommunicator, where they are close codes."""

import base64
import contextlib
import http.client
import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
import websockets
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from websockets.sync.client import connect as ws_connect

from runs.cdp import REDACTED, CommandRecorder, redact_params
from runs.models import ApiKey, Command, Run, Runtime
from runtimes import services as runtime_services
from runtimes.cdp_proxy import connect_options
from tests.conftest import CHROMIUM, CHROMIUM_ARGS, Refusal, Tenant, refused
from viewers.leases import lease_mint, lease_revoke
from viewers.models import ViewerLease

pytestmark = [pytest.mark.django_db(transaction=True)]

T = TypeVar("T")
MiB = 1024 * 1024


# A real Chromium, as the runtime host launches it ---------------------------------------


@dataclass
class Browser:
    endpoint: str  # ws://127.0.0.1:<port>/devtools/browser/<id>
    http: str  # http://127.0.0.1:<port>

    def targets(self) -> list[dict[str, Any]]:
        with urllib.request.urlopen(self.http + "/json/list", timeout=5) as response:  # noqa: S310
            targets: list[dict[str, Any]] = json.load(response)
        return targets


@contextlib.contextmanager
def launch_chromium() -> Iterator[Browser]:
    """Chromium with --remote-debugging-port=0 and a temporary profile, as a host runs it."""
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"Chromium is not installed at {CHROMIUM}")
    profile = tempfile.mkdtemp(prefix="bctrl-cdp-test-")
    process = subprocess.Popen(
        [
            CHROMIUM,
            *CHROMIUM_ARGS,
            "--remote-debugging-port=0",
            f"--user-data-dir={profile}",
            "--enable-features=CDPScreenshotNewSurface",
            "about:blank",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        port_file = Path(profile) / "DevToolsActivePort"
        deadline = time.monotonic() + 20
        while not (port_file.exists() and len(port_file.read_text().splitlines()) >= 2):
            if time.monotonic() > deadline or process.poll() is not None:
                pytest.fail("Chromium did not open its DevTools port")
            time.sleep(0.05)
        port, path = port_file.read_text().splitlines()[:2]
        yield Browser(endpoint=f"ws://127.0.0.1:{port}{path}", http=f"http://127.0.0.1:{port}")
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with launch_chromium() as launched:
        yield launched


@pytest.fixture(scope="module")
def playwright() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as running:
        yield running


@dataclass
class Started:
    runtime: Runtime
    run: Run
    token: str


def start_runtime(tenant: Tenant, browser: Browser, name: str = "chrome") -> Started:
    """A runtime that a (fake) host has launched: running, with the real browser's endpoint."""
    runtime = runtime_services.runtime_create(space=tenant.space, name=name)
    runtime_services.host_heartbeat(host_id="test-host", capacity=8, browsers=0)
    started = runtime_services.runtime_start(runtime=runtime)
    claimed = runtime_services.runtime_claim(host_id="test-host")
    assert claimed is not None and claimed.pk == runtime.pk
    runtime_services.runtime_running(runtime=claimed, cdp_endpoint=browser.endpoint)
    runtime.refresh_from_db()
    return Started(runtime=runtime, run=started.run, token=started.token)


def ws_base(server: str) -> str:
    return server.replace("http://", "ws://", 1)


def eventually(check: Callable[[], T], timeout: float = 8.0) -> T:
    """`check()` once it returns something truthy; fails after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout} s (last: {value!r})")
        time.sleep(0.05)


def commands(run: Run) -> list[Command]:
    return list(Command.objects.filter(run=run).order_by("started_at", "id"))


def client_count(runtime: Runtime) -> int:
    return Runtime.objects.get(pk=runtime.pk).client_count


# Refusals through the router, without a server ------------------------------------------


async def communicate(path: str, headers: list[tuple[bytes, bytes]] | None = None) -> Any:
    from bctrl_site.asgi import application

    communicator = WebsocketCommunicator(application, path, headers=headers or [])
    connected, code = await communicator.connect(timeout=10)
    return communicator, connected, code


async def refusal_code(path: str, headers: list[tuple[bytes, bytes]] | None = None) -> Any:
    communicator, connected, code = await communicate(path, headers)
    await communicator.disconnect()
    assert not connected
    return code


@pytest.fixture
def started(tenant: Tenant, browser: Browser) -> Started:
    return start_runtime(tenant, browser)


async def test_a_tampered_or_unknown_token_is_refused(started: Started) -> None:
    assert await refusal_code(f"/cdp/{started.token[:-1]}x") == 4403
    assert await refusal_code("/cdp/bm90aGluZw:c2lnbmF0dXJl") == 4403


async def test_a_revoked_token_is_refused(started: Started) -> None:
    await sync_to_async(runtime_services.runtime_finished)(runtime=started.runtime, state="stopped")
    assert await refusal_code(f"/cdp/{started.token}") == 4403


async def test_an_expired_token_is_refused(started: Started) -> None:
    from datetime import timedelta

    from django.utils import timezone

    await ViewerLease.objects.filter(run=started.run).aupdate(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    assert await refusal_code(f"/cdp/{started.token}") == 4410


async def test_a_token_of_an_earlier_run_is_refused(started: Started, browser: Browser) -> None:
    def restart() -> str:
        old_run = started.run
        runtime_services.runtime_finished(runtime=started.runtime, state="stopped")
        stale = lease_mint(run=old_run, kind=ViewerLease.Kind.CDP).token  # not revoked
        runtime_services.host_heartbeat(host_id="test-host", capacity=8, browsers=0)
        runtime_services.runtime_start(runtime=started.runtime)
        claimed = runtime_services.runtime_claim(host_id="test-host")
        assert claimed is not None
        runtime_services.runtime_running(runtime=claimed, cdp_endpoint=browser.endpoint)
        return stale

    stale = await sync_to_async(restart)()
    assert await refusal_code(f"/cdp/{stale}") == 4409


async def test_a_runtime_that_is_not_running_is_refused(started: Started) -> None:
    await Runtime.objects.filter(pk=started.runtime.pk).aupdate(status="stopping")
    assert await refusal_code(f"/cdp/{started.token}") == 4409


@pytest.mark.parametrize(
    "query", ["recording=maybe", "keep_alive=-1", "keep_alive=1e3", "keep_alive=99999999999"]
)
async def test_bad_connect_options_are_refused(started: Started, query: str) -> None:
    assert await refusal_code(f"/cdp/{started.token}?{query}") == 4422
    runtime = await Runtime.objects.aget(pk=started.runtime.pk)
    assert runtime.client_count == 0 and runtime.keep_alive_ms is None


async def test_api_keys_are_checked_against_the_runtimes_space(
    started: Started, tenant: Tenant, other_tenant: Tenant
) -> None:
    path = f"/v1/runtimes/{started.runtime.id}/cdp"
    assert await refusal_code(path) == 4401
    assert await refusal_code(path, [(b"authorization", b"Bearer bctrl_sk_nope")]) == 4401
    other = f"Bearer {other_tenant.raw_key}".encode()
    assert await refusal_code(path, [(b"authorization", other)]) == 4404
    assert await refusal_code("/v1/runtimes/rt_missing/cdp", [(b"authorization", other)]) == 4404
    await ApiKey.objects.filter(pk=tenant.api_key.pk).aupdate(revoked_at="2020-01-01T00:00Z")
    owner = f"Bearer {tenant.raw_key}".encode()
    assert await refusal_code(path, [(b"authorization", owner)]) == 4401


async def test_a_server_with_denial_responses_gets_the_status_and_an_error_body(
    started: Started, other_tenant: Tenant
) -> None:
    from bctrl_site.asgi import application

    async def offering_denials(scope: Any, receive: Any, send: Any) -> Any:
        extensions: dict[str, Any] = {"websocket.http.response": {}}
        return await application({**scope, "extensions": extensions}, receive, send)

    other = f"Bearer {other_tenant.raw_key}".encode()
    communicator = WebsocketCommunicator(
        offering_denials,
        f"/v1/runtimes/{started.runtime.id}/cdp",
        headers=[(b"authorization", other)],
    )
    try:
        await communicator.send_input({"type": "websocket.connect"})
        start = await communicator.receive_output(timeout=10)
        body = await communicator.receive_output(timeout=10)
    finally:
        await communicator.disconnect()
    assert start == {
        "type": "websocket.http.response.start",
        "status": 404,
        "headers": [(b"content-type", b"application/json")],
    }
    assert body["type"] == "websocket.http.response.body" and not body.get("more_body")
    assert json.loads(body["body"]) == {
        "error": {"code": "not_found", "message": f"No runtime {started.runtime.id!r}."}
    }


async def test_a_client_without_origin_is_let_in_and_a_foreign_page_is_not(
    started: Started,
) -> None:
    communicator, connected, _ = await communicate(f"/cdp/{started.token}")
    try:
        assert connected
        await communicator.send_to(text_data=json.dumps({"id": 7, "method": "Browser.getVersion"}))
        answer = json.loads(await communicator.receive_from(timeout=10))
        assert answer["id"] == 7 and "product" in answer["result"]
    finally:
        await communicator.disconnect()
    foreign = [(b"origin", b"https://evil.example")]
    communicator, connected, _ = await communicate(f"/cdp/{started.token}", foreign)
    await communicator.disconnect()
    assert not connected


async def test_other_websockets_still_need_an_allowed_origin(started: Started) -> None:
    communicator, connected, _ = await communicate("/ws/anything")
    await communicator.disconnect()
    assert not connected


# Recording rules, without a browser -------------------------------------------------------


def test_secrets_are_redacted_from_recorded_params() -> None:
    assert redact_params("Input.insertText", {"text": "hunter2"}) == {
        "text": REDACTED,
        "length": 7,
    }
    key = redact_params(
        "Input.dispatchKeyEvent",
        {"type": "keyDown", "key": "a", "code": "KeyA", "text": "a", "windowsVirtualKeyCode": 65},
    )
    assert key == {"type": "keyDown", "key": REDACTED, "code": REDACTED, "text": REDACTED}
    enter = {"type": "keyDown", "key": "Enter", "code": "Enter", "text": "\r"}
    assert redact_params("Input.dispatchKeyEvent", enter) == enter
    shortcut = {"type": "keyDown", "key": "a", "modifiers": 2}
    assert redact_params("Input.dispatchKeyEvent", shortcut) == shortcut
    headers = redact_params("Network.setExtraHTTPHeaders", {"headers": {"Authorization": "x"}})
    assert headers == {"headers": {"Authorization": REDACTED}}
    fetch = redact_params(
        "Fetch.continueRequest",
        {"requestId": "1", "headers": [{"name": "Cookie", "value": "s=1"}], "postData": "cGF5"},
    )
    assert fetch["headers"] == [{"name": "Cookie", "value": REDACTED}]
    assert fetch["postData"] == REDACTED
    fill = redact_params(
        "Runtime.callFunctionOn",
        {"functionDeclaration": "f" * 5000, "arguments": [{"objectId": "1"}, {"value": "pw"}]},
    )
    assert fill["arguments"] == [{"objectId": "1"}, {"value": REDACTED}]
    assert len(fill["functionDeclaration"]) < 2100
    assert "truncated" in fill["functionDeclaration"]
    big = redact_params("DOM.setOuterHTML", {"nodeId": 1, "outerHTML": "x" * 100_000})
    assert len(json.dumps(big)) < 16 * 1024 and big["nodeId"] == 1 and "[truncated]" in big


def test_set_up_chatter_is_grouped_into_one_command_per_burst() -> None:
    recorder = CommandRecorder()
    recorder.from_browser(
        json.dumps(
            {
                "method": "Target.attachedToTarget",
                "params": {"sessionId": "S1", "targetInfo": {"targetId": "T1", "type": "page"}},
            },
            separators=(",", ":"),
        )
    )
    for command_id, method in enumerate(
        ["Page.enable", "Runtime.enable", "Emulation.setFocusEmulationEnabled"], start=1
    ):
        recorder.from_client(json.dumps({"id": command_id, "method": method, "sessionId": "S1"}))
        recorder.from_browser(json.dumps({"id": command_id, "result": {}, "sessionId": "S1"}))
    recorder.from_client(
        json.dumps({"id": 9, "method": "Page.navigate", "params": {"url": "x"}, "sessionId": "S1"})
    )
    recorder.from_browser('{"id":9,"error":{"code":-32000,"message":"Cannot navigate"}}')
    recorder.from_client(json.dumps({"id": 10, "method": "Page.reload", "sessionId": "S1"}))
    batch = recorder.take(final=True)
    assert [row["method"] for row in batch] == ["cdp.internal", "Page.navigate", "Page.reload"]
    burst, navigate, reload = batch
    assert burst["params"]["count"] == 3 and burst["source"] == "cdp.internal"
    assert burst["page_id"] == "T1"
    assert navigate["status"] == "failed" and navigate["error"]["message"] == "Cannot navigate"
    assert navigate["page_id"] == "T1"
    assert reload["status"] == "failed"  # never answered


def test_connect_options_parse_the_seed_query() -> None:
    assert connect_options(b"recording=true&keep_alive=600000").keep_alive_ms == 600000
    assert connect_options(b"recording=1").recording is True
    assert connect_options(b"").recording is None


# Playwright through daphne ---
# These come last: Playwright's sync API (one instance for the module, since starting it
# again in one process breaks later live-server tests) keeps an event loop running on the
# main thread, which the async tests above cannot share.
# -------------------------------------------------------

NOISE_PAGE = """
<canvas id=c width=1280 height=900></canvas><input id=secret>
<script>
  const c = document.getElementById('c').getContext('2d');
  const img = c.createImageData(1280, 900);
  for (let i = 0; i < img.data.length; i++) img.data[i] = Math.random() * 256 | 0;
  c.putImageData(img, 0, 0);
</script>
"""


@pytest.mark.browser
def test_playwright_drives_the_browser_through_the_connect_url_and_commands_are_recorded(
    asgi_server: str, tenant: Tenant, browser: Browser, playwright: Any
) -> None:
    started = start_runtime(tenant, browser)
    connect_url = f"{ws_base(asgi_server)}/cdp/{started.token}"

    client = playwright.chromium.connect_over_cdp(connect_url)
    try:
        assert eventually(lambda: client_count(started.runtime) == 1)
        context = client.new_context(viewport={"width": 1280, "height": 900})
        page = context.new_page()
        page.goto("data:text/html," + NOISE_PAGE.replace("\n", ""))
        assert page.evaluate("() => 6 * 7") == 42
        page.click("#secret")
        page.keyboard.insert_text("hunter2")
        assert page.evaluate("() => document.getElementById('secret').value") == "hunter2"
        # A PNG of random pixels: a browser→client message of several MiB.
        png = page.screenshot()
        assert png.startswith(b"\x89PNG") and len(png) > MiB
        session = context.new_cdp_session(page)
        with pytest.raises(Exception, match="invalid URL"):
            session.send("Page.navigate", {"url": "not a url"})
        context.close()
    finally:
        client.close()

    assert eventually(lambda: client_count(started.runtime) == 0)
    recorded = eventually(
        lambda: (
            [c for c in commands(started.run) if c.method == "Page.navigate"]
            and commands(started.run)
        )
    )
    by_method: dict[str, list[Command]] = {}
    for command in recorded:
        by_method.setdefault(command.method, []).append(command)

    navigations = by_method["Page.navigate"]
    assert navigations[0].status == "succeeded"
    assert navigations[0].params["url"].startswith("data:text/html,")
    assert navigations[0].page_id  # the page's target id, from its flat session
    assert navigations[0].duration_ms is not None
    failed = navigations[-1]
    assert failed.status == "failed" and failed.error is not None
    assert "invalid URL" in failed.error["message"]

    typed = by_method["Input.insertText"]
    assert [c.params["text"] for c in typed] == [REDACTED]
    assert not any("hunter2" in json.dumps(c.params) for c in recorded)
    assert by_method["Page.captureScreenshot"][0].status == "succeeded"
    assert by_method["Runtime.callFunctionOn"]  # evaluate, kept (values redacted)

    internal = by_method["cdp.internal"]
    assert all(c.source == "cdp.internal" for c in internal)
    assert sum(c.params["count"] for c in internal) > len(internal)  # grouped, not dropped
    assert "Runtime.runIfWaitingForDebugger" not in by_method
    assert Run.objects.get(pk=started.run.pk).command_count == len(recorded)


@pytest.mark.browser
def test_a_client_message_larger_than_1_mib_reaches_the_browser(
    asgi_server: str, tenant: Tenant, browser: Browser, playwright: Any
) -> None:
    started = start_runtime(tenant, browser)
    client = playwright.chromium.connect_over_cdp(f"{ws_base(asgi_server)}/cdp/{started.token}")
    try:
        page = client.new_context().new_page()
        assert page.evaluate("s => s.length", "x" * (3 * MiB)) == 3 * MiB
    finally:
        client.close()
    call = eventually(
        lambda: Command.objects.filter(
            run=started.run, method="Runtime.callFunctionOn", status="succeeded"
        ).first()
    )
    assert call is not None and len(json.dumps(call.params)) < 20 * 1024  # stored bounded
    # The proxy's last writes for the client are done (the database flush after the test
    # must not race them: a deadlock on PostgreSQL).
    assert eventually(lambda: client_count(started.runtime) == 0)


@pytest.mark.browser
def test_two_clients_use_the_browser_at_once(
    asgi_server: str, tenant: Tenant, browser: Browser, playwright: Any
) -> None:
    started = start_runtime(tenant, browser)
    connect_url = f"{ws_base(asgi_server)}/cdp/{started.token}"
    first = playwright.chromium.connect_over_cdp(connect_url)
    second = playwright.chromium.connect_over_cdp(connect_url)
    try:
        assert eventually(lambda: client_count(started.runtime) == 2)
        page_one = first.new_context().new_page()
        page_two = second.new_context().new_page()
        page_one.set_content("<title>one</title>")
        page_two.set_content("<title>two</title>")
        assert (page_one.title(), page_two.title()) == ("one", "two")
    finally:
        first.close()
        second.close()
    assert eventually(lambda: client_count(started.runtime) == 0)
    assert Runtime.objects.get(pk=started.runtime.pk).last_client_at is not None


@pytest.mark.browser
def test_an_api_key_of_the_owner_connects_with_a_bearer_header(
    asgi_server: str, tenant: Tenant, browser: Browser, playwright: Any
) -> None:
    started = start_runtime(tenant, browser)
    client = playwright.chromium.connect_over_cdp(
        f"{ws_base(asgi_server)}/v1/runtimes/{started.runtime.id}/cdp",
        headers={"Authorization": f"Bearer {tenant.raw_key}"},
    )
    try:
        page = client.new_context().new_page()
        assert page.evaluate("() => 1 + 1") == 2
    finally:
        client.close()
    assert eventually(
        lambda: Command.objects.filter(run=started.run, method="Runtime.callFunctionOn").exists()
    )
    assert eventually(lambda: client_count(started.runtime) == 0)  # its last writes done


def raw_handshake(url: str, headers: dict[str, str]) -> tuple[int, Any, bytes]:
    """A websocket opening handshake sent by hand: the status, headers and body answered."""
    parsed = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parsed.netloc, timeout=10)
    try:
        connection.request(
            "GET",
            parsed.path,
            headers={
                "Upgrade": "websocket",
                "Connection": "Upgrade",
                "Sec-WebSocket-Key": base64.b64encode(os.urandom(16)).decode(),
                "Sec-WebSocket-Version": "13",
                **headers,
            },
        )
        response = connection.getresponse()
        return response.status, response.headers, response.read()
    finally:
        connection.close()


@pytest.mark.browser
def test_a_second_spaces_key_cannot_connect_404(
    asgi_server: str, tenant: Tenant, other_tenant: Tenant, browser: Browser, playwright: Any
) -> None:
    started = start_runtime(tenant, browser)
    url = f"{ws_base(asgi_server)}/v1/runtimes/{started.runtime.id}/cdp"
    other = {"Authorization": f"Bearer {other_tenant.raw_key}"}
    before = {target["id"] for target in browser.targets()}

    status, headers, body = raw_handshake(url, other)
    assert status == 404
    assert headers["Content-Type"] == "application/json"
    assert json.loads(body) == {
        "error": {"code": "not_found", "message": f"No runtime {started.runtime.id!r}."}
    }
    # The same answer as for a runtime that does not exist at all.
    assert raw_handshake(f"{ws_base(asgi_server)}/v1/runtimes/rt_missing/cdp", other)[0] == 404

    with pytest.raises(Exception, match="404"):  # Playwright's own error type
        playwright.chromium.connect_over_cdp(url, headers=other, timeout=10_000)

    assert {target["id"] for target in browser.targets()} == before
    assert client_count(started.runtime) == 0
    assert not Command.objects.filter(run=started.run).exists()


@pytest.mark.browser
def test_bad_credentials_are_refused_before_anything_reaches_the_browser(
    asgi_server: str, tenant: Tenant, other_tenant: Tenant, browser: Browser, playwright: Any
) -> None:
    started = start_runtime(tenant, browser)
    base = ws_base(asgi_server)
    before = {target["id"] for target in browser.targets()}

    tampered = started.token[:-2] + ("AA" if not started.token.endswith("AA") else "BB")
    assert refused(f"{base}/cdp/{tampered}") == Refusal(
        403, {"code": "forbidden", "message": "The connect URL is not valid."}
    )
    assert refused(f"{base}/cdp/not-a-token").status == 403
    url = f"{base}/v1/runtimes/{started.runtime.id}/cdp"
    assert refused(url, {"Authorization": f"Bearer {other_tenant.raw_key}"}).status == 404
    assert refused(url).error["code"] == "unauthenticated"
    assert refused(url, {"Authorization": "Bearer bctrl_sk_nope"}).status == 401
    with pytest.raises(Exception, match="403"):  # Playwright's own error type
        playwright.chromium.connect_over_cdp(f"{base}/cdp/{tampered}", timeout=10_000)

    Runtime.objects.filter(pk=started.runtime.pk).update(status="stopping")
    assert refused(f"{base}/cdp/{started.token}").error["code"] == "runtime.not_running"
    Runtime.objects.filter(pk=started.runtime.pk).update(status="running")

    lease = ViewerLease.objects.get(run=started.run, kind=ViewerLease.Kind.CDP)
    lease_revoke(lease=lease)
    assert refused(f"{base}/cdp/{started.token}") == Refusal(
        403,
        {"code": "forbidden", "message": "The connect URL was revoked: its run has ended."},
    )

    assert {target["id"] for target in browser.targets()} == before
    assert client_count(started.runtime) == 0
    assert not Command.objects.filter(run=started.run).exists()


@pytest.mark.browser
def test_connect_options_set_recording_and_keep_alive(
    asgi_server: str, tenant: Tenant, browser: Browser
) -> None:
    started = start_runtime(tenant, browser)
    assert started.runtime.recording_enabled is True
    url = f"{ws_base(asgi_server)}/cdp/{started.token}?recording=false&keep_alive=5000"
    with ws_connect(url, open_timeout=10, max_size=None) as client:
        client.send(json.dumps({"id": 1, "method": "Browser.getVersion"}))
        assert json.loads(client.recv(timeout=10))["id"] == 1
        runtime = Runtime.objects.get(pk=started.runtime.pk)
        assert (runtime.recording_enabled, runtime.keep_alive_ms) == (False, 5000)
        assert runtime.client_count == 1
    assert eventually(lambda: client_count(started.runtime) == 0)
    bad_option = refused(f"{ws_base(asgi_server)}/cdp/{started.token}?keep_alive=soon")
    assert (bad_option.status, bad_option.error["code"]) == (422, "invalid_parameter")


@pytest.mark.browser
def test_revoking_the_lease_closes_an_open_client_within_seconds(
    asgi_server: str, tenant: Tenant, browser: Browser
) -> None:
    started = start_runtime(tenant, browser)
    with ws_connect(f"{ws_base(asgi_server)}/cdp/{started.token}", open_timeout=10) as client:
        assert eventually(lambda: client_count(started.runtime) == 1)
        lease_revoke(lease=ViewerLease.objects.get(run=started.run, kind=ViewerLease.Kind.CDP))
        revoked_at = time.monotonic()
        with pytest.raises(websockets.exceptions.ConnectionClosed) as closed:
            while True:
                client.recv(timeout=10)
        assert time.monotonic() - revoked_at < 6
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4403
    assert eventually(lambda: client_count(started.runtime) == 0)


@pytest.mark.browser
def test_the_end_of_the_run_closes_clients_and_stops_recording(
    asgi_server: str, tenant: Tenant, browser: Browser
) -> None:
    started = start_runtime(tenant, browser)
    with ws_connect(f"{ws_base(asgi_server)}/cdp/{started.token}", open_timeout=10) as client:
        client.send(json.dumps({"id": 1, "method": "Target.getTargets"}))
        assert json.loads(client.recv(timeout=10))["id"] == 1
        runtime_services.runtime_finished(runtime=started.runtime, state="stopped")
        with pytest.raises(websockets.exceptions.ConnectionClosed):
            while True:
                client.recv(timeout=10)
    runtime = Runtime.objects.get(pk=started.runtime.pk)
    assert runtime.status == "stopped" and runtime.client_count == 0


def test_a_foreign_pages_handshake_is_refused_with_403_and_the_json_error(
    asgi_server: str,
) -> None:
    for path in ["/cdp/any-token", "/v1/runtimes/rt_x/cdp", "/ws/host/runtimes/rt_x"]:
        refusal = refused(ws_base(asgi_server) + path, {"Origin": "https://evil.example"})
        assert refusal.status == 403
        assert refusal.error["code"] == "forbidden"
        assert "web pages of other sites" in refusal.error["message"]
