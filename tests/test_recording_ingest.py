"""Ingest of rrweb batches: POST /v1/runs/{id}/recording/events.

Every test that posts batches runs twice (the `route` fixture): through Django's view, as
the test client calls it, and through the ASGI route of recordings/ingest_route.py that
takes these POSTs in a server, so both answer alike.
"""

import asyncio
import gzip
import io
import os
import time
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from asgiref.sync import async_to_sync, sync_to_async
from django.conf import settings as django_settings
from django.http import HttpResponse
from rest_framework.test import APIClient

from recordings import api, ingest_route
from recordings.models import Recording, RecordingBatch
from recordings.selectors import run_recording_summary
from runs import services
from runs.models import Run

from .conftest import Tenant, hours_ago_ms, make_tenant, started_at_ms

T0 = hours_ago_ms(3)  # an rrweb timestamp (ms since the epoch) in the runs' time
START = T0 - 60_000  # when the tests' runs started


def rrweb_events(count: int = 3, start: int = T0) -> list[dict[str, Any]]:
    meta = {"href": "https://example.com/", "width": 1280, "height": 720}
    snapshot = {
        "node": {"type": 0, "id": 1, "childNodes": []},
        "initialOffset": {"top": 0, "left": 0},
    }
    first: list[dict[str, Any]] = [
        {"type": 4, "timestamp": start, "data": meta},
        {"type": 2, "timestamp": start + 1, "data": snapshot},
    ]
    rest = [
        {"type": 3, "timestamp": start + 10 * i, "data": {"source": 1, "positions": []}}
        for i in range(2, count)
    ]
    return (first + rest)[:count]


def call_asgi(
    app: Any, path: str, headers: list[tuple[bytes, bytes]], body: bytes, **scope: Any
) -> tuple[int, dict[str, str], bytes]:
    """One POST through an ASGI application, in-process: status, headers, body."""
    sent: list[dict[str, Any]] = []
    incoming = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive() -> dict[str, Any]:
        if incoming:
            return incoming.pop(0)
        await asyncio.Event().wait()  # the client stays until answered
        raise AssertionError("unreachable")

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    full_scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [
            *([] if any(name == b"host" for name, _ in headers) else [(b"host", b"testserver")]),
            *headers,
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
        **scope,
    }
    async_to_sync(app)(full_scope, receive, send)
    start, *rest = sent
    names = [name.decode("latin1").lower() for name, _ in start["headers"]]
    assert len(names) == len(set(names)), f"a header sent twice: {names}"
    answer = {name.decode("latin1"): value.decode("latin1") for name, value in start["headers"]}
    return start["status"], answer, b"".join(message.get("body", b"") for message in rest)


def must_not_reach_django(scope: Any, receive: Any, send: Any) -> Any:
    raise AssertionError(f"{scope['method']} {scope['path']} went to Django, not the route")


class RouteClient(APIClient):
    """A test client whose batch POSTs go through the ASGI route (and only the route: it
    fails the test if one falls through to Django), running the ingest in the test's
    thread and transaction as Django's test client runs views."""

    def generic(  # type: ignore[override]
        self,
        method: str,
        path: str,
        data: Any = "",
        content_type: str = "application/octet-stream",
        secure: bool = False,
        **extra: Any,
    ) -> Any:
        if method != "POST" or not ingest_route.INGEST_PATH.fullmatch(path):
            return super().generic(method, path, data, content_type, secure, **extra)
        body = data if isinstance(data, bytes) else str(data).encode()
        headers = [(b"content-length", str(len(body)).encode())]
        if content_type:
            headers.append((b"content-type", content_type.encode()))
        credentials = getattr(self, "_credentials", {})  # APIClient.credentials()
        for key, value in {**credentials, **extra}.items():
            if key.startswith("HTTP_"):
                headers.append((key[5:].lower().replace("_", "-").encode(), value.encode()))
        route = ingest_route.RecordingIngestRoute(must_not_reach_django)
        status, answer_headers, content = call_asgi(route, path, headers, body)
        response = HttpResponse(content, status=status)
        for name, value in answer_headers.items():
            response[name] = value
        response.json = lambda: orjson.loads(content)  # type: ignore[attr-defined]
        return response


async def ingest_in_this_thread(meta: dict[str, Any], body: bytes, run_id: str) -> Any:
    return await sync_to_async(api.ingest)(meta, io.BytesIO(body), run_id)


@pytest.fixture(params=["django", "asgi-route"])
def route(request: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    if request.param == "asgi-route":
        monkeypatch.setattr(ingest_route, "run_ingest", ingest_in_this_thread)
    yield request.param


def routed(tenant: Tenant, route: str) -> Tenant:
    if route == "asgi-route":
        client = RouteClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {tenant.raw_key}")
        tenant.client = client
    return tenant


@pytest.fixture
def tenant(db: None, route: str) -> Tenant:
    return routed(make_tenant("acme"), route)


@pytest.fixture
def other_tenant(db: None, route: str) -> Tenant:
    return routed(make_tenant("globex"), route)


@pytest.fixture
def run(tenant: Tenant) -> Run:
    return started_at_ms(services.run_create(space=tenant.space), START)


def post_batch(tenant: Tenant, run: Run, body: Any, **extra: Any) -> Any:
    return tenant.client.post(f"/v1/runs/{run.id}/recording/events", body, format="json", **extra)


def post_bytes(tenant: Tenant, run: Run, body: bytes, **headers: str) -> Any:
    extra: dict[str, Any] = {f"HTTP_{k.upper().replace('-', '_')}": v for k, v in headers.items()}
    path = f"/v1/runs/{run.id}/recording/events"
    # Django sends bytes as they are; the stubs only know str.
    return tenant.client.generic("POST", path, body, "application/json", **extra)  # type: ignore[arg-type]


def stored_files(run: Run | None = None) -> list[str]:
    """Batch files in storage, of one run's recordings or of all."""
    recording_ids = set(
        Recording.objects.filter(**({"run": run} if run else {})).values_list("id", flat=True)
    )
    found = []
    for folder, _, files in os.walk(django_settings.MEDIA_ROOT):
        if "batches" in folder and any(rec in folder for rec in recording_ids):
            found += [os.path.join(folder, name) for name in files]
    return sorted(found)


def test_the_first_batch_starts_a_recording_and_is_stored_once(tenant: Tenant, run: Run) -> None:
    body = {"target": "page-1", "seq": 0, "events": rrweb_events(3)}
    first = post_batch(tenant, run, body)
    assert first.status_code == 201
    assert first.json()["duplicate"] is False
    assert first.json()["eventCount"] == 3
    again = post_batch(tenant, run, body)
    assert again.status_code == 200
    assert again.json()["duplicate"] is True
    recording = Recording.objects.get(run=run)
    assert recording.status == "recording"
    batch = RecordingBatch.objects.get(recording=recording)
    assert (batch.target, batch.seq, batch.event_count) == ("page-1", 0, 3)
    assert (batch.first_timestamp, batch.last_timestamp) == (T0, T0 + 20)
    with batch_file(batch) as stored:
        assert orjson.loads(gzip.decompress(stored.read())) == body["events"]


class batch_file:
    def __init__(self, batch: RecordingBatch) -> None:
        from django.core.files.storage import default_storage

        self.file = default_storage.open(batch.path, "rb")

    def __enter__(self) -> Any:
        return self.file

    def __exit__(self, *exc: object) -> None:
        self.file.close()


def test_the_same_seq_with_other_content_is_a_conflict(tenant: Tenant, run: Run) -> None:
    post_batch(tenant, run, {"target": "page-1", "seq": 0, "events": rrweb_events(3)})
    files_before = stored_files()
    response = post_batch(tenant, run, {"target": "page-1", "seq": 0, "events": rrweb_events(2)})
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "recording.batch_conflict"
    assert RecordingBatch.objects.count() == 1
    assert stored_files() == files_before


def test_batches_out_of_order_and_per_target_are_all_kept(tenant: Tenant, run: Run) -> None:
    for target, seq in [("page-1", 2), ("page-1", 0), ("page-2", 0), ("page-1", 5)]:
        response = post_batch(
            tenant, run, {"target": target, "seq": seq, "events": rrweb_events(2, T0 + seq)}
        )
        assert response.status_code == 201
    stored = list(RecordingBatch.objects.order_by("target", "seq").values_list("target", "seq"))
    assert stored == [("page-1", 0), ("page-1", 2), ("page-1", 5), ("page-2", 0)]


def test_a_gzip_batch_is_accepted(tenant: Tenant, run: Run) -> None:
    body = gzip.compress(orjson.dumps({"target": "t", "seq": 1, "events": rrweb_events()}))
    response = post_bytes(tenant, run, body, content_encoding="gzip")
    assert response.status_code == 201


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"target": "t", "seq": 0, "events": []}, "non-empty"),
        ({"target": "t", "seq": 0, "events": "x"}, "non-empty"),
        ({"target": "t", "seq": 0, "events": [1]}, "object"),
        ({"target": "t", "seq": 0, "events": [{"type": 9, "timestamp": T0, "data": {}}]}, "type"),
        ({"target": "t", "seq": 0, "events": [{"type": "2", "timestamp": T0, "data": {}}]}, "type"),
        ({"target": "t", "seq": 0, "events": [{"type": 2, "timestamp": "x", "data": {}}]}, "times"),
        ({"target": "t", "seq": 0, "events": [{"type": 2, "timestamp": T0, "data": []}]}, "data"),
        ({"target": "t", "seq": 0, "events": [{"type": 2, "timestamp": T0}]}, "data"),
        ({"target": "t", "seq": -1, "events": rrweb_events()}, "seq"),
        ({"target": "t", "seq": "1", "events": rrweb_events()}, "seq"),
        ({"target": "../etc", "seq": 0, "events": rrweb_events()}, "target"),
        ({"target": 5, "seq": 0, "events": rrweb_events()}, "target"),
        ({"target": "t", "seq": 0, "events": rrweb_events(), "extra": 1}, "extra"),
    ],
)  # fmt: skip
def test_a_malformed_batch_is_refused_and_writes_nothing(
    tenant: Tenant, run: Run, body: dict[str, Any], fragment: str
) -> None:
    response = post_batch(tenant, run, body)
    assert response.status_code == 422
    assert fragment in response.json()["error"]["message"]
    assert not Recording.objects.exists()
    assert not RecordingBatch.objects.exists()


def test_malformed_json_and_unknown_encodings_are_refused(tenant: Tenant, run: Run) -> None:
    assert post_bytes(tenant, run, b"{oops").status_code == 400
    response = post_bytes(tenant, run, b"{}", content_encoding="deflate")
    assert response.status_code == 415
    assert not RecordingBatch.objects.exists()


def test_a_compressed_bomb_is_refused_before_it_inflates_past_the_limit(
    tenant: Tenant, run: Run, settings: Any
) -> None:
    settings.BCTRL_RECORDING_MAX_INFLATED_BYTES = 2 * 1024 * 1024
    padding = "a" * (50 * 1024 * 1024)
    body = gzip.compress(orjson.dumps({"target": "t", "seq": 0, "events": [], "pad": padding}))
    assert len(body) < settings.BCTRL_RECORDING_MAX_BATCH_BYTES
    response = post_bytes(tenant, run, body, content_encoding="gzip")
    assert response.status_code == 413
    assert not Recording.objects.exists()


def test_an_oversized_event_or_batch_is_refused(tenant: Tenant, run: Run, settings: Any) -> None:
    settings.BCTRL_RECORDING_MAX_EVENT_BYTES = 5_000
    big = rrweb_events(2)
    big[1]["data"]["blob"] = "x" * 10_000
    response = post_batch(tenant, run, {"target": "t", "seq": 0, "events": big})
    assert response.status_code == 413
    assert response.json()["error"]["details"] == {"index": 1}
    settings.BCTRL_RECORDING_MAX_EVENTS_PER_BATCH = 2
    response = post_batch(tenant, run, {"target": "t", "seq": 0, "events": rrweb_events(3)})
    assert response.status_code == 413
    settings.BCTRL_RECORDING_MAX_BATCH_BYTES = 1_000
    response = post_batch(tenant, run, {"target": "t", "seq": 0, "events": big})
    assert response.status_code == 413
    assert not RecordingBatch.objects.exists()
    assert stored_files() == []


def now_ms() -> int:
    return int(time.time() * 1000)


@pytest.mark.parametrize(
    "timestamp",
    [1, 1e300, 10**30, 2**63, "future", "before-the-run"],
    ids=["one", "1e300", "1e30", "2**63", "next-day", "before-the-run"],
)
def test_a_timestamp_outside_the_runs_time_is_refused_and_changes_nothing(
    tenant: Tenant, run: Run, timestamp: Any
) -> None:
    if timestamp == "future":
        timestamp = now_ms() + 24 * 3600 * 1000
    elif timestamp == "before-the-run":
        timestamp = START - 11 * 60 * 1000  # 11 minutes before: past the clock skew
    events = rrweb_events(3)
    events[2]["timestamp"] = timestamp
    response = post_batch(tenant, run, {"target": "t", "seq": 0, "events": events})
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert error["message"].startswith("events[2].timestamp ")
    assert error["details"]["field"] == "events[2].timestamp"
    assert not Recording.objects.exists()  # not even started
    assert stored_files() == []


def test_a_refused_timestamp_leaves_the_recording_taking_batches(tenant: Tenant, run: Run) -> None:
    assert (
        post_batch(tenant, run, {"target": "t", "seq": 0, "events": rrweb_events(3)}).status_code
        == 201
    )
    files = stored_files()
    for bad in [1, now_ms() + 24 * 3600 * 1000]:
        events = rrweb_events(3, T0 + 1_000)
        events[1]["timestamp"] = bad
        response = post_batch(tenant, run, {"target": "t", "seq": 1, "events": events})
        assert response.status_code == 422
        assert "events[1].timestamp" in response.json()["error"]["message"]
    recording = Recording.objects.get(run=run)
    assert (recording.status, recording.first_timestamp) == ("recording", T0)
    assert stored_files() == files
    # The next batch of the same page, an hour later, is taken as usual.
    later = {"target": "t", "seq": 1, "events": rrweb_events(3, T0 + 3600_000)}
    assert post_batch(tenant, run, later).status_code == 201
    assert Recording.objects.get(run=run).status == "recording"
    assert RecordingBatch.objects.count() == 2


def test_a_recorder_clock_a_few_minutes_off_is_allowed(tenant: Tenant, run: Run) -> None:
    behind = rrweb_events(3, START - 5 * 60 * 1000)
    assert post_batch(tenant, run, {"target": "t", "seq": 0, "events": behind}).status_code == 201
    just_started = services.run_create(space=tenant.space)
    ahead = rrweb_events(3, now_ms() + 5 * 60 * 1000)
    body = {"target": "t", "seq": 0, "events": ahead}
    assert post_batch(tenant, just_started, body).status_code == 201


@pytest.mark.parametrize("depth", [255, 300, 1024, 1100])
def test_a_batch_nested_too_deep_is_refused_with_400(tenant: Tenant, run: Run, depth: int) -> None:
    # The body object, its events and the event are 3 levels; data holds the others.
    nested = b'{"a":' * (depth - 3) + b"1" + b"}" * (depth - 3)
    body = b'{"target":"t","seq":0,"events":[{"type":3,"timestamp":%d,"data":%s}]}' % (T0, nested)
    response = post_bytes(tenant, run, body)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_json"
    assert not Recording.objects.exists()
    assert stored_files() == []


def test_a_batch_254_levels_deep_is_taken(tenant: Tenant, run: Run) -> None:
    nested = b'{"a":' * 251 + b"1" + b"}" * 251
    body = b'{"target":"t","seq":0,"events":[{"type":3,"timestamp":%d,"data":%s}]}' % (T0, nested)
    assert post_bytes(tenant, run, body).status_code == 201


def test_large_bodies_beyond_the_processs_slots_are_answered_503(
    tenant: Tenant, run: Run, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from runs.api import parsers

    settings.BCTRL_LARGE_BODIES_AT_ONCE = 1
    monkeypatch.setattr(parsers, "LARGE_BODY_BYTES", 2_000)
    monkeypatch.setattr(parsers, "LARGE_BODY_WAIT_S", 0.05)
    large = gzip.compress(
        orjson.dumps({"target": "t", "seq": 0, "events": rrweb_events(100)})
    )  # inflates past 2,000 bytes
    small = orjson.dumps({"target": "t", "seq": 1, "events": rrweb_events(3, T0 + 10)})
    with parsers.body_slot() as busy:
        busy.claim()  # another request holds the one slot
        response = post_bytes(tenant, run, large, content_encoding="gzip")
        assert response.status_code == 503
        assert response["Retry-After"] == "2"
        assert response.json()["error"]["code"] == "server.busy"
        assert not Recording.objects.exists()
        assert post_bytes(tenant, run, small).status_code == 201  # small ones go on
    assert post_bytes(tenant, run, large, content_encoding="gzip").status_code == 201
    assert RecordingBatch.objects.count() == 2


def test_batches_past_the_rate_are_429_and_store_nothing(
    tenant: Tenant, run: Run, settings: Any, rate_clock: float
) -> None:
    settings.BCTRL_RATE_INGEST_PER_KEY = "2/min"
    for seq in range(2):
        body = {"target": "t", "seq": seq, "events": rrweb_events(3, T0 + seq)}
        assert post_batch(tenant, run, body).status_code == 201
    response = post_batch(tenant, run, {"target": "t", "seq": 2, "events": rrweb_events()})
    assert response.status_code == 429
    assert response["Retry-After"] == "30"
    assert response.json()["error"] == {
        "code": "rate_limited",
        "message": "Too many rrweb batches: at most 2 a minute per API key. Retry in 30 s.",
        "details": {"retryAfter": 30},
    }
    assert RecordingBatch.objects.count() == 2
    # The address's own rate, whatever the key.
    settings.BCTRL_RATE_INGEST_PER_KEY = "off"
    settings.BCTRL_RATE_INGEST_PER_IP = "3/min"
    response = post_batch(tenant, run, {"target": "t", "seq": 2, "events": rrweb_events()})
    assert response.status_code == 429
    assert "per client address" in response.json()["error"]["message"]
    assert RecordingBatch.objects.count() == 2


def test_a_stopped_recording_takes_no_more_batches(tenant: Tenant, run: Run) -> None:
    post_batch(tenant, run, {"target": "t", "seq": 0, "events": rrweb_events()})
    services.run_stop(run=run)
    response = post_batch(tenant, run, {"target": "t", "seq": 1, "events": rrweb_events()})
    assert response.status_code == 409
    assert RecordingBatch.objects.count() == 1


def test_a_stopped_recording_answers_409_even_if_the_run_is_active(
    tenant: Tenant, run: Run
) -> None:
    from recordings.services import recording_stop

    post_batch(tenant, run, {"target": "t", "seq": 0, "events": rrweb_events()})
    recording_stop(recording=Recording.objects.get(run=run))
    response = post_batch(tenant, run, {"target": "t", "seq": 1, "events": rrweb_events()})
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "recording.not_recording"


def test_capture_stops_at_two_hours(tenant: Tenant, run: Run) -> None:
    post_batch(tenant, run, {"target": "t", "seq": 0, "events": rrweb_events(2)})
    late = rrweb_events(3, start=T0 + 2 * 60 * 60 * 1000 + 5_000)[2:]
    response = post_batch(tenant, run, {"target": "t", "seq": 1, "events": late})
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "recording.limit_reached"
    recording = Recording.objects.get(run=run)
    assert recording.status != "recording"
    assert "2 hours" in recording.failure_reason
    assert RecordingBatch.objects.count() == 1


def test_another_space_cannot_send_batches(other_tenant: Tenant, run: Run) -> None:
    response = post_batch(other_tenant, run, {"target": "t", "seq": 0, "events": rrweb_events()})
    assert response.status_code == 404
    assert not Recording.objects.exists()


def test_stopping_the_run_stops_its_recording(tenant: Tenant, run: Run) -> None:
    post_batch(tenant, run, {"target": "t", "seq": 0, "events": rrweb_events()})
    assert run_recording_summary(run)["status"] == "processing"
    services.run_stop(run=run)
    recording = Recording.objects.get(run=run)
    assert recording.status in ("preparing", "processing", "ready", "failed")
    assert recording.stopped_at is not None
    assert recording.expires_at is not None
    body = tenant.client.get(f"/v1/runs/{run.id}").json()
    assert body["recording"]["id"] == recording.id


@pytest.mark.parametrize("route", ["django"], indirect=True)
def test_a_run_without_recording_reports_not_available(tenant: Tenant, run: Run) -> None:
    body = tenant.client.get(f"/v1/runs/{run.id}").json()
    assert body["recording"] == {"id": None, "status": "not_available", "durationMs": None}


@pytest.mark.parametrize("route", ["django"], indirect=True)
@pytest.mark.django_db(transaction=True)
async def test_each_batch_is_published_to_the_runs_group(tenant: Tenant) -> None:
    from asgiref.sync import sync_to_async
    from django.db import connections

    from recordings.services import batch_ingest
    from runs.live import run_change_listener

    run = await sync_to_async(services.run_create)(space=tenant.space)
    await sync_to_async(started_at_ms)(run, START)
    async with run_change_listener(run.id) as listener:
        await sync_to_async(batch_ingest)(run=run, target="t", seq=0, events=rrweb_events())
        assert await listener.wait(5) is True
    await sync_to_async(connections.close_all)()


def test_the_recording_keeps_its_first_timestamp_for_the_two_hour_limit(
    tenant: Tenant, run: Run
) -> None:
    post_batch(tenant, run, {"target": "t", "seq": 1, "events": rrweb_events(2, T0 + 60_000)})
    assert Recording.objects.get(run=run).first_timestamp == T0 + 60_000
    # An earlier batch arriving late moves the start back; a later one does not.
    post_batch(tenant, run, {"target": "t", "seq": 0, "events": rrweb_events(2)})
    post_batch(tenant, run, {"target": "u", "seq": 0, "events": rrweb_events(2, T0 + 90_000)})
    assert Recording.objects.get(run=run).first_timestamp == T0
    # The limit counts from the earliest event of any batch, of any target.
    limit = 2 * 60 * 60 * 1000
    inside = rrweb_events(3, start=T0 + limit - 40)[2:]
    assert post_batch(tenant, run, {"target": "u", "seq": 1, "events": inside}).status_code == 201
    late = rrweb_events(3, start=T0 + limit - 10)[2:]
    response = post_batch(tenant, run, {"target": "u", "seq": 2, "events": late})
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "recording.limit_reached"
    assert RecordingBatch.objects.count() == 4
    assert stored_files(run) and len(stored_files(run)) == 4


def test_a_batch_costs_three_queries_once_the_recording_runs(tenant: Tenant, run: Run) -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    post_batch(tenant, run, {"target": "t", "seq": 0, "events": rrweb_events()})
    with CaptureQueriesContext(connection) as captured:
        response = post_batch(tenant, run, {"target": "t", "seq": 1, "events": rrweb_events()})
    assert response.status_code == 201
    statements = [
        q["sql"].split()[0].upper()
        for q in captured.captured_queries
        if "SAVEPOINT" not in q["sql"].upper()
    ]
    # The API key with the run and its recording; the recording's conditional UPDATE; the
    # batch's INSERT (plus BEGIN/COMMIT outside a test's transaction).
    assert statements == ["SELECT", "UPDATE", "INSERT"]


def test_a_duplicate_is_found_by_the_constraint_and_leaves_no_file(
    tenant: Tenant, run: Run
) -> None:
    body = {"target": "t", "seq": 0, "events": rrweb_events()}
    post_batch(tenant, run, body)
    files = stored_files(run)
    for _ in range(2):
        again = post_batch(tenant, run, body)
        assert again.status_code == 200 and again.json()["duplicate"] is True
    assert stored_files(run) == files
    assert RecordingBatch.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_batch_notices_reach_listeners_at_most_every_quarter_second(tenant: Tenant) -> None:
    from unittest import mock

    from runs import live

    run = started_at_ms(services.run_create(space=tenant.space), START)
    layer = mock.MagicMock()
    sends: list[str] = []

    async def group_send(group: str, message: dict[str, Any]) -> None:
        sends.append(message["kind"])

    layer.group_send = group_send
    with mock.patch.object(live, "get_channel_layer", return_value=layer):
        for seq in range(3):
            body = {"target": "t", "seq": seq, "events": rrweb_events(2, T0 + seq)}
            assert post_batch(tenant, run, body).status_code == 201
        assert sends.count("recording.batch") == 1  # 3 batches within 0.25 s
        assert sends.count("recording") == 1  # the start: not thinned out
        live._last_sent.clear()
        body = {"target": "t", "seq": 3, "events": rrweb_events(2, T0 + 3)}
        assert post_batch(tenant, run, body).status_code == 201
        assert sends.count("recording.batch") == 2


@pytest.mark.parametrize("route", ["django"], indirect=True)
@pytest.mark.django_db(transaction=True)
def test_an_asgi_server_takes_batches_of_several_runs_in_parallel(
    asgi_server: str, tenant: Tenant
) -> None:
    """Through a real daphne process: the async view and its ingest threads."""
    import threading
    from http.client import HTTPConnection
    from urllib.parse import urlparse

    runs = [started_at_ms(services.run_create(space=tenant.space), START) for _ in range(4)]
    server = urlparse(asgi_server)
    results: list[tuple[str, int, int]] = []
    lock = threading.Lock()

    def client(run: Run) -> None:
        conn = HTTPConnection(server.hostname or "127.0.0.1", server.port, timeout=30)
        headers = {
            "Authorization": f"Bearer {tenant.raw_key}",
            "Content-Type": "application/json",
            "Content-Encoding": "gzip",
        }
        for seq in [0, 1, 2, 1]:  # the last one again: a duplicate
            body = orjson.dumps({"target": "t", "seq": seq, "events": rrweb_events(5, T0 + seq)})
            path = f"/v1/runs/{run.id}/recording/events"
            conn.request("POST", path, body=gzip.compress(body), headers=headers)
            response = conn.getresponse()
            response.read()
            with lock:
                results.append((run.id, seq, response.status))
        conn.request("POST", f"/v1/runs/{run.id}/recording/events", body=b"{}", headers={})
        unauthenticated = conn.getresponse()
        unauthenticated.read()
        with lock:
            results.append((run.id, -1, unauthenticated.status))
        conn.close()

    threads = [threading.Thread(target=client, args=(run,)) for run in runs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(status for _, _, status in results) == sorted([201] * 12 + [200] * 4 + [401] * 4)
    for run in runs:
        recording = Recording.objects.get(run=run)
        assert list(recording.batches.order_by("seq").values_list("seq", flat=True)) == [0, 1, 2]
        assert recording.first_timestamp == T0
    # The server's route answers with the headers of the rest of the API, errors in JSON.
    conn = HTTPConnection(server.hostname or "127.0.0.1", server.port, timeout=30)
    body = orjson.dumps({"target": "t", "seq": 9, "events": rrweb_events()})
    conn.request(
        "POST",
        f"/v1/runs/{runs[0].id}/recording/events",
        body=body,
        headers={"Authorization": "Bearer bctrl_sk_nope", "Content-Type": "application/json"},
    )
    refused = conn.getresponse()
    assert refused.status == 401
    assert orjson.loads(refused.read())["error"]["code"] == "unauthenticated"
    assert refused.getheader("Content-Type") == "application/json"
    assert refused.getheader("Content-Security-Policy", "").endswith("frame-ancestors 'none'")
    assert refused.getheader("X-Frame-Options") == "DENY"
    assert refused.getheader("X-Content-Type-Options") == "nosniff"
    assert refused.getheader("Referrer-Policy") == "same-origin"
    conn.close()


# --- the ASGI route (recordings/ingest_route.py) ---------------------------------------


def test_the_app_takes_ingest_posts_on_its_own_route() -> None:
    from bctrl_site.asgi import application

    http = application.application_mapping["http"]
    assert isinstance(http, ingest_route.RecordingIngestRoute)
    # The route adds what this chain adds to an answer; a middleware added or removed
    # sends every batch through Django until the route is reviewed against it.
    assert tuple(django_settings.MIDDLEWARE) == ingest_route.ROUTED_MIDDLEWARE


@pytest.mark.parametrize(
    ("scope", "headers", "overrides"),
    [
        ({}, [], {}),
        ({"scheme": "https"}, [], {"SECURE_HSTS_SECONDS": 3600}),
        (
            {},
            [(b"x-forwarded-proto", b"https")],
            {
                "SECURE_PROXY_SSL_HEADER": ("HTTP_X_FORWARDED_PROTO", "https"),
                "SECURE_HSTS_SECONDS": 60,
                "SECURE_HSTS_PRELOAD": True,
            },
        ),
    ],
    ids=["http", "https", "behind-a-proxy"],
)
def test_the_route_answers_with_the_headers_and_body_django_answers(
    db: None, settings: Any, scope: dict[str, Any], headers: list[Any], overrides: Any
) -> None:
    from django.core.handlers.asgi import ASGIHandler

    for name, value in overrides.items():
        setattr(settings, name, value)
    path = "/v1/runs/run_x/recording/events"
    request = [*headers, (b"content-type", b"application/json")]
    # A new handler: middleware reads its settings when it is loaded.
    through_django = call_asgi(ASGIHandler(), path, request, b"{}", **scope)
    through_route = call_asgi(
        ingest_route.RecordingIngestRoute(must_not_reach_django), path, request, b"{}", **scope
    )
    assert through_route == through_django
    status, answer, body = through_route
    assert status == 401
    assert orjson.loads(body)["error"]["code"] == "unauthenticated"
    assert answer["Content-Type"] == "application/json"
    assert answer["Content-Security-Policy"].endswith("frame-ancestors 'none'")
    assert answer["X-Frame-Options"] == "DENY"
    assert answer["X-Content-Type-Options"] == "nosniff"
    assert answer["Referrer-Policy"] == "same-origin"
    assert ("Strict-Transport-Security" in answer) == bool(scope or headers)


def test_requests_that_a_middleware_answers_go_through_django(db: None, settings: Any) -> None:
    from django.core.handlers.asgi import ASGIHandler

    app = ingest_route.RecordingIngestRoute(ASGIHandler())
    path = "/v1/runs/run_x/recording/events"
    status, _, body = call_asgi(app, path, [(b"host", b"evil.example")], b"{}")
    assert status == 400  # DisallowedHost, in the API's error shape
    assert orjson.loads(body)["error"]["code"] == "bad_request"
    settings.SECURE_SSL_REDIRECT = True
    app = ingest_route.RecordingIngestRoute(ASGIHandler())
    status, answer, _ = call_asgi(app, path, [], b"{}")
    assert (status, answer["Location"]) == (301, f"https://testserver{path}")
    settings.SECURE_SSL_REDIRECT = False
    settings.MIDDLEWARE = [*settings.MIDDLEWARE, "django.middleware.gzip.GZipMiddleware"]
    assert ingest_route.routed_meta({"path": path, "headers": [(b"host", b"testserver")]}) is None


def test_an_unexpected_error_is_a_json_500_with_the_security_headers(
    route: str, tenant: Tenant, run: Run, monkeypatch: pytest.MonkeyPatch, caplog: Any
) -> None:
    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("the database went away")

    monkeypatch.setattr(api.services, "ingest_lookup", broken)
    if route == "django":
        tenant.client.raise_request_exception = False
    body = {"target": "t", "seq": 0, "events": rrweb_events()}
    response = post_batch(tenant, run, body)
    assert response.status_code == 500
    assert response.json() == {
        "error": {"code": "internal_error", "message": "Internal server error."}
    }
    assert "frame-ancestors 'none'" in response["Content-Security-Policy"]
    assert response["X-Content-Type-Options"] == "nosniff"
    assert "the database went away" in caplog.text  # the traceback is logged, not sent


@pytest.mark.parametrize("route", ["asgi-route"], indirect=True)
def test_the_route_keeps_no_more_of_a_body_than_the_limit(
    tenant: Tenant, run: Run, settings: Any
) -> None:
    settings.BCTRL_RECORDING_MAX_BATCH_BYTES = 1_000
    chunks = [b"x" * 600] * 50  # 30 KB in 50 messages, no Content-Length

    async def take(limit: int) -> bytes | None:
        incoming = [{"type": "http.request", "body": c, "more_body": True} for c in chunks]
        incoming.append({"type": "http.request", "body": b"", "more_body": False})

        async def receive() -> dict[str, Any]:
            return incoming.pop(0)

        return await ingest_route.read_request_body(receive, limit)

    kept = async_to_sync(take)(1_000)
    assert kept is not None and len(kept) == 1_001
    body = orjson.dumps({"target": "t", "seq": 0, "events": rrweb_events()}) + b" " * 5_000
    response = post_bytes(tenant, run, body)
    assert response.status_code == 413
    assert not RecordingBatch.objects.exists()
    # Authentication still comes first, as in Django's view.
    anonymous = RouteClient()
    response = anonymous.generic("POST", f"/v1/runs/{run.id}/recording/events", body)
    assert response.status_code == 401


def test_a_client_that_leaves_before_its_body_is_read_gets_no_answer() -> None:
    sent: list[Any] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.disconnect"}

    async def send(message: Any) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/v1/runs/run_x/recording/events",
        "headers": [(b"host", b"testserver")],
    }
    async_to_sync(ingest_route.RecordingIngestRoute(must_not_reach_django))(scope, receive, send)
    assert sent == []
