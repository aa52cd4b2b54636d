"""The self-contained replay file, `GET /v1/runs/{id}/replay.html`: its size before the
download, and the file played from file:// in real Chromium with networking off."""

import io
import json
import zipfile
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.test import Client

from runs import services
from runs.models import Event, Run
from tests.conftest import Tenant
from tests.test_replay import T0, page_chunk, store_target
from tests.test_replay_browser import IFRAME_TEXT, seed_three_chunks

pytestmark = pytest.mark.django_db(transaction=True)

MASKED = "*" * 9
SECRET = "hunter2-typed"


def masked_chunk(start: int) -> list[dict[str, Any]]:
    """A sign-in page whose password field was recorded masked (rrweb's maskAllInputs)."""
    events = page_chunk(start, "Sign in", "Enter your password")
    main = events[1]["data"]["node"]["childNodes"][-1]["childNodes"][-1]["childNodes"][-1]
    main["childNodes"].append(
        {
            "type": 2,
            "tagName": "input",
            "attributes": {"type": "password", "name": "password", "value": MASKED},
            "childNodes": [],
            "id": 9001,
        }
    )
    return events


def test_the_size_is_known_before_the_download_and_another_space_gets_404(
    tenant: Tenant, other_tenant: Tenant
) -> None:
    run = seed_three_chunks(tenant)
    head = tenant.client.head(f"/v1/runs/{run.id}/replay.html")
    assert head.status_code == 200
    size = int(head["Content-Length"])
    response = tenant.client.get(f"/v1/runs/{run.id}/replay.html")
    assert response.status_code == 200
    assert response["Content-Type"] == "text/html; charset=utf-8"
    assert f'filename="{run.id}-replay.html"' in response["Content-Disposition"]
    body = b"".join(response.streaming_content)  # type: ignore[attr-defined]
    assert int(response["Content-Length"]) == size == len(body)
    assert b"<script src=" not in body and b'<link rel="stylesheet"' not in body  # all inline
    for refused in (
        other_tenant.client.get(f"/v1/runs/{run.id}/replay.html"),
        other_tenant.client.head(f"/v1/runs/{run.id}/replay.html"),
    ):
        assert refused.status_code == 404


def test_a_run_without_a_processed_recording_has_no_file_yet(tenant: Tenant) -> None:
    run = services.run_create(space=tenant.space)
    response = tenant.client.get(f"/v1/runs/{run.id}/replay.html")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "recording.not_ready"


@pytest.mark.browser
def test_the_file_replays_from_disk_with_no_network(
    tenant: Tenant, chromium: Any, tmp_path: Path
) -> None:
    run = seed_three_chunks(tenant)
    recording = run.recordings.get()
    store_target(recording, "page-3", [masked_chunk(T0 + 40_000)])
    Event.objects.create(
        run=run, seq=99, type="console.message", page_id="page-1", time=run.started_at,
        data={"level": "error", "text": "delivery estimates failed"},
    )  # fmt: skip
    response = tenant.client.get(f"/v1/runs/{run.id}/replay.html")
    body = b"".join(response.streaming_content)  # type: ignore[attr-defined]
    assert SECRET.encode() not in body
    saved = tmp_path / "replay.html"
    saved.write_bytes(body)

    context = chromium.new_context(viewport={"width": 1400, "height": 900})
    context.set_offline(True)
    reached: list[str] = []

    def refuse(route: Any) -> None:
        """The file itself loads; everything else is refused and noted."""
        if route.request.url == saved.as_uri():
            route.continue_()
            return
        reached.append(route.request.url)
        route.abort()

    context.route("**/*", refuse)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(saved.as_uri())
    page.wait_for_function(
        f"() => ({IFRAME_TEXT})().includes('Hello from the recording')", timeout=15_000
    )
    # The activity panel, with the run's steps.
    activity = page.locator("[data-rows='activity']")
    activity.get_by_text("Welcome page").first.wait_for(timeout=10_000)
    # The inspector's rows come from the file too.
    page.click("#inspector-tab-console")
    page.locator("[data-rows='console']").get_by_text("delivery estimates failed").wait_for()
    # A seek far into the recording plays the chunk there, out of the file.
    page.evaluate(f"() => window.bctrlReplay.seek({T0 + 60_000 + 500})")
    page.wait_for_function(f"() => ({IFRAME_TEXT})().includes('A middle page')", timeout=15_000)
    # The tab with the password field: what was typed stays masked.
    page.locator("[data-target-tabs] [role='tab']").nth(2).click()
    page.wait_for_function(f"() => ({IFRAME_TEXT})().includes('Enter your password')")
    value = page.evaluate(
        """() => document.querySelector('[data-viewport] iframe')
             .contentDocument.querySelector('input[name=password]').value"""
    )
    assert value == MASKED
    page.screenshot(path="/tmp/replay-file.png")
    assert errors == []
    assert [url for url in reached if not url.startswith(("file:", "data:", "blob:"))] == []
    context.close()


def test_a_files_export_can_hold_the_replay_file(tenant: Tenant) -> None:
    run = seed_three_chunks(tenant)
    # The seed writes its events directly; the export's own event comes after them.
    Run.objects.filter(pk=run.pk).update(event_count=Event.objects.filter(run=run).count())
    response = tenant.client.post(
        f"/v1/runs/{run.id}/files/export", {"type": ["replay", "har"]}, format="json"
    )
    assert response.status_code == 202, response.content
    body = tenant.client.get(response.json()["statusUrl"]).json()
    assert body["status"] == "ready", body
    download = tenant.client.get(body["downloadUrl"])
    archive = zipfile.ZipFile(io.BytesIO(b"".join(download.streaming_content)))  # type: ignore[attr-defined]
    name = f"replay/{run.id}-replay.html"
    assert sorted(archive.namelist()) == [f"har/{run.id}.har", "manifest.json", name]
    html = archive.read(name)
    assert b'data-offline-chunks="page-1"' in html and b'data-offline-chunks="page-2"' in html
    manifest = json.loads(archive.read("manifest.json"))
    assert {f["path"]: f["size"] for f in manifest["files"]}[name] == len(html)


def test_an_export_of_the_replay_of_a_run_without_recording_is_refused(
    tenant: Tenant,
) -> None:
    run = services.run_create(space=tenant.space)
    response = tenant.client.post(
        f"/v1/runs/{run.id}/files/export", {"type": ["replay"]}, format="json"
    )
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "recording.not_ready"
    assert not run.exports.exists()


def test_a_replay_link_downloads_the_file_for_whoever_holds_it(tenant: Tenant) -> None:
    run = seed_three_chunks(tenant)
    answer = tenant.client.post(f"/v1/runs/{run.id}/recording", {}, format="json").json()
    path = urlsplit(answer["replayFileUrl"]).path
    assert path == urlsplit(answer["iframeUrl"]).path + "/replay.html"
    anonymous = Client()  # no key, no session: the link alone
    response = anonymous.get(path)
    assert response.status_code == 200
    assert response["Content-Type"] == "text/html; charset=utf-8"
    assert 'filename="replay.html"' in response["Content-Disposition"]
    body = b"".join(response.streaming_content)  # type: ignore[attr-defined]
    assert int(response["Content-Length"]) == len(body) and b"<script src=" not in body
    lease_id = tenant.client.get(f"/v1/runs/{run.id}/leases").json()["data"][0]["id"]
    tenant.client.post(f"/v1/leases/{lease_id}/revoke", {}, format="json")
    refused = anonymous.get(path)
    assert refused.status_code in (401, 403, 410)
    assert refused.json()["error"]["code"].startswith("lease.")


def test_a_replay_link_of_a_run_not_processed_yet_says_so(tenant: Tenant) -> None:
    run = services.run_create(space=tenant.space)
    answer = tenant.client.post(f"/v1/runs/{run.id}/recording", {}, format="json").json()
    response = Client().get(urlsplit(answer["replayFileUrl"]).path)
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "recording.not_ready"


def test_a_replay_links_file_holds_only_what_the_link_shows(tenant: Tenant) -> None:
    """The file of a link without components has the player alone: no run name or id, no
    activity, no network, console or command rows; a link with `network` adds those rows
    and nothing else."""
    run = seed_three_chunks(tenant)
    run.name = "Quarterly payroll"
    run.save(update_fields=["name"])
    for seq, (type, data) in enumerate(
        [
            ("console.message", {"level": "error", "text": "secret-console"}),
            (
                "network.request",
                {"requestId": "1", "method": "GET", "url": "https://a.test/secret-net"},
            ),
        ],
        start=100,
    ):
        Event.objects.create(
            run=run, seq=seq, type=type, page_id="page-1", time=run.started_at, data=data
        )

    def viewer_file(components: list[str]) -> bytes:
        answer = tenant.client.post(
            f"/v1/runs/{run.id}/recording", {"components": components}, format="json"
        ).json()
        response = Client().get(urlsplit(answer["replayFileUrl"]).path)
        assert response.status_code == 200
        assert 'filename="replay.html"' in response["Content-Disposition"]
        return b"".join(response.streaming_content)  # type: ignore[attr-defined]

    bare = viewer_file([])
    network = viewer_file(["network"])
    own = b"".join(tenant.client.get(f"/v1/runs/{run.id}/replay.html").streaming_content)  # type: ignore[attr-defined]

    for secret in (run.id.encode(), b"Quarterly payroll", b"secret-console", b"secret-net"):
        assert secret not in bare
    assert b"secret-net" in network and b"secret-console" not in network
    assert run.id.encode() not in network
    assert all(
        secret in own
        for secret in (run.id.encode(), b"Quarterly payroll", b"secret-console", b"secret-net")
    )
