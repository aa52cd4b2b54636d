"""Shared fixtures: spaces with API keys, API clients, a live ASGI server and Chromium."""

import asyncio
import contextlib
import json
import multiprocessing
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from multiprocessing.process import BaseProcess
from typing import Any, cast
from urllib.parse import urlencode, urlparse

import pytest
import websockets
from asgiref.sync import sync_to_async
from bctrl import AsyncBctrl, Bctrl, ConflictError
from daphne.testing import DaphneProcess, _reinstall_reactor
from django.conf import settings
from django.db import close_old_connections, connection
from rest_framework.test import APIClient
from websockets.sync.client import connect as ws_connect

from demo.management.commands.demo import free_runtime
from runs.models import ApiKey, Membership, Run, Runtime, Space
from runs.services import upload_placed, uploads_pending
from runtime_host.flags import CHROMIUM_FLAGS
from runtime_host.host import RuntimeHost

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", *CHROMIUM_FLAGS]


def services_required() -> bool:
    return os.environ.get("REQUIRE_SERVICES") == "1"


def need_service(name: str, url: str | None) -> str:
    """Skips (or, with REQUIRE_SERVICES=1, fails) unless the server at `url` answers."""
    reason = ""
    if not url:
        reason = f"{name} is not configured (set its URL to run this test)"
    else:
        parsed = urlparse(url)
        try:
            with socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or 0), 2):
                pass
        except OSError as exc:
            reason = f"{name} at {parsed.hostname}:{parsed.port} is not running ({exc})"
    if reason:
        if services_required():
            pytest.fail(f"REQUIRE_SERVICES=1 but {reason}")
        pytest.skip(reason)
    assert url is not None
    return url


@pytest.fixture(scope="session", autouse=True)
def _close_stray_connections(django_db_setup: None, django_db_blocker: Any) -> Iterator[None]:
    """Ends, after the last test, the connections that threads of the code under test
    (ingest workers, stream executors, runtime host writers) left open, so PostgreSQL can
    drop the test database."""
    yield
    from django.db import connection

    if connection.vendor != "postgresql":
        return
    with django_db_blocker.unblock(), connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )


@pytest.fixture
def redis_url() -> str:
    return need_service("Redis", os.environ.get("REDIS_URL"))


class RedisServer:
    """A redis-server of a test's own, on a free port, that the test may stop and start
    again (on the same port) to play an outage."""

    def __init__(self, binary: str) -> None:
        self.binary = binary
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        options = ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--daemonize", "no"]
        self.process = subprocess.Popen(
            [self.binary, "--port", str(self.port), *options], stdout=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                return
            except OSError:
                assert time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)
            self.process = None


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    """A redis-server of this test's own (skips without the binary, or fails with
    REQUIRE_SERVICES=1)."""
    binary = shutil.which("redis-server")
    if binary is None:
        if services_required():
            pytest.fail("REQUIRE_SERVICES=1 but redis-server is not installed")
        pytest.skip("redis-server is not installed (apt-get install redis-server)")
    server = RedisServer(binary)
    server.start()
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def _eager_celery(settings: Any) -> None:
    # Tasks run inline unless a test starts a real worker (see tests of the export task).
    from bctrl_site.celery import app

    app.conf.task_always_eager = True
    app.conf.task_eager_propagates = True


@dataclass
class Tenant:
    space: Space
    api_key: ApiKey
    raw_key: str
    client: APIClient

    @property
    def auth(self) -> dict[str, str]:
        return {"HTTP_AUTHORIZATION": f"Bearer {self.raw_key}"}


def make_tenant(slug: str) -> Tenant:
    space = Space.objects.create(name=slug.title(), slug=slug)
    api_key, raw_key = ApiKey.objects.issue(space=space, name=f"{slug} key")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw_key}")
    return Tenant(space=space, api_key=api_key, raw_key=raw_key, client=client)


@pytest.fixture
def tenant(db: None) -> Tenant:
    return make_tenant("acme")


@pytest.fixture
def other_tenant(db: None) -> Tenant:
    return make_tenant("globex")


MEMBER_PASSWORD = "correct horse 9"


@pytest.fixture
def member(tenant: Tenant, django_user_model: Any) -> Any:
    user = django_user_model.objects.create_user(username="ada", password=MEMBER_PASSWORD)
    Membership.objects.create(user=user, space=tenant.space, role=Membership.Role.OWNER)
    return user


@pytest.fixture
def json_post(tenant: Tenant) -> Callable[..., Any]:
    def post(path: str, body: Any, **extra: Any) -> Any:
        return tenant.client.post(path, body, format="json", **extra)

    return post


class LiveServerProcess(DaphneProcess):
    """A forked daphne serving bctrl's ASGI app with the server class `make run` uses
    (bctrl_site.webserver.BctrlServer), as daphne.testing.DaphneProcess runs daphne's."""

    def run(self) -> None:
        # The child inherits the parent's thread pools, but not their threads: asgiref's
        # executor for thread-sensitive calls (every database call of a consumer), once
        # an async test in this process has used it, counts an idle thread that is not
        # there, and the first database call of the server would wait for it forever.
        from asgiref.sync import SyncToAsync

        SyncToAsync.single_thread_executor = ThreadPoolExecutor(max_workers=1)
        # As DaphneProcess.run: a new reactor for the child, then the server built on it.
        _reinstall_reactor()
        sys.modules.pop("bctrl_site.webserver", None)  # its Server came with the old reactor
        from daphne.endpoints import build_endpoint_description_strings
        from twisted.internet import reactor

        from bctrl_site.webserver import BctrlServer

        try:
            endpoints = build_endpoint_description_strings(host=self.host, port=self.port.value)
            self.server = BctrlServer(
                application=self.get_application(),
                endpoints=endpoints,
                signal_handlers=False,
                **self.kwargs,
            )
            cast(Any, reactor).callLater(0.1, self.resolve_port)
            self.server.run()
        except BaseException as exc:
            self.errors.put((exc, traceback.format_exc()))


def asgi_application() -> Any:
    from bctrl_site.asgi import application

    return application


@pytest.fixture(scope="session")
def asgi_server(django_db_setup: None, django_db_blocker: Any) -> Iterator[str]:
    """A real daphne process serving the ASGI app against the test database, as
    `manage.py serve` starts it: bctrl's server class and websocket limits large enough
    for CDP (with daphne's 1 MiB default, a larger message is dropped in either
    direction: a screenshot answer never reaches the client).

    Tests that use it must commit their data (`transactional_db`), since the server
    reads through its own connection.
    """
    from django.db import connections

    from bctrl_site.celery import app

    # The server runs its tasks inline, as the tests do (_eager_celery): otherwise whether
    # it did would depend on whether an earlier test had set that before the fork.
    app.conf.task_always_eager = True
    app.conf.task_eager_propagates = True
    size = settings.BCTRL_WEBSOCKET_MAX_MESSAGE_BYTES
    with django_db_blocker.unblock():
        connections.close_all()  # the child must open its own connections, not share ours
        process = LiveServerProcess(
            "127.0.0.1",
            asgi_application,
            kwargs={"websocket_max_message_size": size, "websocket_max_frame_size": size},
        )
        process.start()
        ready = process.ready.wait(20)
        if not process.errors.empty():
            raise RuntimeError(process.errors.get()[1])
        if not ready:
            raise RuntimeError("The live server did not start within 20 s")
        try:
            yield f"http://127.0.0.1:{process.port.value}"
        finally:
            process.terminate()
            process.join(10)


def start_web_process(settings: Any) -> LiveServerProcess:
    """One more web process (daphne) on the test database, with the settings of now (such
    as a channel layer on Redis), as `asgi_server` starts its own."""
    size = settings.BCTRL_WEBSOCKET_MAX_MESSAGE_BYTES
    process = LiveServerProcess(
        "127.0.0.1",
        asgi_application,
        kwargs={"websocket_max_message_size": size, "websocket_max_frame_size": size},
    )
    process.start()
    assert process.ready.wait(20), "a web process did not start"
    return process


# Tests run a few small runtimes at once on one host, more than the default of one per
# core of a 2-core machine.
TEST_HOST_BROWSERS = 4


def _run_host() -> None:
    """The runtime host process: `manage.py runtime_host`, on the test's database."""
    host = RuntimeHost(heartbeat_s=0.5, poll_s=0.05, max_browsers=TEST_HOST_BROWSERS)
    loop = asyncio.new_event_loop()
    loop.add_signal_handler(signal.SIGTERM, host.shutdown)
    loop.run_until_complete(host.run())


def start_host_process() -> BaseProcess:
    """A runtime host in a process of its own, with the settings of now (its link goes to
    settings.BCTRL_HOST_LINK_URL), once it takes starts (it has heartbeated)."""
    from runs.models import RuntimeHost

    host = multiprocessing.get_context("fork").Process(target=_run_host, daemon=True)
    host.start()
    deadline = time.monotonic() + 30
    while not RuntimeHost.objects.filter(pid=host.pid).exists():
        assert time.monotonic() < deadline, "the runtime host process did not start"
        time.sleep(0.05)
    return host


def stop_host_process(host: BaseProcess) -> None:
    assert host.pid is not None
    with contextlib.suppress(ProcessLookupError):
        os.kill(host.pid, signal.SIGTERM)
    host.join(30)


@pytest.fixture
def host_thread(transactional_db: None, asgi_server: str, settings: Any) -> Iterator[RuntimeHost]:
    """A runtime host on its own event loop in a thread, beside `asgi_server` and linked
    to it for the live view: what `make run` runs as its own process. (A thread, not the
    test's loop: Playwright's sync API keeps a loop on the main thread.)"""
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"Chromium is not installed at {CHROMIUM}")
    settings.BCTRL_HOST_LINK_URL = asgi_server.replace("http://", "ws://", 1)
    host = RuntimeHost(heartbeat_s=0.5, poll_s=0.05, max_browsers=TEST_HOST_BROWSERS)
    loop = asyncio.new_event_loop()

    def serve() -> None:
        # Closed in its own thread: channels_redis flushes its layer when a loop closes,
        # which cannot run on the main thread while Playwright's loop runs there.
        try:
            loop.run_until_complete(host.run())
        finally:
            loop.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not host.ready.is_set():
        assert time.monotonic() < deadline, "the runtime host did not start"
        time.sleep(0.05)
    yield host
    loop.call_soon_threadsafe(host.shutdown)
    thread.join(60)


@pytest.fixture
def started(asgi_server: str, tenant: Tenant, host_thread: RuntimeHost) -> Iterator[dict[str, Any]]:
    """A runtime of `tenant` started through the API, as a client would: the start's
    answer (`connectUrl`, `runId`…) with `runtimeId`; stopped after the test, and waited
    for until the host has let it go (its last writes done: the next test's database
    flush must not race them)."""
    client = Bctrl(api_key=tenant.raw_key, base_url=asgi_server)
    runtime = client.runtimes.create(name="live")
    answer = client.runtimes.start(runtime.id)
    yield {"runtimeId": runtime.id, **answer.raw}
    with contextlib.suppress(ConflictError):  # it stopped between the look and the stop
        free_runtime(client, runtime.id, timeout_s=30)


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    """Real headless Chromium from Debian, driven by Playwright, for one test module.

    Playwright's sync API keeps an event loop running on the main thread while it is
    open, which async tests elsewhere cannot share, so it closes with its module. The
    write services cope with that loop (see runs.live.notify_run_changed).
    """
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"Chromium is not installed at {CHROMIUM}; `make test` installs it")
    from playwright.sync_api import sync_playwright

    os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(chromium: Any) -> Iterator[Any]:
    context = chromium.new_context()
    page = context.new_page()
    yield page
    context.close()


def sign_in(page: Any, base_url: str, next_path: str = "/") -> None:
    """Opens `next_path`, signs in on the login page it redirects to as the `member`
    fixture's user, and waits to be back on `next_path`."""
    page.goto(base_url + next_path)
    assert "/login/" in page.url
    page.fill("input[name=username]", "ada")
    page.fill("input[name=password]", MEMBER_PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(base_url + next_path)


@dataclass
class Refusal:
    status: int
    error: dict[str, Any]


def refused(url: str, headers: dict[str, str] | None = None) -> Refusal:
    """How the server answers a websocket handshake it refuses (it must not be accepted):
    the HTTP status and the `error` of its JSON body."""
    with pytest.raises(websockets.exceptions.InvalidStatus) as raised:
        ws_connect(url, additional_headers=headers, open_timeout=10).close()
    response = raised.value.response
    assert response.headers["Content-Type"] == "application/json"
    error: dict[str, Any] = json.loads(response.body)["error"]
    return Refusal(response.status_code, error)


def db(function: Callable[..., Any]) -> Callable[..., Any]:
    def call(*args: Any, **kwargs: Any) -> Any:
        close_old_connections()
        return function(*args, **kwargs)

    return sync_to_async(call, thread_sensitive=False)


async def wait_for(
    check: Callable[[], Any], timeout: float = 30, message: str = "condition"
) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await db(check)()
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {message}")
        await asyncio.sleep(0.1)


@dataclass
class Started:
    runtime: Runtime
    run: Run
    connect_url: str


async def start_runtime(
    server: str, tenant: Tenant, body: dict[str, Any] | None = None, **options: str
) -> Started:
    """What a client does: `POST /v1/runtimes` and `…/start` (with `body`), which answers
    once the host has the browser up. `options` (seed 003's) go on the connectUrl's query."""
    async with AsyncBctrl(api_key=tenant.raw_key, base_url=server) as client:
        created = await client.runtimes.create(name="test")
        answer = await client.runtimes.start(created.id, extra_body=body)
    assert answer.connect_url.startswith(server.replace("http://", "ws://", 1) + "/cdp/")
    runtime = await db(Runtime.objects.get)(pk=created.id)
    assert runtime.status == Runtime.Status.RUNNING
    run = await db(Run.objects.get)(pk=answer.run_id)
    connect_url = answer.connect_url + (f"?{urlencode(options)}" if options else "")
    return Started(runtime=runtime, run=run, connect_url=connect_url)


async def stop_runtime(server: str, tenant: Tenant, started: Started) -> Run:
    async with AsyncBctrl(api_key=tenant.raw_key, base_url=server) as client:
        await client.runtimes.stop(started.runtime.id)
    await wait_for(
        lambda: Runtime.objects.filter(
            pk=started.runtime.pk, status=Runtime.Status.STOPPED
        ).exists(),
        message="the runtime to stop",
    )
    run: Run = await db(Run.objects.get)(pk=started.run.pk)
    return run


DUMMY_ENDPOINT = "ws://127.0.0.1:9/devtools/browser/dummy"


@contextlib.contextmanager
def fake_host(
    endpoint: str = DUMMY_ENDPOINT,
    fail: str = "",
    host_id: str = "fake-host",
    capacity: int = 4,
    place_uploads: bool = False,
) -> Iterator[None]:
    """Plays a runtime host on a thread: heartbeats, claims the runtimes placed on it and
    launches nothing (running at `endpoint`, or failed with `fail`), finishes the ones
    asked to stop and, with `place_uploads`, says it placed their runs' uploaded files
    (at /uploads/<name>)."""
    from runtimes import services as runtime_services

    done = threading.Event()
    runtime_services.host_heartbeat(host_id=host_id, capacity=capacity, browsers=0)

    def play() -> None:
        try:
            while not done.is_set():
                runtime_services.host_heartbeat(host_id=host_id, capacity=capacity, browsers=0)
                runtime = runtime_services.runtime_claim(host_id=host_id)
                if runtime is not None and fail:
                    runtime_services.runtime_finished(runtime=runtime, state="failed", reason=fail)
                elif runtime is not None:
                    runtime_services.runtime_running(runtime=runtime, cdp_endpoint=endpoint)
                for stopping in Runtime.objects.filter(status="stopping", host_id=host_id):
                    runtime_services.runtime_finished(runtime=stopping, state="stopped")
                if place_uploads:
                    runs = Run.objects.filter(runtime__host_id=host_id, status="running")
                    for artifact in uploads_pending(
                        run_ids=list(runs.values_list("id", flat=True))
                    ):
                        upload_placed(artifact=artifact, path=f"/uploads/{artifact.name}")
                done.wait(0.01)
        finally:
            connection.close()

    host = threading.Thread(target=play, daemon=True)
    host.start()
    try:
        yield
    finally:
        done.set()
        host.join(10)


def pytest_report_header(config: Any) -> str:
    return f"bctrl database: {settings.DATABASES['default']['ENGINE']}"


def hours_ago_ms(hours: float) -> int:
    """An rrweb timestamp (ms since the epoch) `hours` before now."""
    return int((time.time() - hours * 3600) * 1000)


def started_at_ms(run: Any, ms: int) -> Any:
    """`run`, as if it had started at `ms` (ms since the epoch): a recording takes rrweb
    timestamps from its run's start on (recordings.services.timestamp_window)."""
    from datetime import UTC, datetime

    run.started_at = datetime.fromtimestamp(ms / 1000, tz=UTC)
    type(run).objects.filter(pk=run.pk).update(started_at=run.started_at)
    return run


@pytest.fixture(autouse=True)
def _fresh_rate_limits() -> None:
    """Each test counts its own requests against the rate limits (runs/api/throttles.py):
    the cache that holds the counts lives as long as the test process."""
    from django.core.cache import cache

    cache.clear()


@pytest.fixture
def rate_clock(monkeypatch: pytest.MonkeyPatch) -> float:
    """The rate limiter's clock held 30 s into a minute (and an hour), so that no window
    turns during the test; the time it shows."""
    from runs.api import throttles

    now = 1_800_000_030.0
    monkeypatch.setattr(throttles, "clock", lambda: now)
    return now


# --- Object storage: moto's S3 server ---------------------------------------------------

S3_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"}
S3_REGION = "us-east-1"


def _moto_server_binary() -> str | None:
    beside_python = os.path.join(os.path.dirname(sys.executable), "moto_server")
    return beside_python if os.path.exists(beside_python) else shutil.which("moto_server")


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """The URL of an S3 protocol server: BCTRL_TEST_S3_ENDPOINT_URL (.ci/run starts one),
    else a `moto_server` of this session's own on a free loopback port. Skips without
    moto (fails under REQUIRE_SERVICES=1)."""
    configured = os.environ.get("BCTRL_TEST_S3_ENDPOINT_URL")
    if configured:
        yield need_service("The S3 server", configured)
        return
    binary = _moto_server_binary()
    if binary is None:
        reason = "moto_server is not installed (pip install 'moto[server]')"
        if services_required():
            pytest.fail(f"REQUIRE_SERVICES=1 but {reason}")
        pytest.skip(reason)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [binary, "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 20
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            break
        except OSError:
            assert server.poll() is None, "moto_server exited"
            assert time.monotonic() < deadline, "moto_server did not start"
            time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(10)


@dataclass
class ObjectStore:
    """The hot and cold buckets of a test, on the S3 server, and a client to look inside."""

    endpoint_url: str
    hot: str
    cold: str
    client: Any

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        answer = self.client.list_objects_v2(Bucket=bucket, Prefix=prefix)
        return sorted(entry["Key"] for entry in answer.get("Contents", []))

    def body(self, bucket: str, key: str) -> bytes:
        data: bytes = self.client.get_object(Bucket=bucket, Key=key)["Body"].read()
        return data

    def env(self) -> dict[str, str]:
        """The environment of a bctrl process on these buckets (what .env.example names)."""
        return {
            "S3_BUCKET": self.hot,
            "S3_COLD_BUCKET": self.cold,
            "S3_ENDPOINT_URL": self.endpoint_url,
            "S3_REGION": S3_REGION,
            **S3_CREDENTIALS,
        }


def s3_client(endpoint_url: str) -> Any:
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=endpoint_url,
        region_name=S3_REGION,
        aws_access_key_id=S3_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=S3_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    )


def object_storage_entry(endpoint_url: str, bucket: str, **options: Any) -> dict[str, Any]:
    """The STORAGES entry that settings make of S3_BUCKET (or S3_COLD_BUCKET) on the server."""
    from bctrl_site.settings import object_storage

    entry = object_storage(bucket, **options)
    entry["OPTIONS"].update(
        endpoint_url=endpoint_url,
        region_name=S3_REGION,
        addressing_style="path",
        access_key=S3_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        secret_key=S3_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    )
    return entry


@pytest.fixture
def object_store(s3_endpoint: str, settings: Any) -> ObjectStore:
    """Hot and cold tiers in two new buckets of the S3 server, as S3_BUCKET and
    S3_COLD_BUCKET configure them: recordings, artifacts and exports of this test live
    there."""
    import uuid

    client = s3_client(s3_endpoint)
    suffix = uuid.uuid4().hex[:12]
    store = ObjectStore(s3_endpoint, f"bctrl-hot-{suffix}", f"bctrl-cold-{suffix}", client)
    client.create_bucket(Bucket=store.hot)
    client.create_bucket(Bucket=store.cold)
    settings.STORAGES = {
        **settings.STORAGES,
        "default": object_storage_entry(s3_endpoint, store.hot),
        "cold": object_storage_entry(s3_endpoint, store.cold),
    }
    return store
