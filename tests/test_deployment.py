"""A deployment of several processes, as docs/deploy.md describes it, each started from its
line of the Procfile: two web processes, two runtime hosts, a Celery worker and beat, each
a process of its own, on PostgreSQL, Redis and moto's S3 server (no shared folder).

Six runtimes started through web A and B spread over both hosts; a page driven in each
(with a download); one watched in the live view on A while its frames enter through B;
all stopped, processed by the worker, replayed and downloaded from either web process.
Then a runtime host dies (SIGKILL of its process group): its run ends `failed` with the
reason, its recording is processed with what arrived, and new starts go to the other host.
"""

import functools
import gzip
import http.server
import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.conf import settings as django_settings
from django.db import connection, connections
from django.test import Client
from websockets.sync.client import connect as ws_connect

from recordings.models import Recording, RecordingBatch
from runs.models import Artifact, Run, Runtime, RuntimeHost
from runtimes.sweep import HOST_GONE_REASON
from tests.conftest import CHROMIUM, ObjectStore, RedisServer, Tenant, services_required
from tests.processes import ROOT, Answer, call, free_port, process_env, stop, wait_until_answers
from tests.test_live_scale import receive_frame, receive_json
from tests.test_object_storage import fetch
from viewers.leases import lease_mint
from viewers.models import ViewerLease

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(900)]

FILE_BODY = b"order,total\n42,19.90\n"
PAGE = (
    b"<!doctype html><title>Order desk</title><h1>Order desk</h1>"
    b"<p id='count'>Orders of the day</p><a id='dl' href='/orders.csv'>orders</a>"
    # Something to record (and to replay for more than a second) while the page is open.
    b"<script>let n = 0; setInterval(() => {"
    b"document.getElementById('count').textContent = 'Orders: ' + ++n; }, 200);</script>"
)


class Site(http.server.BaseHTTPRequestHandler):
    """The page the hosted browsers open, and the file they download."""

    def do_GET(self) -> None:
        body, kind = (PAGE, "text/html") if self.path == "/" else (FILE_BODY, "text/csv")
        self.send_response(200)
        self.send_header("Content-Type", kind)
        if self.path != "/":
            self.send_header("Content-Disposition", 'attachment; filename="orders.csv"')
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def procfile() -> dict[str, str]:
    """The Procfile's commands by process type."""
    lines = (ROOT / "Procfile").read_text().splitlines()
    return dict(line.split(": ", 1) for line in lines if line and not line.startswith("#"))


@dataclass
class Deployment:
    webs: list[str]
    hosts: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)  # by host id
    host_links: dict[str, str] = field(default_factory=dict)  # host id -> its web's URL
    logs: Path = Path()


def start_process(kind: str, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """One process of the Procfile's `kind`, with this interpreter as its `python`, in a
    process group of its own (so that a host's browsers die with it)."""
    command = re.sub(r"^python ", shlex.quote(sys.executable) + " ", procfile()[kind])
    with log.open("wb") as output:
        return subprocess.Popen(
            ["bash", "-c", f"exec {command}"],
            cwd=ROOT,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def off_loop(function: Callable[[], Any]) -> Any:
    """`function()` on a thread of its own: the ORM refuses to run in the thread where
    Playwright's sync API keeps its event loop."""

    def run() -> Any:
        try:
            return function()
        finally:
            connection.close()

    with ThreadPoolExecutor(1) as executor:
        return executor.submit(run).result()


def wait(check: Callable[[], Any], timeout: float, message: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = off_loop(check)
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {message}"
        time.sleep(0.2)


def encoded_download(url: str, tenant: Tenant) -> Any:
    """Seed 004's download answer once it is 200 (202 while the video is encoded)."""
    answer = api("GET", url, tenant)
    return answer if answer.status == 200 else None


def host_id_of(pid: int | None) -> str | None:
    return RuntimeHost.objects.filter(pid=pid).values_list("id", flat=True).first()


def has_download(run_id: str) -> bool:
    return Artifact.objects.filter(run_id=run_id, kind=Artifact.Kind.DOWNLOAD).exists()


def recording_ready(run_id: str) -> bool:
    return Recording.objects.filter(run_id=run_id, status=Recording.Status.READY).exists()


@pytest.fixture
def site() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Site)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.fixture
def deployment(
    tmp_path: Path, object_store: ObjectStore, redis_server: RedisServer
) -> Iterator[Deployment]:
    if connection.vendor != "postgresql":
        reason = "the deployment test runs on PostgreSQL (set DATABASE_URL)"
        if services_required():
            pytest.fail(f"REQUIRE_SERVICES=1 but {reason}")
        pytest.skip(reason)
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"Chromium is not installed at {CHROMIUM}")
    connections.close_all()  # the children open their own connections

    def env(name: str, **extra: str) -> dict[str, str]:
        return process_env(
            tmp_path / name,
            **object_store.env(),
            REDIS_URL=redis_server.url,
            CHANNELS_PREFIX=f"bctrl-deploy-{os.getpid()}",
            BCTRL_RUNTIME_MAX_BROWSERS="4",  # six small runtimes on two hosts of two cores
            # A host is gone after 5 missed heartbeats of 2 s (a loaded machine's host
            # may miss three).
            BCTRL_RUNTIME_STALE_HEARTBEATS="5",
            # Placement by room alone: a slow machine's host still takes its own starts.
            BCTRL_RUNTIME_CLAIM_TIMEOUT_S="30",
            CELERY_CONCURRENCY="1",
            **extra,
        )

    processes: list[subprocess.Popen[bytes]] = []
    ports = [free_port(), free_port()]
    deployment = Deployment(webs=[f"http://127.0.0.1:{port}" for port in ports], logs=tmp_path)
    try:
        for name, port in zip(("web-a", "web-b"), ports, strict=True):
            env_web = env(name, HOST="127.0.0.1", PORT=str(port))
            processes.append(start_process("web", env_web, tmp_path / f"{name}.log"))
        for kind in ("worker", "beat"):
            processes.append(start_process(kind, env(kind), tmp_path / f"{kind}.log"))
        for web, process in zip(deployment.webs, processes, strict=False):
            wait_until_answers(web + "/login/", timeout=90, process=process)
        # Host 1 links to web B, host 2 to web A.
        for name, web in (("host-1", deployment.webs[1]), ("host-2", deployment.webs[0])):
            link = web.replace("http://", "ws://", 1)
            host = start_process(
                "runtime_host", env(name, BCTRL_HOST_LINK_URL=link), tmp_path / f"{name}.log"
            )
            processes.append(host)
            host_id = wait(
                functools.partial(host_id_of, host.pid),
                90,
                f"{name} to heartbeat",
            )
            deployment.hosts[host_id] = host
            deployment.host_links[host_id] = web
        yield deployment
    finally:
        for process in reversed(processes):
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in processes:
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                stop(process)
        connections.close_all()


def api(method: str, url: str, tenant: Tenant, body: Any = None) -> Answer:
    return call(method, url, key=tenant.raw_key, body=body, timeout=90)


def start_runtime(web: str, tenant: Tenant) -> dict[str, Any]:
    created = api("POST", f"{web}/v1/runtimes", tenant, {"name": "deployed"})
    assert created.status == 201, created.body
    started = api("POST", f"{web}/v1/runtimes/{created.json()['id']}/start", tenant)
    assert started.status in (200, 201), started.body
    return {**started.json(), "runtimeId": created.json()["id"], "web": web}


def drive(playwright: Any, started: dict[str, Any], site: str) -> Any:
    """What a client does with a runtime: open the page and download its file."""
    browser = playwright.chromium.connect_over_cdp(started["connectUrl"], timeout=90_000)
    page = browser.new_context(viewport={"width": 800, "height": 500}).new_page()
    page.goto(site + "/")
    page.click("#dl")
    return browser


def session_cookie(member: Any) -> str:
    client = Client()
    client.force_login(member)
    name = django_settings.SESSION_COOKIE_NAME
    return f"{name}={client.cookies[name].value}"


def test_two_web_processes_two_hosts_a_worker_and_beat_share_everything(
    deployment: Deployment, tenant: Tenant, member: Any, site: str, object_store: ObjectStore
) -> None:
    from playwright.sync_api import sync_playwright

    web_a, web_b = deployment.webs
    host_1, host_2 = deployment.hosts  # host 1 links to web B, host 2 to web A
    starts = [start_runtime(deployment.webs[i % 2], tenant) for i in range(6)]
    placed = {
        started["runId"]: Runtime.objects.get(pk=started["runtimeId"]).host_id for started in starts
    }
    assert sorted(placed.values()) == sorted([host_1] * 3 + [host_2] * 3)

    with sync_playwright() as playwright:
        browsers = [drive(playwright, started, site) for started in starts]
        for started in starts:
            wait(
                functools.partial(has_download, started["runId"]),
                60,
                "the download of each runtime",
            )
        # A browser on host 1: its frames enter through web B; a viewer watches on web A.
        watched = next(s for s in starts if placed[s["runId"]] == host_1)
        token = off_loop(
            lambda: (
                lease_mint(
                    run=Run.objects.get(pk=watched["runId"]), kind=ViewerLease.Kind.LIVE
                ).token
            )
        )
        viewer_url = web_a.replace("http://", "ws://", 1) + f"/ws/live/{token}"
        with ws_connect(viewer_url, additional_headers={"Origin": web_a}) as viewer:
            assert receive_json(viewer, "hello")["type"] == "hello"
            assert receive_frame(viewer, timeout=60)["w"] == 800
        time.sleep(1.5)  # every page has more than a second to replay
        for browser in browsers:
            browser.close()

    for i, started in enumerate(starts):
        stopped = api(
            "POST",
            f"{deployment.webs[(i + 1) % 2]}/v1/runtimes/{started['runtimeId']}/stop",
            tenant,
        )
        assert stopped.status == 200, stopped.body
    for started in starts:
        wait(
            functools.partial(recording_ready, started["runId"]),
            240,
            "the worker to process each recording",
        )
    # Nothing of these runs on local disk (the folder is the test session's: other
    # tests' files may be there).
    ours = {started["runId"] for started in starts} | set(
        Recording.objects.filter(run_id__in=[s["runId"] for s in starts]).values_list(
            "id", flat=True
        )
    )
    local = [
        path
        for path in Path(django_settings.MEDIA_ROOT).rglob("*")
        if path.is_file() and any(name in str(path) for name in ours)
    ]
    assert not local, f"files on local disk: {local[:5]}"

    cookie = {"Cookie": session_cookie(member)}
    for started in starts:
        recording = Recording.objects.get(run_id=started["runId"])
        artifact = Artifact.objects.get(run_id=started["runId"], kind=Artifact.Kind.DOWNLOAD)
        for web in (web_a, web_b):
            manifest = call("GET", f"{web}/runs/{started['runId']}/replay/manifest", headers=cookie)
            assert manifest.status == 200, manifest.body
            assert manifest.json()["mode"] == "chunks"
            target = next(t for t in manifest.json()["targets"] if t["playable"])
            chunk = call("GET", f"{web}{target['chunksUrl']}?chunk=0", headers=cookie)
            assert chunk.status == 200
            assert b"Order desk" in gzip.decompress(chunk.body)

            # Seed 004's download is the tab's MP4 once the worker encoded it (202 until
            # then), and the rrweb events on request: both presigned from the bucket.
            download = f"{web}/api/v1/recordings/{recording.id}/download"
            answer = wait(functools.partial(encoded_download, download, tenant), 120, "the video")
            assert answer.json()["provider"] == "s3"
            assert fetch(answer.json()["download_url"])[2][4:8] == b"ftyp"  # an MP4
            events = api("GET", f"{download}?format=rrweb", tenant)
            assert events.status == 200, events.body
            assert b"Order desk" in fetch(events.json()["download_url"])[2]

            content = api(
                "GET", f"{web}/v1/runs/{started['runId']}/artifacts/{artifact.id}/content", tenant
            )
            assert content.status == 302
            assert (
                urlsplit(content.headers["Location"]).netloc
                == urlsplit(object_store.endpoint_url).netloc
            )
            assert fetch(content.headers["Location"])[2] == FILE_BODY

    # Host 2 dies mid-run.
    doomed = start_runtime(web_a, tenant)
    survivor = start_runtime(web_b, tenant)
    on_host_2 = next(
        s for s in (doomed, survivor) if Runtime.objects.get(pk=s["runtimeId"]).host_id == host_2
    )
    with sync_playwright() as playwright:
        browser = drive(playwright, on_host_2, site)
        wait(
            lambda: RecordingBatch.objects.filter(recording__run_id=on_host_2["runId"]).exists(),
            60,
            "a recording batch of the doomed run",
        )
        time.sleep(1.5)  # more than a second of page to replay
        os.killpg(deployment.hosts[host_2].pid, signal.SIGKILL)
        deployment.hosts[host_2].wait(10)
        failed = wait(
            lambda: Run.objects.filter(pk=on_host_2["runId"], status=Run.Status.FAILED).first(),
            60,
            "the sweep to fail the run of the dead host",
        )
        assert failed.error["message"] == HOST_GONE_REASON
        browser.close()
    wait(
        functools.partial(recording_ready, on_host_2["runId"]),
        240,
        "the recording of the dead host's run to be processed from what arrived",
    )
    after = start_runtime(web_a, tenant)
    assert Runtime.objects.get(pk=after["runtimeId"]).host_id == host_1
