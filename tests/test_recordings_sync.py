"""Recordings from elsewhere (seed 004): an rrweb file imported into a room, and the sync
that imports the closed sessions of the space's upstream Browser Run account, here a
second space of a real bctrl server process reached over HTTP like any remote account."""

import gzip
import http.server
import json
import logging
import socket
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson
import pytest
from django.conf import settings as django_settings
from django.core.files.storage import default_storage
from django.utils import timezone
from rest_framework.test import APIClient

from recordings.models import Recording, RecordingBatch, RecordingTarget, UpstreamAccount
from runs.models import Run, Runtime

from .conftest import Tenant, make_tenant
from .test_recordings_seed_api import (
    T0,
    _cold_root,
    assert_error,
    make_recording,
    make_room,
    rrweb_chunk,
)
from .test_upstream_account import put_upstream

__all__ = ["_cold_root"]  # the autouse fixture giving each test its own cold folder


def events_of(start: int, count: int) -> list[dict[str, Any]]:
    """A playable target: Meta, FullSnapshot, then a mouse move every 10 ms."""
    return rrweb_chunk(start, count)


TARGETS = {"page-1": events_of(T0, 150), "page-2": events_of(T0 + 400, 120)}


def document(targets: dict[str, list[dict[str, Any]]], session_id: str = "cf-1") -> bytes:
    return orjson.dumps({"sessionId": session_id, "duration": 1500, "events": targets})


def import_url(room: Runtime) -> str:
    return f"/api/v1/rooms/{room.id}/recordings/import"


def post_import(tenant: Tenant, room: Runtime, body: bytes, **extra: Any) -> Any:
    return tenant.client.post(
        import_url(room),
        data=body,
        content_type=extra.pop("content_type", "application/json"),
        **extra,
    )


def served_events(tenant: Tenant, run_id: str) -> dict[str, Any]:
    """Seed 003's GET of our own server: what a Browser Run client reads back."""
    response: Any = tenant.client.get(
        f"/client/v4/accounts/{tenant.space.id}/browser-rendering/recording/{run_id}"
    )
    assert response.status_code == 200, response.content
    body = json.loads(b"".join(response.streaming_content))
    return dict(body["events"])


def recording_files() -> set[str]:
    """Every file under the recordings folder of the default storage."""
    root = Path(django_settings.MEDIA_ROOT) / "recordings"
    return {str(path.relative_to(root)) for path in root.rglob("*") if path.is_file()}


def stray_files(before: set[str]) -> set[str]:
    """Files written since `before` that belong to no recording in the database."""
    known = set(Recording.objects.values_list("id", flat=True))
    return {name for name in recording_files() - before if name.split("/", 1)[0] not in known}


# --- Import ---------------------------------------------------------------------------------


@pytest.fixture
def room(tenant: Tenant) -> Runtime:
    return make_room(tenant, "Imports")


@pytest.fixture
def import_processed(
    tenant: Tenant, room: Runtime, django_capture_on_commit_callbacks: Any
) -> Callable[..., Any]:
    """Imports, then runs what the commit queued (processing, on eager Celery)."""

    def post(body: bytes, **extra: Any) -> Any:
        with django_capture_on_commit_callbacks(execute=True):
            return post_import(tenant, room, body, **extra)

    return post


def test_it_imports_a_seed_003_document_as_an_ended_run_of_the_room(
    tenant: Tenant, room: Runtime, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        response = post_import(tenant, room, document(TARGETS, "cf-session-7"))
    assert response.status_code == 201, response.content
    data = response.json()["data"]
    assert set(data) == {"id", "status"}
    assert data["status"] == "processing"  # queued on commit, processed after the answer
    recording = Recording.objects.select_related("run").get(pk=data["id"])
    assert recording.status == "ready"
    run = recording.run
    assert (run.runtime_id, run.space_id, run.status) == (room.id, tenant.space.id, "completed")
    assert run.name == "Imported cf-session-7"
    assert run.started_at == datetime.fromtimestamp(T0 / 1000, tz=UTC)
    assert run.ended_at is not None and run.ended_at > run.started_at
    # Processed like any recording: chunks of each target, and seed 003's GET replays it.
    targets = {row.target: row for row in RecordingTarget.objects.filter(recording=recording)}
    assert set(targets) == {"page-1", "page-2"}
    assert all(row.playable and row.index["chunks"] for row in targets.values())
    assert recording.duration_ms == 1600  # from page-1's first event to page-2's last
    assert served_events(tenant, run.id) == TARGETS
    listed = tenant.client.get("/api/v1/recordings").json()["data"]
    assert {"id": recording.id, "room_id": room.id, "status": "ready"}.items() <= listed[0].items()


def test_it_imports_a_plain_rrweb_array_as_one_target(
    tenant: Tenant, import_processed: Callable[..., Any]
) -> None:
    events = events_of(T0, 200)
    response = import_processed(orjson.dumps(events))
    assert response.status_code == 201, response.content
    recording = Recording.objects.get(pk=response.json()["data"]["id"])
    assert recording.run.name == "Imported recording"
    assert served_events(tenant, recording.run_id) == {"target-1": events}


def test_a_gzipped_body_is_imported(tenant: Tenant, import_processed: Callable[..., Any]) -> None:
    response = import_processed(gzip.compress(document(TARGETS)), HTTP_CONTENT_ENCODING="gzip")
    assert response.status_code == 201, response.content
    recording = Recording.objects.get(pk=response.json()["data"]["id"])
    assert served_events(tenant, recording.run_id) == TARGETS


def test_a_large_target_is_stored_in_several_batches(
    tenant: Tenant, import_processed: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("recordings.imports.BATCH_EVENTS", 50)
    events = events_of(T0, 400)
    response = import_processed(orjson.dumps({"events": {"tab": events}}))
    assert response.status_code == 201, response.content
    recording = Recording.objects.get(pk=response.json()["data"]["id"])
    seqs = list(recording.batches.order_by("seq").values_list("seq", flat=True))
    assert seqs == list(range(1, 10))  # 402 events, 50 a batch
    assert served_events(tenant, recording.run_id) == {"tab": events}


@pytest.mark.parametrize(
    ("body", "status", "code", "words"),
    [
        (document(TARGETS)[:-40], 400, "invalid_json", "ends"),
        (
            b'{"events": {"p": [{"type": 4, "timestamp": 1, "data": {}} oops]}}',
            400,
            "invalid_json",
            "Expected",
        ),
        (b'{"sessionId": "x"}', 422, "validation_error", 'no "events"'),
        (b'{"events": [{"type": 4}]}', 422, "validation_error", "object of target"),
        (
            b'{"events": {"../x": [{"type": 4, "timestamp": 5, "data": {}}]}}',
            422,
            "validation_error",
            "target name",
        ),
        (
            b'{"events": {"p": [{"type": 9, "timestamp": 5, "data": {}}]}}',
            422,
            "validation_error",
            "Event 0 of target 'p'",
        ),
        (b'{"events": {"p": []}}', 422, "validation_error", "no events"),
        (b"[]", 422, "validation_error", "no events"),
        (orjson.dumps(events_of(T0, 50)), 422, "validation_error", "less than 1 second"),
        (b'"a string"', 422, "validation_error", "JSON object"),
    ],
)
def test_a_body_that_is_not_a_recording_is_refused_and_leaves_nothing(
    tenant: Tenant, room: Runtime, body: bytes, status: int, code: str, words: str
) -> None:
    before = recording_files()
    response = post_import(tenant, room, body)
    assert_error(response, status, code)
    assert words in response.json()["error"]["message"]
    assert not Run.objects.filter(runtime=room).exclude(status="running").exists()
    assert not Recording.objects.exists()
    assert not RecordingBatch.objects.exists()
    assert stray_files(before) == set()


def test_a_failure_after_some_batches_were_written_deletes_them(
    tenant: Tenant, room: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("recordings.imports.BATCH_EVENTS", 10)
    before = recording_files()
    good = orjson.dumps(events_of(T0, 100))
    body = b'{"events": {"first": ' + good + b', "second": [{"type": 2, "timestamp": 1, "data"'
    response = post_import(tenant, room, body)
    assert_error(response, 400, "invalid_json")
    assert not Recording.objects.exists() and not RecordingBatch.objects.exists()
    assert stray_files(before) == set()


def test_limits_answer_413(tenant: Tenant, room: Runtime, settings: Any) -> None:
    settings.BCTRL_RECORDING_MAX_EVENT_BYTES = 2000
    big = {"type": 3, "timestamp": T0 + 5, "data": {"source": 0, "text": "x" * 3000}}
    response = post_import(tenant, room, orjson.dumps([*events_of(T0, 2), big]))
    assert_error(response, 413, "payload_too_large")
    assert (
        "Event 4 of target 'target-1' is larger than 2000 bytes"
        in (response.json()["error"]["message"])
    )
    settings.BCTRL_IMPORT_MAX_BYTES = 10_000
    response = post_import(tenant, room, document(TARGETS))  # its Content-Length says so
    assert_error(response, 413, "payload_too_large")
    # A gzip body is measured as it inflates.
    response = post_import(
        tenant, room, gzip.compress(document(TARGETS)), HTTP_CONTENT_ENCODING="gzip"
    )
    assert_error(response, 413, "payload_too_large")
    assert not Recording.objects.exists()


def test_it_takes_json_only(tenant: Tenant, room: Runtime) -> None:
    response = post_import(tenant, room, document(TARGETS), content_type="text/plain")
    assert_error(response, 415, "unsupported_media_type")
    response = post_import(tenant, room, document(TARGETS), HTTP_CONTENT_ENCODING="br")
    assert_error(response, 415, "unsupported_encoding")
    response = post_import(tenant, room, b"not gzip", HTTP_CONTENT_ENCODING="gzip")
    assert_error(response, 400, "invalid_encoding")


def test_import_needs_the_key_and_a_room_of_the_callers_space(
    tenant: Tenant, other_tenant: Tenant, room: Runtime
) -> None:
    assert_error(APIClient().post(import_url(room), document(TARGETS), "json"), 401)
    assert_error(post_import(other_tenant, room, document(TARGETS)), 404, "not_found")
    assert not Recording.objects.exists()


# --- Sync against a second bctrl server -----------------------------------------------------


@pytest.fixture
def upstream(transactional_db: None) -> Tenant:
    """The upstream account: another space of the live server, with its own key."""
    return make_tenant("initech")


def link(tenant: Tenant, base_url: str, account_id: str, token: str) -> None:
    response = put_upstream(
        tenant, {"baseUrl": base_url, "accountId": account_id, "apiToken": token}
    )
    assert response.status_code == 200, response.content


def link_to(tenant: Tenant, server: str, upstream: Tenant) -> None:
    link(tenant, f"{server}/client/v4", upstream.space.id, upstream.raw_key)


def closed_session(upstream: Tenant, targets: dict[str, list[Any]], start_ms: int) -> Run:
    """A session of the upstream that ended, with a ready recording that its seed 003 GET
    serves."""
    end_ms = max(event["timestamp"] for events in targets.values() for event in events)
    recording = make_recording(
        upstream,
        targets={target: [events] for target, events in targets.items()},
        duration_ms=end_ms - start_ms,
    )
    run = recording.run
    run.started_at = datetime.fromtimestamp(start_ms / 1000, tz=UTC)
    run.ended_at = datetime.fromtimestamp(end_ms / 1000, tz=UTC)
    run.save(update_fields=["started_at", "ended_at"])
    return run


def sync(tenant: Tenant, room: Runtime) -> Any:
    return tenant.client.post(f"/api/v1/rooms/{room.id}/recordings/sync")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def test_sync_imports_the_upstreams_closed_sessions_once(
    asgi_server: str, tenant: Tenant, upstream: Tenant
) -> None:
    first = closed_session(upstream, {"tab-a": events_of(T0, 150)}, T0)
    second = closed_session(
        upstream,
        {"tab-b": events_of(T0 + 60_000, 130), "tab-c": events_of(T0 + 60_100, 110)},
        T0 + 60_000,
    )
    # A session still open (no endTime) is not synced.
    Run.objects.create(space=upstream.space, runtime=make_room(upstream, active=False))
    room = make_room(tenant, "Synced")
    link_to(tenant, asgi_server, upstream)

    response = sync(tenant, room)
    assert response.status_code == 200, response.content
    data = response.json()["data"]
    assert data["synced_count"] == 2
    assert [item["status"] for item in data["recordings"]] == ["ready", "ready"]
    imported = [
        Recording.objects.select_related("run").get(pk=item["id"]) for item in data["recordings"]
    ]
    assert [r.upstream_session_id for r in imported] == [first.id, second.id]
    assert [r.run.name for r in imported] == [
        f"Browser Run session {first.id}",
        f"Browser Run session {second.id}",
    ]
    assert {r.run.runtime_id for r in imported} == {room.id}
    assert imported[0].run.started_at == first.started_at
    assert imported[0].run.ended_at == first.ended_at
    assert served_events(tenant, imported[0].run_id) == served_events(upstream, first.id)
    assert served_events(tenant, imported[1].run_id) == served_events(upstream, second.id)
    listed = {item["id"] for item in tenant.client.get("/api/v1/recordings").json()["data"]}
    assert listed == {r.id for r in imported}

    again = sync(tenant, room)
    assert again.status_code == 200, again.content
    assert again.json() == {"data": {"synced_count": 0, "recordings": []}}
    assert Recording.objects.filter(space=tenant.space).count() == 2


def test_a_session_without_a_viewable_recording_is_skipped_until_it_has_one(
    asgi_server: str, tenant: Tenant, upstream: Tenant
) -> None:
    short = closed_session(upstream, {"tab": events_of(T0, 20)}, T0)  # 0.2 s: upstream 404
    # It closed just now: its recording may still come (one closed long ago would not).
    Run.objects.filter(pk=short.pk).update(started_at=timezone.now(), ended_at=timezone.now())
    room = make_room(tenant)
    link_to(tenant, asgi_server, upstream)
    response = sync(tenant, room)
    assert response.status_code == 200, response.content
    assert response.json()["data"]["synced_count"] == 0
    assert not Recording.objects.filter(space=tenant.space).exists()
    Recording.objects.filter(run=short).update(duration_ms=1500)
    assert sync(tenant, room).json()["data"]["synced_count"] == 1


def test_a_token_the_upstream_refuses_is_424(
    asgi_server: str, tenant: Tenant, upstream: Tenant, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    closed_session(upstream, {"tab": events_of(T0, 150)}, T0)
    room = make_room(tenant)
    wrong = "bctrl_sk_" + "x" * 40
    link(tenant, f"{asgi_server}/client/v4", upstream.space.id, wrong)
    response = sync(tenant, room)
    assert_error(response, 424, "upstream.unauthorized")
    assert "HTTP 401" in response.json()["error"]["message"]
    assert wrong not in response.content.decode() and wrong not in caplog.text
    assert not Recording.objects.filter(space=tenant.space).exists()


def test_an_account_id_the_upstream_does_not_know_is_424(
    asgi_server: str, tenant: Tenant, upstream: Tenant
) -> None:
    room = make_room(tenant)
    # The upstream's key with another of its account ids: another space there, so 404.
    link(tenant, f"{asgi_server}/client/v4", tenant.space.id, upstream.raw_key)
    assert_error(sync(tenant, room), 424, "upstream.account_not_found")


def test_an_upstream_that_is_down_is_502(transactional_db: None, tenant: Tenant) -> None:
    room = make_room(tenant)
    link(tenant, f"http://127.0.0.1:{free_port()}/client/v4", "acct", "token-123")
    response = sync(tenant, room)
    assert_error(response, 502, "upstream.unreachable")
    assert "connection refused" in response.json()["error"]["message"]
    assert not Run.objects.filter(runtime=room).exclude(status="running").exists()


def test_an_upstream_that_never_answers_times_out_as_502(
    transactional_db: None, tenant: Tenant, settings: Any
) -> None:
    settings.BCTRL_UPSTREAM_TIMEOUT_S = 0.3
    room = make_room(tenant)
    with socket.socket() as silent:  # accepts connections (the backlog) and says nothing
        silent.bind(("127.0.0.1", 0))
        silent.listen(4)
        link(tenant, f"http://127.0.0.1:{silent.getsockname()[1]}/client/v4", "a", "token-123")
        response = sync(tenant, room)
    assert_error(response, 502, "upstream.unreachable")
    assert "no answer within 0.3 s" in response.json()["error"]["message"]


def test_an_upstream_that_answers_html_is_502(
    asgi_server: str, tenant: Tenant, upstream: Tenant
) -> None:
    room = make_room(tenant)
    link(tenant, asgi_server, upstream.space.id, upstream.raw_key)  # the site root, not the API
    response = sync(tenant, room)
    assert_error(response, 502, "upstream.invalid_response")
    assert "Browser Run API" in response.json()["error"]["message"]


def test_a_link_local_address_is_refused_when_the_sync_connects(
    transactional_db: None, tenant: Tenant
) -> None:
    room = make_room(tenant)
    # As if the rule had been different when it was saved: it is checked at each connect.
    account = UpstreamAccount(space=tenant.space, base_url="http://169.254.169.254", account_id="a")
    account.api_token = "t" * 20
    account.save()
    assert_error(sync(tenant, room), 424, "upstream.address_refused")


def test_a_space_never_syncs_from_another_spaces_upstream_account(
    transactional_db: None, tenant: Tenant, other_tenant: Tenant
) -> None:
    link(other_tenant, "http://127.0.0.1:9/client/v4", "a", "token-123")
    room = make_room(tenant)
    assert_error(sync(tenant, room), 409, "upstream.not_configured")


def test_sync_is_404_for_another_spaces_room(
    transactional_db: None, tenant: Tenant, other_tenant: Tenant
) -> None:
    room = make_room(tenant)
    link(tenant, "http://127.0.0.1:9/client/v4", "a", "token-123")
    assert_error(sync(other_tenant, room), 404, "not_found")


def test_a_recording_that_stops_mid_stream_leaves_nothing_of_its_session(
    asgi_server: str,
    tenant: Tenant,
    upstream: Tenant,
    monkeypatch: pytest.MonkeyPatch,
    settings: Any,
) -> None:
    monkeypatch.setattr("recordings.imports.BATCH_EVENTS", 20)
    # daphne leaves a response whose iterator raised open: the importer's read times out.
    settings.BCTRL_UPSTREAM_TIMEOUT_S = 2
    complete = closed_session(upstream, {"tab": events_of(T0, 150)}, T0)
    broken = closed_session(
        upstream,
        {"tab-1": events_of(T0 + 60_000, 150), "tab-2": events_of(T0 + 60_100, 150)},
        T0 + 60_000,
    )
    # The upstream's second target file is cut short: the upstream sends the first target,
    # then its answer breaks off (the importer has written batches of it by then).
    cut = RecordingTarget.objects.get(recording__run=broken, target="tab-2")
    with default_storage.open(cut.path, "rb") as handle:
        whole = handle.read()
    with default_storage.open(cut.path, "wb") as handle:
        handle.write(whole[: len(whole) // 2])
    room = make_room(tenant)
    link_to(tenant, asgi_server, upstream)
    before = recording_files()

    response = sync(tenant, room)
    assert_error(response, 502)
    error = response.json()["error"]
    assert error["details"]["sessionId"] == broken.id
    kept = Recording.objects.get(space=tenant.space)
    assert kept.upstream_session_id == complete.id
    assert error["details"]["imported"] == [kept.id]
    assert not Run.objects.filter(name__contains=broken.id).exists()
    assert (
        not RecordingBatch.objects.filter(recording__space=tenant.space)
        .exclude(recording=kept)
        .exists()
    )
    assert stray_files(before) == set()


# --- Upstreams that misbehave in ways a bctrl does not -----------------------------------


class FakeUpstream(http.server.ThreadingHTTPServer):
    """A small HTTP server in a thread whose answers a test sets: the session list (pages
    of `sessions`, `limit` capped at 40, or `list_answer` as it is) and each recording
    (`recording_answer`, or a JSON 404). It records the paths it was asked for."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _FakeHandler)
        self.sessions: list[dict[str, Any]] = []
        self.list_answer: tuple[int, str, bytes] | None = None
        self.recording_answer: tuple[int, str, bytes] | None = None
        self.cut_recording_at: int | None = None
        self.paths: list[str] = []

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/client/v4"


class _FakeHandler(http.server.BaseHTTPRequestHandler):
    server: FakeUpstream

    def do_GET(self) -> None:
        self.server.paths.append(self.path)
        parts = urlsplit(self.path)
        if parts.path.endswith("/devtools/session"):
            if self.server.list_answer is not None:
                self.answer(*self.server.list_answer)
                return
            query = parse_qs(parts.query)
            limit, offset = min(int(query["limit"][0]), 40), int(query["offset"][0])
            page = self.server.sessions[offset : offset + limit]
            self.answer(200, "application/json", orjson.dumps(page))
        elif "/recording/" in parts.path and self.server.recording_answer is not None:
            self.answer(*self.server.recording_answer, cut=self.server.cut_recording_at)
        else:
            self.answer(404, "application/json", b'{"error": {"code": "not_found"}}')

    def answer(self, status: int, content_type: str, body: bytes, cut: int | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        if status in (301, 302):
            self.send_header("Location", "http://169.254.169.254/")
        self.end_headers()
        self.wfile.write(body if cut is None else body[:cut])
        if cut is not None:
            self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def fake_upstream(transactional_db: None, tenant: Tenant) -> Iterator[FakeUpstream]:
    server = FakeUpstream()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    link(tenant, server.base_url, "acct-1", "fake-token-0123456789")
    yield server
    server.shutdown()
    server.server_close()


def fake_session(number: int, *, ended: bool = True) -> dict[str, Any]:
    start = T0 + number * 1000
    return {
        "sessionId": f"sess-{number:04d}",
        "startTime": start,
        "endTime": start + 900 if ended else None,
        "closeReason": "1",
        "closeReasonText": "NormalClosure",
        "connectionId": None,
    }


def test_sync_pages_through_the_whole_list_and_asks_for_each_closed_session_once(
    tenant: Tenant, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.sessions = [fake_session(n, ended=n % 10 != 0) for n in range(130)]
    room = make_room(tenant, active=False)
    response = sync(tenant, room)
    assert response.status_code == 200, response.content
    assert response.json()["data"]["synced_count"] == 0  # every recording answered 404
    lists = [path for path in fake_upstream.paths if "/devtools/session" in path]
    assert [parse_qs(urlsplit(path).query)["offset"] for path in lists] == [
        ["0"],
        ["40"],
        ["80"],
        ["120"],
        ["130"],
    ]
    asked = sorted(path.rsplit("/", 1)[1] for path in fake_upstream.paths if "/recording/" in path)
    assert asked == sorted(f"sess-{n:04d}" for n in range(130) if n % 10 != 0)
    assert all(path.startswith("/client/v4/accounts/acct-1/") for path in fake_upstream.paths)
    # They closed long ago: taken to have no recording, they are not asked for again.
    fake_upstream.paths.clear()
    assert sync(tenant, room).json()["data"]["synced_count"] == 0
    assert not [path for path in fake_upstream.paths if "/recording/" in path]
    # Linking another account checks its sessions afresh.
    link(tenant, fake_upstream.base_url, "acct-2", "fake-token-0123456789")
    sync(tenant, room)
    assert len([path for path in fake_upstream.paths if "/recording/" in path]) == 117


def test_a_sync_imports_a_bounded_number_of_sessions_and_the_next_one_goes_on(
    tenant: Tenant, fake_upstream: FakeUpstream, settings: Any
) -> None:
    settings.BCTRL_UPSTREAM_SYNC_MAX_IMPORTS = 2
    fake_upstream.sessions = [fake_session(n) for n in range(5)]
    fake_upstream.recording_answer = (200, "application/json", orjson.dumps(events_of(T0, 150)))
    room = make_room(tenant, active=False)
    first = sync(tenant, room).json()["data"]
    assert first["synced_count"] == 2
    names = list(
        Run.objects.filter(runtime=room).order_by("started_at").values_list("name", flat=True)
    )
    assert names == ["Browser Run session sess-0000", "Browser Run session sess-0001"]
    assert sync(tenant, room).json()["data"]["synced_count"] == 2
    assert sync(tenant, room).json()["data"]["synced_count"] == 1
    assert sync(tenant, room).json()["data"]["synced_count"] == 0
    assert Recording.objects.filter(space=tenant.space, status="ready").count() == 5


@pytest.mark.parametrize(
    ("answer", "status", "code", "words"),
    [
        ((200, "text/html", b"<html>hello</html>"), 502, "upstream.invalid_response", "not JSON"),
        ((200, "application/json", b'{"sessions": []}'), 502, "upstream.invalid_response", "array"),
        (
            (200, "application/json", b'[{"id": "x"}]'),
            502,
            "upstream.invalid_response",
            "sessionId",
        ),
        (
            (200, "application/json", b'[{"sessionId": "a", "endTime": "yesterday"}]'),
            502,
            "upstream.invalid_response",
            "epoch milliseconds",
        ),
        ((500, "application/json", b"{}"), 502, "upstream.error", "HTTP 500"),
        ((429, "application/json", b"{}"), 502, "upstream.error", "HTTP 429"),
        ((302, "text/html", b""), 502, "upstream.invalid_response", "HTTP 302"),
        ((403, "application/json", b"{}"), 424, "upstream.unauthorized", "HTTP 403"),
    ],
)
def test_a_session_list_that_is_not_one_is_refused(
    tenant: Tenant,
    fake_upstream: FakeUpstream,
    answer: tuple[int, str, bytes],
    status: int,
    code: str,
    words: str,
) -> None:
    fake_upstream.list_answer = answer
    response = sync(tenant, make_room(tenant, active=False))
    assert_error(response, status, code)
    assert words in response.json()["error"]["message"]
    assert "hello" not in response.content.decode()  # the upstream's body is not relayed
    assert fake_upstream.paths and all("169.254" not in path for path in fake_upstream.paths)


@pytest.mark.parametrize(
    ("body", "cut", "code", "words"),
    [
        (document(TARGETS), 3000, "upstream.invalid_response", "stopped before its end"),
        (b"<html>not a recording</html>", None, "upstream.invalid_response", "not a recording"),
        (b'{"events": {"tab": [{"type": 2}]}}', None, "upstream.invalid_response", "timestamp"),
    ],
)
def test_a_recording_that_breaks_off_or_is_garbage_leaves_nothing(
    tenant: Tenant,
    fake_upstream: FakeUpstream,
    monkeypatch: pytest.MonkeyPatch,
    body: bytes,
    cut: int | None,
    code: str,
    words: str,
) -> None:
    monkeypatch.setattr("recordings.imports.BATCH_EVENTS", 20)  # batches are written by then
    fake_upstream.sessions = [fake_session(1)]
    fake_upstream.recording_answer = (200, "application/json", body)
    fake_upstream.cut_recording_at = cut
    room = make_room(tenant, active=False)
    before = recording_files()
    response = sync(tenant, room)
    assert_error(response, 502, code)
    assert words in response.json()["error"]["message"]
    assert response.json()["error"]["details"] == {"sessionId": "sess-0001", "imported": []}
    assert not Run.objects.filter(runtime=room).exists()
    assert not Recording.objects.exists() and not RecordingBatch.objects.exists()
    assert stray_files(before) == set()


def test_an_upstream_recording_past_the_event_limit_is_502(
    tenant: Tenant, fake_upstream: FakeUpstream, settings: Any
) -> None:
    settings.BCTRL_RECORDING_MAX_EVENT_BYTES = 1000
    big = {"type": 3, "timestamp": T0 + 5, "data": {"source": 0, "text": "x" * 2000}}
    fake_upstream.sessions = [fake_session(1)]
    fake_upstream.recording_answer = (
        200,
        "application/json",
        document({"tab": [*events_of(T0, 3), big]}),
    )
    response = sync(tenant, make_room(tenant, active=False))
    assert_error(response, 502, "upstream.recording_too_large")
    assert "larger than 1000 bytes" in response.json()["error"]["message"]
