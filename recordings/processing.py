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

Per target (batches grouped by target, ordered by seq)
------------------------------------------------------
1. Read every batch file (gzip → orjson). A batch whose file is missing or unreadable is
   treated as missing; any other storage error is raised (the attempt is retried).
2. Gaps: seqs missing between the lowest and highest seq, and the seqs below the lowest
   one when it is above 1 (recorders number batches from 0 or from 1, so a target that
   starts at 1 is complete, and one that starts at 3 is missing 1 and 2). Stored in
   `Recording.gaps` as `[{"target", "missing": [seq, …]}]`, never hidden; an
   `"unreadable": [seq, …]` list is added for batches whose file could not be read.
3. Concatenate, stable sort by timestamp, drop exact repeats (same type, timestamp and
   data, compared by a digest of their orjson bytes among events of equal timestamp:
   recorders re-send a batch after a timeout).
4. Playable start: the stream must begin with a Meta event immediately followed by a
   FullSnapshot. Events before the first such pair are dropped when the pair comes at most
   LEADING_DROP_MAX_MS after the first event (rrweb's DomContentLoaded/Load events, or a
   few events flushed just before the recorder's first snapshot); otherwise the target is
   not playable and `problem` says why (e.g. "no full snapshot before the first
   incremental event"). A target is never played blank.
5. Chunks: a new chunk starts at a Meta+FullSnapshot pair that occurs in the stream
   (rrweb's `checkoutEveryNms`; nothing is synthesized), but only once the current chunk
   is at least CHUNK_MIN_MS long or holds CHUNK_MIN_EVENTS events. Each chunk is the
   orjson JSON array of its events compressed as one gzip member; all chunks of a target
   are concatenated in one file `recordings/<rec_id>/targets/<target>.chunks.gz`.
6. Index (`RecordingTarget.index`, the contract with the replay player): a
   `recordings.rrweb.ChunkIndex` of chunks, markers, inactivity and pages, whose types
   state its keys; times are rrweb's epoch ms. A chunk's `start`/`end` are its first and
   last event's timestamps; `offset`/`length` its byte range in the file. Markers
   (sorted by time, at most MAX_MARKERS): kinds `navigation` (a Meta whose href differs
   from the previous one; label the href), `click` ("Click" / "Double-click"), `input`
   (one per burst of Input events on one node, each at most INPUT_BURST_GAP_MS after the
   previous; "Input" or "Input (N changes)", never the text), `custom` (the tag), and
   from the run's Events of this page
   (`Event.page_id == target`, times within the target's span): `console.error`
   (console errors and page errors) and `network.failed`. Inactivity: spans longer than
   INACTIVITY_MIN_MS without mutations or user interaction (from the target's start and
   up to its end included). Pages (`target_pages`): one per full snapshot that shows
   another URL, title or favicon than the one before; the player names the tab by the
   page at the playhead.

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
import hashlib
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
from django.core.files.storage import Storage, default_storage
from django.db import transaction
from django.db.models import Exists, F, OuterRef, Q
from django.utils import timezone

from recordings.models import (
    Recording,
    RecordingBatch,
    RecordingFrames,
    RecordingTarget,
    RecordingVideo,
)
from recordings.rrweb import (
    ChunkEntry,
    ChunkIndex,
    EventType,
    InactivityPeriod,
    IncrementalSource,
    Marker,
    MarkerKind,
    MouseInteraction,
    NodeType,
    Page,
    recording_dir,
    target_path,
)
from recordings.storage import hot_storage, recording_files, storage_of
from recordings.video import queue_encoding, videos_prepare, videos_sweep
from runs.live import notify_run_changed
from runs.models import Event
from runs.queue import queue

logger = logging.getLogger(__name__)

# Chunking. A new chunk starts at a natural Meta+FullSnapshot only once the current one is
# this long or this big. A 2 h recording (~1 M events, ~140 events/s) with a checkout every
# 10 s gets a chunk per checkout: ~720 chunks of ~1,400 events, i.e. a few hundred KB of
# raw JSON each (one full snapshot plus 10 s of incremental events).
CHUNK_MIN_MS = 5_000
CHUNK_MIN_EVENTS = 2_000
GZIP_LEVEL = 9  # 9.3x smaller than the raw JSON on the 2 h benchmark recording; 6: 8.7x

# Events before the first Meta+FullSnapshot are dropped if the pair follows this soon.
LEADING_DROP_MAX_MS = 1_000

# Markers and inactivity.
INPUT_BURST_GAP_MS = 5_000
INACTIVITY_MIN_MS = 5_000
MAX_MARKERS = 10_000
LABEL_MAX = 200
MAX_PAGES = 1_000
PAGE_ICON_MAX = 2_000  # a favicon URL longer than this (a big data: URL) is left out

# Sweeps.
LOST_ENQUEUE_AFTER = timedelta(minutes=1)
PURGE_DELETED_AFTER = timedelta(days=1)

# The rrweb numbers that the loops over every event compare, as plain ints: an enum
# member costs about three times as much to look up and compare (on a million events,
# markers, inactivity, pages and chunk starts took 1.7 s instead of 0.9 s).
META = int(EventType.Meta)
FULL_SNAPSHOT = int(EventType.FullSnapshot)
INCREMENTAL = int(EventType.IncrementalSnapshot)
CUSTOM = int(EventType.Custom)
SOURCE_MOUSE_INTERACTION = int(IncrementalSource.MouseInteraction)
SOURCE_INPUT = int(IncrementalSource.Input)
# What counts as activity for inactivity periods: mutations and user interaction.
ACTIVE_SOURCES = frozenset(
    int(source)
    for source in (
        IncrementalSource.Mutation,
        IncrementalSource.MouseMove,
        IncrementalSource.MouseInteraction,
        IncrementalSource.Scroll,
        IncrementalSource.ViewportResize,
        IncrementalSource.Input,
        IncrementalSource.TouchMove,
        IncrementalSource.MediaInteraction,
        IncrementalSource.Drag,
    )
)

TAKEABLE = (Recording.Status.PREPARING, Recording.Status.PROCESSING)
NOT_EXPIRABLE = (Recording.Status.RECORDING, Recording.Status.DELETED, Recording.Status.EXPIRED)


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
        _fail_exhausted(recording_id, stale_before=stale)
    else:
        logger.info("Recording %s is %s; not processing it", recording_id, current["status"])
    return None


def _fail_exhausted(recording_id: str, *, stale_before: datetime) -> bool:
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
            _notify(recording_id, Recording.Status.FAILED)
    return bool(failed)


def _owned(recording_id: str, started: datetime) -> Any:
    return Recording.objects.filter(
        pk=recording_id, status=Recording.Status.PROCESSING, processing_started_at=started
    )


def _check_owned(recording_id: str, started: datetime) -> None:
    if not _owned(recording_id, started).exists():
        raise LostOwnership(recording_id)


def _notify(recording_id: str, status: str) -> None:
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
    _notify(recording_id, Recording.Status.PROCESSING)
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
                    _notify(recording_id, Recording.Status.FAILED)
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
        _notify(recording_id, changes["status"])
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
        output.start = _ms(events[0])
        output.end = _ms(events[-1])
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
    start, end = _ms(events[0]), _ms(events[-1])
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
        events.extend(event for event in decoded if _is_event(event))
    return events, unreadable


def _is_event(event: Any) -> bool:
    return (
        isinstance(event, dict)
        and type(event.get("type")) is int
        and type(event.get("timestamp")) in (int, float)
        and isinstance(event.get("data"), dict)
    )


def missing_seqs(seqs: Sequence[int]) -> list[int]:
    """Seqs missing from a target's batches: holes, and the start when it is above 1."""
    if not seqs:
        return []
    present = set(seqs)
    first = min(1, min(present))
    return [seq for seq in range(first, max(present) + 1) if seq not in present]


def sort_events(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Stable sort by timestamp: events with the same timestamp keep their arrival order."""
    events.sort(key=lambda event: event["timestamp"])
    return events


def dedup_events(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Drops exact repeats; only events of equal timestamp are compared (and hashed)."""
    kept: list[dict[str, Any]] = []
    for _, group in itertools.groupby(events, key=lambda event: event["timestamp"]):
        same_time = list(group)
        if len(same_time) == 1:
            kept.append(same_time[0])
            continue
        seen: set[bytes] = set()
        for event in same_time:
            digest = hashlib.blake2b(
                orjson.dumps(event, option=orjson.OPT_SORT_KEYS), digest_size=16
            ).digest()
            if digest not in seen:
                seen.add(digest)
                kept.append(event)
    return kept


def _is_snapshot_start(events: Sequence[dict[str, Any]], position: int) -> bool:
    return (
        events[position]["type"] == META
        and position + 1 < len(events)
        and events[position + 1]["type"] == FULL_SNAPSHOT
    )


def playable_start(events: Sequence[dict[str, Any]]) -> tuple[int, str]:
    """(position of the Meta+FullSnapshot the replay starts at, "") or (0, the problem)."""
    if not events:
        return 0, "no readable events"
    first = next((i for i in range(len(events)) if _is_snapshot_start(events, i)), None)
    if first is None:
        if not any(event["type"] == FULL_SNAPSHOT for event in events):
            return 0, f"no full snapshot in {len(events)} events"
        if not any(event["type"] == META for event in events):
            return 0, "no Meta event before the full snapshot"
        return 0, "no Meta event immediately followed by a full snapshot"
    if first == 0:
        return 0, ""
    late_ms = _ms(events[first]) - _ms(events[0])
    if late_ms <= LEADING_DROP_MAX_MS:
        return first, ""
    leading = events[:first]
    what = (
        "the first incremental event"
        if any(event["type"] == INCREMENTAL for event in leading)
        else f"the first {len(leading)} events"
    )
    return 0, (
        f"no full snapshot before {what} (the first Meta and full snapshot come "
        f"{late_ms / 1000:.1f} s after the first event)"
    )


def chunk_starts(events: Sequence[dict[str, Any]]) -> list[int]:
    """Where each chunk begins: the first event, then natural Meta+FullSnapshot pairs once
    the current chunk holds CHUNK_MIN_EVENTS events or spans CHUNK_MIN_MS."""
    starts = [0]
    for position in range(1, len(events) - 1):
        if not _is_snapshot_start(events, position):
            continue
        begin = starts[-1]
        long_enough = _ms(events[position]) - _ms(events[begin]) >= CHUNK_MIN_MS
        if long_enough or position - begin >= CHUNK_MIN_EVENTS:
            starts.append(position)
    return starts


def write_chunks(events: Sequence[dict[str, Any]], out: Any) -> list[ChunkEntry]:
    """Writes each chunk as one gzip member to `out`; returns the index's chunk entries."""
    starts = chunk_starts(events)
    chunks: list[ChunkEntry] = []
    offset = 0
    for begin, stop in itertools.pairwise([*starts, len(events)]):
        part = events[begin:stop]
        member = gzip.compress(orjson.dumps(part), compresslevel=GZIP_LEVEL, mtime=0)
        out.write(member)
        chunks.append(
            {
                "start": _ms(part[0]),
                "end": _ms(part[-1]),
                "offset": offset,
                "length": len(member),
                "events": len(part),
            }
        )
        offset += len(member)
    return chunks


def _label(text: Any) -> str:
    label = " ".join(str(text).split())
    return label if len(label) <= LABEL_MAX else label[: LABEL_MAX - 1] + "…"


# The custom event a hosted page's recorder adds when its run stops (static/js/recorder.js),
# so a page that stood still until then still spans its whole time on the timeline.
END_TAG = "bctrl.end"


def _marker(time: int, kind: MarkerKind, label: Any) -> Marker:
    return {"time": time, "kind": kind, "label": _label(label)}


def rrweb_markers(events: Iterable[dict[str, Any]]) -> list[Marker]:
    """Navigation (a Meta whose href differs from the previous Meta's), click and
    double-click, one marker per burst of Input events on one node (never its text),
    custom events (their tag)."""
    markers: list[Marker] = []
    href: str | None = None
    burst: dict[str, Any] | None = None  # {"node", "last", "count", "marker"}
    for event in events:
        kind, data, time = event["type"], event["data"], _ms(event)
        if kind == META:
            new_href = data.get("href")
            if href is not None and new_href and new_href != href:
                markers.append(_marker(time, "navigation", new_href))
            href = new_href or href
        elif kind == CUSTOM:
            if data.get("tag") != END_TAG:
                markers.append(_marker(time, "custom", data.get("tag") or "custom event"))
        elif kind != INCREMENTAL:
            continue
        elif data.get("source") == SOURCE_MOUSE_INTERACTION:
            if data.get("type") == MouseInteraction.Click:
                markers.append(_marker(time, "click", "Click"))
            elif data.get("type") == MouseInteraction.DblClick:
                markers.append(_marker(time, "click", "Double-click"))
        elif data.get("source") == SOURCE_INPUT:
            node = data.get("id")
            if burst and burst["node"] == node and time - burst["last"] <= INPUT_BURST_GAP_MS:
                burst["last"] = time
                burst["count"] += 1
                burst["marker"]["label"] = f"Input ({burst['count']} changes)"
            else:
                marker = _marker(time, "input", "Input")
                markers.append(marker)
                burst = {"node": node, "last": time, "count": 1, "marker": marker}
    return markers


def _element_children(node: Any, tag: str) -> Iterable[dict[str, Any]]:
    for child in (node or {}).get("childNodes") or []:
        if (
            isinstance(child, dict)
            and child.get("type") == NodeType.Element
            and child.get("tagName") == tag
        ):
            yield child


def _snapshot_head(node: Any) -> dict[str, Any] | None:
    for html in _element_children(node, "html"):
        for head in _element_children(html, "head"):
            return head
    return None


def snapshot_page(node: Any) -> tuple[str, str]:
    """(title, favicon URL) of an rrweb full snapshot's document: the text of its
    `<head><title>` and the href of its first `<link rel="icon">` (or "shortcut icon");
    "" when it has none."""
    head = _snapshot_head(node)
    title = icon = ""
    for child in (head or {}).get("childNodes") or []:
        if not isinstance(child, dict) or child.get("type") != NodeType.Element:
            continue
        attributes = child.get("attributes") or {}
        if child.get("tagName") == "title" and not title:
            title = " ".join(
                str(text.get("textContent") or "")
                for text in child.get("childNodes") or []
                if isinstance(text, dict) and text.get("type") == NodeType.Text
            )
        elif child.get("tagName") == "link" and not icon:
            rel = str(attributes.get("rel") or "").lower().split()
            if "icon" in rel and isinstance(attributes.get("href"), str):
                icon = attributes["href"]
    return " ".join(title.split())[:LABEL_MAX], icon if len(icon) <= PAGE_ICON_MAX else ""


def target_pages(events: Iterable[dict[str, Any]]) -> list[Page]:
    """The pages a target showed, from its full snapshots: `{"time", "url", "title",
    "icon"}` for each snapshot whose url, title or icon differs from the previous one
    (at most MAX_PAGES). The player names its tabs by them."""
    pages: list[Page] = []
    href = ""
    for event in events:
        if event["type"] == META:
            href = str(event["data"].get("href") or "")[:PAGE_ICON_MAX]
        elif event["type"] == FULL_SNAPSHOT:
            title, icon = snapshot_page(event["data"].get("node"))
            page: Page = {"time": _ms(event), "url": href, "title": title, "icon": icon}
            last = pages[-1] if pages else None
            if last is None or (last["url"], last["title"], last["icon"]) != (href, title, icon):
                pages.append(page)
                if len(pages) >= MAX_PAGES:
                    break
    return pages


def inactivity_periods(events: Sequence[dict[str, Any]]) -> list[InactivityPeriod]:
    """Spans longer than INACTIVITY_MIN_MS without user interaction or mutation (a
    navigation counts as activity; periodic checkout snapshots do not)."""
    if not events:
        return []
    periods: list[InactivityPeriod] = []
    start, end = _ms(events[0]), _ms(events[-1])
    previous = start
    href = None
    for event in events:
        kind, data = event["type"], event["data"]
        navigated = kind == META and href is not None and data.get("href") != href
        if kind == META:
            href = data.get("href")
        if not navigated and not (kind == INCREMENTAL and data.get("source") in ACTIVE_SOURCES):
            continue
        time = _ms(event)
        if time - previous > INACTIVITY_MIN_MS:
            periods.append({"start": previous, "end": time})
        previous = max(previous, time)
    if end - previous > INACTIVITY_MIN_MS:
        periods.append({"start": previous, "end": end})
    return periods


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
            marker = _marker(
                ms, "network.failed", f"Request failed: {method} {data.get('url', '')} — {error}"
            )
        elif kind == "page.error":
            message = str(data.get("message") or "Unknown error").splitlines() or [""]
            marker = _marker(ms, "console.error", f"Page error: {message[0]}")
        else:
            marker = _marker(ms, "console.error", f"Console error: {data.get('text', '')}")
        markers.setdefault(page_id, []).append(marker)
    return markers


def _ms(event: dict[str, Any]) -> int:
    return int(event["timestamp"])


# --- Files --------------------------------------------------------------------------------


def _storages_of(recording: Recording) -> list[Storage]:
    """The storage of the recording's tier first, then hot storage for leftovers."""
    if recording.tier == Recording.Tier.COLD:
        return [storage_of(recording), hot_storage()]
    return [hot_storage()]


def recording_delete_files(recording: Recording) -> int:
    """Deletes every batch and target file of a recording (in the storage of its tier,
    and anything left under its folder in hot storage) and clears the rows' paths.
    Returns how many files were deleted. Rows and totals stay, for the record."""
    storages = _storages_of(recording)
    names = [
        *RecordingBatch.objects.filter(recording=recording)
        .exclude(path="")
        .values_list("path", flat=True),
        *RecordingTarget.objects.filter(recording=recording)
        .exclude(path="")
        .values_list("path", flat=True),
        *RecordingVideo.objects.filter(recording=recording)
        .exclude(path="")
        .values_list("path", flat=True),
    ]
    deleted = 0
    for storage in storages:
        for name in [*names, *_walk(storage, recording_dir(recording.id))]:
            if storage.exists(name):
                storage.delete(name)
                deleted += 1
    RecordingBatch.objects.filter(recording=recording).update(path="")
    RecordingTarget.objects.filter(recording=recording).update(path="")
    RecordingVideo.objects.filter(recording=recording).update(path="")
    RecordingFrames.objects.filter(recording=recording).delete()  # files under its folder
    return deleted


def _walk(storage: Storage, folder: str) -> list[str]:
    try:
        folders, files = storage.listdir(folder)
    except (FileNotFoundError, NotImplementedError):
        return []
    found = [f"{folder}/{name}" for name in files]
    for name in folders:
        found.extend(_walk(storage, f"{folder}/{name}"))
    return found


# --- Sweeps -------------------------------------------------------------------------------


@dataclass
class SweepResult:
    requeued: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    videos: list[str] = field(default_factory=list)  # recordings whose videos were re-queued


def recordings_sweep_stuck() -> SweepResult:
    """Re-queues recordings whose processing was lost; fails those out of attempts.

    Stuck: `processing` and started more than the processing timeout ago (the worker died
    or raised), or `preparing` for more than a minute since the stop (the enqueue was
    lost), or `preparing` and re-queued more than the timeout ago (still not taken).
    Videos that wait are queued again too (recordings.video.videos_sweep).
    """
    now = timezone.now()
    stale = now - timedelta(seconds=processing_timeout_s())
    stuck = (
        Q(status=Recording.Status.PROCESSING, processing_started_at__lt=stale)
        | Q(status=Recording.Status.PROCESSING, processing_started_at__isnull=True)
        | Q(status=Recording.Status.PREPARING, processing_started_at__lt=stale)
        | Q(
            status=Recording.Status.PREPARING,
            processing_started_at__isnull=True,
            stopped_at__lt=now - LOST_ENQUEUE_AFTER,
        )
    )
    result = SweepResult()
    rows = Recording.objects.filter(stuck).values_list("pk", "attempts", "processing_started_at")
    for pk, attempts, started in rows:
        if attempts >= max_attempts():
            if _fail_exhausted(pk, stale_before=stale):
                result.failed.append(pk)
            continue
        requeued = (
            Recording.objects.filter(stuck, pk=pk, processing_started_at=started)
            if started is not None
            else Recording.objects.filter(stuck, pk=pk, processing_started_at__isnull=True)
        ).update(status=Recording.Status.PREPARING, processing_started_at=now)
        if requeued:
            logger.warning("Re-queuing stuck recording %s (attempts so far: %d)", pk, attempts)
            result.requeued.append(pk)
            queue("recordings.tasks.process_recording", pk)
    result.videos = videos_sweep()
    return result


@dataclass
class ExpiryResult:
    expired: list[str] = field(default_factory=list)
    purged: list[str] = field(default_factory=list)


def recordings_expire() -> ExpiryResult:
    """Retention: recordings past `expires_at` become `expired` and lose their files; the
    files of recordings soft-deleted more than a day ago are purged. A recording whose
    files are still listed (a purge that failed half-way) is purged again next time."""
    now = timezone.now()
    result = ExpiryResult()
    due = Recording.objects.filter(expires_at__lte=now).exclude(status__in=NOT_EXPIRABLE)
    for pk in due.values_list("pk", flat=True):
        with transaction.atomic():
            if due.filter(pk=pk).update(status=Recording.Status.EXPIRED):
                result.expired.append(pk)
                _notify(pk, Recording.Status.EXPIRED)
    has_files = (
        Exists(RecordingBatch.objects.filter(recording=OuterRef("pk")).exclude(path=""))
        | Exists(RecordingTarget.objects.filter(recording=OuterRef("pk")).exclude(path=""))
        | Exists(RecordingVideo.objects.filter(recording=OuterRef("pk")).exclude(path=""))
        | Exists(RecordingFrames.objects.filter(recording=OuterRef("pk")))
    )
    purgeable = Recording.objects.filter(
        Q(status=Recording.Status.EXPIRED)
        | Q(status=Recording.Status.DELETED, deleted_at__lte=now - PURGE_DELETED_AFTER)
    ).filter(has_files)
    for recording in purgeable:
        try:
            deleted = recording_delete_files(recording)
        except Exception:
            logger.exception("Could not delete the files of recording %s", recording.id)
            continue
        logger.info("Deleted %d files of %s recording %s", deleted, recording.status, recording.id)
        result.purged.append(recording.id)
    return result
