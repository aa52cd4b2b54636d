"""Recordings, artifacts and exports on S3-compatible object storage (S3_BUCKET), against
moto's S3 server: ranged reads for the replay, presigned downloads straight from the
bucket, archive to the cold bucket (and a failed one that leaves everything where it
was), retention that removes a recording's objects and nothing else, and uploads that
stream to the bucket without a copy on local disk."""

import gzip
import hashlib
import io
import json
import socket
import tempfile
import urllib.request
import zipfile
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.core.files.storage import default_storage, storages
from django.test import Client
from django.utils import timezone

from recordings.models import Recording
from recordings.sweeps import recordings_expire
from runs import services
from runs.models import Artifact, Run
from tests.conftest import ObjectStore, Tenant, object_storage_entry
from tests.test_archive_replay import members, three_chunk_recording
from tests.test_replay import T0


def fetch(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    """A GET of a presigned URL as a browser or client would make it, straight to the
    bucket; header names in lower case."""
    request = urllib.request.Request(url, headers=headers or {})  # noqa: S310
    with urllib.request.urlopen(request, timeout=30) as answer:  # noqa: S310
        return answer.status, {k.lower(): v for k, v in answer.headers.items()}, answer.read()


@pytest.fixture
def member_client(client: Client, member: Any) -> Client:
    client.force_login(member)
    return client


@pytest.fixture
def gets(object_store: ObjectStore) -> Iterator[list[str]]:
    """The Range of every GetObject that bctrl's storage sends to the bucket."""
    ranges: list[str] = []

    def record(params: dict[str, Any], **_: Any) -> None:
        ranges.append(params.get("Range", "whole"))

    client = default_storage.client  # type: ignore[attr-defined]
    client.meta.events.register("before-parameter-build.s3.GetObject", record)
    yield ranges
    client.meta.events.unregister("before-parameter-build.s3.GetObject", record)


# --- Replay --------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_replay_seek_on_s3_fetches_that_chunk_alone_by_a_ranged_read(
    tenant: Tenant, member_client: Client, object_store: ObjectStore, gets: list[str]
) -> None:
    run, stored = three_chunk_recording(tenant)
    assert object_store.keys(object_store.hot) == [stored.target.path]
    manifest = member_client.get(f"/runs/{run.id}/replay/manifest").json()
    (target,) = manifest["targets"]
    chunks = target["index"]["chunks"]

    gets.clear()
    first = member_client.get(f"{target['chunksUrl']}?chunk=0")
    assert first.status_code == 200 and first.content == members(stored)[0]
    assert gets == [f"bytes=0-{chunks[0]['length'] - 1}"]

    late = chunks[2]
    end = late["offset"] + late["length"] - 1
    gets.clear()
    seek = member_client.get(target["chunksUrl"], HTTP_RANGE=f"bytes={late['offset']}-{end}")
    assert seek.status_code == 206
    assert seek["Content-Range"] == f"bytes {late['offset']}-{end}/{len(stored.blob)}"
    assert b"The late page" in gzip.decompress(seek.content)
    assert gets == [f"bytes={late['offset']}-{end}"]

    whole: Any = member_client.get(target["chunksUrl"])
    assert whole.status_code == 200 and b"".join(whole.streaming_content) == stored.blob


@pytest.mark.django_db
def test_a_missing_object_is_a_404_to_the_replay(
    tenant: Tenant, member_client: Client, object_store: ObjectStore
) -> None:
    run, stored = three_chunk_recording(tenant)
    object_store.client.delete_object(Bucket=object_store.hot, Key=stored.target.path)
    assert member_client.get(f"/runs/{run.id}/replay/page-1/chunks?chunk=0").status_code == 404
    assert member_client.get(f"/runs/{run.id}/replay/page-1/chunks").status_code == 404


# --- Downloads -----------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_recording_download_is_a_presigned_url_of_the_bucket(
    tenant: Tenant, other_tenant: Tenant, object_store: ObjectStore
) -> None:
    _, stored = three_chunk_recording(tenant)
    recording = stored.target.recording
    answer = tenant.client.get(f"/api/v1/recordings/{recording.id}/download").json()
    assert answer["provider"] == "s3"
    url = urlsplit(answer["download_url"])
    assert f"{url.scheme}://{url.netloc}" == object_store.endpoint_url
    assert url.path.startswith(f"/{object_store.hot}/recordings/{recording.id}/downloads/")
    assert "X-Amz-Signature=" in url.query and "X-Amz-Expires=900" in url.query

    status, headers, body = fetch(answer["download_url"])
    assert status == 200
    assert headers["content-type"] == "application/json"
    assert f'filename="{recording.id}.json"' in headers["content-disposition"]
    document = json.loads(body)
    assert document["recording_id"] == recording.id
    assert [event["timestamp"] for event in document["events"]["page-1"]][:1] == [T0]
    assert b"The late page" in body

    # Asked again: the same document, not a second copy.
    again = tenant.client.get(f"/api/v1/recordings/{recording.id}/download").json()
    assert fetch(again["download_url"])[2] == body
    assert len(object_store.keys(object_store.hot, f"recordings/{recording.id}/downloads/")) == 1
    # Another space's recording is not found, and nothing is written for it.
    missing = other_tenant.client.get(f"/api/v1/recordings/{recording.id}/download")
    assert missing.status_code == 404


@pytest.mark.django_db
def test_an_artifact_is_uploaded_to_the_bucket_and_downloaded_from_it(
    tenant: Tenant, other_tenant: Tenant, object_store: ObjectStore
) -> None:
    run = services.run_create(space=tenant.space)
    content = b"name,total\nada,3\n"
    created = tenant.client.post(
        f"/v1/runs/{run.id}/artifacts",
        {"kind": "download", "file": io.BytesIO(content)},
        format="multipart",
    )
    assert created.status_code == 201, created.content
    artifact = Artifact.objects.get(pk=created.json()["id"])
    key = artifact.file.name or ""
    assert object_store.keys(object_store.hot) == [key]
    assert object_store.body(object_store.hot, key) == content

    answer = tenant.client.get(created.json()["downloadUrl"])
    assert answer.status_code == 302
    assert answer["Cache-Control"] == "private, no-store"
    assert answer["Location"].startswith(f"{object_store.endpoint_url}/{object_store.hot}/")
    status, headers, body = fetch(answer["Location"])
    assert status == 200 and body == content
    assert headers["content-disposition"].startswith("attachment")
    assert artifact.name in headers["content-disposition"]

    elsewhere = other_tenant.client.get(created.json()["downloadUrl"])
    assert elsewhere.status_code == 404


@pytest.mark.django_db
def test_a_screenshot_shown_in_the_dashboard_is_read_from_the_bucket(
    tenant: Tenant, member_client: Client, object_store: ObjectStore
) -> None:
    run = services.run_create(space=tenant.space)
    png = b"\x89PNG\r\n\x1a\n" + b"pixels" * 1000
    shot = services.artifact_store(
        run=run, kind="screenshot", name="page.png", content=io.BytesIO(png)
    )
    shot.content_type = "image/png"
    shot.save(update_fields=["content_type"])
    inline: Any = member_client.get(f"/runs/{run.id}/artifacts/{shot.id}")
    assert inline.status_code == 200
    assert b"".join(inline.streaming_content) == png
    download = member_client.get(f"/runs/{run.id}/artifacts/{shot.id}?download=1")
    assert download.status_code == 302
    assert fetch(download["Location"])[2] == png


def test_an_upload_streams_to_the_bucket_without_a_copy_on_local_disk(
    object_store: ObjectStore, monkeypatch: pytest.MonkeyPatch, db: None, tenant: Tenant
) -> None:
    run = services.run_create(space=tenant.space)

    def no_spool(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the upload was spooled to local disk")

    for name in ("TemporaryFile", "SpooledTemporaryFile", "NamedTemporaryFile", "mkstemp"):
        monkeypatch.setattr(tempfile, name, no_spool)

    class Download(io.RawIOBase):
        """20 MB that can be read once, from the start (as a socket or a pipe)."""

        def __init__(self) -> None:
            self.left = 20 * 1024 * 1024

        def readable(self) -> bool:
            return True

        def readinto(self, buffer: Any) -> int:
            size = min(len(buffer), self.left)
            buffer[:size] = b"z" * size
            self.left -= size
            return size

    artifact = services.artifact_store(
        run=run, kind="download", name="big.bin", content=io.BufferedReader(Download())
    )
    expected = b"z" * (20 * 1024 * 1024)
    assert artifact.size == len(expected)
    assert artifact.sha256 == hashlib.sha256(expected).hexdigest()
    head = object_store.client.head_object(Bucket=object_store.hot, Key=artifact.file.name)
    assert head["ContentLength"] == len(expected)


@pytest.mark.django_db(transaction=True)
def test_an_export_is_built_into_the_bucket_and_downloaded_from_it(
    tenant: Tenant, object_store: ObjectStore
) -> None:
    run = services.run_create(space=tenant.space)
    services.artifact_store(
        run=run, kind="download", name="report.csv", content=io.BytesIO(b"a,b\n1,2\n")
    )
    response = tenant.client.post(
        f"/v1/runs/{run.id}/files/export",
        {"name": "session-files", "type": ["download"]},
        format="json",
    )
    assert response.status_code == 202
    body = tenant.client.get(response.json()["statusUrl"]).json()
    assert body["status"] == "ready"
    redirect = tenant.client.get(body["downloadUrl"])
    assert redirect.status_code == 302
    status, headers, content = fetch(redirect["Location"])
    assert status == 200
    assert headers["content-type"] == "application/zip"
    assert zipfile.ZipFile(io.BytesIO(content)).read("download/report.csv") == b"a,b\n1,2\n"


@pytest.mark.django_db
def test_a_download_while_the_object_storage_is_away_is_a_503_to_try_again(
    tenant: Tenant, object_store: ObjectStore, settings: Any
) -> None:
    _, stored = three_chunk_recording(tenant)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}"
    settings.STORAGES = {**settings.STORAGES, "default": object_storage_entry(closed, "any")}
    tenant.client.raise_request_exception = False
    answer = tenant.client.get(f"/api/v1/recordings/{stored.target.recording_id}/download")
    assert answer.status_code == 503
    assert answer.json()["error"]["code"] == "storage_unavailable"
    assert answer["Retry-After"] == "5"


# --- Archive, retention --------------------------------------------------------------------


@pytest.mark.django_db
def test_archive_moves_the_objects_to_the_cold_bucket_and_the_replay_follows(
    tenant: Tenant,
    member_client: Client,
    object_store: ObjectStore,
    settings: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    settings.STORAGES = {
        **settings.STORAGES,
        "cold": object_storage_entry(
            object_store.endpoint_url, object_store.cold, storage_class="STANDARD_IA"
        ),
    }
    run, stored = three_chunk_recording(tenant)
    recording = stored.target.recording
    tenant.client.get(f"/api/v1/recordings/{recording.id}/download")  # a hot document
    with django_capture_on_commit_callbacks(execute=True):
        archived = tenant.client.post(f"/api/v1/recordings/{recording.id}/archive")
    assert archived.status_code == 200, archived.content

    assert object_store.keys(object_store.hot) == []
    assert object_store.keys(object_store.cold) == [stored.target.path]
    assert object_store.body(object_store.cold, stored.target.path) == stored.blob
    head = object_store.client.head_object(Bucket=object_store.cold, Key=stored.target.path)
    assert head["StorageClass"] == "STANDARD_IA"

    chunks_url = f"/runs/{run.id}/replay/page-1/chunks"
    assert member_client.get(f"{chunks_url}?chunk=2").content == members(stored)[2]
    answer = tenant.client.get(f"/api/v1/recordings/{recording.id}/download").json()
    assert answer["provider"] == "s3" and answer["status"] == "archived"
    assert urlsplit(answer["download_url"]).path.startswith(f"/{object_store.cold}/")
    assert b"Hello from the cold tier" in fetch(answer["download_url"])[2]


@pytest.mark.django_db
def test_an_archive_whose_copy_fails_leaves_the_recording_where_it_was(
    tenant: Tenant, member_client: Client, object_store: ObjectStore, settings: Any
) -> None:
    settings.STORAGES = {
        **settings.STORAGES,
        "cold": object_storage_entry(object_store.endpoint_url, "bctrl-no-such-bucket"),
    }
    run, stored = three_chunk_recording(tenant)
    recording = stored.target.recording
    with pytest.raises(Exception, match="NoSuchBucket"):
        tenant.client.post(f"/api/v1/recordings/{recording.id}/archive")

    recording.refresh_from_db()
    assert (recording.status, recording.tier) == (Recording.Status.READY, Recording.Tier.HOT)
    assert object_store.keys(object_store.hot) == [stored.target.path]
    assert object_store.body(object_store.hot, stored.target.path) == stored.blob
    assert member_client.get(f"/runs/{run.id}/replay/page-1/chunks?chunk=1").status_code == 200


@pytest.mark.django_db
def test_retention_deletes_the_objects_of_an_expired_recording_and_nothing_else(
    tenant: Tenant, object_store: ObjectStore
) -> None:
    _, expiring = three_chunk_recording(tenant)
    _, kept = three_chunk_recording(tenant)
    object_store.client.put_object(Bucket=object_store.hot, Key="unrelated/note.txt", Body=b"x")
    recording = expiring.target.recording
    tenant.client.get(f"/api/v1/recordings/{recording.id}/download")
    Recording.objects.filter(pk=recording.pk).update(expires_at=timezone.now())

    result = recordings_expire()

    assert result.expired == [recording.id] and result.purged == [recording.id]
    assert object_store.keys(object_store.hot) == sorted([kept.target.path, "unrelated/note.txt"])
    assert storages["default"].exists(kept.target.path)


@pytest.mark.django_db
def test_a_batch_sent_twice_keeps_its_object(tenant: Tenant, object_store: ObjectStore) -> None:
    """S3 replaces an object saved twice under one name; the storage must not (the second
    save's object is deleted when the batch turns out to be a duplicate)."""
    from recordings.services import batch_ingest

    run = services.run_create(space=tenant.space)
    run.started_at = timezone.now()
    Run.objects.filter(pk=run.pk).update(started_at=run.started_at)
    now_ms = int(run.started_at.timestamp() * 1000) + 1000
    events = [{"type": 4, "timestamp": now_ms, "data": {"href": "https://a.example/"}}]
    first = batch_ingest(run=run, target="page-1", seq=0, events=events)
    again = batch_ingest(run=run, target="page-1", seq=0, events=events)
    assert first.created and not again.created
    assert object_store.keys(object_store.hot) == [first.batch.path]
    assert json.loads(gzip.decompress(object_store.body(object_store.hot, first.batch.path))) == (
        events
    )


def test_a_second_save_of_a_name_never_replaces_the_first_object(
    object_store: ObjectStore,
) -> None:
    from django.core.files.base import ContentFile

    first = default_storage.save("notes/a.txt", ContentFile(b"first"))
    second = default_storage.save("notes/a.txt", ContentFile(b"second"))
    streamed = default_storage.save("notes/a.txt", io.BufferedReader(io.BytesIO(b"third")))
    assert first == "notes/a.txt"
    assert len({first, second, streamed}) == 3
    assert object_store.body(object_store.hot, first) == b"first"
    assert object_store.body(object_store.hot, second) == b"second"
    assert object_store.body(object_store.hot, streamed) == b"third"
