"""Writes of the recording lifecycle: start, ingest a batch, stop."""

import gzip
import hashlib
import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import orjson
from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import IntegrityError, transaction
from django.utils import timezone

from recordings.models import MAX_CAPTURE_MS, Recording, RecordingBatch
from runs.api.errors import Conflict, Invalid, PayloadTooLarge
from runs.live import notify_run_changed
from runs.models import Run

TARGET_PATTERN = re.compile(r"^(?!\.+$)[A-Za-z0-9_.-]{1,100}$")  # not "." or ".."
# rrweb's EventType: DomContentLoaded 0, Load 1, FullSnapshot 2, IncrementalSnapshot 3,
# Meta 4, Custom 5, Plugin 6.
RRWEB_EVENT_TYPES = range(7)


def recording_dir(recording_id: str) -> str:
    return f"recordings/{recording_id}"


def batch_path(recording_id: str, target: str, seq: int, digest: str) -> str:
    return f"{recording_dir(recording_id)}/batches/{target}/{seq:010d}-{digest[:16]}.json.gz"


def recording_start(*, run: Run) -> Recording:
    """Starts recording the run; a run records at most one recording at a time (409)."""
    if not run.is_active:
        raise Conflict(f"Run {run.id} has ended ({run.status}).", code="run.ended")
    try:
        with transaction.atomic():
            recording = Recording.objects.create(space_id=run.space_id, run=run)
    except IntegrityError as exc:
        raise Conflict(
            f"Run {run.id} is already being recorded.", code="recording.already_recording"
        ) from exc
    notify_run_changed(run.id, "recording", status=recording.status)
    return recording


def active_recording_for_ingest(*, run: Run) -> Recording:
    """The recording that a batch for `run` belongs to, started on the first batch.

    A run whose recording was stopped takes no more batches (409): recordings are never
    silently reopened.
    """
    recording = run.recordings.filter(status=Recording.Status.RECORDING).first()
    if recording is not None:
        return recording
    if run.recordings.exists():
        latest = run.recordings.order_by("-id").first()
        assert latest is not None
        raise Conflict(
            f"Recording {latest.id} is {latest.status}; it takes no more batches.",
            code="recording.not_recording",
        )
    try:
        return recording_start(run=run)
    except Conflict:
        # Two first batches raced; the other one started it.
        return run.recordings.get(status=Recording.Status.RECORDING)


def validate_rrweb_events(events: Any) -> list[dict[str, Any]]:
    """Checks the JSON shape of each rrweb event: {type, timestamp, data}."""
    if not isinstance(events, list) or not events:
        raise Invalid("events must be a non-empty list of rrweb events.")
    limit = settings.BCTRL_RECORDING_MAX_EVENTS_PER_BATCH
    if len(events) > limit:
        raise PayloadTooLarge(f"A batch holds at most {limit} events.")
    for index, event in enumerate(events):
        problem = _event_problem(event)
        if problem:
            raise Invalid(f"events[{index}]: {problem}", details={"index": index})
    return events


def _event_problem(event: Any) -> str:
    if not isinstance(event, dict):
        return "an event must be an object"
    kind = event.get("type")
    if type(kind) is not int or kind not in RRWEB_EVENT_TYPES:
        return "type must be an rrweb event type (an integer 0-6)"
    timestamp = event.get("timestamp")
    if not isinstance(timestamp, int | float) or isinstance(timestamp, bool) or timestamp <= 0:
        return "timestamp must be a positive number of milliseconds"
    if not isinstance(event.get("data"), dict):
        return "data must be an object"
    return ""


@dataclass(frozen=True)
class IngestResult:
    batch: RecordingBatch
    created: bool


def batch_ingest(*, run: Run, target: str, seq: int, events: list[dict[str, Any]]) -> IngestResult:
    """Stores one batch of rrweb events for a page target of the run.

    Idempotent on (recording, target, seq): the same batch again is answered as stored;
    the same seq with other content is a 409. Batches may arrive in any order; processing
    sorts them and records gaps. A refused batch leaves neither a row nor a file.
    """
    if not TARGET_PATTERN.match(target):
        raise Invalid("target must be 1-100 letters, digits, '.', '_' or '-'.")
    encoded = orjson.dumps(events)
    _check_event_sizes(events, len(encoded))
    digest = hashlib.sha256(encoded).hexdigest()
    recording = active_recording_for_ingest(run=run)
    existing = RecordingBatch.objects.filter(recording=recording, target=target, seq=seq).first()
    if existing is not None:
        return IngestResult(_same_batch(existing, digest), created=False)
    timestamps = [int(event["timestamp"]) for event in events]
    _check_capture_window(recording, max(timestamps))
    stored = gzip.compress(encoded, compresslevel=1)
    path = default_storage.save(batch_path(recording.id, target, seq, digest), ContentFile(stored))
    try:
        with transaction.atomic():
            locked = Recording.objects.select_for_update().get(pk=recording.pk)
            if locked.status != Recording.Status.RECORDING:
                raise Conflict(
                    f"Recording {locked.id} is {locked.status}; it takes no more batches.",
                    code="recording.not_recording",
                )
            batch = RecordingBatch.objects.create(
                recording=locked,
                target=target,
                seq=seq,
                event_count=len(events),
                first_timestamp=min(timestamps),
                last_timestamp=max(timestamps),
                raw_bytes=len(encoded),
                stored_bytes=len(stored),
                sha256=digest,
                path=path,
            )
            notify_run_changed(
                run.id, "recording.batch", recordingId=recording.id, target=target, seq=seq
            )
    except IntegrityError:
        default_storage.delete(path)
        raced = RecordingBatch.objects.get(recording=recording, target=target, seq=seq)
        return IngestResult(_same_batch(raced, digest), created=False)
    except Exception:
        default_storage.delete(path)
        raise
    return IngestResult(batch, created=True)


def _same_batch(batch: RecordingBatch, digest: str) -> RecordingBatch:
    if batch.sha256 != digest:
        raise Conflict(
            f"Batch {batch.seq} of target {batch.target} was stored with other content.",
            code="recording.batch_conflict",
        )
    return batch


def _check_event_sizes(events: list[dict[str, Any]], total: int) -> None:
    limit = settings.BCTRL_RECORDING_MAX_EVENT_BYTES
    if total <= limit:
        return
    for index, event in enumerate(events):
        if len(orjson.dumps(event)) > limit:
            raise PayloadTooLarge(
                f"events[{index}] is larger than {limit} bytes.", details={"index": index}
            )


def _check_capture_window(recording: Recording, last_timestamp: int) -> None:
    """Capture stops at two hours: a batch past that is refused and the recording stopped."""
    first = (
        RecordingBatch.objects.filter(recording=recording)
        .order_by("first_timestamp")
        .values_list("first_timestamp", flat=True)
        .first()
    )
    if first is not None and last_timestamp - first > MAX_CAPTURE_MS:
        recording_stop(recording=recording, reason="capture limit of 2 hours reached")
        raise Conflict(
            "The recording reached its 2 hour limit and was stopped.",
            code="recording.limit_reached",
        )


def recording_stop(*, recording: Recording, reason: str = "") -> Recording:
    """Stops taking batches and queues processing. Stopping twice changes nothing."""
    with transaction.atomic():
        locked = Recording.objects.select_for_update().select_related("space").get(pk=recording.pk)
        if locked.status != Recording.Status.RECORDING:
            return locked
        now = timezone.now()
        locked.status = Recording.Status.PREPARING
        locked.stopped_at = now
        locked.expires_at = now + timedelta(days=locked.space.recording_retention_days)
        if reason:
            locked.failure_reason = reason
        locked.save(update_fields=["status", "stopped_at", "expires_at", "failure_reason"])
        notify_run_changed(locked.run_id, "recording", status=locked.status)
        from recordings.tasks import process_recording

        transaction.on_commit(lambda: process_recording.delay(locked.id))
    return locked


def recordings_stop_for_run(*, run: Run) -> None:
    for recording in run.recordings.filter(status=Recording.Status.RECORDING):
        recording_stop(recording=recording)
