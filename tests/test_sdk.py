"""The Python client (sdk/python, `bctrl`) against the live test server: every call, pages
followed by their cursors, the SSE stream through a connection that is cut, the long-poll's
timeout, each error class from a real answer, retries after Retry-After, the async client."""

import contextlib
import io
import socket
import threading
import zipfile
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from bctrl import (
    APIConnectionError,
    APITimeoutError,
    AsyncBctrl,
    AuthenticationError,
    BadRequestError,
    Bctrl,
    BctrlError,
    ConflictError,
    InternalServerError,
    NoActiveRunError,
    NotFoundError,
    PermissionDeniedError,
    Profile,
    RateLimitError,
    Run,
    RuntimeFile,
    UnprocessableEntityError,
)

from tests.conftest import Tenant, fake_host, make_tenant
from tests.test_recordings_seed_api import T0, rrweb_chunk

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def client(asgi_server: str, tenant: Tenant) -> Iterator[Bctrl]:
    with Bctrl(api_key=tenant.raw_key, base_url=asgi_server) as bctrl:
        yield bctrl


def page_event(seq: int, url: str = "https://shop.example/") -> dict[str, Any]:
    return {"seq": seq, "type": "navigation", "pageId": "page-1", "data": {"url": url}}


# Configuration -------------------------------------------------------------------------------


def test_the_key_and_the_server_come_from_the_environment(
    asgi_server: str, tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BCTRL_API_KEY", tenant.raw_key)
    monkeypatch.setenv("BCTRL_BASE_URL", asgi_server + "/")
    client = Bctrl()
    assert client.base_url == asgi_server
    assert client.runs.list().data == []
    monkeypatch.delenv("BCTRL_API_KEY")
    with pytest.raises(BctrlError, match="BCTRL_API_KEY"):
        Bctrl()


# Runtimes and runs ---------------------------------------------------------------------------


def test_runtimes_are_created_retrieved_and_listed_page_after_page(client: Bctrl) -> None:
    created = [client.runtimes.create(name=f"rt {n}") for n in range(5)]
    assert created[0].status == "idle" and created[0].name == "rt 0"
    assert client.runtimes.retrieve(created[2].id).name == "rt 2"
    first = client.runtimes.list(limit=2)
    assert len(first.data) == 2 and first.has_more and first.next_cursor
    assert [r.id for r in first] == [r.id for r in reversed(created)]  # newest first
    assert [r.id for r in client.runtimes.iter(limit=2)] == [r.id for r in reversed(created)]
    assert len(list(first.iter_pages())) == 3


def test_runs_are_created_listed_by_cursor_filtered_and_stopped(client: Bctrl) -> None:
    runtime = client.runtimes.create(name="batch")
    runs = [client.runs.create(name=f"run {n}", labels={"n": n}) for n in range(4)]
    on_runtime = client.runs.create(runtime_id=runtime.id, name="on the runtime")
    assert isinstance(runs[0], Run) and runs[0].status == "running"
    assert runs[1].labels == {"n": 1} and runs[1].raw["labels"] == {"n": 1}
    assert runs[1]["name"] == "run 1"

    page = client.runs.list(limit=2)
    assert len(page.data) == 2 and page.has_more
    everything = [run.id for run in client.runs.iter(limit=2)]
    assert everything == [on_runtime.id, *[run.id for run in reversed(runs)]]
    assert [r.id for r in client.runs.list(runtime_id=runtime.id)] == [on_runtime.id]

    stopped = client.runs.stop(runs[0].id, status="failed", error={"message": "boom"})
    assert stopped.status == "failed" and stopped.ended_at is not None
    assert client.runs.stop(runs[0].id).status == "failed"  # stopping twice is harmless
    assert [r.id for r in client.runs.list(status="failed")] == [runs[0].id]
    again = client.runs.retrieve(runs[0].id)
    assert again.usage is not None and again.usage.duration_ms is not None
    assert again.recording_summary is not None


def test_current_run_of_seed_002(client: Bctrl) -> None:
    runtime = client.runtimes.create(name="seed 002")
    with pytest.raises(NoActiveRunError) as raised:
        runtime.current_run()
    assert raised.value.code == "runtime.no_active_run" and raised.value.status_code == 404
    assert isinstance(raised.value, NotFoundError)

    run = client.runs.create(runtime_id=runtime.id, name="active")
    fresh = client.runtimes.retrieve(runtime.id)
    assert fresh.active_run_id == run.id
    assert fresh.current_run().id == run.id
    assert runtime.current_run().id == run.id  # its cached active_run_id was empty: refreshed
    assert client.runtimes.current_run(runtime.id).id == run.id
    client.runs.stop(run.id)
    with pytest.raises(NoActiveRunError):
        fresh.current_run()  # the cached id's run has ended


# Events ------------------------------------------------------------------------------------


def test_events_are_appended_once_and_listed_across_pages(client: Bctrl) -> None:
    run = client.runs.create(name="events")
    batch = [page_event(seq) for seq in range(1, 6)]
    first = client.runs.events.append(run.id, batch)
    assert (first.accepted, first.duplicates, first.next_seq) == (5, 0, 6)
    again = client.runs.events.append(run.id, batch)
    assert (again.accepted, again.duplicates) == (0, 5)
    with pytest.raises(ConflictError) as raised:
        client.runs.events.append(run.id, [page_event(9)])
    assert raised.value.code == "events.out_of_order" and raised.value.details["expectedSeq"] == 6

    page = client.runs.events.list(run.id, limit=2)
    assert [e.seq for e in page.data] == [1, 2] and page.has_more
    assert [e.seq for e in page] == [1, 2, 3, 4, 5]
    assert [e.seq for e in client.runs.events.iter(run.id, after=3, limit=1)] == [4, 5]
    event = page.data[0]
    assert event.type == "navigation" and event.page_id == "page-1"
    assert event.data == {"url": "https://shop.example/"} and event.time is not None
    assert [e.seq for e in run.events.list(type="navigation")] == [1, 2, 3, 4, 5]


def test_wait_times_out_then_returns_the_next_event(client: Bctrl) -> None:
    run = client.runs.create(name="wait")
    waited = run.events.wait(timeout=0.3)
    assert waited.timed_out and waited.event is None and not waited.run_ended

    timer = threading.Timer(0.5, client.runs.events.append, [run.id, [page_event(1)]])
    timer.start()
    try:
        waited = client.runs.events.wait(run.id, timeout=20)
    finally:
        timer.join()
    assert not waited.timed_out and waited.event is not None and waited.event.seq == 1

    client.runs.stop(run.id)
    assert client.runs.events.wait(run.id, timeout=5).run_ended


class CuttingProxy:
    """A TCP proxy to the live server that can cut every open connection at once, as a
    network would; it counts the connections and keeps what each request began with."""

    def __init__(self, upstream: str) -> None:
        parsed = httpx.URL(upstream)
        self.upstream = (parsed.host, parsed.port or 80)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.sockets: list[socket.socket] = []
        self.requests: list[bytes] = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                downstream, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.upstream)
            with self.lock:
                self.sockets += [downstream, upstream]
            threading.Thread(target=self._pipe, args=(downstream, upstream, True)).start()
            threading.Thread(target=self._pipe, args=(upstream, downstream, False)).start()

    def _pipe(self, source: socket.socket, sink: socket.socket, request: bool) -> None:
        first = True
        try:
            while chunk := source.recv(65536):
                if request and first:
                    self.requests.append(chunk)
                    first = False
                sink.sendall(chunk)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                with contextlib.suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        with self.lock:
            sockets, self.sockets = self.sockets, []
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def close(self) -> None:
        self.listener.close()
        self.cut()


def test_the_event_stream_resumes_after_a_dropped_connection(
    asgi_server: str, tenant: Tenant
) -> None:
    proxy = CuttingProxy(asgi_server)
    writer = Bctrl(api_key=tenant.raw_key, base_url=asgi_server)
    reader = Bctrl(api_key=tenant.raw_key, base_url=proxy.url)
    run = writer.runs.create(name="stream")
    writer.runs.events.append(run.id, [page_event(1), page_event(2)])
    seen: list[int] = []
    try:
        stream = reader.runs.events.stream(run.id)
        seen += [next(stream).seq, next(stream).seq]
        proxy.cut()  # the open stream's connection dies between events
        writer.runs.events.append(run.id, [page_event(3), page_event(4)])
        seen += [next(stream).seq, next(stream).seq]
        writer.runs.stop(run.id)
        seen += [event.seq for event in stream]  # the rest, then the end: the loop stops
    finally:
        proxy.close()
    assert seen[:4] == [1, 2, 3, 4]
    streams = [r for r in proxy.requests if b"/events/stream" in r]
    assert len(streams) == 2
    assert b"last-event-id: 2" in streams[1].lower()
    assert all(seq > 4 for seq in seen[4:])  # the run's own end event, nothing twice


def test_activity_is_listed_and_streamed_until_the_run_ends(client: Bctrl) -> None:
    run = client.runs.create(name="activity")
    client.runs.events.append(
        run.id,
        [
            page_event(1, "https://shop.example/cart"),
            {"seq": 2, "type": "page.error", "pageId": "page-1", "data": {"message": "Boom"}},
        ],
    )
    listed = client.runs.activity.list(run.id)
    assert any("Boom" in item.message for item in listed.data) and not listed.truncated
    errors = run.activity.list(severity="error")
    assert errors.data and all(item.severity == "error" for item in errors.data)

    client.runs.stop(run.id)
    streamed = list(client.runs.activity.stream(run.id))
    assert {item.id for item in streamed} >= {item.id for item in listed.data}
    assert all(item.event in ("activity", "activity.updated") for item in streamed)


# Commands, artifacts, files ---------------------------------------------------------------


def test_commands_artifacts_and_a_zip_export_with_progress(client: Bctrl, tmp_path: Any) -> None:
    run = client.runs.create(name="files")
    commands = [{"id": f"cmd_{n}", "method": "Page.navigate", "params": {"n": n}} for n in range(3)]
    client.runs.commands.create(run.id, commands)
    client.runs.commands.create(run.id, commands)  # the same ids: kept once
    assert [c.id for c in client.runs.commands.list(run.id, limit=2)] == [
        "cmd_0",
        "cmd_1",
        "cmd_2",
    ]
    assert len(run.commands.list().data) == 3

    report = client.runs.artifacts.upload(
        run.id, b"<h1>report</h1>", kind="report", name="report.html", content_type="text/html"
    )
    source = tmp_path / "receipt.txt"
    source.write_text("paid")
    receipt = client.runs.artifacts.upload(run.id, source, kind="download")
    assert receipt.name == "receipt.txt" and receipt.size == 4
    assert [a.id for a in run.artifacts.list()] == [report.id, receipt.id]
    assert [a.id for a in client.runs.artifacts.list(run.id, kind="report")] == [report.id]
    assert client.runs.artifacts.download(run.id, report) == b"<h1>report</h1>"
    progress: list[tuple[int, int | None]] = []
    saved = client.runs.artifacts.download(
        run.id,
        receipt.id,
        to=tmp_path / "copy.txt",
        on_progress=lambda d, t: progress.append((d, t)),
    )
    assert saved == tmp_path / "copy.txt" and saved.read_text() == "paid"
    assert progress[-1] == (4, 4)
    assert [f.id for f in client.runs.files.list(run.id, type="download")] == [receipt.id]

    states: list[str] = []
    export = client.runs.files.export(
        run.id, name="everything", wait=True, on_progress=lambda e: states.append(e.status)
    )
    assert export.status == "ready" and export.file_count == 2 and states[-1] == "ready"
    archive = client.runs.files.download_export(export)
    assert isinstance(archive, bytes)
    with zipfile.ZipFile(io.BytesIO(archive)) as zipped:
        names = {name.rsplit("/", 1)[-1] for name in zipped.namelist()}
    assert {"receipt.txt", "report.html"} <= names
    same = client.runs.files.export(run.id, name="everything", idempotency_key="k-1")
    assert client.runs.files.export(run.id, name="everything", idempotency_key="k-1").id == same.id


# Viewers, leases, spaces ------------------------------------------------------------------


def test_viewer_links_and_their_leases(client: Bctrl) -> None:
    run = client.runs.create(name="viewers")
    replay = run.recording(components=["activity"], expires_in_seconds=120)
    assert "/embed/replay/" in replay.iframe_url
    assert replay.activity_stream_url and replay.expires_at is not None
    live = client.runs.live(run.id, control="input")
    assert "/embed/live/" in live.url
    assert "/embed/live/" in run.live().url
    leases = list(client.runs.leases.iter(run.id, limit=1))
    assert len(leases) == 3 and {lease.kind for lease in leases} == {"replay", "live"}
    revoked = client.leases.revoke(leases[0].id)
    assert revoked.status == "revoked" and revoked.revoked_at is not None
    with pytest.raises(UnprocessableEntityError) as raised:
        client.runs.recording(run.id, expires_in_seconds=5)
    assert raised.value.code == "lease.invalid_lifetime"


def test_handoffs_are_opened_waited_for_completed_and_cancelled(client: Bctrl) -> None:
    run = client.runs.create(name="handoffs")
    opened = client.runs.handoffs.create(
        run.id, instructions="Type the code", timeout_ms=60_000, notify=False
    )
    assert opened.is_open and opened.live_url and "/embed/live/" in opened.live_url
    assert opened.expires_at is not None and opened.requested_by == "acme key"
    with pytest.raises(ConflictError) as raised:
        client.runs.handoffs.create(run.id, instructions="Another")
    assert raised.value.code == "handoff.open"
    # Still open after the wait: answered open, without its live URL.
    waited = client.runs.handoffs.wait(run.id, opened.id, timeout=0.3)
    assert waited.is_open and waited.live_url is None
    assert [h.id for h in client.runs.handoffs.list(run.id)] == [opened.id]
    done = client.runs.handoffs.complete(run.id, opened.id, note="Done it")
    assert done.status == "completed" and done.note == "Done it"
    assert done.completed_by == "acme key" and done.ended_at is not None
    assert client.runs.handoffs.retrieve(run.id, opened.id, wait_ms=10_000).note == "Done it"
    with pytest.raises(ConflictError) as raised:
        client.runs.handoffs.cancel(run.id, opened.id)
    assert raised.value.code == "handoff.ended"
    second = client.runs.handoffs.create(run.id, instructions="Never mind")
    assert client.runs.handoffs.cancel(run.id, second.id).status == "cancelled"
    assert [h.id for h in client.runs.handoffs.list(run.id)] == [second.id, opened.id]


def test_the_space_and_its_upstream_account(client: Bctrl, tenant: Tenant) -> None:
    space = client.spaces.retrieve(tenant.space.id)
    assert space.slug == "acme" and space.embed_origins == ["*"]
    space = client.spaces.update(space.id, embed_origins=["https://app.example"])
    assert space.embed_origins == ["https://app.example"]
    upstream = client.spaces.upstream.retrieve(space.id)
    assert not upstream.configured
    upstream = client.spaces.upstream.set(
        space.id,
        base_url="https://api.cloudflare.com/client/v4",
        account_id="acc123",
        api_token="cf-token-abcd",
    )
    assert upstream.configured and upstream.api_token_set
    assert "cf-token" not in str(upstream.raw)
    assert not client.spaces.upstream.delete(space.id).configured
    other = make_tenant("globex")
    with pytest.raises(NotFoundError):
        client.spaces.retrieve(other.space.id)


# Errors and retries ---------------------------------------------------------------------


def test_each_error_class_comes_from_a_real_answer(
    client: Bctrl, asgi_server: str, other_tenant: Tenant
) -> None:
    run = client.runs.create(name="errors")
    with pytest.raises(BadRequestError) as bad:
        client.runs.recording_events.ingest(run.id, target="t", seq=1, body=b"{not json")
    assert bad.value.status_code == 400 and bad.value.message
    with pytest.raises(AuthenticationError) as unauthenticated:
        Bctrl(api_key="bctrl_sk_nope", base_url=asgi_server).runs.list()
    assert unauthenticated.value.code and unauthenticated.value.status_code == 401
    with pytest.raises(PermissionDeniedError) as forbidden:
        client.get("/embed/replay/not-a-token/manifest")
    assert forbidden.value.code == "lease.invalid"
    other_run = Bctrl(api_key=other_tenant.raw_key, base_url=asgi_server).runs.create()
    with pytest.raises(NotFoundError) as missing:
        client.runs.retrieve(other_run.id)  # another space's run is not there
    assert missing.value.code == "not_found"
    runtime = client.runtimes.create(name="busy")
    client.runs.create(runtime_id=runtime.id)
    with pytest.raises(ConflictError) as conflict:
        client.runs.create(runtime_id=runtime.id)
    assert conflict.value.code == "runtime.run_active"
    with pytest.raises(UnprocessableEntityError) as invalid:
        client.runs.list(status="sleeping")
    assert invalid.value.details == {"status": ["sleeping"]}
    with pytest.raises(UnprocessableEntityError) as unknown:
        client.runtimes.start(runtime.id, extra_body={"colour": "blue"})
    assert unknown.value.details == {"colour": ["Unknown field."]}
    with pytest.raises(InternalServerError) as unavailable:
        client.runtimes.start(runtime.id, max_retries=0)  # no runtime host runs
    assert unavailable.value.status_code == 503 and unavailable.value.code == "runtime.no_host"
    assert isinstance(unavailable.value.response, httpx.Response)
    with pytest.raises(APIConnectionError):
        closed = socket.create_server(("127.0.0.1", 0))
        port = closed.getsockname()[1]
        closed.close()
        Bctrl(api_key="k", base_url=f"http://127.0.0.1:{port}", max_retries=0).runs.list()
    with pytest.raises(APITimeoutError):
        client.get(
            f"/v1/runs/{run.id}/events/wait", params={"timeoutMs": 3000}, timeout=0.3, max_retries=0
        )


def test_a_full_fleet_is_retried_after_its_retry_after(client: Bctrl) -> None:
    """429 runtime.capacity with Retry-After: the client waits what the server asked, and
    the start succeeds once a host has room."""
    runtime = client.runtimes.create(name="patient")
    requests: list[str] = []
    hooked = Bctrl(
        api_key=client.api_key,
        base_url=client.base_url,
        max_retries=3,
        http_client=httpx.Client(event_hooks={"request": [lambda r: requests.append(r.url.path)]}),
    )
    waits: list[float] = []
    roomy = fake_host(host_id="roomy", capacity=4)

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        if len(waits) == 2:
            roomy.__enter__()  # a host with room turns up during the second wait

    hooked._api._sleep = sleep
    try:
        with fake_host(host_id="full", capacity=0):
            with pytest.raises(RateLimitError) as limited:
                client.runtimes.start(runtime.id, max_retries=0)
            assert limited.value.code == "runtime.capacity"
            assert limited.value.retry_after == 2
            started = hooked.runtimes.start(runtime.id)
    finally:
        roomy.__exit__(None, None, None)
    assert waits == [2.0, 2.0]
    assert requests.count(f"/v1/runtimes/{runtime.id}/start") == 3
    assert started.run_id.startswith("run_") and started.connect_url.startswith("ws")


def test_without_retries_left_the_last_answer_is_raised(client: Bctrl) -> None:
    runtime = client.runtimes.create(name="impatient")
    waits: list[float] = []
    patient = client.with_options(max_retries=2)
    patient._api._sleep = waits.append
    with fake_host(host_id="full", capacity=0), pytest.raises(RateLimitError):
        patient.runtimes.start(runtime.id)
    assert waits == [2.0, 2.0]


# The async client ------------------------------------------------------------------------


async def test_the_async_client_makes_the_same_calls(asgi_server: str, tenant: Tenant) -> None:
    async with AsyncBctrl(api_key=tenant.raw_key, base_url=asgi_server) as client:
        runtime = await client.runtimes.create(name="async")
        with pytest.raises(NoActiveRunError):
            await runtime.current_run()
        runs = [await client.runs.create(runtime_id=None, name=f"a{n}") for n in range(3)]
        page = await client.runs.list(limit=2)
        assert len(page.data) == 2 and page.has_more
        assert [run.id async for run in page] == [run.id for run in reversed(runs)]
        assert [run.id async for run in client.runs.iter(limit=1)] == [
            run.id for run in reversed(runs)
        ]
        run = runs[0]
        appended = await run.events.append([page_event(1), page_event(2)])
        assert appended.next_seq == 3
        assert [e.seq async for e in client.runs.events.iter(run.id, limit=1)] == [1, 2]
        assert (await run.events.wait(timeout=0.2, after=2)).timed_out
        assert (await run.events.wait(timeout=5, after=1)).event is not None
        assert len((await run.commands.list()).data) == 0
        assert len((await run.artifacts.list()).data) == 0
        assert (await run.recording()).iframe_url
        assert (await run.live()).url
        leases = [lease async for lease in client.runs.leases.iter(run.id)]
        assert len(leases) == 2
        assert (await client.leases.revoke(leases[0].id)).status == "revoked"
        uploaded = await client.runs.artifacts.upload(run.id, b"hello", kind="report", name="r.txt")
        assert await run.artifacts.download(uploaded) == b"hello"
        export = await client.runs.files.export(run.id, wait=True)
        assert export.status == "ready"
        assert (await client.runs.files.download_export(export))[:2] == b"PK"
        assert (await client.spaces.retrieve(tenant.space.id)).id == tenant.space.id
        assert (await client.recordings.list()).total == 0
        async with client.with_options(max_retries=0) as impatient:
            assert (await impatient.runs.retrieve(run.id)).id == run.id
        assert (await client.runs.retrieve(run.id)).id == run.id  # still open: shared
        await client.runs.stop(run.id)
        streamed = [event.seq async for event in client.runs.events.stream(run.id)]
        assert streamed[:2] == [1, 2]
        items = [item async for item in client.runs.activity.stream(run.id)]
        assert items
        with pytest.raises(NotFoundError):
            await client.runs.retrieve("run_nope")
        waits: list[float] = []

        async def sleep(seconds: float) -> None:
            waits.append(seconds)

        client._api._async_sleep = sleep
        with pytest.raises(InternalServerError) as unavailable:
            await client.runtimes.start(runtime.id, max_retries=1)  # no runtime host runs
        assert unavailable.value.code == "runtime.no_host"
        assert waits == [float(unavailable.value.response.headers["Retry-After"])]


def test_a_run_made_by_hand_has_no_helpers() -> None:
    with pytest.raises(BctrlError, match="not bound"):
        Run.from_json({"id": "run_1"}).events.list()


# Seed 004's recordings API ---------------------------------------------------------------


def test_the_recordings_api_of_seed_004(client: Bctrl) -> None:
    room = client.runtimes.create(name="room")
    imported = [
        client.rooms.recordings.import_(room.id, rrweb_chunk(T0 + n * 10_000, 150))
        for n in range(2)
    ]
    assert all(recording.id for recording in imported)
    page = client.recordings.list(limit=1)
    assert page.total == 2 and len(page.data) == 1
    assert sorted(r.id for r in page) == sorted(r.id for r in imported)
    one = client.recordings.retrieve(imported[0].id)
    assert one.room_id == room.id and one.status == "ready" and one.duration_seconds
    download = client.recordings.download(one.id)
    assert download.status == "ready" and download.download_url
    assert httpx.get(download.download_url).status_code == 200  # signed: no key needed
    with pytest.raises(BadRequestError) as not_processing:
        client.recordings.recover(one.id)
    assert not_processing.value.code == "recording.not_processing"
    assert client.recordings.archive(one.id).status == "archived"
    assert client.recordings.delete(imported[1].id).deleted
    with pytest.raises(NotFoundError):
        client.recordings.retrieve(imported[1].id)
    with pytest.raises(ConflictError) as unlinked:
        client.rooms.recordings.sync(room.id)
    assert unlinked.value.code == "upstream.not_configured"

    with fake_host():
        client.runtimes.start(room.id, extra_body={"recording": False})
        started = client.rooms.recordings.start(room.id)
        assert started.status == "recording" and started.room_id == room.id
        with pytest.raises(ConflictError) as twice:
            client.rooms.recordings.start(room.id)
        assert twice.value.code == "recording.already_recording"
        assert client.rooms.recordings.stop(room.id).id == started.id
        with pytest.raises(NotFoundError) as none:
            client.rooms.recordings.stop(room.id)
        assert none.value.code == "recording.not_recording"
        client.runtimes.stop(room.id)


def test_a_start_that_failed_on_the_server_is_not_tried_again(client: Bctrl) -> None:
    """A 5xx without Retry-After for a call that is not idempotent: raised at once."""
    runtime = client.runtimes.create(name="broken")
    requests: list[str] = []
    hooked = Bctrl(
        api_key=client.api_key,
        base_url=client.base_url,
        max_retries=3,
        http_client=httpx.Client(event_hooks={"request": [lambda r: requests.append(r.url.path)]}),
    )
    with fake_host(fail="the browser crashed"), pytest.raises(InternalServerError) as failed:
        hooked.runtimes.start(runtime.id)
    assert failed.value.status_code == 502 and failed.value.code == "runtime.start_failed"
    assert "Retry-After" not in failed.value.response.headers
    assert requests.count(f"/v1/runtimes/{runtime.id}/start") == 1


def test_profiles_browser_options_and_runtime_files(client: Bctrl, tenant: Tenant) -> None:
    profile = client.profiles.create(name="shop account")
    assert isinstance(profile, Profile) and profile.domains == []
    assert [p.id for p in client.profiles.list()] == [profile.id]
    with pytest.raises(ConflictError) as taken:
        client.profiles.create(name="shop account")
    assert taken.value.code == "profile.name_taken"
    runtime = client.runtimes.create(name="options")
    with fake_host():
        started = client.runtimes.start(
            runtime.id,
            viewport=(390, 844),
            locale="de-DE",
            proxy={"server": "socks5://proxy.example.com:1080", "password": "x", "username": "u"},
            profile_id=profile.id,
            persist=True,
        )
        run = client.runs.retrieve(started.run_id)
        assert run.raw["browser"] == {
            "viewport": {"width": 390, "height": 844},
            "locale": "de-DE",
            "proxy": {"server": "socks5://proxy.example.com:1080"},
            "profile": {"id": profile.id, "name": "shop account", "persist": True},
        }
        retrieved = client.profiles.retrieve(profile.id)
        assert retrieved.in_use_by_run_id == started.run_id and retrieved.origins == []
        with pytest.raises(ConflictError):
            client.profiles.delete(profile.id)
        sent = client.runtimes.upload_file(runtime.id, b"%PDF-1.4", name="receipt.pdf")
        assert isinstance(sent, RuntimeFile) and sent.kind == "upload" and sent.size == 8
        assert [f.name for f in client.runtimes.files(runtime.id)] == ["receipt.pdf"]
        with pytest.raises(UnprocessableEntityError):
            client.runtimes.start(runtime.id, timezone="Mars/Olympus")
        client.runtimes.stop(runtime.id)
    other = client.runtimes.create(name="other")
    with pytest.raises(NotFoundError):
        client.runtimes.upload_file("rt_nope", b"x", name="a.txt")
    with pytest.raises(ConflictError) as idle:
        client.runtimes.upload_file(other.id, b"x", name="a.txt")
    assert idle.value.code == "runtime.not_running"
