"""Processing of stopped recordings into replay chunks, and the sweeps around it."""

import gzip
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from django.core.files.storage import default_storage
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from recordings import processing
from recordings.chunking import CHUNK_MIN_EVENTS, CHUNK_MIN_MS
from recordings.models import Recording, RecordingBatch, RecordingTarget
from recordings.processing import recording_process
from recordings.rrweb import target_path
from recordings.selectors import runs_api_status
from recordings.services import batch_ingest, recording_start, recording_stop
from recordings.sweeps import recording_delete_files, recordings_expire, recordings_sweep_stuck
from runs.models import Run
from runs.services import events_append, run_create, run_stop

from .conftest import started_at_ms

T0 = 1_700_000_000_000
START = T0 - 60_000  # when the tests' runs started
HREF = "https://shop.example/"


# --- rrweb event factory ------------------------------------------------------------------


def meta(ts: int, href: str = HREF) -> dict[str, Any]:
    return {"type": 4, "timestamp": ts, "data": {"href": href, "width": 1280, "height": 720}}


def full_snapshot(ts: int) -> dict[str, Any]:
    body = {"type": 2, "tagName": "body", "attributes": {}, "childNodes": [], "id": 4}
    html = {"type": 2, "tagName": "html", "attributes": {}, "childNodes": [body], "id": 3}
    doctype = {"type": 1, "name": "html", "publicId": "", "systemId": "", "id": 2}
    return {
        "type": 2,
        "timestamp": ts,
        "data": {
            "node": {"type": 0, "childNodes": [doctype, html], "id": 1},
            "initialOffset": {"left": 0, "top": 0},
        },
    }


def page_start(ts: int, href: str = HREF) -> list[dict[str, Any]]:
    """What rrweb emits when it starts and at every checkout: Meta, then a FullSnapshot."""
    return [meta(ts, href), full_snapshot(ts + 1)]


def mutation(ts: int, n: int = 0) -> dict[str, Any]:
    return {
        "type": 3,
        "timestamp": ts,
        "data": {
            "source": 0,
            "texts": [],
            "attributes": [{"id": 4, "attributes": {"data-n": str(n)}}],
            "removes": [],
            "adds": [],
        },
    }


def click(ts: int, node: int = 4, double: bool = False) -> dict[str, Any]:
    return {
        "type": 3,
        "timestamp": ts,
        "data": {"source": 2, "type": 4 if double else 2, "id": node, "x": 10, "y": 20},
    }


def mouse_down(ts: int) -> dict[str, Any]:
    return {"type": 3, "timestamp": ts, "data": {"source": 2, "type": 1, "id": 4, "x": 1, "y": 2}}


def mouse_move(ts: int) -> dict[str, Any]:
    return {
        "type": 3,
        "timestamp": ts,
        "data": {"source": 1, "positions": [{"x": 5, "y": 6, "id": 4, "timeOffset": 0}]},
    }


def typed(ts: int, node: int, text: str) -> dict[str, Any]:
    return {
        "type": 3,
        "timestamp": ts,
        "data": {"source": 5, "text": text, "isChecked": False, "id": node},
    }


def custom(ts: int, tag: str) -> dict[str, Any]:
    return {"type": 5, "timestamp": ts, "data": {"tag": tag, "payload": {"step": 1}}}


# --- helpers ------------------------------------------------------------------------------


def ingest(run: Run, target: str, seq: int, events: list[dict[str, Any]]) -> None:
    batch_ingest(run=run, target=target, seq=seq, events=events)


def recording_of(run: Run) -> Recording:
    return Recording.objects.get(run=run)


def stop_and_process(run: Run) -> Recording:
    recording = recording_stop(recording=recording_of(run))
    assert recording.status == Recording.Status.PREPARING
    recording_process(recording_id=recording.id)
    recording.refresh_from_db()
    return recording


def file_bytes(name: str) -> bytes:
    with default_storage.open(name, "rb") as handle:
        return handle.read()


def read_chunk(row: RecordingTarget, position: int) -> list[dict[str, Any]]:
    """What a browser does: fetch one chunk's byte range and inflate it."""
    chunk = row.index["chunks"][position]
    with default_storage.open(row.path, "rb") as handle:
        handle.seek(chunk["offset"])
        member = handle.read(chunk["length"])
    return orjson.loads(gzip.decompress(member))


def all_chunk_events(row: RecordingTarget) -> list[dict[str, Any]]:
    events = []
    for position in range(len(row.index["chunks"])):
        events.extend(read_chunk(row, position))
    return events


def at(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


@pytest.fixture(autouse=True)
def _own_media_root(tmp_path: Any, settings: Any) -> None:
    # Each test's files in a folder of its own (default_storage follows the setting), so
    # these tests neither see nor leave files that other tests look for.
    settings.MEDIA_ROOT = str(tmp_path / "files")


@pytest.fixture
def run(tenant: Any) -> Run:
    return started_at_ms(run_create(space=tenant.space), START)


# --- status machine and totals ------------------------------------------------------------


def test_it_processes_a_stopped_recording_to_ready_with_totals(run: Run) -> None:
    ingest(run, "page-a", 0, [*page_start(T0), mutation(T0 + 500), click(T0 + 900)])
    ingest(run, "page-a", 1, [mutation(T0 + 3000, 1), typed(T0 + 4000, 7, "x")])
    ingest(run, "page-b", 0, [*page_start(T0 + 2000, HREF + "b"), mutation(T0 + 6500)])

    recording = stop_and_process(run)

    assert recording.status == Recording.Status.READY
    assert recording.attempts == 1
    assert recording.processing_started_at is not None
    assert recording.ready_at is not None
    assert recording.duration_ms == 6500
    assert recording.event_count == 6 + 3
    assert recording.target_count == 2
    batches = RecordingBatch.objects.filter(recording=recording)
    assert recording.raw_bytes == sum(batch.raw_bytes for batch in batches)
    targets = {row.target: row for row in recording.targets.all()}
    assert set(targets) == {"page-a", "page-b"}
    assert recording.size_bytes == sum(default_storage.size(row.path) for row in targets.values())
    page_a = targets["page-a"]
    assert page_a.playable and page_a.problem == ""
    assert (page_a.start_timestamp, page_a.end_timestamp) == (T0, T0 + 4000)
    assert page_a.event_count == 6
    assert page_a.path == target_path(recording.id, "page-a")
    assert page_a.size_bytes == default_storage.size(page_a.path)
    assert recording.gaps == []
    assert runs_api_status(recording) == "ready"


@pytest.mark.django_db(transaction=True)
def test_stopping_the_run_processes_its_recording_through_the_task(tenant: Any) -> None:
    run = started_at_ms(run_create(space=tenant.space), START)
    ingest(run, "page", 0, [*page_start(T0), mutation(T0 + 1500)])

    run_stop(run=run)

    recording = recording_of(run)
    assert recording.status == Recording.Status.READY
    assert recording.duration_ms == 1500


def test_a_recording_without_batches_is_ready_and_not_available(run: Run) -> None:
    recording = recording_start(run=run)
    recording_stop(recording=recording)

    recording_process(recording_id=recording.id)

    recording.refresh_from_db()
    assert recording.status == Recording.Status.READY
    assert recording.duration_ms == 0
    assert recording.target_count == 0
    assert runs_api_status(recording) == "not_available"


def test_a_recording_shorter_than_a_second_is_not_available(run: Run) -> None:
    ingest(run, "page", 0, [*page_start(T0), mutation(T0 + 400)])

    recording = stop_and_process(run)

    assert recording.status == Recording.Status.READY
    assert recording.duration_ms == 400
    assert runs_api_status(recording) == "not_available"


# --- order, duplicates, gaps --------------------------------------------------------------


def test_batches_that_arrive_out_of_order_are_sorted(run: Run) -> None:
    ingest(run, "page", 0, [*page_start(T0), mutation(T0 + 100, 0)])
    ingest(run, "page", 2, [mutation(T0 + 300, 2), click(T0 + 350)])
    # Seq 1 arrives last, and one of its events is older than the end of seq 0.
    ingest(run, "page", 1, [mutation(T0 + 50, 9), mutation(T0 + 200, 1)])

    recording = stop_and_process(run)

    row = recording.targets.get()
    timestamps = [event["timestamp"] for event in all_chunk_events(row)]
    assert timestamps == [T0, T0 + 1, T0 + 50, T0 + 100, T0 + 200, T0 + 300, T0 + 350]
    assert recording.gaps == []


def test_events_with_equal_timestamps_keep_their_arrival_order(run: Run) -> None:
    ingest(run, "page", 0, [*page_start(T0), mutation(T0 + 100, 1), mutation(T0 + 100, 2)])
    ingest(run, "page", 1, [mutation(T0 + 100, 3)])

    recording = stop_and_process(run)

    events = all_chunk_events(recording.targets.get())
    assert [event["data"]["attributes"][0]["attributes"]["data-n"] for event in events[2:]] == [
        "1",
        "2",
        "3",
    ]


def test_re_sent_batches_and_repeated_events_are_kept_once(run: Run) -> None:
    ingest(run, "page", 0, [*page_start(T0), mutation(T0 + 100, 1)])
    resent = [mutation(T0 + 200, 2), click(T0 + 250), mutation(T0 + 300, 3)]
    ingest(run, "page", 1, resent)
    # The recorder timed out and sent the same events again under the next seq, plus one
    # new event; the last batch repeats an event and has a different one at the same time.
    ingest(run, "page", 2, [*resent, mutation(T0 + 400, 4)])
    ingest(run, "page", 3, [mutation(T0 + 400, 4), mutation(T0 + 400, 5)])

    recording = stop_and_process(run)

    events = all_chunk_events(recording.targets.get())
    assert [event["timestamp"] - T0 for event in events] == [0, 1, 100, 200, 250, 300, 400, 400]
    assert recording.event_count == 8
    assert len({orjson.dumps(event) for event in events}) == 8


def test_missing_batches_are_recorded_as_gaps(run: Run) -> None:
    ingest(run, "a", 0, [*page_start(T0)])
    ingest(run, "a", 1, [mutation(T0 + 100)])
    ingest(run, "a", 3, [mutation(T0 + 300)])
    ingest(run, "a", 5, [mutation(T0 + 500)])
    # Numbered from 1: complete.
    ingest(run, "b", 1, [*page_start(T0)])
    ingest(run, "b", 2, [mutation(T0 + 100)])
    # The first batches never came.
    ingest(run, "c", 3, [*page_start(T0 + 10)])

    recording = stop_and_process(run)

    assert recording.status == Recording.Status.READY
    assert recording.gaps == [
        {"target": "a", "missing": [2, 4]},
        {"target": "c", "missing": [1, 2]},
    ]


def test_an_unreadable_batch_file_is_a_gap(run: Run) -> None:
    ingest(run, "page", 0, [*page_start(T0)])
    ingest(run, "page", 1, [mutation(T0 + 100)])
    ingest(run, "page", 2, [mutation(T0 + 1200)])
    lost = RecordingBatch.objects.get(seq=1)
    default_storage.delete(lost.path)

    recording = stop_and_process(run)

    assert recording.status == Recording.Status.READY
    assert recording.gaps == [{"target": "page", "missing": [], "unreadable": [1]}]
    assert recording.event_count == 3


# --- playability --------------------------------------------------------------------------


def test_a_target_without_a_leading_full_snapshot_is_not_playable(run: Run) -> None:
    ingest(run, "good", 0, [*page_start(T0), mutation(T0 + 2000)])
    # Its first batch was lost: incremental events, then a checkout 10 s later.
    ingest(run, "bad", 1, [mutation(T0 + 100), click(T0 + 200)])
    ingest(run, "bad", 2, [*page_start(T0 + 10_100), mutation(T0 + 10_200)])

    recording = stop_and_process(run)

    assert recording.status == Recording.Status.READY
    bad = recording.targets.get(target="bad")
    assert not bad.playable
    assert "no full snapshot before the first incremental event" in bad.problem
    assert bad.path == "" and bad.index == {}
    assert not default_storage.exists(target_path(recording.id, "bad"))
    assert recording.duration_ms == 2000
    assert recording.target_count == 2
    assert recording.event_count == 3


def test_a_recording_whose_targets_are_all_unplayable_fails(run: Run) -> None:
    ingest(run, "one", 0, [mutation(T0), click(T0 + 100)])
    ingest(run, "two", 0, [full_snapshot(T0), mutation(T0 + 100)])

    recording = stop_and_process(run)

    assert recording.status == Recording.Status.FAILED
    assert "one: no full snapshot in 2 events" in recording.failure_reason
    assert "two: no Meta event before the full snapshot" in recording.failure_reason
    assert runs_api_status(recording) == "failed"


def test_events_just_before_the_first_full_snapshot_are_dropped(run: Run) -> None:
    load = {"type": 1, "timestamp": T0, "data": {}}
    ingest(run, "page", 0, [load, mutation(T0 + 200), *page_start(T0 + 600), click(T0 + 2000)])

    recording = stop_and_process(run)

    row = recording.targets.get()
    assert row.playable
    events = all_chunk_events(row)
    assert [event["type"] for event in events] == [4, 2, 3]
    assert row.start_timestamp == T0 + 600
    assert recording.event_count == 3


# --- chunks -------------------------------------------------------------------------------


def long_session(seconds: int, checkout_every_s: int) -> list[dict[str, Any]]:
    """A page with a mutation every 100 ms and a checkout (Meta + FullSnapshot) regularly."""
    events: list[dict[str, Any]] = []
    for tenth in range(seconds * 10):
        ts = T0 + tenth * 100
        if tenth % (checkout_every_s * 10) == 0:
            events.extend(page_start(ts))
        events.append(mutation(ts + 5, tenth))
    return events


def test_chunks_begin_at_natural_snapshots_and_their_byte_ranges_inflate_to_their_events(
    run: Run,
) -> None:
    stream = long_session(seconds=60, checkout_every_s=2)
    for seq, start in enumerate(range(0, len(stream), 97)):
        ingest(run, "page", seq, stream[start : start + 97])

    recording = stop_and_process(run)

    row = recording.targets.get()
    chunks = row.index["chunks"]
    # A checkout every 2 s, a new chunk no sooner than CHUNK_MIN_MS: one every 6 s.
    assert CHUNK_MIN_MS == 5_000
    assert [chunk["start"] - T0 for chunk in chunks] == list(range(0, 60_000, 6_000))
    offset = 0
    replayed = []
    for position, chunk in enumerate(chunks):
        events = read_chunk(row, position)
        assert [events[0]["type"], events[1]["type"]] == [4, 2]
        assert chunk["offset"] == offset
        assert chunk["events"] == len(events)
        assert (chunk["start"], chunk["end"]) == (events[0]["timestamp"], events[-1]["timestamp"])
        offset += chunk["length"]
        replayed.extend(events)
    assert offset == row.size_bytes == default_storage.size(row.path)
    assert replayed == stream
    # The whole file is one gzip stream: the chunks' JSON arrays one after the other.
    whole = gzip.decompress(file_bytes(row.path))
    assert whole == b"".join(orjson.dumps(read_chunk(row, i)) for i in range(len(chunks)))
    assert row.event_count == recording.event_count == len(stream)


def test_a_chunk_also_ends_at_a_snapshot_once_it_holds_enough_events(run: Run) -> None:
    busy = [mutation(T0 + 2 + i // 10, i) for i in range(CHUNK_MIN_EVENTS + 10)]
    events = [*page_start(T0), *busy, *page_start(T0 + 1000), mutation(T0 + 1500)]
    ingest(run, "page", 0, events)

    recording = stop_and_process(run)

    chunks = recording.targets.get().index["chunks"]
    assert [chunk["start"] for chunk in chunks] == [T0, T0 + 1000]


def test_snapshots_close_together_do_not_make_tiny_chunks(run: Run) -> None:
    ingest(run, "page", 0, long_session(seconds=4, checkout_every_s=1))

    recording = stop_and_process(run)

    assert len(recording.targets.get().index["chunks"]) == 1


# --- markers and inactivity ---------------------------------------------------------------


def test_markers_come_from_navigations_clicks_input_bursts_and_custom_events(run: Run) -> None:
    events = [
        *page_start(T0),
        mouse_down(T0 + 100),
        click(T0 + 110),
        *[typed(T0 + 200 + i * 150, 7, "secret"[: i + 1]) for i in range(6)],
        typed(T0 + 1500, 8, "hunter2"),
        typed(T0 + 1600, 7, "secrets"),
        click(T0 + 2000, double=True),
        custom(T0 + 2500, "checkout-started"),
        *page_start(T0 + 3000),  # a checkout: same page, no navigation
        *page_start(T0 + 4000, HREF + "cart"),
        mutation(T0 + 4500),
    ]
    ingest(run, "page", 0, events)

    recording = stop_and_process(run)

    markers = recording.targets.get().index["markers"]
    assert markers == [
        {"time": T0 + 110, "kind": "click", "label": "Click"},
        {"time": T0 + 200, "kind": "input", "label": "Input (6 changes)"},
        {"time": T0 + 1500, "kind": "input", "label": "Input"},
        {"time": T0 + 1600, "kind": "input", "label": "Input"},
        {"time": T0 + 2000, "kind": "click", "label": "Double-click"},
        {"time": T0 + 2500, "kind": "custom", "label": "checkout-started"},
        {"time": T0 + 4000, "kind": "navigation", "label": HREF + "cart"},
    ]
    labels = " ".join(marker["label"] for marker in markers)
    assert "secret" not in labels and "hunter2" not in labels


def test_console_errors_and_failed_requests_of_the_run_are_markers(run: Run) -> None:
    ingest(run, "page", 0, [*page_start(T0), mutation(T0 + 5000)])
    ingest(run, "other", 0, [*page_start(T0), mutation(T0 + 5000)])
    events_append(
        run=run,
        events=[
            {
                "type": "console.message",
                "time": at(T0 + 1000),
                "page_id": "page",
                "data": {"level": "error", "text": "TypeError: x is undefined"},
            },
            {
                "type": "console.message",
                "time": at(T0 + 1100),
                "page_id": "page",
                "data": {"level": "log", "text": "hello"},
            },
            {
                "type": "network.failed",
                "time": at(T0 + 2000),
                "page_id": "page",
                "data": {"url": "https://api.example/cart", "errorText": "net::ERR_FAILED"},
            },
            {
                "type": "page.error",
                "time": at(T0 + 3000),
                "page_id": "page",
                "data": {"message": "Uncaught Error: boom\n    at main.js:1"},
            },
            {
                "type": "console.message",
                "time": at(T0 + 1000),
                "page_id": "other",
                "data": {"level": "error", "text": "only on the other page"},
            },
            {
                "type": "console.message",
                "time": at(T0 + 60_000),
                "page_id": "page",
                "data": {"level": "error", "text": "after the recording"},
            },
        ],
    )

    recording = stop_and_process(run)

    markers = recording.targets.get(target="page").index["markers"]
    assert markers == [
        {
            "time": T0 + 1000,
            "kind": "console.error",
            "label": "Console error: TypeError: x is undefined",
        },
        {
            "time": T0 + 2000,
            "kind": "network.failed",
            "label": "Request failed: GET https://api.example/cart — net::ERR_FAILED",
        },
        {"time": T0 + 3000, "kind": "console.error", "label": "Page error: Uncaught Error: boom"},
    ]
    other = recording.targets.get(target="other").index["markers"]
    assert [marker["label"] for marker in other] == ["Console error: only on the other page"]


def test_run_events_are_read_with_one_query_however_many_there_are(tenant: Any) -> None:
    def queries_for(error_count: int) -> int:
        run = started_at_ms(run_create(space=tenant.space), START)
        ingest(run, "page", 0, [*page_start(T0), mutation(T0 + 5000)])
        events_append(
            run=run,
            events=[
                {
                    "type": "console.message",
                    "time": at(T0 + 10 + i),
                    "page_id": "page",
                    "data": {"level": "error", "text": f"error {i}"},
                }
                for i in range(error_count)
            ],
        )
        recording = recording_stop(recording=recording_of(run))
        with CaptureQueriesContext(connection) as context:
            recording_process(recording_id=recording.id)
        assert len(recording.targets.get().index["markers"]) == error_count
        return len(context.captured_queries)

    assert queries_for(1) == queries_for(25)


def test_inactivity_is_a_span_without_interaction_or_mutation(run: Run) -> None:
    events = [
        *page_start(T0),
        mutation(T0 + 1000),
        # 11 s without activity; a checkout in between is not activity.
        *page_start(T0 + 8000),
        mouse_move(T0 + 12_000),
        click(T0 + 13_000),
        mutation(T0 + 16_000),  # 3 s later: too short to skip
        custom(T0 + 25_000, "done"),  # not activity: the tail is inactive
    ]
    ingest(run, "page", 0, events)

    recording = stop_and_process(run)

    assert recording.targets.get().index["inactivity"] == [
        {"start": T0 + 1000, "end": T0 + 12_000},
        {"start": T0 + 16_000, "end": T0 + 25_000},
    ]


# --- idempotency and concurrency ----------------------------------------------------------


def target_files(recording: Recording) -> list[str]:
    _, names = default_storage.listdir(f"recordings/{recording.id}/targets")
    return sorted(names)


def test_processing_again_produces_the_same_outputs_and_no_duplicates(run: Run) -> None:
    ingest(run, "page", 0, long_session(seconds=20, checkout_every_s=2))
    ingest(run, "other", 0, [*page_start(T0), typed(T0 + 3000, 3, "x")])
    recording = stop_and_process(run)
    before = {
        row.target: (row.index, row.path, row.size_bytes, file_bytes(row.path))
        for row in recording.targets.all()
    }
    files_before = target_files(recording)
    totals_before = (recording.duration_ms, recording.event_count, recording.size_bytes)

    # A re-queue puts it back to preparing; it is processed again from the batches.
    Recording.objects.filter(pk=recording.pk).update(status=Recording.Status.PREPARING)
    recording_process(recording_id=recording.id)

    recording.refresh_from_db()
    assert recording.status == Recording.Status.READY
    assert recording.attempts == 2
    after = {
        row.target: (row.index, row.path, row.size_bytes, file_bytes(row.path))
        for row in recording.targets.all()
    }
    assert after == before
    assert RecordingTarget.objects.filter(recording=recording).count() == 2
    assert target_files(recording) == files_before == ["other.chunks.gz", "page.chunks.gz"]
    assert (recording.duration_ms, recording.event_count, recording.size_bytes) == totals_before


def test_processing_a_ready_recording_does_nothing(run: Run) -> None:
    ingest(run, "page", 0, [*page_start(T0), mutation(T0 + 1500)])
    recording = stop_and_process(run)

    assert recording_process(recording_id=recording.id) is None

    recording.refresh_from_db()
    assert recording.status == Recording.Status.READY
    assert recording.attempts == 1


def test_a_recording_another_worker_just_took_is_skipped(run: Run) -> None:
    ingest(run, "page", 0, [*page_start(T0), mutation(T0 + 1500)])
    recording = recording_stop(recording=recording_of(run))
    Recording.objects.filter(pk=recording.pk).update(
        status=Recording.Status.PROCESSING, processing_started_at=timezone.now(), attempts=1
    )

    assert recording_process(recording_id=recording.id) is None

    recording.refresh_from_db()
    assert (recording.status, recording.attempts) == (Recording.Status.PROCESSING, 1)
    assert not recording.targets.exists()
    # An operator's recover may force it.
    assert recording_process(recording_id=recording.id, force=True) is not None
    recording.refresh_from_db()
    assert (recording.status, recording.attempts) == (Recording.Status.READY, 2)


def test_an_error_leaves_it_processing_and_the_last_attempt_fails_it(
    run: Run, monkeypatch: pytest.MonkeyPatch, settings: Any
) -> None:
    settings.BCTRL_RECORDING_MAX_ATTEMPTS = 2
    ingest(run, "page", 0, [*page_start(T0), mutation(T0 + 1500)])
    recording = recording_stop(recording=recording_of(run))

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise OSError("storage is down")

    monkeypatch.setattr(processing, "_process_target", broken)
    with pytest.raises(OSError, match="storage is down"):
        recording_process(recording_id=recording.id)
    recording.refresh_from_db()
    assert (recording.status, recording.attempts) == (Recording.Status.PROCESSING, 1)

    with pytest.raises(OSError):
        recording_process(recording_id=recording.id, force=True)
    recording.refresh_from_db()
    assert (recording.status, recording.attempts) == (Recording.Status.FAILED, 2)
    assert "after 2 attempts" in recording.failure_reason
    assert "storage is down" in recording.failure_reason


# --- sweep --------------------------------------------------------------------------------


def test_the_sweep_requeues_a_recording_whose_worker_died(run: Run, settings: Any) -> None:
    settings.BCTRL_RECORDING_PROCESSING_TIMEOUT_S = 600
    ingest(run, "page", 0, [*page_start(T0), mutation(T0 + 1500)])
    recording = recording_stop(recording=recording_of(run))
    Recording.objects.filter(pk=recording.pk).update(
        status=Recording.Status.PROCESSING,
        processing_started_at=timezone.now() - timedelta(minutes=11),
        attempts=1,
    )

    result = recordings_sweep_stuck()

    assert result.requeued == [recording.id]
    recording.refresh_from_db()  # the task ran (eagerly)
    assert (recording.status, recording.attempts) == (Recording.Status.READY, 2)


def test_the_sweep_leaves_a_recent_processing_alone(run: Run) -> None:
    ingest(run, "page", 0, [*page_start(T0), mutation(T0 + 1500)])
    recording = recording_stop(recording=recording_of(run))
    Recording.objects.filter(pk=recording.pk).update(
        status=Recording.Status.PROCESSING,
        processing_started_at=timezone.now() - timedelta(minutes=5),
        attempts=1,
    )

    assert recordings_sweep_stuck().requeued == []

    recording.refresh_from_db()
    assert recording.status == Recording.Status.PROCESSING


def test_the_sweep_requeues_a_recording_whose_enqueue_was_lost(run: Run) -> None:
    ingest(run, "page", 0, [*page_start(T0), mutation(T0 + 1500)])
    lost = recording_stop(recording=recording_of(run))  # on_commit never fires here
    Recording.objects.filter(pk=lost.pk).update(stopped_at=timezone.now() - timedelta(minutes=2))
    other_run = started_at_ms(run_create(space=run.space), START)
    ingest(other_run, "page", 0, [*page_start(T0), mutation(T0 + 1500)])
    just_stopped = recording_stop(recording=recording_of(other_run))

    result = recordings_sweep_stuck()

    assert result.requeued == [lost.id]
    lost.refresh_from_db()
    just_stopped.refresh_from_db()
    assert lost.status == Recording.Status.READY
    assert just_stopped.status == Recording.Status.PREPARING


def test_the_sweep_fails_a_recording_after_the_last_attempt(run: Run, settings: Any) -> None:
    settings.BCTRL_RECORDING_MAX_ATTEMPTS = 3
    ingest(run, "page", 0, [*page_start(T0), mutation(T0 + 1500)])
    recording = recording_stop(recording=recording_of(run))
    Recording.objects.filter(pk=recording.pk).update(
        status=Recording.Status.PROCESSING,
        processing_started_at=timezone.now() - timedelta(hours=1),
        attempts=3,
    )

    result = recordings_sweep_stuck()

    assert result.failed == [recording.id]
    recording.refresh_from_db()
    assert recording.status == Recording.Status.FAILED
    assert recording.failure_reason == "processing did not finish after 3 attempts"


def test_a_redelivered_task_after_the_last_attempt_fails_it(run: Run, settings: Any) -> None:
    settings.BCTRL_RECORDING_MAX_ATTEMPTS = 2
    ingest(run, "page", 0, [*page_start(T0), mutation(T0 + 1500)])
    recording = recording_stop(recording=recording_of(run))
    Recording.objects.filter(pk=recording.pk).update(
        status=Recording.Status.PROCESSING,
        processing_started_at=timezone.now() - timedelta(hours=1),
        attempts=2,
    )

    assert recording_process(recording_id=recording.id) is None

    recording.refresh_from_db()
    assert recording.status == Recording.Status.FAILED
    assert recording.attempts == 2


# --- retention ----------------------------------------------------------------------------


def stored_names(recording: Recording) -> list[str]:
    return [
        *RecordingBatch.objects.filter(recording=recording).values_list("path", flat=True),
        *RecordingTarget.objects.filter(recording=recording).values_list("path", flat=True),
    ]


def test_expiry_marks_recordings_expired_and_deletes_their_files(run: Run, tenant: Any) -> None:
    ingest(run, "page", 0, [*page_start(T0), mutation(T0 + 1500)])
    expiring = stop_and_process(run)
    names = stored_names(expiring)
    assert names and all(default_storage.exists(name) for name in names)
    assert expiring.expires_at is not None and expiring.stopped_at is not None
    assert expiring.expires_at - expiring.stopped_at == timedelta(days=7)
    Recording.objects.filter(pk=expiring.pk).update(
        expires_at=timezone.now() - timedelta(minutes=1)
    )
    kept_run = started_at_ms(run_create(space=tenant.space), START)
    ingest(kept_run, "page", 0, [*page_start(T0), mutation(T0 + 1500)])
    kept = stop_and_process(kept_run)

    result = recordings_expire()

    assert result.expired == [expiring.id]
    assert result.purged == [expiring.id]
    expiring.refresh_from_db()
    assert expiring.status == Recording.Status.EXPIRED
    assert not any(default_storage.exists(name) for name in names)
    assert set(stored_names(expiring)) == {""}
    assert runs_api_status(expiring) == "not_available"
    kept.refresh_from_db()
    assert kept.status == Recording.Status.READY
    assert all(default_storage.exists(name) for name in stored_names(kept))
    assert recordings_expire().purged == []


def test_files_of_recordings_deleted_more_than_a_day_ago_are_purged(run: Run, tenant: Any) -> None:
    ingest(run, "page", 0, [*page_start(T0), mutation(T0 + 1500)])
    old = stop_and_process(run)
    old_names = stored_names(old)
    Recording.objects.filter(pk=old.pk).update(
        status=Recording.Status.DELETED, deleted_at=timezone.now() - timedelta(days=2)
    )
    recent_run = started_at_ms(run_create(space=tenant.space), START)
    ingest(recent_run, "page", 0, [*page_start(T0), mutation(T0 + 1500)])
    recent = stop_and_process(recent_run)
    Recording.objects.filter(pk=recent.pk).update(
        status=Recording.Status.DELETED, deleted_at=timezone.now() - timedelta(hours=1)
    )

    result = recordings_expire()

    assert result.purged == [old.id]
    assert result.expired == []
    old.refresh_from_db()
    assert old.status == Recording.Status.DELETED
    assert not any(default_storage.exists(name) for name in old_names)
    assert all(default_storage.exists(name) for name in stored_names(recent))


def test_expiry_deletes_the_files_of_an_archived_recording_from_cold_storage(
    run: Run, settings: Any, tmp_path: Any
) -> None:
    from recordings.storage import cold_storage, recording_archive

    settings.STORAGES = {
        **settings.STORAGES,
        "cold": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(tmp_path / "cold")},
        },
    }
    ingest(run, "page", 0, [*page_start(T0), mutation(T0 + 1500)])
    recording = recording_archive(recording=stop_and_process(run))
    names = stored_names(recording)
    assert all(cold_storage().exists(name) for name in names)
    Recording.objects.filter(pk=recording.pk).update(expires_at=timezone.now())

    assert recordings_expire().expired == [recording.id]

    assert not any(cold_storage().exists(name) for name in names)


def test_deleting_files_also_removes_files_left_without_a_row(run: Run) -> None:
    ingest(run, "page", 0, [*page_start(T0), mutation(T0 + 1500)])
    recording = stop_and_process(run)
    orphan = default_storage.save(
        f"recordings/{recording.id}/batches/page/orphan.json.gz", gzip_bytes(b"[]")
    )

    deleted = recording_delete_files(recording)

    assert deleted == 3  # one batch, one target file, the orphan
    assert not default_storage.exists(orphan)


def gzip_bytes(payload: bytes) -> Any:
    from django.core.files.base import ContentFile

    return ContentFile(gzip.compress(payload))


# --- schedule and admin -------------------------------------------------------------------


def test_the_beat_schedule_runs_the_sweep_every_minute_and_expiry_hourly() -> None:
    from bctrl_site.celery import app

    schedule = {entry["task"]: entry["schedule"] for entry in app.conf.beat_schedule.values()}
    assert schedule["recordings.tasks.sweep_stuck_recordings"] == 60.0
    assert "recordings.tasks.expire_recordings" in schedule
    app.loader.import_default_modules()
    assert set(schedule) <= set(app.tasks)


def test_the_admin_shows_recordings_targets_and_batches(
    run: Run, client: Any, django_user_model: Any
) -> None:
    ingest(run, "page", 0, [*page_start(T0), mutation(T0 + 1500)])
    recording = stop_and_process(run)
    admin_user = django_user_model.objects.create_superuser("root", "root@example.test", "pw")
    client.force_login(admin_user)
    target = recording.targets.get()
    batch = recording.batches.get()
    pages = [
        "/admin/recordings/recording/",
        f"/admin/recordings/recording/?status=ready&q={run.id}",
        f"/admin/recordings/recording/{recording.pk}/change/",
        "/admin/recordings/recordingtarget/",
        f"/admin/recordings/recordingtarget/{target.pk}/change/",
        "/admin/recordings/recordingbatch/",
        f"/admin/recordings/recordingbatch/{batch.pk}/change/",
    ]
    for page in pages:
        response = client.get(page)
        assert response.status_code == 200, page
    assert recording.id.encode() in client.get("/admin/recordings/recording/").content
    assert client.get("/admin/recordings/recording/add/").status_code == 403
