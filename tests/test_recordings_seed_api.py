"""The recordings API of seed 004 (/api/v1/…): envelopes, status codes, tenancy, archive,
recovery, soft delete and the signed download URL."""

import gzip
import json
import time
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlparse

import orjson
import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage, storages
from django.db import connection
from django.test import AsyncClient, Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from recordings.models import Recording, RecordingBatch, RecordingTarget
from recordings.rrweb import batch_path
from recordings.seed_api import API_STATUS, api_status
from runs import services as run_services
from runs.models import Run, Runtime
from runtimes.services import runtime_create

from .conftest import Tenant

T0 = 1_767_695_400_000  # 2026-01-06T10:30:00Z in ms


@pytest.fixture(autouse=True)
def _cold_root(tmp_path: Path, settings: Any) -> Path:
    """A cold tier of its own per test, next to the test's hot folder."""
    root = tmp_path / "cold"
    settings.STORAGES = {
        **settings.STORAGES,
        "cold": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(root), "base_url": None},
        },
    }
    return root


# --- Builders (also used by test_browser_run_compat.py) ----------------------------------


def rrweb_chunk(start: int, count: int) -> list[dict[str, Any]]:
    """A chunk as processing writes it: Meta, FullSnapshot, then incremental events."""
    events: list[dict[str, Any]] = [
        {
            "type": 4,
            "timestamp": start,
            "data": {"href": "https://example.com/", "width": 1280, "height": 720},
        },
        {
            "type": 2,
            "timestamp": start,
            "data": {
                "node": {"type": 0, "childNodes": [], "id": 1},
                "initialOffset": {"left": 0, "top": 0},
            },
        },
    ]
    for index in range(count):
        events.append(
            {
                "type": 3,
                "timestamp": start + 10 * (index + 1),
                "data": {
                    "source": 1,
                    "positions": [{"x": index, "y": 2, "id": 1, "timeOffset": 0}],
                },
            }
        )
    return events


def make_room(tenant: Tenant, name: str = "CS101 Lecture", *, active: bool = True) -> Runtime:
    room = runtime_create(space=tenant.space, name=name)
    if active:
        run_services.run_create(space=tenant.space, runtime=room)
    return room


def write_target(recording: Recording, target: str, chunks: list[list[dict[str, Any]]]) -> None:
    """A processed target file: one gzip member per chunk, with its index."""
    blob, index, offset = b"", [], 0
    for chunk in chunks:
        member = gzip.compress(orjson.dumps(chunk))
        index.append(
            {
                "start": chunk[0]["timestamp"] if chunk else None,
                "end": chunk[-1]["timestamp"] if chunk else None,
                "offset": offset,
                "length": len(member),
                "events": len(chunk),
            }
        )
        blob += member
        offset += len(member)
    path = default_storage.save(
        f"recordings/{recording.id}/targets/{target}.json.gz", ContentFile(blob)
    )
    RecordingTarget.objects.create(
        recording=recording,
        target=target,
        start_timestamp=chunks[0][0]["timestamp"],
        end_timestamp=max(event["timestamp"] for chunk in chunks for event in chunk),
        event_count=sum(len(chunk) for chunk in chunks),
        size_bytes=len(blob),
        path=path,
        index={"chunks": index, "markers": [], "inactivity": []},
    )


def write_batch(recording: Recording, target: str, seq: int) -> RecordingBatch:
    body = gzip.compress(orjson.dumps(rrweb_chunk(T0, 1)))
    path = default_storage.save(batch_path(recording.id, target, seq, "ab" * 32), ContentFile(body))
    return RecordingBatch.objects.create(
        recording=recording,
        target=target,
        seq=seq,
        event_count=3,
        first_timestamp=T0,
        last_timestamp=T0 + 10,
        raw_bytes=100,
        stored_bytes=len(body),
        sha256="ab" * 32,
        path=path,
    )


TARGETS = {
    "page-1": [rrweb_chunk(T0, 3), rrweb_chunk(T0 + 1000, 2)],
    "page-2": [rrweb_chunk(T0 + 500, 4)],
}


def expected_events(targets: dict[str, list[list[dict[str, Any]]]]) -> dict[str, Any]:
    return {
        target: [event for chunk in chunks for event in chunk] for target, chunks in targets.items()
    }


def make_recording(
    tenant: Tenant,
    *,
    room: Runtime | None = None,
    run: Run | None = None,
    status: str = Recording.Status.READY,
    targets: dict[str, list[list[dict[str, Any]]]] | None = None,
    duration_ms: int = 1_800_000,
    batches: int = 0,
) -> Recording:
    if run is None:
        room = room or make_room(tenant, active=False)
        run = Run.objects.create(space=tenant.space, runtime=room, status=Run.Status.COMPLETED)
    now = timezone.now()
    recording = Recording.objects.create(
        space=tenant.space,
        run=run,
        status=status,
        started_at=now - timedelta(minutes=30),
        stopped_at=None if status == Recording.Status.RECORDING else now,
        duration_ms=duration_ms if status in ("ready", "archived") else None,
        size_bytes=524_288,
    )
    for target, chunks in (targets or {}).items():
        write_target(recording, target, chunks)
    for seq in range(batches):
        write_batch(recording, "page-1", seq)
    return recording


def anonymous_get(url: str) -> Any:
    return Client().get(url)


def download(tenant: Tenant, recording: Recording) -> tuple[dict[str, Any], Any]:
    response = tenant.client.get(f"/api/v1/recordings/{recording.id}/download")
    assert response.status_code == 200, response.content
    body = response.json()
    return body, anonymous_get(body["download_url"])


def streamed_json(response: Any) -> Any:
    assert response.streaming
    return json.loads(b"".join(response.streaming_content))


def assert_error(response: Any, status: int, code: str | None = None) -> None:
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}
    assert {"code", "message"} <= set(body["error"])
    if code is not None:
        assert body["error"]["code"] == code


# --- Auth and errors ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/api/v1/recordings"),
        ("get", "/api/v1/recordings/rec_x"),
        ("get", "/api/v1/recordings/rec_x/download"),
        ("post", "/api/v1/rooms/rt_x/recordings/start"),
        ("post", "/api/v1/rooms/rt_x/recordings/stop"),
        ("post", "/api/v1/rooms/rt_x/recordings/sync"),
        ("post", "/api/v1/recordings/rec_x/archive"),
        ("post", "/api/v1/recordings/rec_x/recover"),
        ("delete", "/api/v1/recordings/rec_x"),
    ],
)
def test_every_endpoint_needs_the_api_key(tenant: Tenant, method: str, path: str) -> None:
    response = getattr(APIClient(), method)(path)
    assert_error(response, 401, "unauthenticated")


def test_an_unknown_path_is_a_json_404(tenant: Tenant) -> None:
    assert_error(tenant.client.get("/api/v1/nothing-here"), 404, "not_found")


# --- Start, stop, sync --------------------------------------------------------------------


def test_start_opens_a_recording_of_the_rooms_active_run(tenant: Tenant) -> None:
    room = make_room(tenant)
    response = tenant.client.post(f"/api/v1/rooms/{room.id}/recordings/start")
    assert response.status_code == 201
    body = response.json()
    assert set(body) == {"data"}
    data = body["data"]
    assert set(data) == {"id", "room_id", "status", "started_at"}
    assert data["room_id"] == room.id
    assert data["status"] == "recording"
    assert data["started_at"].endswith("Z")
    recording = Recording.objects.get(pk=data["id"])
    assert recording.run.runtime_id == room.id
    assert recording.space == tenant.space


def test_start_twice_is_a_conflict(tenant: Tenant) -> None:
    room = make_room(tenant)
    assert tenant.client.post(f"/api/v1/rooms/{room.id}/recordings/start").status_code == 201
    response = tenant.client.post(f"/api/v1/rooms/{room.id}/recordings/start")
    assert_error(response, 409, "recording.already_recording")
    assert Recording.objects.count() == 1


def test_start_without_an_active_run_is_a_conflict(tenant: Tenant) -> None:
    room = make_room(tenant, active=False)
    response = tenant.client.post(f"/api/v1/rooms/{room.id}/recordings/start")
    assert_error(response, 409, "room.no_active_run")
    assert "no active run" in response.json()["error"]["message"]
    assert not Recording.objects.exists()


def test_stop_answers_processing_and_queues_processing(
    tenant: Tenant, monkeypatch: pytest.MonkeyPatch, django_capture_on_commit_callbacks: Any
) -> None:
    queued: list[tuple[object, ...]] = []
    monkeypatch.setattr(
        "recordings.tasks.process_recording.delay", lambda *args: queued.append(args)
    )
    room = make_room(tenant)
    started = tenant.client.post(f"/api/v1/rooms/{room.id}/recordings/start").json()["data"]
    with django_capture_on_commit_callbacks(execute=True):
        response = tenant.client.post(f"/api/v1/rooms/{room.id}/recordings/stop")
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"data"}
    assert set(body["data"]) == {"id", "room_id", "status", "stopped_at"}
    assert body["data"]["id"] == started["id"]
    assert body["data"]["room_id"] == room.id
    assert body["data"]["status"] == "processing"
    assert body["data"]["stopped_at"].endswith("Z")
    assert Recording.objects.get(pk=started["id"]).status == Recording.Status.PREPARING
    assert queued == [(started["id"],)]


def test_stop_without_an_active_recording_is_404(tenant: Tenant) -> None:
    room = make_room(tenant)
    assert_error(tenant.client.post(f"/api/v1/rooms/{room.id}/recordings/stop"), 404)
    tenant.client.post(f"/api/v1/rooms/{room.id}/recordings/start")
    assert tenant.client.post(f"/api/v1/rooms/{room.id}/recordings/stop").status_code == 200
    response = tenant.client.post(f"/api/v1/rooms/{room.id}/recordings/stop")
    assert_error(response, 404, "recording.not_recording")


def test_a_room_can_be_recorded_again_after_stop(tenant: Tenant) -> None:
    room = make_room(tenant)
    first = tenant.client.post(f"/api/v1/rooms/{room.id}/recordings/start").json()["data"]
    tenant.client.post(f"/api/v1/rooms/{room.id}/recordings/stop")
    again = tenant.client.post(f"/api/v1/rooms/{room.id}/recordings/start")
    assert again.status_code == 201
    assert again.json()["data"]["id"] != first["id"]


def test_sync_without_an_upstream_account_says_how_to_set_one(tenant: Tenant) -> None:
    room = make_room(tenant)
    response = tenant.client.post(f"/api/v1/rooms/{room.id}/recordings/sync")
    assert_error(response, 409, "upstream.not_configured")
    assert f"PUT /v1/spaces/{tenant.space.id}/upstream" in response.json()["error"]["message"]


# --- List -----------------------------------------------------------------------------------


def test_list_is_newest_first_with_meta(tenant: Tenant) -> None:
    room = make_room(tenant, active=False)
    made = [make_recording(tenant, room=room) for _ in range(3)]
    response = tenant.client.get("/api/v1/recordings")
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"data", "meta"}
    assert body["meta"] == {"total": 3, "limit": 20, "offset": 0}
    assert [item["id"] for item in body["data"]] == [r.id for r in reversed(made)]
    item = body["data"][0]
    assert set(item) == {"id", "room_id", "status", "duration_seconds", "size_bytes", "created_at"}
    assert item["room_id"] == room.id
    assert item["status"] == "ready"
    assert item["duration_seconds"] == 1800
    assert item["size_bytes"] == 524_288
    assert item["created_at"].endswith("Z")


def test_list_pages_with_limit_and_offset(tenant: Tenant) -> None:
    room = make_room(tenant, active=False)
    made = [make_recording(tenant, room=room) for _ in range(5)][::-1]
    body = tenant.client.get("/api/v1/recordings?limit=2&offset=1").json()
    assert body["meta"] == {"total": 5, "limit": 2, "offset": 1}
    assert [item["id"] for item in body["data"]] == [made[1].id, made[2].id]
    past = tenant.client.get("/api/v1/recordings?limit=2&offset=10").json()
    assert past == {"data": [], "meta": {"total": 5, "limit": 2, "offset": 10}}
    assert tenant.client.get("/api/v1/recordings?limit=100").status_code == 200
    zero = tenant.client.get("/api/v1/recordings?limit=0").json()
    assert zero["data"] == [] and zero["meta"]["total"] == 5


@pytest.mark.parametrize(
    "query", ["limit=abc", "limit=-1", "limit=101", "offset=-5", "offset=1.5", "limit=%C2%B2"]
)
def test_list_refuses_bad_paging(tenant: Tenant, query: str) -> None:
    assert_error(tenant.client.get(f"/api/v1/recordings?{query}"), 400, "invalid_parameter")


def test_list_maps_statuses_and_hides_deleted_and_expired(tenant: Tenant) -> None:
    room = make_room(tenant, active=False)
    for status in Recording.Status:
        make_recording(tenant, room=room, status=status)
    body = tenant.client.get("/api/v1/recordings").json()
    assert body["meta"]["total"] == 6
    assert sorted(item["status"] for item in body["data"]) == sorted(
        ["recording", "processing", "processing", "ready", "archived", "failed"]
    )


def test_the_status_mapping_of_this_api() -> None:
    assert {str(key): value for key, value in API_STATUS.items()} == {
        "recording": "recording",
        "preparing": "processing",
        "processing": "processing",
        "ready": "ready",
        "archived": "archived",
        "failed": "failed",
    }
    assert api_status(Recording(status="preparing")) == "processing"


def test_list_never_shows_another_spaces_recordings(tenant: Tenant, other_tenant: Tenant) -> None:
    mine = make_recording(tenant)
    make_recording(other_tenant)
    body = tenant.client.get("/api/v1/recordings").json()
    assert [item["id"] for item in body["data"]] == [mine.id]
    assert body["meta"]["total"] == 1


def test_the_list_query_count_does_not_grow_with_the_page(tenant: Tenant) -> None:
    room = make_room(tenant, active=False)
    make_recording(tenant, room=room)
    tenant.client.get("/api/v1/recordings")  # the key's last_used_at is written once a minute
    with CaptureQueriesContext(connection) as one:
        assert len(tenant.client.get("/api/v1/recordings").json()["data"]) == 1
    for _ in range(9):
        make_recording(tenant, room=make_room(tenant, active=False))
    with CaptureQueriesContext(connection) as ten:
        assert len(tenant.client.get("/api/v1/recordings").json()["data"]) == 10
    assert len(ten.captured_queries) == len(one.captured_queries) == 3  # key, count, page


# --- Get ------------------------------------------------------------------------------------


def test_get_includes_the_room(tenant: Tenant) -> None:
    room = make_room(tenant, "CS101 Lecture", active=False)
    recording = make_recording(tenant, room=room)
    response = tenant.client.get(f"/api/v1/recordings/{recording.id}")
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"data"}
    data = body["data"]
    assert set(data) == {
        "id",
        "room_id",
        "room",
        "status",
        "duration_seconds",
        "size_bytes",
        "started_at",
        "stopped_at",
    }
    assert data["id"] == recording.id
    assert data["room_id"] == room.id
    assert data["room"] == {"id": room.id, "name": "CS101 Lecture"}
    assert data["status"] == "ready"
    assert data["duration_seconds"] == 1800
    assert data["size_bytes"] == 524_288
    assert data["started_at"].endswith("Z") and data["stopped_at"].endswith("Z")


def test_get_of_a_run_without_a_room(tenant: Tenant) -> None:
    run = Run.objects.create(space=tenant.space, status=Run.Status.COMPLETED)
    recording = make_recording(tenant, run=run, status=Recording.Status.PREPARING)
    data = tenant.client.get(f"/api/v1/recordings/{recording.id}").json()["data"]
    assert data["room_id"] is None
    assert data["room"] is None
    assert data["status"] == "processing"
    listed = tenant.client.get("/api/v1/recordings").json()["data"]
    assert listed[0]["room_id"] is None


def test_get_of_an_unknown_recording_is_404(tenant: Tenant) -> None:
    assert_error(tenant.client.get("/api/v1/recordings/rec_nope"), 404, "not_found")


# --- Download and the signed URL ------------------------------------------------------------


def test_download_of_a_ready_recording(tenant: Tenant) -> None:
    recording = make_recording(tenant, targets=TARGETS)
    body, file_response = download(tenant, recording)
    assert set(body) == {
        "recording_id",
        "download_url",
        "status",
        "duration",
        "file_size",
        "provider",
    }
    assert body["recording_id"] == recording.id
    assert body["status"] == "ready"
    assert body["duration"] == 1800
    assert body["file_size"] == 524_288
    assert body["provider"] == "local"
    url = urlparse(body["download_url"])
    assert url.scheme == "http" and url.netloc == "testserver"
    assert url.path == f"/api/v1/recordings/{recording.id}/file"
    assert "token" in parse_qs(url.query)

    assert file_response.status_code == 200
    assert file_response["Content-Type"] == "application/json"
    assert file_response["Content-Disposition"] == f'attachment; filename="{recording.id}.json"'
    document = streamed_json(file_response)
    assert list(document) == ["recording_id", "duration", "events"]
    assert document["recording_id"] == recording.id
    assert document["duration"] == 1800
    assert document["events"] == expected_events(TARGETS)
    assert list(document["events"]) == ["page-1", "page-2"]


def test_the_signed_download_token_never_reaches_the_logs(tenant: Tenant, caplog: Any) -> None:
    import logging

    from bctrl_site.logging import LoggingAccessLog

    recording = make_recording(tenant, targets=TARGETS)
    body, _ = download(tenant, recording)
    url = urlparse(body["download_url"])
    token = parse_qs(url.query)["token"][0]
    with caplog.at_level(logging.INFO):
        # What daphne's access log (bctrl's, through logging) and Django's request log say.
        LoggingAccessLog()(
            "http",
            "complete",
            {"client": "127.0.0.1:5000", "method": "GET", "status": 200, "size": 9,
             "path": f"{url.path}?{url.query}&after=1"},
        )  # fmt: skip
        logging.getLogger("django.request").warning("Gone: %s?%s", url.path, url.query)
        assert anonymous_get(body["download_url"] + "x").status_code == 403
    assert token not in caplog.text
    assert token.split(".")[0] not in caplog.text
    assert f'"GET {url.path}?token=[redacted]&after=1" 200 9' in caplog.text
    assert f"Gone: {url.path}?token=[redacted]" in caplog.text


def test_download_leaves_out_unplayable_targets_and_handles_empty_chunks(tenant: Tenant) -> None:
    recording = make_recording(tenant, targets={"page-1": [rrweb_chunk(T0, 1), []]})
    RecordingTarget.objects.create(recording=recording, target="broken", playable=False)
    _, file_response = download(tenant, recording)
    assert streamed_json(file_response)["events"] == {"page-1": rrweb_chunk(T0, 1)}


def test_download_of_a_recording_without_targets(tenant: Tenant) -> None:
    recording = make_recording(tenant)
    _, file_response = download(tenant, recording)
    assert streamed_json(file_response) == {
        "recording_id": recording.id,
        "duration": 1800,
        "events": {},
    }


@pytest.mark.parametrize(
    ("status", "api"),
    [("preparing", "processing"), ("processing", "processing"), ("recording", "recording")],
)
def test_download_before_ready_is_202_with_the_processing_body(
    tenant: Tenant, status: str, api: str
) -> None:
    recording = make_recording(tenant, status=status)
    response = tenant.client.get(f"/api/v1/recordings/{recording.id}/download")
    assert response.status_code == 202
    body = response.json()
    assert set(body) == {"recording_id", "status", "message"}
    assert body["recording_id"] == recording.id
    assert body["status"] == api
    if api == "processing":
        assert body["message"] == "Recording is still being processed. Please try again later."


def test_download_of_a_failed_recording_is_a_conflict(tenant: Tenant) -> None:
    recording = make_recording(tenant, status=Recording.Status.FAILED)
    response = tenant.client.get(f"/api/v1/recordings/{recording.id}/download")
    assert_error(response, 409, "recording.failed")


def _with_token(url: str, token: str) -> str:
    return url.split("?")[0] + "?" + urlencode({"token": token})


def test_the_signed_url_refuses_tampering(tenant: Tenant) -> None:
    recording = make_recording(tenant, targets=TARGETS)
    other = make_recording(tenant, targets=TARGETS)
    url = tenant.client.get(f"/api/v1/recordings/{recording.id}/download").json()["download_url"]
    token = parse_qs(urlparse(url).query)["token"][0]
    assert_error(anonymous_get(url.split("?")[0]), 403, "forbidden")
    assert_error(anonymous_get(_with_token(url, token[:-2] + "xx")), 403, "forbidden")
    assert_error(anonymous_get(_with_token(url, "garbage")), 403, "forbidden")
    # The token of one recording does not open another.
    other_url = f"http://testserver/api/v1/recordings/{other.id}/file?" + urlencode(
        {"token": token}
    )
    assert_error(anonymous_get(other_url), 403, "forbidden")
    assert anonymous_get(url).status_code == 200


def test_the_signed_url_expires(tenant: Tenant, monkeypatch: pytest.MonkeyPatch) -> None:
    recording = make_recording(tenant, targets=TARGETS)
    url = tenant.client.get(f"/api/v1/recordings/{recording.id}/download").json()["download_url"]
    now = time.time()
    monkeypatch.setattr("django.core.signing.time.time", lambda: now + 14 * 60)
    assert anonymous_get(url).status_code == 200
    monkeypatch.setattr("django.core.signing.time.time", lambda: now + 16 * 60)
    assert_error(anonymous_get(url), 410, "link_expired")


def test_the_signed_url_ttl_is_a_setting(tenant: Tenant, settings: Any, monkeypatch: Any) -> None:
    settings.BCTRL_DOWNLOAD_URL_TTL_S = 5
    recording = make_recording(tenant, targets=TARGETS)
    url = tenant.client.get(f"/api/v1/recordings/{recording.id}/download").json()["download_url"]
    now = time.time()
    monkeypatch.setattr("django.core.signing.time.time", lambda: now + 6)
    assert_error(anonymous_get(url), 410)


@pytest.mark.django_db(transaction=True)
async def test_the_signed_url_streams_under_asgi(tenant: Tenant) -> None:
    from asgiref.sync import sync_to_async

    recording = await sync_to_async(make_recording)(tenant, targets=TARGETS)
    response = await sync_to_async(tenant.client.get)(f"/api/v1/recordings/{recording.id}/download")
    url = response.json()["download_url"]
    file_response: Any = await AsyncClient().get(url)
    assert file_response.status_code == 200
    assert file_response.is_async
    body = b"".join([part async for part in file_response.streaming_content])
    assert json.loads(body)["events"] == expected_events(TARGETS)


# --- Archive ----------------------------------------------------------------------------------


def test_archive_moves_files_to_cold_and_downloads_read_from_there(
    tenant: Tenant, _cold_root: Path, django_capture_on_commit_callbacks: Any
) -> None:
    recording = make_recording(tenant, targets=TARGETS, batches=2)
    _, before = download(tenant, recording)
    events_before = streamed_json(before)["events"]
    paths = [t.path for t in recording.targets.all()] + [b.path for b in recording.batches.all()]
    assert len(paths) == 4
    assert all(default_storage.exists(path) for path in paths)

    with django_capture_on_commit_callbacks(execute=True):
        response = tenant.client.post(f"/api/v1/recordings/{recording.id}/archive")
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"data"}
    assert set(body["data"]) == {"id", "status", "archived_at"}
    assert body["data"]["id"] == recording.id
    assert body["data"]["status"] == "archived"
    assert body["data"]["archived_at"].endswith("Z")

    recording.refresh_from_db()
    assert recording.tier == Recording.Tier.COLD
    assert recording.status == Recording.Status.ARCHIVED
    assert recording.archived_at is not None
    cold = storages["cold"]
    for path in paths:
        assert not default_storage.exists(path), path
        assert cold.exists(path), path
        assert (_cold_root / path).is_file()

    body, after = download(tenant, recording)
    assert body["status"] == "archived"
    assert body["provider"] == "cold"
    assert streamed_json(after)["events"] == events_before == expected_events(TARGETS)
    listed = tenant.client.get(f"/api/v1/recordings/{recording.id}").json()["data"]
    assert listed["status"] == "archived"


def test_archive_twice_is_400(tenant: Tenant, django_capture_on_commit_callbacks: Any) -> None:
    recording = make_recording(tenant, targets=TARGETS)
    with django_capture_on_commit_callbacks(execute=True):
        assert tenant.client.post(f"/api/v1/recordings/{recording.id}/archive").status_code == 200
    response = tenant.client.post(f"/api/v1/recordings/{recording.id}/archive")
    assert_error(response, 400, "recording.not_archivable")


@pytest.mark.parametrize("status", ["recording", "preparing", "processing", "failed"])
def test_archive_before_ready_is_400(tenant: Tenant, status: str) -> None:
    recording = make_recording(tenant, status=status)
    response = tenant.client.post(f"/api/v1/recordings/{recording.id}/archive")
    assert_error(response, 400, "recording.not_archivable")
    recording.refresh_from_db()
    assert recording.tier == Recording.Tier.HOT


def test_archive_of_a_ready_recording_already_cold_is_400(tenant: Tenant) -> None:
    recording = make_recording(tenant)
    Recording.objects.filter(pk=recording.pk).update(tier=Recording.Tier.COLD)
    assert_error(tenant.client.post(f"/api/v1/recordings/{recording.id}/archive"), 400)


def test_a_failed_archive_keeps_the_hot_files(tenant: Tenant) -> None:
    recording = make_recording(tenant, targets=TARGETS)
    target = recording.targets.get(target="page-2")
    default_storage.delete(target.path)
    response = tenant.client.post(f"/api/v1/recordings/{recording.id}/archive")
    assert_error(response, 409, "recording.file_missing")
    recording.refresh_from_db()
    assert (recording.status, recording.tier) == ("ready", "hot")
    assert default_storage.exists(recording.targets.get(target="page-1").path)
    assert not storages["cold"].exists(recording.targets.get(target="page-1").path)


# --- Recover ------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("status", ["preparing", "processing"])
def test_recover_requeues_processing_on_commit(
    tenant: Tenant, monkeypatch: pytest.MonkeyPatch, status: str
) -> None:
    queued: list[tuple[object, ...]] = []
    monkeypatch.setattr(
        "recordings.tasks.process_recording.delay", lambda *args: queued.append(args)
    )
    recording = make_recording(tenant, status=status)
    response = tenant.client.post(f"/api/v1/recordings/{recording.id}/recover")
    assert response.status_code == 200
    assert response.json() == {
        "data": {
            "id": recording.id,
            "status": "processing",
            "message": "Recovery initiated. Recording will be reprocessed.",
        }
    }
    assert queued == [(recording.id, True)]  # forced: an operator asked for it


@pytest.mark.parametrize("status", ["recording", "ready", "archived", "failed"])
def test_recover_outside_processing_is_400(
    tenant: Tenant, monkeypatch: pytest.MonkeyPatch, status: str
) -> None:
    queued: list[tuple[object, ...]] = []
    monkeypatch.setattr(
        "recordings.tasks.process_recording.delay", lambda *args: queued.append(args)
    )
    recording = make_recording(tenant, status=status)
    response = tenant.client.post(f"/api/v1/recordings/{recording.id}/recover")
    assert_error(response, 400, "recording.not_processing")
    assert queued == []


# --- Delete -------------------------------------------------------------------------------------


def test_delete_is_soft_and_hides_the_recording_everywhere(tenant: Tenant) -> None:
    recording = make_recording(tenant, targets=TARGETS)
    url = tenant.client.get(f"/api/v1/recordings/{recording.id}/download").json()["download_url"]
    response = tenant.client.delete(f"/api/v1/recordings/{recording.id}")
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"data"}
    assert set(body["data"]) == {"id", "deleted", "deleted_at"}
    assert body["data"]["id"] == recording.id
    assert body["data"]["deleted"] is True
    assert body["data"]["deleted_at"].endswith("Z")

    recording.refresh_from_db()
    assert recording.status == Recording.Status.DELETED
    assert recording.deleted_at is not None
    assert all(default_storage.exists(t.path) for t in recording.targets.all())  # purged later

    base = f"/api/v1/recordings/{recording.id}"
    assert_error(tenant.client.get(base), 404)
    assert_error(tenant.client.get(f"{base}/download"), 404)
    assert_error(tenant.client.post(f"{base}/archive"), 404)
    assert_error(tenant.client.post(f"{base}/recover"), 404)
    assert_error(tenant.client.delete(base), 404)
    assert_error(anonymous_get(url), 404)
    assert tenant.client.get("/api/v1/recordings").json() == {
        "data": [],
        "meta": {"total": 0, "limit": 20, "offset": 0},
    }


def test_deleting_a_recording_in_progress_frees_the_room(tenant: Tenant) -> None:
    room = make_room(tenant)
    started = tenant.client.post(f"/api/v1/rooms/{room.id}/recordings/start").json()["data"]
    assert tenant.client.delete(f"/api/v1/recordings/{started['id']}").status_code == 200
    assert_error(tenant.client.post(f"/api/v1/rooms/{room.id}/recordings/stop"), 404)
    assert tenant.client.post(f"/api/v1/rooms/{room.id}/recordings/start").status_code == 201


# --- Tenancy ------------------------------------------------------------------------------------


def test_another_spaces_rooms_and_recordings_are_404_everywhere(
    tenant: Tenant, other_tenant: Tenant, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("recordings.tasks.process_recording.delay", lambda _id: None)
    room = make_room(tenant)
    ready = make_recording(tenant, targets=TARGETS)
    preparing = make_recording(tenant, status=Recording.Status.PREPARING)
    intruder = other_tenant.client
    for action in ("start", "stop", "sync"):
        assert_error(intruder.post(f"/api/v1/rooms/{room.id}/recordings/{action}"), 404)
    assert_error(intruder.get(f"/api/v1/recordings/{ready.id}"), 404)
    assert_error(intruder.get(f"/api/v1/recordings/{ready.id}/download"), 404)
    assert_error(intruder.post(f"/api/v1/recordings/{ready.id}/archive"), 404)
    assert_error(intruder.post(f"/api/v1/recordings/{preparing.id}/recover"), 404)
    assert_error(intruder.delete(f"/api/v1/recordings/{ready.id}"), 404)
    assert intruder.get("/api/v1/recordings").json()["meta"]["total"] == 0
    # Nothing changed.
    assert not Recording.objects.filter(run__runtime=room).exists()
    ready.refresh_from_db()
    assert (ready.status, ready.tier) == ("ready", "hot")


def test_a_recording_with_nothing_to_view_is_no_recording_in_either_api(tenant: Tenant) -> None:
    """One rule: processed, but no page recorded anything (or less than 1 s of it)."""
    empty = make_recording(tenant, duration_ms=0)
    assert tenant.client.get(f"/api/v1/recordings/{empty.id}").status_code == 404
    listed = tenant.client.get("/api/v1/recordings").json()
    assert empty.id not in [item["id"] for item in listed["data"]]
    run = tenant.client.get(f"/v1/runs/{empty.run_id}").json()
    assert run["recording"]["status"] == "not_available"
    viewable = make_recording(tenant, duration_ms=1000)
    assert tenant.client.get(f"/api/v1/recordings/{viewable.id}").status_code == 200
