"""The run's network log as HAR 1.2: `GET /v1/runs/{id}/har` and the files export `har`."""

import io
import json
import subprocess
import threading
import urllib.request
import zipfile
from collections.abc import Iterator
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings

from runs import services
from runs.models import Event, Run

from .conftest import CHROMIUM, CHROMIUM_ARGS, Tenant
from .processes import free_port
from .test_cdp_proxy import eventually
from .test_lease_api import mint_recording

pytestmark = pytest.mark.django_db(transaction=True)

SHOP = "https://shop.test"
TIMING = {
    "requestTime": 100.0,
    "dnsStart": 1.0,
    "dnsEnd": 5.0,
    "connectStart": 5.0,
    "connectEnd": 30.0,
    "sslStart": 10.0,
    "sslEnd": 30.0,
    "sendStart": 31.0,
    "sendEnd": 32.0,
    "receiveHeadersEnd": 80.0,
}
VALIDATE = """
const fs = require("fs");
require("har-validator").har(JSON.parse(fs.readFileSync(0, "utf8"))).then(
  () => process.stdout.write("valid"),
  (error) => {
    process.stdout.write(JSON.stringify(error.errors || String(error)));
    process.exit(1);
  },
);
"""


def har_validator(har: bytes) -> str:
    """What npm's har-validator says of a HAR: "valid" or its errors."""
    done = subprocess.run(
        ["node", "-e", VALIDATE],
        input=har,
        capture_output=True,
        cwd=Path(settings.BASE_DIR),
        timeout=60,
        check=False,
    )
    return done.stdout.decode() or done.stderr.decode()


@pytest.fixture
def network_run(tenant: Tenant) -> Run:
    run = services.run_create(space=tenant.space, name="checkout")
    t0 = run.started_at + timedelta(seconds=1)

    def at(seconds: float) -> datetime:
        return t0 + timedelta(seconds=seconds)

    def add(seconds: float, type: str, data: dict[str, Any], page: str = "page_A") -> None:
        services.events_append(
            run=run, events=[{"type": type, "data": data, "page_id": page, "time": at(seconds)}]
        )

    add(0, "navigation", {"url": f"{SHOP}/", "frameId": "page_A"})
    add(0, "network.request", {"requestId": "1", "method": "GET", "url": f"{SHOP}/?q=shoes&page=2",
        "resourceType": "Document", "headers": {"Accept": "text/html"}})  # fmt: skip
    add(0.3, "network.request", {"requestId": "2", "method": "POST", "url": f"{SHOP}/api/cart",
        "resourceType": "Fetch", "headers": {"Content-Type": "application/json"}})  # fmt: skip
    add(0.2, "network.response", {"requestId": "1", "url": f"{SHOP}/?q=shoes&page=2", "status": 200,
        "mimeType": "text/html", "encodedDataLength": 5120, "durationMs": 120, "timing": TIMING,
        "headers": {"Content-Type": "text/html", "Set-Cookie": "session=abc123"},
        "requestHeaders": {"Accept": "text/html", "Cookie": "session=abc123",
                           "Authorization": "Bearer secret-token"}})  # fmt: skip
    add(0.5, "network.failed", {"requestId": "2", "url": f"{SHOP}/api/cart", "method": "POST",
        "errorText": "net::ERR_CONNECTION_RESET", "durationMs": 200})  # fmt: skip
    # A redirect: the first response ends request 3, whose id then goes on to the target.
    add(0.6, "network.request", {"requestId": "3", "method": "GET", "url": f"{SHOP}/old",
        "resourceType": "Document"})  # fmt: skip
    add(0.7, "network.response", {"requestId": "3", "url": f"{SHOP}/old", "status": 301,
        "mimeType": "", "encodedDataLength": 0, "durationMs": 100,
        "headers": {"Location": f"{SHOP}/new"}})  # fmt: skip
    add(0.7, "network.request", {"requestId": "3", "method": "GET", "url": f"{SHOP}/new",
        "resourceType": "Document"})  # fmt: skip
    add(0.9, "network.response", {"requestId": "3", "url": f"{SHOP}/new", "status": 200,
        "mimeType": "text/html", "encodedDataLength": 900, "durationMs": 200})  # fmt: skip
    add(1.0, "network.blocked", {"requestId": "4", "url": "https://tracker.test/pixel",
        "reason": "not on the allow list", "method": "GET"})  # fmt: skip
    add(1.1, "network.request", {"requestId": "1", "method": "GET", "url": "https://help.test/",
        "resourceType": "Document"}, page="page_B")  # fmt: skip
    add(1.3, "network.response", {"requestId": "1", "url": "https://help.test/", "status": 404,
        "mimeType": "text/html", "encodedDataLength": 300, "durationMs": 150},
        page="page_B")  # fmt: skip
    add(1.4, "network.request", {"requestId": "9", "method": "GET", "url": f"{SHOP}/slow",
        "resourceType": "XHR"})  # fmt: skip
    add(1.5, "console", {"level": "log", "text": "not a request"})
    return run


def get_har(tenant: Tenant, url: str) -> tuple[Any, bytes]:
    response = tenant.client.get(url)
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == "application/json"
    body = b"".join(response.streaming_content)  # type: ignore[attr-defined]
    return response, body


def test_the_har_of_a_run_validates_and_holds_its_requests(
    tenant: Tenant, network_run: Run
) -> None:
    response, body = get_har(tenant, f"/v1/runs/{network_run.id}/har")
    assert "attachment" in response["Content-Disposition"]
    assert f"{network_run.id}.har" in response["Content-Disposition"]
    assert har_validator(body) == "valid"
    log = json.loads(body)["log"]
    assert log["version"] == "1.2"
    assert [(p["id"], p["title"]) for p in log["pages"]] == [
        ("page_A", f"{SHOP}/"),
        ("page_B", "page_B"),
    ]
    by_url = {(e["request"]["method"], e["request"]["url"]): e for e in log["entries"]}
    assert len(log["entries"]) == 7

    page = by_url[("GET", f"{SHOP}/?q=shoes&page=2")]
    assert page["pageref"] == "page_A"
    assert page["response"]["status"] == 200
    assert page["response"]["content"] == {"size": 5120, "mimeType": "text/html"}
    assert page["request"]["queryString"] == [
        {"name": "q", "value": "shoes"},
        {"name": "page", "value": "2"},
    ]
    sent = {h["name"]: h["value"] for h in page["request"]["headers"]}
    assert sent["Cookie"] == "[redacted]"
    assert sent["Authorization"] == "[redacted]"
    received = {h["name"]: h["value"] for h in page["response"]["headers"]}
    assert received["Set-Cookie"] == "[redacted]"
    assert "abc123" not in body.decode() and "secret-token" not in body.decode()
    assert page["timings"] == {
        "blocked": 2.0,
        "dns": 4.0,
        "connect": 25.0,
        "ssl": 20.0,
        "send": 1.0,
        "wait": 48.0,
        "receive": 40.0,
    }
    assert page["time"] == 120.0
    assert page["startedDateTime"].startswith(
        (network_run.started_at + timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%S")
    )

    failed = by_url[("POST", f"{SHOP}/api/cart")]
    assert failed["response"]["status"] == 0
    assert failed["_error"] == "net::ERR_CONNECTION_RESET"
    assert failed["time"] == 200.0

    moved = by_url[("GET", f"{SHOP}/old")]
    assert moved["response"]["status"] == 301
    assert moved["response"]["redirectURL"] == f"{SHOP}/new"
    assert by_url[("GET", f"{SHOP}/new")]["response"]["status"] == 200

    blocked = by_url[("GET", "https://tracker.test/pixel")]
    assert blocked["_error"] == "Blocked: not on the allow list"
    assert by_url[("GET", "https://help.test/")]["pageref"] == "page_B"
    unfinished = by_url[("GET", f"{SHOP}/slow")]
    assert unfinished["response"]["status"] == 0
    assert "ended before" in unfinished["_error"]


def test_the_har_of_one_page(tenant: Tenant, network_run: Run) -> None:
    response, body = get_har(tenant, f"/v1/runs/{network_run.id}/har?pageId=page_B")
    assert f"{network_run.id}-page_B.har" in response["Content-Disposition"]
    assert har_validator(body) == "valid"
    log = json.loads(body)["log"]
    assert [p["id"] for p in log["pages"]] == ["page_B"]
    assert [e["request"]["url"] for e in log["entries"]] == ["https://help.test/"]
    assert log["entries"][0]["response"]["status"] == 404


def test_a_run_without_requests_has_an_empty_valid_har(tenant: Tenant) -> None:
    run = services.run_create(space=tenant.space)
    _, body = get_har(tenant, f"/v1/runs/{run.id}/har")
    assert har_validator(body) == "valid"
    assert json.loads(body)["log"]["entries"] == []


def test_an_unknown_page_or_another_spaces_run_is_404(
    tenant: Tenant, other_tenant: Tenant, network_run: Run
) -> None:
    response = tenant.client.get(f"/v1/runs/{network_run.id}/har?pageId=page_Z")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    response = other_tenant.client.get(f"/v1/runs/{network_run.id}/har")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    response = other_tenant.client.post(
        f"/v1/runs/{network_run.id}/files/export", {"type": ["har"]}, format="json"
    )
    assert response.status_code == 404


def test_a_files_export_can_hold_the_har(tenant: Tenant, network_run: Run) -> None:
    services.artifact_store(
        run=network_run, kind="download", name="receipt.csv", content=io.BytesIO(b"a,b\n")
    )
    response = tenant.client.post(
        f"/v1/runs/{network_run.id}/files/export", {"type": ["har"]}, format="json"
    )
    assert response.status_code == 202, response.content
    body = tenant.client.get(response.json()["statusUrl"]).json()
    assert body["status"] == "ready", body
    assert body["type"] == ["har"]
    download = tenant.client.get(body["downloadUrl"])
    archive = zipfile.ZipFile(io.BytesIO(b"".join(download.streaming_content)))  # type: ignore[attr-defined]
    assert sorted(archive.namelist()) == [f"har/{network_run.id}.har", "manifest.json"]
    har = archive.read(f"har/{network_run.id}.har")
    assert har_validator(har) == "valid"
    assert len(json.loads(har)["log"]["entries"]) == 7
    manifest = json.loads(archive.read("manifest.json"))
    assert [f["path"] for f in manifest["files"]] == [f"har/{network_run.id}.har"]

    # Without types an export holds the files and the HAR is asked for by name only.
    both = tenant.client.post(
        f"/v1/runs/{network_run.id}/files/export", {"type": ["download", "har"]}, format="json"
    )
    body = tenant.client.get(both.json()["statusUrl"]).json()
    download = tenant.client.get(body["downloadUrl"])
    archive = zipfile.ZipFile(io.BytesIO(b"".join(download.streaming_content)))  # type: ignore[attr-defined]
    assert sorted(archive.namelist()) == [
        "download/receipt.csv",
        f"har/{network_run.id}.har",
        "manifest.json",
    ]


class SiteHandler(BaseHTTPRequestHandler):
    """A small site of its own for the browser (bctrl's server is off limits to it)."""

    def do_GET(self) -> None:
        if self.path == "/":
            body = b"<title>Shop</title><img src='/missing.png'><p>Hello</p>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Set-Cookie", "session=site-secret; Path=/")
        else:
            body = b"no such file"
            self.send_response(404)
            self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def site() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), SiteHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_the_har_of_a_real_browser_run_streams_from_daphne_and_validates(
    asgi_server: str, chromium: Any, tenant: Tenant, started: dict[str, Any], site: str
) -> None:
    automation = chromium.browser_type.connect_over_cdp(started["connectUrl"])
    page = automation.new_context().new_page()
    page.goto(f"{site}/")
    page.wait_for_load_state("load")
    run_id = started["runId"]

    def both_recorded() -> bool:
        # The image's own 404: the browser's /favicon.ico request may answer 404 first.
        return Event.objects.filter(
            run_id=run_id, type="network.response", data__url=f"{site}/missing.png"
        ).exists()

    eventually(both_recorded)
    request = urllib.request.Request(  # noqa: S310 (the test's own server)
        f"{asgi_server}/v1/runs/{run_id}/har",
        headers={"Authorization": f"Bearer {tenant.raw_key}"},
    )
    with urllib.request.urlopen(request, timeout=30) as answer:  # noqa: S310
        assert answer.status == 200
        assert answer.headers["Content-Type"] == "application/json"
        assert answer.headers.get("Content-Length") is None  # streamed, not buffered
        body = answer.read()
    assert har_validator(body) == "valid"
    assert b"site-secret" not in body
    log = json.loads(body)["log"]
    by_url = {e["request"]["url"]: e for e in log["entries"]}
    document, image = by_url[f"{site}/"], by_url[f"{site}/missing.png"]
    assert document["response"]["status"] == 200
    assert document["response"]["content"]["mimeType"] == "text/html"
    received = {h["name"].lower(): h["value"] for h in document["response"]["headers"]}
    assert received["set-cookie"] == "[redacted]"
    assert "user-agent" in {h["name"].lower() for h in document["request"]["headers"]}
    assert document["timings"]["wait"] >= 0 and document["time"] >= 0
    assert image["response"]["status"] == 404
    assert document["pageref"] == image["pageref"]
    assert [p["id"] for p in log["pages"]] == [document["pageref"]]
    automation.close()


def test_a_viewer_link_with_the_network_tab_opens_the_har_and_trace_only_with_all_they_hold(
    tenant: Tenant, network_run: Run
) -> None:
    """`harUrl` comes with a link that shows the network tab, `traceUrl` with one that shows
    activity, network and console; each opens for whoever holds the link, says nothing of
    the run's name or id, and refuses a link that does not show what it holds."""
    from django.test import Client

    def viewer(components: list[str]) -> dict[str, Any]:
        response = mint_recording(tenant, network_run, {"components": components})
        assert response.status_code == 200
        answer: dict[str, Any] = response.json()
        return answer

    bare = viewer([])
    network = viewer(["network"])
    everything = viewer(["activity", "network", "console"])
    assert "harUrl" not in bare and "traceUrl" not in bare
    assert "harUrl" in network and "traceUrl" not in network
    assert {"harUrl", "traceUrl"} <= set(everything)

    anonymous = Client()  # the link alone: no key, no session
    response = anonymous.get(network["harUrl"])
    assert response.status_code == 200
    assert 'filename="network.har"' in response["Content-Disposition"]
    har = b"".join(response.streaming_content)  # type: ignore[attr-defined]
    assert har_validator(har) == "valid"
    assert f"{SHOP}/api/cart".encode() in har
    assert network_run.id.encode() not in har and b"checkout" not in har

    trace = anonymous.get(everything["traceUrl"])
    assert trace.status_code == 200
    archive = zipfile.ZipFile(io.BytesIO(b"".join(trace.streaming_content)))  # type: ignore[attr-defined]
    lines = archive.read("trace.trace")
    assert network_run.id.encode() not in lines and b'"title":"Replay"' in lines

    # The same paths on a link that does not show what they hold.
    bare_base = bare["iframeUrl"]
    for name in ("network.har", "trace.zip"):
        refused = anonymous.get(f"{bare_base}/{name}")
        assert refused.status_code == 403
        assert refused.json()["error"]["code"] == "lease.wrong_kind"
    refused = anonymous.get(f"{network['iframeUrl']}/trace.zip")
    assert refused.status_code == 403


# Chromium's DevTools frontend, served by Chromium itself on its debugging port, imports a
# HAR with these two calls (what its Network panel's "Import HAR file" runs).
DEVTOOLS_IMPORT = """async (har) => {
  const HAR = await import('/devtools/models/har/har.js');
  const log = new HAR.HARFormat.HARRoot(har).log;
  return HAR.Importer.Importer.requestsFromHARLog(log).map(
    (request) => [request.requestMethod, request.url(), request.statusCode]);
}"""


@pytest.mark.browser
def test_chromium_devtools_imports_the_har(tenant: Tenant, network_run: Run, chromium: Any) -> None:
    _, body = get_har(tenant, f"/v1/runs/{network_run.id}/har")
    har = json.loads(body)
    port = free_port()
    # A Chromium of its own, with its debugging port open (which serves DevTools' files).
    args = [*CHROMIUM_ARGS, f"--remote-debugging-port={port}"]
    browser = chromium.browser_type.launch(executable_path=CHROMIUM, args=args)
    try:
        page = browser.new_page()
        page.goto(f"http://127.0.0.1:{port}/json/version")  # DevTools' own origin
        imported = page.evaluate(DEVTOOLS_IMPORT, har)
    finally:
        browser.close()

    assert imported == [
        [entry["request"]["method"], entry["request"]["url"], entry["response"]["status"]]
        for entry in har["log"]["entries"]
    ]
    assert len(imported) == 7
