"""Reads of recordings, scoped to a space, and the status the runs API reports."""

from typing import Any

from django.db.models import Q, QuerySet

from recordings.models import MIN_PLAYABLE_MS, Recording, RecordingTarget, RecordingVideo
from runs.models import Run, Space
from runs.selectors import ObjectNotFound

HIDDEN = (Recording.Status.DELETED, Recording.Status.EXPIRED)
DONE = (Recording.Status.READY, Recording.Status.ARCHIVED)
# One rule for every API: a processed recording shorter than 1 s (none of its pages
# recorded anything to play, or for less than a second: seed 003) is no recording at
# all: `not_available` in the runs API, absent from seed 004's recordings API.
NOTHING_TO_VIEW = Q(status__in=DONE) & (Q(duration_ms__lt=MIN_PLAYABLE_MS) | Q(duration_ms=None))


def has_nothing_to_view(recording: Recording) -> bool:
    return recording.status in DONE and (recording.duration_ms or 0) < MIN_PLAYABLE_MS


# DESIGN.md: how the runs API (seed 000) names the recording lifecycle.
RUNS_API_STATUS = {
    Recording.Status.RECORDING: "processing",
    Recording.Status.PROCESSING: "processing",
    Recording.Status.PREPARING: "preparing",
    Recording.Status.READY: "ready",
    Recording.Status.ARCHIVED: "ready",
    Recording.Status.FAILED: "failed",
    Recording.Status.DELETED: "not_available",
    Recording.Status.EXPIRED: "not_available",
}


def recordings_of(space: Space) -> QuerySet[Recording]:
    """The space's recordings that callers may see: deleted and expired ones are hidden,
    and so are those with nothing to view."""
    return Recording.objects.filter(space=space).exclude(status__in=HIDDEN).exclude(NOTHING_TO_VIEW)


def recording_of(space: Space, recording_id: str) -> Recording:
    recording = recordings_of(space).filter(pk=recording_id).select_related("run").first()
    if recording is None:
        raise ObjectNotFound(f"No recording {recording_id!r}.")
    return recording


def latest_recording_of(run: Run) -> Recording | None:
    return run.recordings.exclude(status__in=HIDDEN).order_by("-id").first()


def runs_api_status(recording: Recording | None) -> str:
    if recording is None or has_nothing_to_view(recording):
        return "not_available"
    return RUNS_API_STATUS[Recording.Status(recording.status)]


def run_recording_summary(run: Run) -> dict[str, Any]:
    """`recording` of GET /v1/runs/{id}: {id, status, durationMs} in the runs API's words."""
    recording = latest_recording_of(run)
    return {
        "id": recording.id if recording else None,
        "status": runs_api_status(recording),
        "durationMs": recording.duration_ms if recording else None,
    }


def targets_of(recording: Recording) -> QuerySet[RecordingTarget]:
    return recording.targets.order_by("start_timestamp", "target")


def videos_of(recording: Recording) -> QuerySet[RecordingVideo]:
    """The recording's encoded tab videos, first tab first."""
    return recording.videos.filter(status=RecordingVideo.Status.READY).order_by(
        "start_ms", "target"
    )


def videos_waiting(recording: Recording) -> bool:
    """Whether a video of the recording is still to be encoded."""
    return recording.videos.filter(
        status__in=[RecordingVideo.Status.PENDING, RecordingVideo.Status.ENCODING]
    ).exists()
