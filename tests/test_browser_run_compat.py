"""Browser Run compatibility (seed 003): GET /client/v4/accounts/{spaceId}/browser-rendering/
recording/{runId} → {"sessionId", "duration", "events": {targetId: [rrweb events]}}."""

import json
from pathlib import Path
from typing import Any

import pytest
from rest_framework.test import APIClient

from recordings.models import Recording

from .conftest import Tenant
from .test_recordings_seed_api import (
    T0,
    TARGETS,
    _cold_root,
    assert_error,
    expected_events,
    make_recording,
    rrweb_chunk,
)

__all__ = ["_cold_root"]  # the autouse fixture giving each test its own cold folder


def url(space_id: str, run_id: str) -> str:
    return f"/client/v4/accounts/{space_id}/browser-rendering/recording/{run_id}"


def fetch(tenant: Tenant, recording: Recording) -> Any:
    return tenant.client.get(url(tenant.space.id, recording.run_id))


def test_the_exact_shape_of_a_ready_recording(tenant: Tenant) -> None:
    recording = make_recording(tenant, targets=TARGETS, duration_ms=4380)
    response = fetch(tenant, recording)
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response.streaming
    body = json.loads(b"".join(response.streaming_content))
    assert list(body) == ["sessionId", "duration", "events"]
    assert body["sessionId"] == recording.run_id
    assert body["duration"] == 4380
    assert body["events"] == expected_events(TARGETS)


def test_events_are_plain_rrweb_arrays_a_player_can_start(tenant: Tenant) -> None:
    recording = make_recording(tenant, targets={"target-1": [rrweb_chunk(T0, 2)]})
    body = json.loads(b"".join(fetch(tenant, recording).streaming_content))
    events = body["events"]["target-1"]
    assert isinstance(events, list)
    assert [event["type"] for event in events[:2]] == [4, 2]  # Meta, then FullSnapshot
    assert all({"type", "timestamp", "data"} <= set(event) for event in events)
    timestamps = [event["timestamp"] for event in events]
    assert timestamps == sorted(timestamps)


def test_an_archived_recording_is_served_from_cold_storage(
    tenant: Tenant, _cold_root: Path, django_capture_on_commit_callbacks: Any
) -> None:
    recording = make_recording(tenant, targets=TARGETS)
    with django_capture_on_commit_callbacks(execute=True):
        assert tenant.client.post(f"/api/v1/recordings/{recording.id}/archive").status_code == 200
    assert list(_cold_root.rglob("*.json.gz"))
    body = json.loads(b"".join(fetch(tenant, recording).streaming_content))
    assert body["events"] == expected_events(TARGETS)


@pytest.mark.parametrize(
    "status", ["recording", "preparing", "processing", "failed", "deleted", "expired"]
)
def test_404_until_the_recording_is_ready(tenant: Tenant, status: str) -> None:
    recording = make_recording(tenant, status=status, targets=TARGETS)
    assert_error(fetch(tenant, recording), 404)


def test_404_for_a_run_without_a_recording(tenant: Tenant) -> None:
    recording = make_recording(tenant)
    Recording.objects.filter(pk=recording.pk).delete()
    assert_error(fetch(tenant, recording), 404, "recording.not_ready")


def test_404_for_a_recording_shorter_than_a_second(tenant: Tenant) -> None:
    recording = make_recording(tenant, targets=TARGETS, duration_ms=999)
    assert_error(fetch(tenant, recording), 404, "recording.too_short")


def test_the_latest_recording_of_the_run_is_served(tenant: Tenant) -> None:
    first = make_recording(tenant, targets={"old": [rrweb_chunk(T0, 1)]})
    make_recording(tenant, run=first.run, targets={"new": [rrweb_chunk(T0, 1)]})
    body = json.loads(b"".join(fetch(tenant, first).streaming_content))
    assert list(body["events"]) == ["new"]


def test_tenancy(tenant: Tenant, other_tenant: Tenant) -> None:
    recording = make_recording(tenant, targets=TARGETS)
    # Another space's key, with its own account id or with ours: 404.
    assert_error(other_tenant.client.get(url(other_tenant.space.id, recording.run_id)), 404)
    assert_error(other_tenant.client.get(url(tenant.space.id, recording.run_id)), 404)
    # Our key with an account id that is not ours: 404.
    assert_error(tenant.client.get(url(other_tenant.space.id, recording.run_id)), 404)
    assert_error(tenant.client.get(url("spc_unknown", recording.run_id)), 404)
    assert fetch(tenant, recording).status_code == 200


def test_it_needs_the_api_key(tenant: Tenant) -> None:
    recording = make_recording(tenant, targets=TARGETS)
    assert_error(APIClient().get(url(tenant.space.id, recording.run_id)), 401, "unauthenticated")


def test_a_stream_that_breaks_half_way_ends_its_connection(
    asgi_server: str, tenant: Tenant, transactional_db: None
) -> None:
    """The live daphne cuts an answer whose stream fails after it began (here a corrupt
    chunk file): the client sees a broken transfer at once instead of waiting for more."""
    import http.client
    import time
    from urllib.parse import urlsplit

    from django.core.files.storage import default_storage

    recording = make_recording(tenant, targets=TARGETS)
    target = recording.targets.order_by("target").last()
    assert target is not None
    with default_storage.open(target.path, "wb") as handle:
        handle.write(b"\x1f\x8b not a gzip member at all" * 100)
    address = urlsplit(asgi_server)
    connection = http.client.HTTPConnection(
        address.hostname or "127.0.0.1", address.port, timeout=20
    )
    started = time.monotonic()
    connection.request(
        "GET",
        url(tenant.space.id, recording.run_id),
        headers={"Authorization": f"Bearer {tenant.raw_key}"},
    )
    answer = connection.getresponse()
    assert answer.status == 200  # the stream began before the broken file was reached
    with pytest.raises((http.client.IncompleteRead, ConnectionResetError)):
        answer.read()
    assert time.monotonic() - started < 10
