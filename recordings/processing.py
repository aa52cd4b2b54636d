"""Processing of a stopped recording into replay chunks, and the sweeps that keep it moving.

Status machine
--------------
`preparing → processing → ready | failed`. `recording_process` takes a recording with one
conditional UPDATE (from `preparing`, or from `processing` whose `processing_started_at`
is older than the processing timeout, or that the same Celery task took before), setting
`processing_started_at` and `processing_task_id` and incrementing `attempts`; two workers
cannot both take it. The task's message is acknowledged only once it finished
(`acks_late`) and goes back to the queue when the worker process running it dies
(`task_reject_on_worker_lost`): that redelivery takes the recording back at once. A
re-run on a `ready` recording, or on one that another worker is `processing` right now,
does nothing. Every write of the outputs is deterministic (fixed storage names, the old
file deleted first, `update_or_create` of the target rows, gzip members with mtime 0), so
a re-run produces byte-identical outputs and no duplicates. The final UPDATE is
conditional on this worker still owning the recording (same `processing_started_at`): a
worker that was too slow and lost it to the sweep writes nothing more.

An unexpected exception leaves the recording `processing` and is re-raised; the sweep
re-queues it once the processing timeout passed; after the maximum number of attempts it
is `failed` with the reason. A re-queued recording goes back to `preparing` with
`processing_started_at` set to the time it was re-queued (so a backlog of queued
recordings is re-queued once per timeout, not once a minute).

Per target: the steps of recordings.chunking (gaps, sort, dedup, playable start, chunks,
index), fed with the batches read here and the run's own markers.

Totals: `duration_ms` = max(end) - min(start) over the playable targets, `event_count` =
events in the replay (playable targets, after dedup), `target_count` = every target
(playable or not), `raw_bytes` = rrweb JSON as received (every batch), `size_bytes` =
stored chunk bytes. No batches at all → `ready` with duration 0 (the runs API reports
`not_available`); every target unplayable → `failed` with their problems joined.

Memory: targets are processed one at a time and chunks are streamed to a temporary file
one chunk at a time, but all the events of one target are in memory at once: a synthetic
2 h target of ~1 M events (a 600-node checkout every 10 s, 214 MB of JSON) peaked at
~1.4 GB RSS and took ~7 s of CPU (720 chunks of ~300 KB raw, ~22 KB gzipped).
"""

import gzip
import itertools
import logging
import tempfile
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import orjson
from django.conf import settings
from django.core.files import File
from django.core.files.storage import default_storage
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from recordings.chunking import (
    MAX_MARKERS,
    dedup_events,
    event_ms,
    inactivity_periods,
    is_event,
    make_marker,
    missing_seqs,
    playable_start,
    rrweb_markers,
    sort_events,
    target_pages,
    write_chunks,
)
from recordings.models import (
    Recording,
    RecordingBatch,
    RecordingTarget,
)
from recordings.rrweb import (
    ChunkIndex,
    Marker,
    target_path,
)
from recordings.storage import recording_files
from recordings.video import queue_encoding, videos_prepare
from runs.live import notify_run_changed
from runs.models import Event

logger = logging.getLogger(__name__)

TAKEABLE = (Recording.Status.PREPARING, Recording.Status.PROCESSING)


def processing_timeout_s() -> int:
    return int(settings.BCTRL_RECORDING_PROCESSING_TIMEOUT_S)


def max_attempts() -> int:
    return int(settings.BCTRL_RECORDING_MAX_ATTEMPTS)


class LostOwnership(Exception):
    """Another worker took the recording over (this one was slower than the timeout)."""


# --- Taking a recording -------------------------------------------------------------------


def _take(recording_id: str, *, force: bool, task_id: str) -> datetime | None:
    """Marks the recording `processing` for this worker; None when it is not to be taken."""
    now = timezone.now()
    stale = now - timedelta(seconds=processing_timeout_s())
    takeable = Q(status=Recording.Status.PREPARING) | Q(
        status=Recording.Status.PROCESSING, processing_started_at__isnull=True
    )
    takeable |= Q(status=Recording.Status.PROCESSING, processing_started_at__lt=stale)
    if force:
        takeable |= Q(status=Recording.Status.PROCESSING)
    if task_id:
        # This task took it before: Celery delivers a task again only once the worker
        # process that ran it is gone, so nobody is processing it any more.
        takeable |= Q(status=Recording.Status.PROCESSING, processing_task_id=task_id)
    taken = Recording.objects.filter(takeable, pk=recording_id, attempts__lt=max_attempts()).update(
        status=Recording.Status.PROCESSING,
        processing_started_at=now,
        processing_task_id=task_id,
        attempts=F("attempts") + 1,
    )
    if taken:
        return now
    current = Recording.objects.filter(pk=recording_id).values("status", "attempts").first()
    if current is None:
        logger.warning("Recording %s does not exist; nothing to process", recording_id)
    elif current["status"] in TAKEABLE and current["attempts"] >= max_attempts():
        fail_exhausted(recording_id, stale_before=stale)
    else:
        logger.info("Recording %s is %s; not processing it", recording_id, current["status"])
    return None


def fail_exhausted(recording_id: str, *, stale_before: datetime) -> bool:
    """Fails a recording that used up its attempts and is not being processed now."""
    limit = max_attempts()
    with transaction.atomic():
        failed = Recording.objects.filter(
            Q(processing_started_at__isnull=True)
            | Q(processing_started_at__lt=stale_before)
            | Q(status=Recording.Status.PREPARING),
            pk=recording_id,
            status__in=TAKEABLE,
            attempts__gte=limit,
        ).update(
            status=Recording.Status.FAILED,
            failure_reason=f"processing did not finish after {limit} attempts",
        )
        if failed:
            notify_status(recording_id, Recording.Status.FAILED)
    return bool(failed)


def _owned(recording_id: str, started: datetime) -> Any:
    return Recording.objects.filter(
        pk=recording_id, status=Recording.Status.PROCESSING, processing_started_at=started
    )


def _check_owned(recording_id: str, started: datetime) -> None:
    if not _owned(recording_id, started).exists():
        raise LostOwnership(recording_id)


def notify_status(recording_id: str, status: str) -> None:
    run_id = Recording.objects.filter(pk=recording_id).values_list("run_id", flat=True).first()
    if run_id:
        notify_run_changed(run_id, "recording", status=status)


# --- Processing ---------------------------------------------------------------------------


@dataclass
class TargetOutput:
    target: str
    playable: bool
    problem: str = ""
    start: int | None = None
    end: int | None = None
    event_count: int = 0
    raw_bytes: int = 0
    size_bytes: int = 0
    path: str = ""
    index: ChunkIndex | None = None  # a playable target's
    missing: list[int] = field(default_factory=list)
    unreadable: list[int] = field(default_factory=list)


def recording_process(
    *, recording_id: str, force: bool = False, task_id: str = ""
) -> Recording | None:
    """Turns a stopped recording's batches into replay chunks. See the module docstring.

    Returns the recording once this call settled it (ready or failed), None when it did
    not take it. `force` takes a `processing` recording even if another worker started it
    recently (for an operator's "recover"); `task_id`, the Celery task's id, takes back a
    recording that the same task took before its worker died (a redelivery).
    """
    started = _take(recording_id, force=force, task_id=task_id)
    if started is None:
        return None
    notify_status(recording_id, Recording.Status.PROCESSING)
    try:
        return _process(recording_id, started)
    except LostOwnership:
        logger.warning("Recording %s was taken over by another worker", recording_id)
        return None
    except Exception as exc:
        attempts = Recording.objects.filter(pk=recording_id).values_list("attempts", flat=True)
        if (attempts.first() or 0) >= max_attempts():
            with transaction.atomic():
                if _owned(recording_id, started).update(
                    status=Recording.Status.FAILED,
                    failure_reason=(
                        f"processing failed after {max_attempts()} attempts: "
                        f"{type(exc).__name__}: {exc}"
                    )[:2000],
                ):
                    notify_status(recording_id, Recording.Status.FAILED)
        raise


def _process(recording_id: str, started: datetime) -> Recording:
    recording = Recording.objects.get(pk=recording_id)
    batches = list(
        RecordingBatch.objects.filter(recording_id=recording_id).order_by("target", "seq")
    )
    by_target = {
        target: list(rows) for target, rows in itertools.groupby(batches, key=lambda b: b.target)
    }
    run_markers = _run_markers(recording.run_id, list(by_target))
    outputs: list[TargetOutput] = []
    for target, rows in by_target.items():
        _check_owned(recording_id, started)
        output = _process_target(recording, target, rows, run_markers.get(target, []))
        with transaction.atomic():
            # The row lock makes a forced take (an UPDATE) wait until this target is saved.
            if not _owned(recording_id, started).select_for_update().values_list("pk"):
                raise LostOwnership(recording_id)
            _save_target(recording_id, output)
        outputs.append(output)
    for leftover in RecordingTarget.objects.filter(recording_id=recording_id).exclude(
        target__in=list(by_target)
    ):
        if leftover.path:
            default_storage.delete(leftover.path)
        leftover.delete()
    return _finish(recording_id, started, outputs, sum(b.raw_bytes for b in batches))


def _finish(
    recording_id: str, started: datetime, outputs: list[TargetOutput], raw_bytes: int
) -> Recording:
    playable = [output for output in outputs if output.playable]
    starts = [o.start for o in playable if o.start is not None]
    ends = [o.end for o in playable if o.end is not None]
    changes: dict[str, Any] = {
        "duration_ms": max(ends) - min(starts) if starts and ends else 0,
        "event_count": sum(o.event_count for o in playable),
        "target_count": len(outputs),
        "raw_bytes": raw_bytes,
        "size_bytes": sum(o.size_bytes for o in playable),
        "gaps": [
            {
                "target": o.target,
                "missing": o.missing,
                **({"unreadable": o.unreadable} if o.unreadable else {}),
            }
            for o in outputs
            if o.missing or o.unreadable
        ],
    }
    if outputs and not playable:
        changes["status"] = Recording.Status.FAILED
        changes["failure_reason"] = "; ".join(f"{o.target}: {o.problem}" for o in outputs)
    else:
        changes["status"] = Recording.Status.READY
        changes["ready_at"] = timezone.now()
    with transaction.atomic():
        if not _owned(recording_id, started).update(**changes):
            raise LostOwnership(recording_id)
        notify_status(recording_id, changes["status"])
        if changes["status"] == Recording.Status.READY and videos_prepare(recording_id):
            queue_encoding(recording_id)  # the tabs' MP4s (recordings.video), after commit
    return Recording.objects.get(pk=recording_id)


def _process_target(
    recording: Recording,
    target: str,
    batches: Sequence[RecordingBatch],
    run_markers: list[Marker],
) -> TargetOutput:
    recording_id = recording.id
    events, unreadable = _read_batches(recording, batches)
    output = TargetOutput(
        target=target,
        playable=False,
        raw_bytes=sum(batch.raw_bytes for batch in batches),
        missing=missing_seqs([batch.seq for batch in batches]),
        unreadable=unreadable,
    )
    events = dedup_events(sort_events(events))
    if events:
        output.start = event_ms(events[0])
        output.end = event_ms(events[-1])
    output.event_count = len(events)
    first, problem = playable_start(events)
    if problem:
        output.problem = problem
        return output
    if first:
        logger.info(
            "Recording %s target %s: dropped %d events before the first full snapshot",
            recording_id,
            target,
            first,
        )
        events = events[first:]
    start, end = event_ms(events[0]), event_ms(events[-1])
    markers = rrweb_markers(events)
    markers.extend(marker for marker in run_markers if start <= marker["time"] <= end)
    markers.sort(key=lambda marker: marker["time"])
    output.playable = True
    output.start, output.end = start, end
    output.event_count = len(events)
    with tempfile.TemporaryFile() as spool:
        output.index = {
            "chunks": write_chunks(events, spool),
            "markers": markers[:MAX_MARKERS],
            "inactivity": inactivity_periods(events),
            "pages": target_pages(events),
        }
        output.size_bytes = spool.tell()
        spool.seek(0)
        output.path = _store(target_path(recording_id, target), spool)
    return output


def _store(name: str, content: Any) -> str:
    """Saves under a fixed name, replacing what a previous run left there."""
    default_storage.delete(name)
    saved = default_storage.save(name, File(content, name=name))
    if saved != name:
        # Only when another worker wrote the same name in between (a forced re-run).
        logger.warning("Stored %s as %s", name, saved)
    return saved


def _save_target(recording_id: str, output: TargetOutput) -> None:
    if not output.playable:
        default_storage.delete(target_path(recording_id, output.target))
    index: ChunkIndex | dict[str, Any] = output.index if output.index is not None else {}
    RecordingTarget.objects.update_or_create(
        recording_id=recording_id,
        target=output.target,
        defaults={
            "playable": output.playable,
            "problem": output.problem,
            "start_timestamp": output.start,
            "end_timestamp": output.end,
            "event_count": output.event_count,
            "raw_bytes": output.raw_bytes,
            "size_bytes": output.size_bytes,
            "path": output.path,
            "index": index,
        },
    )


# --- The steps, each one function ---------------------------------------------------------

UNREADABLE_ERRORS = (
    FileNotFoundError,
    EOFError,
    gzip.BadGzipFile,
    zlib.error,
    orjson.JSONDecodeError,
)


def _read_batches(
    recording: Recording, batches: Iterable[RecordingBatch]
) -> tuple[list[dict[str, Any]], list[int]]:
    """All events of the batches, in seq order, and the seqs whose file could not be read."""
    events: list[dict[str, Any]] = []
    unreadable: list[int] = []
    files = recording_files(recording)
    for batch in batches:
        try:
            decoded = files.read_batch(batch.path)
        except UNREADABLE_ERRORS as exc:
            logger.warning("Batch %s is unreadable: %s", batch, exc)
            unreadable.append(batch.seq)
            continue
        if not isinstance(decoded, list):
            unreadable.append(batch.seq)
            continue
        events.extend(event for event in decoded if is_event(event))
    return events, unreadable


def _run_markers(run_id: str, targets: list[str]) -> dict[str, list[Marker]]:
    """Console errors, page errors and failed requests of the run, per page target: one
    query. A page error is a "console.error" marker (it is what the console shows)."""
    markers: dict[str, list[Marker]] = {}
    if not targets:
        return markers
    rows = (
        Event.objects.filter(run_id=run_id, page_id__in=targets)
        .filter(
            Q(type="console.message", data__level="error")
            | Q(type__in=["network.failed", "page.error"])
        )
        .order_by("seq")
        .values_list("page_id", "type", "time", "data")
    )
    for page_id, kind, time, data in rows:
        data = data if isinstance(data, dict) else {}
        ms = int(time.timestamp() * 1000)
        if kind == "network.failed":
            method = data.get("method") or "GET"
            error = data.get("errorText") or "unknown error"
            marker = make_marker(
                ms, "network.failed", f"Request failed: {method} {data.get('url', '')} — {error}"
            )
        elif kind == "page.error":
            message = str(data.get("message") or "Unknown error").splitlines() or [""]
            marker = make_marker(ms, "console.error", f"Page error: {message[0]}")
        else:
            marker = make_marker(ms, "console.error", f"Console error: {data.get('text', '')}")
        markers.setdefault(page_id, []).append(marker)
    return markers
