"""Writes of the recording lifecycle: start, ingest a batch, stop."""

import functools
import gzip
import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from operator import itemgetter
from typing import Any, NoReturn

import orjson
from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import IntegrityError, connection, transaction
from django.db.models import OuterRef, QuerySet, Subquery
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from recordings.models import MAX_CAPTURE_MS, Recording, RecordingBatch
from recordings.rrweb import EVENT_TYPES, EventType, batch_path
from runs.errors import Conflict, Invalid, PayloadTooLarge
from runs.live import notify_run_changed
from runs.models import API_KEY_PREFIX, ApiKey, Run, hash_api_key
from runs.queue import queue
from runs.rawsql import instance_from_row, model_columns

TARGET_PATTERN = re.compile(r"^(?!\.+$)[A-Za-z0-9_.-]{1,100}$")  # not "." or ".."


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
        # The common case in one expression (a call per event costs more than the
        # checks); anything it does not pass is judged by rrweb_event_problem, the rule.
        if type(event) is dict:
            kind, timestamp = event.get("type"), event.get("timestamp")
            if (
                type(kind) is int
                and kind in EVENT_TYPES
                and (type(timestamp) is int or type(timestamp) is float)
                and timestamp > 0
                and type(event.get("data")) is dict
            ):
                continue
        problem = rrweb_event_problem(event)
        if problem:
            raise Invalid(f"events[{index}]: {problem}", details={"index": index})
    return events


def rrweb_event_problem(event: Any) -> str:
    """Why `event` is not an rrweb event `{type, timestamp, data}`, or "" when it is."""
    if not isinstance(event, dict):
        return "an event must be an object"
    kind = event.get("type")
    if type(kind) is not int or kind not in EVENT_TYPES:
        return f"type must be an rrweb event type (an integer {min(EventType)}-{max(EventType)})"
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


@dataclass(frozen=True)
class ActiveRecording:
    """The recording that takes a run's batches, as read with the run (one query)."""

    id: str
    first_timestamp: int | None


def active_recording_of(run: Run) -> ActiveRecording | None:
    """The run's recording in status `recording`, from annotations of the run's row
    (`with_active_recording`) when present, else with one query."""
    if hasattr(run, "active_recording_id"):
        recording_id = getattr(run, "active_recording_id", None)
        first = getattr(run, "active_recording_first", None)
    else:
        row = (
            Recording.objects.filter(run=run, status=Recording.Status.RECORDING)
            .values_list("id", "first_timestamp")
            .first()
        )
        recording_id, first = row if row is not None else (None, None)
    return ActiveRecording(recording_id, first) if recording_id else None


def with_active_recording(runs: QuerySet[Run]) -> QuerySet[Run]:
    """Runs annotated with their active recording's id and first timestamp (or None), so
    that the ingest finds run and recording in one query."""
    active = Recording.objects.filter(run=OuterRef("pk"), status=Recording.Status.RECORDING)
    return runs.annotate(
        active_recording_id=Subquery(active.values("id")[:1]),
        active_recording_first=Subquery(active.values("first_timestamp")[:1]),
    )


@dataclass(frozen=True)
class IngestCaller:
    """What one query tells the ingest about a request: the API key, and the run of the
    key's space with its active recording (`run` None: no such run in that space)."""

    api_key: ApiKey
    run: Run | None


def ingest_lookup(raw_key: str, run_id: str) -> IngestCaller | None:
    """The API key (None: unknown or revoked), its space's run `run_id` and that run's
    recording in status `recording`, in one query: the hot path of every batch.

    Same rules as `ApiKey.objects.authenticate` and `selectors.run_of`: an unrevoked key
    by its hash, a run of the key's space only.
    """
    if not raw_key.startswith(API_KEY_PREFIX):
        return None
    with connection.cursor() as cursor:
        cursor.execute(
            _ingest_lookup_sql(),
            [run_id, Recording.Status.RECORDING.value, hash_api_key(raw_key)],
        )
        row = cursor.fetchone()
    if row is None:
        return None
    key_columns = len(model_columns(ApiKey))
    api_key = instance_from_row(ApiKey, list(row[:key_columns]))
    assert isinstance(api_key, ApiKey)
    space_id = api_key.space_id
    found_run_id, run_status, run_started_at, recording_id, first = row[key_columns:]
    run = None
    if found_run_id is not None:
        run = Run.from_db(
            connection.alias,
            ["id", "space_id", "status", "started_at"],
            [found_run_id, space_id, run_status, _aware_datetime(run_started_at)],
        )
        run.active_recording_id = recording_id  # type: ignore[attr-defined]
        run.active_recording_first = first  # type: ignore[attr-defined]
    return IngestCaller(api_key, run)


def _aware_datetime(value: Any) -> datetime | None:
    """A datetime column as a raw cursor gives it (SQLite: text or a naive datetime in
    UTC; PostgreSQL: aware) as the ORM would."""
    if isinstance(value, str):
        value = parse_datetime(value)
    if isinstance(value, datetime) and timezone.is_naive(value):
        value = timezone.make_aware(value, UTC)
    return value


@functools.cache
def _ingest_lookup_sql() -> str:
    key_columns = ", ".join(f"k.{field.column}" for field in model_columns(ApiKey))
    return f"""
    SELECT {key_columns}, r.id, r.status, r.started_at, rec.id, rec.first_timestamp
    FROM {ApiKey._meta.db_table} k
    LEFT JOIN {Run._meta.db_table} r ON r.id = %s AND r.space_id = k.space_id
    LEFT JOIN {Recording._meta.db_table} rec ON rec.run_id = r.id AND rec.status = %s
    WHERE k.key_hash = %s AND k.revoked_at IS NULL
"""  # noqa: S608  (table and column names from the models; values are parameters)


# Takes a batch: only while the recording records and while the batch ends within 2
# hours of the recording's first event; keeps that first timestamp (the minimum).
_TAKE_BATCH_SQL = f"""
    UPDATE {Recording._meta.db_table}
    SET first_timestamp = CASE WHEN first_timestamp IS NULL OR first_timestamp > %s
                               THEN %s ELSE first_timestamp END
    WHERE id = %s AND status = %s AND (first_timestamp IS NULL OR first_timestamp >= %s)
"""  # noqa: S608


def batch_ingest(*, run: Run, target: str, seq: int, events: list[dict[str, Any]]) -> IngestResult:
    """Stores one batch of rrweb events for a page target of the run.

    Idempotent on (recording, target, seq): the same batch again is answered as stored;
    the same seq with other content is a 409. Batches may arrive in any order; processing
    sorts them and records gaps. A refused batch leaves neither a row nor a file.

    Queries on the common path (a recording already taking batches, `run` read with
    `ingest_lookup` or `with_active_recording`): the conditional UPDATE of the recording
    (status, 2 hour limit and first timestamp in one statement, which also locks it
    against a concurrent stop) and the INSERT of the batch, in one transaction. A
    duplicate is found by the unique constraint, not looked up first.
    """
    if not TARGET_PATTERN.match(target):
        raise Invalid("target must be 1-100 letters, digits, '.', '_' or '-'.")
    # int() of the smallest and largest: the same as the smallest and largest int() of
    # positive timestamps, for 2 conversions instead of one per event.
    timestamps = list(map(itemgetter("timestamp"), events))
    smallest, largest = min(timestamps), max(timestamps)
    _check_timestamp_window(run, events, smallest, largest)
    first, last = int(smallest), int(largest)
    encoded = orjson.dumps(events)
    _check_event_sizes(events, len(encoded))
    digest = hashlib.sha256(encoded).hexdigest()
    active = active_recording_of(run)
    if active is None:
        recording = active_recording_for_ingest(run=run)
        active = ActiveRecording(recording.id, recording.first_timestamp)
    if active.first_timestamp is not None and last - active.first_timestamp > MAX_CAPTURE_MS:
        _refuse(active.id)  # past the limit already: nothing written
    stored = gzip.compress(encoded, compresslevel=1)
    path = default_storage.save(batch_path(active.id, target, seq, digest), ContentFile(stored))
    batch: RecordingBatch | None = None
    try:
        with transaction.atomic():
            # The recording's row stays locked until commit: a stop waits for this
            # batch, or this batch sees the stop.
            with connection.cursor() as cursor:
                cursor.execute(
                    _TAKE_BATCH_SQL,
                    [
                        first,
                        first,
                        active.id,
                        Recording.Status.RECORDING.value,
                        last - MAX_CAPTURE_MS,
                    ],
                )
                taken = cursor.rowcount > 0
            if taken:
                batch = RecordingBatch(
                    recording_id=active.id,
                    target=target,
                    seq=seq,
                    event_count=len(events),
                    first_timestamp=first,
                    last_timestamp=last,
                    raw_bytes=len(encoded),
                    stored_bytes=len(stored),
                    sha256=digest,
                    path=path,
                    created_at=timezone.now(),
                )
                _insert_batch(batch)
                notify_run_changed(
                    run.id, "recording.batch", recordingId=active.id, target=target, seq=seq
                )
    except IntegrityError:
        default_storage.delete(path)
        raced = RecordingBatch.objects.get(recording_id=active.id, target=target, seq=seq)
        return IngestResult(_same_batch(raced, digest), created=False)
    except Exception:
        default_storage.delete(path)
        raise
    if batch is None:
        default_storage.delete(path)
        _refuse(active.id)
    assert batch is not None
    return IngestResult(batch, created=True)


_BATCH_COLUMNS = [
    field for field in RecordingBatch._meta.concrete_fields if field is not RecordingBatch._meta.pk
]
_INSERT_BATCH_SQL = (
    f"INSERT INTO {RecordingBatch._meta.db_table} "  # noqa: S608  (names from the model)
    f"({', '.join(str(field.column) for field in _BATCH_COLUMNS)}) "
    f"VALUES ({', '.join(['%s'] * len(_BATCH_COLUMNS))})"
)


def _insert_batch(batch: RecordingBatch) -> None:
    """`batch.save()` for a new row, without compiling the INSERT every time: the same
    columns and values (prepared as the ORM prepares them), and the new id."""
    values = [
        field.get_db_prep_save(getattr(batch, field.attname), connection)
        for field in _BATCH_COLUMNS
    ]
    with connection.cursor() as cursor:
        if connection.features.can_return_columns_from_insert:
            cursor.execute(
                f"{_INSERT_BATCH_SQL} RETURNING {RecordingBatch._meta.pk.column}", values
            )
            row = cursor.fetchone()
            batch.pk = row[0]
        else:
            cursor.execute(_INSERT_BATCH_SQL, values)
            batch.pk = cursor.lastrowid
    batch._state.adding = False
    batch._state.db = connection.alias


def timestamp_window(run: Run) -> tuple[int, int]:
    """The rrweb timestamps (ms since the epoch) that a batch of `run` may hold: from the
    run's start to now, each widened by BCTRL_RECORDING_CLOCK_SKEW_S for a recorder
    whose clock runs a little ahead or behind the server's. An event outside it (a
    timestamp of 1, of 1e300, of next year) would move the recording's first timestamp
    or its 2 hour limit; it is refused instead, and the recording stays as it was."""
    skew_ms = int(settings.BCTRL_RECORDING_CLOCK_SKEW_S) * 1000
    started_ms = int(run.started_at.timestamp() * 1000)
    now_ms = int(timezone.now().timestamp() * 1000)
    return started_ms - skew_ms, now_ms + skew_ms


def _check_timestamp_window(
    run: Run, events: list[dict[str, Any]], smallest: float, largest: float
) -> None:
    earliest, latest = timestamp_window(run)
    if earliest <= smallest and largest <= latest:
        return
    index, timestamp = next(
        (index, event["timestamp"])
        for index, event in enumerate(events)
        if not earliest <= event["timestamp"] <= latest
    )
    raise Invalid(
        f"events[{index}].timestamp {timestamp!r} is outside this run's time: rrweb "
        f"timestamps are milliseconds since the epoch, from {earliest} (the run's start, "
        f"less {settings.BCTRL_RECORDING_CLOCK_SKEW_S} s of clock skew) to {latest} (now, "
        "plus as much).",
        details={
            "index": index,
            "field": f"events[{index}].timestamp",
            "earliest": earliest,
            "latest": latest,
        },
    )


def _refuse(recording_id: str) -> NoReturn:
    """Why a recording took no batch: it stopped (409), or the batch is past the 2 hour
    limit, which stops the recording (409)."""
    recording = Recording.objects.get(pk=recording_id)
    if recording.status != Recording.Status.RECORDING:
        raise Conflict(
            f"Recording {recording.id} is {recording.status}; it takes no more batches.",
            code="recording.not_recording",
        )
    recording_stop(recording=recording, reason="capture limit of 2 hours reached")
    raise Conflict(
        "The recording reached its 2 hour limit and was stopped.",
        code="recording.limit_reached",
    )


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
        # robust: the stop is saved even if the queue is down (the failure is logged);
        # the sweep queues a recording left `preparing` again (recordings.processing).
        transaction.on_commit(
            lambda: queue("recordings.tasks.process_recording", locked.id), robust=True
        )
    return locked


def recordings_stop_for_run(*, run: Run) -> None:
    for recording in run.recordings.filter(status=Recording.Status.RECORDING):
        recording_stop(recording=recording)
