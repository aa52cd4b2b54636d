"""An archived recording replays from the cold tier (seed 004's `archive`): the replay's
manifest, first chunk, a seek and the download, including for a recording archived while
its replay is open; every read goes through recordings.storage.recording_files."""

import gzip
import json
from pathlib import Path
from typing import Any

import orjson
import pytest
from django.core.files.storage import default_storage, storages
from django.test import Client

from recordings.models import Recording
from recordings.storage import recording_archive, recording_files
from runs.models import Run
from tests.conftest import Tenant, sign_in
from tests.test_replay import T0, StoredTarget, page_chunk, ready_recording, store_target

MIDDLE, LATE = T0 + 60_000, T0 + 20 * 60_000


@pytest.fixture
def cold_root(tmp_path: Path, settings: Any) -> Path:
    root = tmp_path / "cold"
    settings.STORAGES = {
        **settings.STORAGES,
        "cold": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(root), "base_url": None},
        },
    }
    return root


def three_chunk_recording(tenant: Tenant) -> tuple[Run, StoredTarget]:
    run = Run.objects.create(space=tenant.space, name="archived flow")
    recording = ready_recording(run, duration_ms=LATE + 3000 - T0)
    stored = store_target(
        recording,
        "page-1",
        [
            page_chunk(T0, "Welcome", "Hello from the cold tier"),
            page_chunk(MIDDLE, "Cart", "A middle page"),
            page_chunk(LATE, "Thanks", "The late page"),
        ],
    )
    return run, stored


@pytest.fixture
def member_client(client: Client, member: Any) -> Client:
    client.force_login(member)
    return client


def archive(tenant: Tenant, recording: Recording, capture: Any) -> None:
    with capture(execute=True):  # the hot copies go once the move commits
        response = tenant.client.post(f"/api/v1/recordings/{recording.id}/archive")
    assert response.status_code == 200, response.content
    assert not default_storage.exists(recording.targets.get().path)


def members(stored: StoredTarget) -> list[bytes]:
    """The target file's gzip members, one per chunk, as the index places them."""
    chunks = (stored.target.index or {})["chunks"]
    return [stored.blob[c["offset"] : c["offset"] + c["length"]] for c in chunks]


@pytest.mark.django_db
def test_an_archived_recording_replays_seeks_and_downloads_from_the_cold_tier(
    tenant: Tenant,
    member_client: Client,
    cold_root: Path,
    django_capture_on_commit_callbacks: Any,
) -> None:
    run, stored = three_chunk_recording(tenant)
    recording = stored.target.recording
    archive(tenant, recording, django_capture_on_commit_callbacks)

    manifest = member_client.get(f"/runs/{run.id}/replay/manifest").json()
    assert manifest["recording"]["status"] == "archived"
    assert manifest["mode"] == "chunks"
    (target,) = manifest["targets"]
    assert target["playable"] and len(target["index"]["chunks"]) == 3

    first = member_client.get(f"{target['chunksUrl']}?chunk=0")
    assert first.status_code == 200
    assert first.content == members(stored)[0]
    late = target["index"]["chunks"][2]
    end = late["offset"] + late["length"] - 1
    seek = member_client.get(target["chunksUrl"], HTTP_RANGE=f"bytes={late['offset']}-{end}")
    assert seek.status_code == 206
    assert b"The late page" in gzip.decompress(seek.content)
    whole: Any = member_client.get(target["chunksUrl"])
    assert whole.status_code == 200 and b"".join(whole.streaming_content) == stored.blob

    download = tenant.client.get(f"/api/v1/recordings/{recording.id}/download").json()
    assert download["provider"] == "cold"
    streamed: Any = Client().get(download["download_url"])
    events = json.loads(b"".join(streamed.streaming_content))
    assert [e["timestamp"] for e in events["events"]["page-1"]][:1] == [T0]


@pytest.mark.django_db
def test_a_replay_open_while_its_recording_is_archived_fetches_its_next_chunk_from_cold(
    tenant: Tenant,
    member_client: Client,
    cold_root: Path,
    django_capture_on_commit_callbacks: Any,
) -> None:
    run, stored = three_chunk_recording(tenant)
    manifest = member_client.get(f"/runs/{run.id}/replay/manifest").json()
    chunks_url = manifest["targets"][0]["chunksUrl"]
    assert member_client.get(f"{chunks_url}?chunk=0").content == members(stored)[0]

    archive(tenant, stored.target.recording, django_capture_on_commit_callbacks)
    # The player goes on with the manifest it has.
    assert member_client.get(f"{chunks_url}?chunk=1").content == members(stored)[1]


@pytest.mark.django_db(transaction=True)
def test_a_reader_that_saw_the_hot_tier_before_the_archive_still_reads_the_file(
    tenant: Tenant, cold_root: Path
) -> None:
    _, stored = three_chunk_recording(tenant)
    path = stored.target.path
    seen_hot = Recording.objects.get(pk=stored.target.recording_id)
    opened_before = recording_files(seen_hot).open(path)

    recording_archive(recording=Recording.objects.get(pk=seen_hot.pk))
    assert not default_storage.exists(path) and storages["cold"].exists(path)

    # Opened before the hot copy went: still readable.
    with opened_before as handle:
        assert handle.read() == stored.blob
    # Opened after, by a reader that still thinks it is hot: found in the cold tier.
    with recording_files(seen_hot).open(path) as handle:
        assert handle.read() == stored.blob
    assert seen_hot.tier == Recording.Tier.COLD


@pytest.mark.django_db
def test_a_missing_recording_file_is_a_404_to_the_replay_and_a_409_to_the_download(
    tenant: Tenant,
    member_client: Client,
    cold_root: Path,
    django_capture_on_commit_callbacks: Any,
) -> None:
    run, stored = three_chunk_recording(tenant)
    recording = stored.target.recording
    archive(tenant, recording, django_capture_on_commit_callbacks)
    storages["cold"].delete(stored.target.path)

    chunks_url = f"/runs/{run.id}/replay/page-1/chunks"
    assert member_client.get(f"{chunks_url}?chunk=0").status_code == 404
    assert member_client.get(chunks_url).status_code == 404
    download = tenant.client.get(f"/api/v1/recordings/{recording.id}/download").json()
    refused = Client().get(download["download_url"])
    assert refused.status_code == 409
    assert orjson.loads(refused.content)["error"]["code"] == "recording.file_missing"


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_the_replay_page_of_an_archived_recording_plays_and_seeks(
    page: Any, asgi_server: str, tenant: Tenant, member: Any
) -> None:
    # The live server's cold tier is the test session's (settings.BCTRL_COLD_STORAGE_ROOT).
    run, stored = three_chunk_recording(tenant)
    recording_archive(recording=stored.target.recording)
    assert not default_storage.exists(stored.target.path)

    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    sign_in(page, asgi_server, f"/runs/{run.id}/replay")
    frame_text = """() => {
        const frame = document.querySelector('[data-viewport] iframe');
        return frame && frame.contentDocument && frame.contentDocument.body
            ? frame.contentDocument.body.innerText : '';
    }"""
    page.wait_for_function(f"() => ({frame_text})().includes('Hello from the cold tier')")
    assert "could not be loaded" not in page.inner_text("body")
    page.evaluate("(t) => window.bctrlReplay.seek(t)", LATE + 500)  # the late chunk
    page.wait_for_function(f"() => ({frame_text})().includes('The late page')")
    assert errors == []
