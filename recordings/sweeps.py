"""The beat's sweeps over recordings: re-queue those whose processing was lost (and
fail them after the last try), expire those past their space's retention, and delete the
files of deleted ones, in every tier they may sit in."""

import logging
from dataclasses import dataclass, field
from datetime import timedelta

from django.core.files.storage import Storage
from django.db import transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from recordings.models import (
    Recording,
    RecordingBatch,
    RecordingFrames,
    RecordingTarget,
    RecordingVideo,
)
from recordings.processing import fail_exhausted, max_attempts, notify_status, processing_timeout_s
from recordings.rrweb import (
    recording_dir,
)
from recordings.storage import hot_storage, storage_of
from recordings.video import videos_sweep
from runs.queue import queue

logger = logging.getLogger(__name__)

LOST_ENQUEUE_AFTER = timedelta(minutes=1)
PURGE_DELETED_AFTER = timedelta(days=1)

NOT_EXPIRABLE = (Recording.Status.RECORDING, Recording.Status.DELETED, Recording.Status.EXPIRED)


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
            if fail_exhausted(pk, stale_before=stale):
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
                notify_status(pk, Recording.Status.EXPIRED)
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
