"""The run as a Playwright trace: `GET /v1/runs/{id}/trace.zip`, opened in Playwright's
own trace viewer (`playwright show-trace`, served locally) in real Chromium."""

import io
import json
import os
import re
import signal
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest

from runs import services
from runs.models import Run

from .conftest import Tenant
from .test_har import network_run  # noqa: F401 (a fixture)

pytestmark = pytest.mark.django_db(transaction=True)

PLAYWRIGHT = str(Path(sys.executable).with_name("playwright"))


def trace_of(tenant: Tenant, run: Run) -> bytes:
    response = tenant.client.get(f"/v1/runs/{run.id}/trace.zip")
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == "application/zip"
    assert f"{run.id}-trace.zip" in response["Content-Disposition"]
    return b"".join(response.streaming_content)  # type: ignore[attr-defined]


def test_the_trace_holds_the_steps_console_and_network(
    tenant: Tenant,
    other_tenant: Tenant,
    network_run: Run,  # noqa: F811
) -> None:
    services.events_append(
        run=network_run,
        events=[{"type": "console.message", "page_id": "page_A",
                 "data": {"level": "error", "text": "delivery estimates failed"}}],
    )  # fmt: skip
    archive = zipfile.ZipFile(io.BytesIO(trace_of(tenant, network_run)))
    assert sorted(archive.namelist()) == ["trace.network", "trace.trace"]
    lines = [json.loads(line) for line in archive.read("trace.trace").splitlines()]
    assert lines[0]["type"] == "context-options" and lines[0]["title"] == "checkout"
    befores = [line for line in lines if line["type"] == "before"]
    assert "Navigated to https://shop.test/" in [b["title"] for b in befores]
    failed = next(b for b in befores if b["title"].startswith("Request failed: POST"))
    after = next(a for a in lines if a["type"] == "after" and a["callId"] == failed["callId"])
    assert after["error"]["message"] == failed["title"]
    console = [line for line in lines if line["type"] == "console"]
    assert [(c["messageType"], c["text"]) for c in console] == [
        ("error", "delivery estimates failed")
    ]
    network = [json.loads(line) for line in archive.read("trace.network").splitlines()]
    assert len(network) == 7 and {n["type"] for n in network} == {"resource-snapshot"}
    assert other_tenant.client.get(f"/v1/runs/{network_run.id}/trace.zip").status_code == 404


@pytest.mark.browser
def test_the_trace_opens_in_playwrights_trace_viewer_with_the_steps_in_order(
    tenant: Tenant,
    chromium: Any,
    tmp_path: Path,
    network_run: Run,  # noqa: F811
) -> None:
    saved = tmp_path / "trace.zip"
    saved.write_bytes(trace_of(tenant, network_run))
    viewer = subprocess.Popen(  # the trace viewer of the playwright package the project pins
        [PLAYWRIGHT, "show-trace", "--host", "127.0.0.1", "--port", "0", saved.name],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "BROWSER": "/bin/true"},
        start_new_session=True,  # its own process group: the wrapper and its node child
    )
    try:
        assert viewer.stdout is not None
        url = ""
        for raw in viewer.stdout:
            if found := re.search(r"Listening on (http://\S+)", raw.decode()):
                url = found.group(1)
                break
        assert url, "the trace viewer did not start"
        page = chromium.new_page()
        page.goto(url)
        titles = page.locator(".action-title")
        titles.nth(4).wait_for(timeout=20_000)
        shown = [text.split("\n")[0] for text in titles.all_inner_texts()]
        assert shown[:5] == [
            "Run checkout started",
            "Navigated to https://shop.test/",
            "Request failed: POST https://shop.test/api/cart — net::ERR_CONNECTION_RESET",
            "Blocked https://tracker.test/pixel: not on the allow list",
            "GET https://help.test/ returned HTTP 404",
        ]
        # The network tab lists the run's requests.
        page.get_by_text("Network", exact=True).click()
        page.locator("text=tracker.test").first.wait_for(timeout=10_000)
        page.screenshot(path="/tmp/trace-viewer.png")
        page.close()
    finally:
        os.killpg(viewer.pid, signal.SIGTERM)
        viewer.wait(10)


def test_a_files_export_can_hold_the_trace(
    tenant: Tenant,
    network_run: Run,  # noqa: F811
) -> None:
    response = tenant.client.post(
        f"/v1/runs/{network_run.id}/files/export", {"type": ["trace"]}, format="json"
    )
    body = tenant.client.get(response.json()["statusUrl"]).json()
    assert body["status"] == "ready", body
    download = tenant.client.get(body["downloadUrl"])
    archive = zipfile.ZipFile(io.BytesIO(b"".join(download.streaming_content)))  # type: ignore[attr-defined]
    name = f"trace/{network_run.id}-trace.zip"
    assert sorted(archive.namelist()) == ["manifest.json", name]
    inner = zipfile.ZipFile(io.BytesIO(archive.read(name)))
    assert sorted(inner.namelist()) == ["trace.network", "trace.trace"]
