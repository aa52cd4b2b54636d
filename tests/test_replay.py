"""Replay page and its data: login, tenancy, CSP, manifest, Range reads of chunks, live."""

import gzip
import itertools
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.test import Client
from django.urls import reverse

from recordings.chunking import target_pages
from recordings.models import Recording, RecordingTarget
from recordings.services import batch_ingest
from runs.models import Event, Run
from tests.conftest import Tenant

# Fixture recordings ------------------------------------------------------------------
#
# Hand-built rrweb events in the serialized format of rrweb-snapshot: Document 0,
# DocumentType 1, Element 2 {tagName, attributes, childNodes}, Text 3 {textContent};
# every node has a unique id. Events: Meta 4, FullSnapshot 2, IncrementalSnapshot 3.

T0 = 1_760_000_000_000  # rrweb epoch ms of the fixture recordings
STARTED_AT = datetime.fromtimestamp((T0 - 60_000) / 1000, tz=UTC)  # of the fixture runs


class Nodes:
    """Builds serialized nodes with unique ids."""

    def __init__(self) -> None:
        self.ids = itertools.count(1)

    def text(self, content: str) -> dict[str, Any]:
        return {"type": 3, "textContent": content, "id": next(self.ids)}

    def el(
        self, tag: str, attributes: dict[str, Any] | None = None, *children: dict[str, Any]
    ) -> dict[str, Any]:
        return {
            "type": 2,
            "tagName": tag,
            "attributes": attributes or {},
            "childNodes": list(children),
            "id": next(self.ids),
        }

    def document(
        self, title: str, body: list[dict[str, Any]], head: list[dict[str, Any]] | None = None
    ) -> dict[str, Any]:
        doctype = {"type": 1, "name": "html", "publicId": "", "systemId": "", "id": next(self.ids)}
        style = self.el(
            "style",
            {},
            self.text(
                "body{font:18px system-ui,sans-serif;margin:0;background:#f8fafc;color:#0f172a}"
                "header{background:#1e293b;color:#fff;padding:14px 24px;font-weight:600}"
                "main{padding:28px 24px}h1{margin:0 0 12px}"
            ),
        )
        html = self.el(
            "html",
            {"lang": "en"},
            self.el("head", {}, self.el("title", {}, self.text(title)), style, *(head or [])),
            self.el("body", {}, *body),
        )
        return {"type": 0, "childNodes": [doctype, html], "id": next(self.ids)}


def page_chunk(
    start: int, heading: str, text: str, *, duration_ms: int = 2000, site: str = "shop.example"
) -> list[dict[str, Any]]:
    """One chunk: Meta, a FullSnapshot of a page, and mouse moves over `duration_ms`."""
    nodes = Nodes()
    document = nodes.document(
        heading,
        [
            nodes.el("header", {}, nodes.text(site)),
            nodes.el(
                "main",
                {},
                nodes.el("h1", {}, nodes.text(heading)),
                nodes.el("p", {"class": "lead"}, nodes.text(text)),
            ),
        ],
    )
    events: list[dict[str, Any]] = [
        {
            "type": 4,
            "timestamp": start,
            "data": {"href": f"https://{site}/", "width": 1024, "height": 640},
        },
        {
            "type": 2,
            "timestamp": start + 5,
            "data": {"node": document, "initialOffset": {"left": 0, "top": 0}},
        },
    ]
    steps = max(1, duration_ms // 500)
    for step in range(1, steps + 1):
        events.append(
            {
                "type": 3,
                "timestamp": start + step * (duration_ms // steps),
                "data": {
                    "source": 1,
                    "positions": [{"x": 100 + step * 20, "y": 200, "id": 1, "timeOffset": 0}],
                },
            }
        )
    return events


@dataclass
class StoredTarget:
    target: RecordingTarget
    blob: bytes


def store_target(
    recording: Recording,
    target: str,
    chunks: list[list[dict[str, Any]]],
    *,
    markers: list[dict[str, Any]] | None = None,
    inactivity: list[dict[str, Any]] | None = None,
) -> StoredTarget:
    """What processing writes: one file of gzip members (one per chunk) and its index."""
    blob = b""
    index_chunks = []
    for events in chunks:
        member = gzip.compress(orjson.dumps(events))
        index_chunks.append(
            {
                "start": events[0]["timestamp"],
                "end": events[-1]["timestamp"],
                "offset": len(blob),
                "length": len(member),
                "events": len(events),
            }
        )
        blob += member
    path = default_storage.save(
        f"recordings/{recording.id}/targets/{target}.rrweb.gz", ContentFile(blob)
    )
    row = RecordingTarget.objects.create(
        recording=recording,
        target=target,
        start_timestamp=chunks[0][0]["timestamp"],
        end_timestamp=chunks[-1][-1]["timestamp"],
        event_count=sum(len(events) for events in chunks),
        size_bytes=len(blob),
        path=path,
        index={
            "chunks": index_chunks,
            "markers": markers or [],
            "inactivity": inactivity or [],
            "pages": target_pages([event for events in chunks for event in events]),
        },
    )
    return StoredTarget(target=row, blob=blob)


def ready_recording(run: Run, **fields: Any) -> Recording:
    return Recording.objects.create(
        space=run.space,
        run=run,
        status=Recording.Status.READY,
        duration_ms=fields.pop("duration_ms", 60_000),
        **fields,
    )


def add_batch(recording: Recording, target: str, seq: int, events: list[dict[str, Any]]) -> None:
    """A batch as a recorder sends it, through the ingest service."""
    batch_ingest(run=recording.run, target=target, seq=seq, events=events)


# Fixtures ---------------------------------------------------------------------------


@pytest.fixture
def run(tenant: Tenant) -> Run:
    return Run.objects.create(space=tenant.space, name="checkout flow", started_at=STARTED_AT)


@pytest.fixture
def signed_in(client: Client, member: Any) -> Client:
    client.force_login(member)
    return client


@pytest.fixture
def processed(run: Run) -> Iterator[StoredTarget]:
    recording = ready_recording(run)
    stored = store_target(
        recording,
        "page-1",
        [
            page_chunk(T0, "Hello", "Hello from the recording"),
            page_chunk(T0 + 600_000, "Late", "The late page"),
        ],
        markers=[
            {"time": T0 + 600_000, "kind": "navigation", "label": "https://shop.example/late"}
        ],
        inactivity=[{"start": T0 + 2000, "end": T0 + 600_000}],
    )
    yield stored


def urls(run: Run, target: str = "page-1") -> dict[str, str]:
    return {
        "page": reverse("replay:page", args=[run.id]),
        "manifest": reverse("replay:manifest", args=[run.id]),
        "chunks": reverse("replay:chunks", args=[run.id, target]),
        "live": reverse("replay:live", args=[run.id, target]),
    }


# Access -----------------------------------------------------------------------------


def test_page_requires_login(client: Client, run: Run) -> None:
    response = client.get(urls(run)["page"])
    assert response.status_code == 302
    assert response["Location"].startswith("/login/")


def test_data_endpoints_answer_401_without_a_session(
    client: Client, run: Run, processed: StoredTarget
) -> None:
    for name in ("manifest", "chunks", "live"):
        response = client.get(urls(run)[name])
        assert response.status_code == 401, name
        assert response.json()["error"]["code"] == "not_authenticated"


def test_another_spaces_run_is_404_everywhere(signed_in: Client, other_tenant: Tenant) -> None:
    foreign = Run.objects.create(space=other_tenant.space, name="theirs", started_at=STARTED_AT)
    add_batch(Recording(run=foreign), "page-1", 1, page_chunk(T0, "Secret", "Their page"))
    recording = Recording.objects.get(run=foreign)
    Recording.objects.filter(pk=recording.pk).update(status=Recording.Status.READY)
    store_target(recording, "page-1", [page_chunk(T0, "Secret", "Their page")])
    for name, url in urls(foreign).items():
        response = signed_in.get(url, HTTP_RANGE="bytes=0-9")
        assert response.status_code == 404, name
        assert b"Their page" not in response.content
    assert (
        signed_in.get(urls(foreign)["page"].replace(foreign.id, "run_missing")).status_code == 404
    )


def test_page_has_its_own_policy_and_the_rest_stays_strict(
    signed_in: Client, run: Run, processed: StoredTarget
) -> None:
    response = signed_in.get(urls(run)["page"])
    assert response.status_code == 200
    policy = {
        part.strip().split(" ", 1)[0]: part.strip()
        for part in response["Content-Security-Policy"].split(";")
    }
    assert "'unsafe-inline'" in policy["style-src"]
    assert policy["script-src"] == "script-src 'self'"
    assert "unsafe" not in policy["script-src"]
    assert "frame-ancestors 'none'" in response["Content-Security-Policy"]
    html = response.content.decode()
    assert "<script>" not in html  # no inline script at all
    assert "vendor/rrweb/umd/rrweb.min.js" in html and "js/replay.js" in html
    assert 'data-manifest-url="/runs/' in html

    detail = signed_in.get(reverse("dashboard:run", args=[run.id]))
    assert "style-src 'self';" in detail["Content-Security-Policy"]
    assert reverse("replay:page", args=[run.id]) in detail.content.decode()
    manifest = signed_in.get(urls(run)["manifest"])
    assert "unsafe-inline" not in manifest["Content-Security-Policy"]


def test_vendor_bundles_are_served_as_javascript(signed_in: Client) -> None:
    from django.contrib.staticfiles import finders

    for name in ("vendor/rrweb/umd/rrweb.min.js", "vendor/rrweb/dist/style.css", "js/replay.js"):
        assert finders.find(name), name


# Manifest ---------------------------------------------------------------------------


def test_manifest_shape(signed_in: Client, run: Run, processed: StoredTarget) -> None:
    Event.objects.create(
        run=run,
        seq=1,
        type="navigation",
        page_id="page-1",
        time=datetime.fromtimestamp(T0 / 1000, tz=UTC),
        data={"url": "https://shop.example/"},
    )
    body = signed_in.get(urls(run)["manifest"]).json()
    assert body["mode"] == "chunks"
    assert body["run"]["id"] == run.id
    assert body["recording"]["status"] == "ready"
    assert body["recording"]["apiStatus"] == "ready"
    [target] = body["targets"]
    assert target["id"] == "page-1"
    assert target["playable"] is True
    assert target["start"] == T0
    assert target["end"] == processed.target.end_timestamp
    assert target["durationMs"] == processed.target.duration_ms
    assert target["chunksUrl"] == urls(run)["chunks"]
    assert target["liveUrl"] is None
    chunks = target["index"]["chunks"]
    assert [chunk["offset"] for chunk in chunks] == [0, chunks[0]["length"]]
    assert target["index"]["markers"][0]["kind"] == "navigation"
    assert target["index"]["inactivity"] == [{"start": T0 + 2000, "end": T0 + 600_000}]
    navigations = [item for item in body["activity"] if item["type"] == "browser.navigate"]
    assert navigations and navigations[0]["timeMs"] == T0
    assert all("timeMs" in item for item in body["activity"])


def test_manifest_is_gzipped_for_browsers_that_accept_it(
    signed_in: Client, run: Run, processed: StoredTarget
) -> None:
    plain = signed_in.get(urls(run)["manifest"])
    assert "Content-Encoding" not in plain
    packed = signed_in.get(urls(run)["manifest"], HTTP_ACCEPT_ENCODING="gzip, br")
    assert packed["Content-Encoding"] == "gzip"
    assert "Accept-Encoding" in packed["Vary"]
    assert packed["Cache-Control"] == "private, no-store"
    assert orjson.loads(gzip.decompress(packed.content)) == plain.json()


def test_manifest_without_a_recording(signed_in: Client, run: Run) -> None:
    body = signed_in.get(urls(run)["manifest"]).json()
    assert body["mode"] == "none"
    assert body["recording"] is None
    assert body["targets"] == []


def test_manifest_of_a_recording_in_progress_lists_live_targets(
    signed_in: Client, run: Run
) -> None:
    recording = Recording.objects.create(space=run.space, run=run)
    add_batch(recording, "page-2", 1, page_chunk(T0 + 50, "Second", "b"))
    add_batch(recording, "page-1", 1, page_chunk(T0, "First", "a"))
    add_batch(recording, "page-1", 2, page_chunk(T0 + 9000, "First", "a2"))
    body = signed_in.get(urls(run)["manifest"]).json()
    assert body["mode"] == "live"
    assert body["recording"]["status"] == "recording"
    assert [target["id"] for target in body["targets"]] == ["page-1", "page-2"]
    first = body["targets"][0]
    assert first["start"] == T0 and first["end"] == T0 + 9000 + 2000
    assert first["liveUrl"] == urls(run)["live"]
    assert first["chunksUrl"] is None and first["index"] is None


def test_unplayable_target_says_why(signed_in: Client, run: Run) -> None:
    recording = ready_recording(run)
    RecordingTarget.objects.create(
        recording=recording, target="page-9", playable=False, problem="No full snapshot"
    )
    [target] = signed_in.get(urls(run, "page-9")["manifest"]).json()["targets"]
    assert target["playable"] is False
    assert target["problem"] == "No full snapshot"
    assert signed_in.get(urls(run, "page-9")["chunks"]).status_code == 404


# Chunks -----------------------------------------------------------------------------


def test_range_returns_exactly_the_bytes_asked(
    signed_in: Client, run: Run, processed: StoredTarget
) -> None:
    blob = processed.blob
    size = len(blob)
    for chunk in processed.target.index["chunks"]:
        first, last = chunk["offset"], chunk["offset"] + chunk["length"] - 1
        response = signed_in.get(urls(run)["chunks"], HTTP_RANGE=f"bytes={first}-{last}")
        assert response.status_code == 206
        assert response["Content-Range"] == f"bytes {first}-{last}/{size}"
        assert response["Accept-Ranges"] == "bytes"
        assert response["Content-Type"] == "application/octet-stream"
        assert int(response["Content-Length"]) == chunk["length"]
        assert response.content == blob[first : last + 1]
        events = orjson.loads(gzip.decompress(response.content))
        assert [event["type"] for event in events[:2]] == [4, 2]

    tail = signed_in.get(urls(run)["chunks"], HTTP_RANGE="bytes=-10")
    assert tail.status_code == 206 and tail.content == blob[-10:]
    assert tail["Content-Range"] == f"bytes {size - 10}-{size - 1}/{size}"
    open_ended = signed_in.get(urls(run)["chunks"], HTTP_RANGE=f"bytes={size - 3}-")
    assert open_ended.status_code == 206 and open_ended.content == blob[-3:]
    past_end = signed_in.get(urls(run)["chunks"], HTTP_RANGE=f"bytes={size - 2}-{size + 50}")
    assert past_end.status_code == 206 and past_end.content == blob[-2:]
    assert past_end["Content-Range"] == f"bytes {size - 2}-{size - 1}/{size}"


def test_unsatisfiable_range_is_416_and_no_range_is_the_whole_file(
    signed_in: Client, run: Run, processed: StoredTarget
) -> None:
    size = len(processed.blob)
    for header in (f"bytes={size}-", f"bytes={size + 10}-{size + 20}", "bytes=9-3", "bytes=-0"):
        response = signed_in.get(urls(run)["chunks"], HTTP_RANGE=header)
        assert response.status_code == 416, header
        assert response["Content-Range"] == f"bytes */{size}"
    whole = signed_in.get(urls(run)["chunks"])
    assert whole.status_code == 200
    assert whole["Accept-Ranges"] == "bytes"
    assert b"".join(whole.streaming_content) == processed.blob  # type: ignore[attr-defined]
    # Not a single byte range: ignored, as RFC 9110 asks.
    multi = signed_in.get(urls(run)["chunks"], HTTP_RANGE="bytes=0-1,4-5")
    assert multi.status_code == 200


def test_chunks_of_an_unknown_target_are_404(
    signed_in: Client, run: Run, processed: StoredTarget
) -> None:
    assert signed_in.get(urls(run, "page-404")["chunks"]).status_code == 404


def test_one_chunk_by_its_number_is_exactly_its_bytes(
    signed_in: Client, run: Run, processed: StoredTarget
) -> None:
    for number, chunk in enumerate(processed.target.index["chunks"]):
        # A Range header is ignored: the URL names the chunk.
        response = signed_in.get(f"{urls(run)['chunks']}?chunk={number}", HTTP_RANGE="bytes=0-1")
        assert response.status_code == 200
        assert response["Content-Type"] == "application/octet-stream"
        assert response["Cache-Control"] == "private, no-store"
        assert int(response["Content-Length"]) == chunk["length"]
        assert (
            response.content == processed.blob[chunk["offset"] : chunk["offset"] + chunk["length"]]
        )
    for bad in ("2", "-1", "x", ""):
        assert signed_in.get(f"{urls(run)['chunks']}?chunk={bad}").status_code == 404, bad


def test_the_page_preloads_the_manifest_and_the_first_chunk(
    signed_in: Client, run: Run, processed: StoredTarget
) -> None:
    html = signed_in.get(urls(run)["page"]).content.decode()
    manifest = (
        f'<link rel="preload" href="{urls(run)["manifest"]}" as="fetch" crossorigin="anonymous">'
    )
    assert manifest in html
    first = re.search(
        r'<link rel="preload" href="([^"]+)" as="fetch"[^>]* data-replay-chunk[^>]*>', html
    )
    assert first is not None
    assert first.group(1) == f"{urls(run)['chunks']}?chunk=0"
    assert 'data-target="page-1" data-chunk="0"' in first.group(0)


def test_no_chunk_is_preloaded_without_a_playable_processed_tab(
    signed_in: Client, run: Run, tenant: Tenant
) -> None:
    html = signed_in.get(urls(run)["page"]).content.decode()
    assert 'rel="preload"' in html  # the manifest
    assert "data-replay-chunk" not in html
    recording = ready_recording(run)
    RecordingTarget.objects.create(
        recording=recording, target="page-9", playable=False, problem="No full snapshot"
    )
    html = signed_in.get(urls(run)["page"]).content.decode()
    assert "data-replay-chunk" not in html


# Live -------------------------------------------------------------------------------


def test_live_returns_only_batches_after_seq(signed_in: Client, run: Run) -> None:
    recording = Recording.objects.create(space=run.space, run=run)
    first = page_chunk(T0, "One", "first")
    second = [{"type": 3, "timestamp": T0 + 5000, "data": {"source": 1, "positions": []}}]
    third = [{"type": 3, "timestamp": T0 + 6000, "data": {"source": 1, "positions": []}}]
    add_batch(recording, "page-1", 1, first)
    add_batch(recording, "page-1", 2, second)
    add_batch(recording, "page-1", 3, third)
    add_batch(recording, "page-2", 4, third)

    everything = signed_in.get(urls(run)["live"]).json()
    assert everything["status"] == "recording"
    assert everything["seq"] == 3
    assert everything["more"] is False
    assert everything["events"] == [*first, *second, *third]

    after_one = signed_in.get(urls(run)["live"], {"after": 1}).json()
    assert after_one["events"] == [*second, *third]
    assert after_one["seq"] == 3

    nothing = signed_in.get(urls(run)["live"], {"after": 3}).json()
    assert nothing == {"status": "recording", "events": [], "seq": 3, "more": False}
    assert signed_in.get(urls(run)["live"], {"after": "x"}).json()["seq"] == 3


def test_live_pages_through_many_batches(signed_in: Client, run: Run, settings: Any) -> None:
    from recordings import views

    recording = Recording.objects.create(space=run.space, run=run)
    for seq in range(1, views.LIVE_MAX_BATCHES + 6):
        add_batch(recording, "page-1", seq, [{"type": 3, "timestamp": T0 + seq, "data": {}}])
    page = signed_in.get(urls(run)["live"], {"after": 0}).json()
    assert page["more"] is True
    assert page["seq"] == views.LIVE_MAX_BATCHES
    rest = signed_in.get(urls(run)["live"], {"after": page["seq"]}).json()
    assert rest["more"] is False
    assert len(rest["events"]) == 5


def test_live_of_a_run_without_recording_is_404(signed_in: Client, run: Run) -> None:
    assert signed_in.get(urls(run)["live"]).status_code == 404
