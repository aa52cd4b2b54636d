"""ZIP exports of a run's files: requested over the API, built by a Celery task."""

import io
import json
import time
import zipfile
from typing import Any

import pytest

from runs import services
from runs.models import Artifact, FileExport, Run

from .conftest import Tenant

# The API enqueues the build once its transaction commits, so these tests commit.
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def run_with_files(tenant: Tenant) -> Run:
    run = services.run_create(space=tenant.space)
    services.artifact_store(
        run=run, kind="download", name="report.csv", content=io.BytesIO(b"a,b\n1,2\n")
    )
    services.artifact_store(
        run=run, kind="download", name="report.csv", content=io.BytesIO(b"second copy")
    )
    services.artifact_store(
        run=run, kind="screenshot", name="page.png", content=io.BytesIO(b"\x89PNG fake")
    )
    services.artifact_store(run=run, kind="recording", name="rrweb", content=io.BytesIO(b"[]"))
    return run


def download_zip(tenant: Tenant, url: str) -> zipfile.ZipFile:
    response = tenant.client.get(url)
    assert response.status_code == 200
    assert response["Content-Type"] == "application/zip"
    content = b"".join(response.streaming_content)  # type: ignore[attr-defined]
    return zipfile.ZipFile(io.BytesIO(content))


def test_an_export_zips_the_files_of_the_asked_types(tenant: Tenant, run_with_files: Run) -> None:
    response = tenant.client.post(
        f"/v1/runs/{run_with_files.id}/files/export",
        {"name": "session-files", "type": ["download"]},
        format="json",
        HTTP_IDEMPOTENCY_KEY="export-1",
    )
    assert response.status_code == 202
    status_url = response.json()["statusUrl"]
    # Tasks run inline in these tests, so the export is ready when we look.
    body = tenant.client.get(status_url).json()
    assert body["status"] == "ready"
    assert body["fileCount"] == 2
    archive = download_zip(tenant, body["downloadUrl"])
    assert sorted(archive.namelist()) == [
        "download/report-1.csv",
        "download/report.csv",
        "manifest.json",
    ]
    assert archive.read("download/report.csv") == b"a,b\n1,2\n"
    assert archive.read("download/report-1.csv") == b"second copy"
    manifest = json.loads(archive.read("manifest.json"))
    assert manifest["runId"] == run_with_files.id
    assert {entry["path"] for entry in manifest["files"]} == {
        "download/report.csv",
        "download/report-1.csv",
    }
    export_artifact = Artifact.objects.get(pk=body["artifactId"])
    assert export_artifact.kind == "export"
    assert export_artifact.name == "session-files.zip"


def test_an_export_without_types_takes_every_file_but_the_recording(
    tenant: Tenant, run_with_files: Run
) -> None:
    response = tenant.client.post(f"/v1/runs/{run_with_files.id}/files/export", {}, format="json")
    body = tenant.client.get(response.json()["statusUrl"]).json()
    names = download_zip(tenant, body["downloadUrl"]).namelist()
    assert "screenshot/page.png" in names
    assert not any(name.startswith("recording/") for name in names)


def test_the_same_idempotency_key_returns_the_same_export(
    tenant: Tenant, run_with_files: Run
) -> None:
    path = f"/v1/runs/{run_with_files.id}/files/export"
    body = {"name": "files", "type": ["download"]}
    first = tenant.client.post(path, body, format="json", HTTP_IDEMPOTENCY_KEY="k")
    second = tenant.client.post(path, body, format="json", HTTP_IDEMPOTENCY_KEY="k")
    assert first.status_code == 202
    assert second.status_code == 200
    assert first.json()["id"] == second.json()["id"]
    assert FileExport.objects.count() == 1
    assert Artifact.objects.filter(kind="export").count() == 1


def test_an_idempotency_key_reused_for_another_request_is_a_conflict(
    tenant: Tenant, run_with_files: Run
) -> None:
    path = f"/v1/runs/{run_with_files.id}/files/export"
    tenant.client.post(path, {"name": "a"}, format="json", HTTP_IDEMPOTENCY_KEY="k")
    response = tenant.client.post(path, {"name": "b"}, format="json", HTTP_IDEMPOTENCY_KEY="k")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "idempotency_key_reused"
    assert FileExport.objects.count() == 1


@pytest.mark.parametrize(
    "body", [{"type": ["recording"]}, {"type": "download"}, {"name": "../../etc"}, {"name": 3}]
)
def test_it_rejects_invalid_export_requests(
    tenant: Tenant, run_with_files: Run, body: dict[str, Any]
) -> None:
    response = tenant.client.post(f"/v1/runs/{run_with_files.id}/files/export", body, format="json")
    assert response.status_code == 422
    assert not FileExport.objects.exists()


def test_an_ended_run_can_still_be_exported(tenant: Tenant, run_with_files: Run) -> None:
    services.run_stop(run=run_with_files)
    response = tenant.client.post(f"/v1/runs/{run_with_files.id}/files/export", {}, format="json")
    assert tenant.client.get(response.json()["statusUrl"]).json()["status"] == "ready"


def test_a_real_worker_builds_the_export(
    celery_app: Any, celery_worker: Any, tenant: Tenant, run_with_files: Run
) -> None:
    """Through a broker and a worker thread, as `make run` does, rather than inline."""
    response = tenant.client.post(f"/v1/runs/{run_with_files.id}/files/export", {}, format="json")
    assert response.json()["status"] == "pending"
    deadline = time.monotonic() + 30
    status = "pending"
    while status == "pending" and time.monotonic() < deadline:
        time.sleep(0.2)
        status = tenant.client.get(response.json()["statusUrl"]).json()["status"]
    assert status == "ready"


@pytest.fixture
def celery_config() -> dict[str, Any]:
    return {"broker_url": "memory://", "task_always_eager": False}


@pytest.fixture
def celery_worker_parameters() -> dict[str, Any]:
    return {"perform_ping_check": False}
