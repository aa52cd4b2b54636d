"""The Python client's local recorder (`client.record(page)`) in real Chromium: a browser the
user launched, recorded into a run of its own, through a restart of the server's process."""

import socket
import time
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from bctrl import Bctrl

from recordings.models import RecordingBatch
from runs.models import Artifact, Event, Run
from tests.conftest import LiveServerProcess, Tenant, asgi_application

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def serve_on(port: int) -> LiveServerProcess:
    """A web process (daphne, bctrl's server class) on the test database at `port`."""
    process = LiveServerProcess("127.0.0.1", asgi_application, port=port)
    process.start()
    assert process.ready.wait(60), "the web process did not start"
    return process


def stop(process: LiveServerProcess) -> None:
    process.terminate()
    process.join(15)


def until(check: Callable[[], Any], what: str, timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := check()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)
    return value


@pytest.fixture
def page(chromium: Any) -> Iterator[Any]:
    context = chromium.new_context()
    yield context.new_page()
    context.close()


def test_the_recorder_script_is_the_servers(asgi_server: str, tenant: Tenant) -> None:
    script = Bctrl(api_key=tenant.raw_key, base_url=asgi_server).recorder_script()
    assert "rrwebRecord" in script and "__bctrlRecord" in script and "maskAllInputs" in script


@pytest.mark.timeout(240)
def test_a_local_recording_survives_a_server_restart(
    asgi_server: str, tenant: Tenant, page: Any
) -> None:
    """The pages come from the session's server; the client talks to another web process,
    which is stopped mid-run and started again on the same port."""
    port = free_port()
    server = serve_on(port)
    client = Bctrl(api_key=tenant.raw_key, base_url=f"http://127.0.0.1:{port}")
    shop = asgi_server + "/demo"
    page.goto(shop + "/")  # open before the recording starts: injected into it at once
    recording = client.record(page, name="laptop")
    try:
        with recording as run:
            page.click("#shop-now")
            page.wait_for_url("**/demo/products")
            until(lambda: recording.stats.sent_batches >= 2, "the first batches to be sent")

            stop(server)
            page.locator("#product-filter").press_sequentially("pack", delay=20)
            page.click("[data-product=summit-pack]")
            page.wait_for_url("**/demo/products/summit-pack")
            page.evaluate("console.error('typed while the server was away')")
            until(lambda: recording.stats.retries >= 1, "a send to fail")
            assert recording._buffered > 0  # waiting in the local buffer

            server = serve_on(port)
            page.goto(shop + "/status")
            page.wait_for_selector("body[data-status=done]")
    finally:
        stop(server)

    assert recording.stats.dropped_events == 0 and recording.stats.rejected_events == 0
    stored = Run.objects.get(pk=run.id)
    assert stored.status == Run.Status.COMPLETED and stored.name == "laptop"
    batches = RecordingBatch.objects.filter(recording__run=stored)
    assert set(batches.values_list("target", flat=True)) == set(recording.stats.targets)
    for target, last in recording.stats.targets.items():
        seqs = sorted(batches.filter(target=target).values_list("seq", flat=True))
        assert seqs == list(range(1, last + 1)), "a batch is missing"
    assert sum(batches.values_list("event_count", flat=True)) == recording.stats.rrweb_events
    assert recording.stats.rrweb_events > 0

    urls = [e.data["url"] for e in Event.objects.filter(run=stored, type="navigation")]
    assert shop + "/products/summit-pack" in urls and shop + "/status" in urls
    assert Event.objects.filter(
        run=stored, type="console.message", data__text="typed while the server was away"
    ).exists()
    (target,) = recording.stats.targets
    assert Event.objects.filter(run=stored, type="target.created", page_id=target).exists()
    assert Artifact.objects.filter(run=stored, kind=Artifact.Kind.SCREENSHOT).exists()


@pytest.mark.timeout(120)
def test_a_full_buffer_drops_new_events_says_so_and_counts_them(
    tenant: Tenant, asgi_server: str, page: Any
) -> None:
    client = Bctrl(api_key=tenant.raw_key, base_url=asgi_server)
    recording = client.record(  # a context this time: its pages are recorded
        page.context, name="tiny buffer", max_buffered_events=1, screenshot=False
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with recording:
            page.goto(asgi_server + "/demo/products")
            page.locator("#product-filter").press_sequentially("trail", delay=20)
    assert recording.dropped_events > 0
    said = [str(w.message) for w in caught]
    assert any("buffer is full" in text for text in said)
    assert any(f"{recording.dropped_events} recorded events" in text for text in said)
