"""The recordings API of seed 004 (`/api/v1/…`) and the Browser Run recording read (seed 003).

Rooms are runtimes of the caller's space; a recording belongs to the room's active run.
Success bodies follow the seeds to the letter (`{"data": …}` on /api/v1, plus `meta` on the
list; the download answer is unwrapped, as in the seed). Errors are
`{"error": {"code", "message"}}` everywhere, never HTML; ids of another space are 404.

Status codes:
- start 201; 409 when the room is already being recorded, and 409 (`room.no_active_run`)
  when the room has no active run, since a recording belongs to a run.
- stop 200; 404 when the room has no recording in progress.
- sync 200 `{"data": {"synced_count", "recordings": [{id, status}]}}`: imports the closed
  sessions of the space's upstream Browser Run account (recordings.imports); 409
  `upstream.not_configured` without one; 502/424 `upstream.*` when the upstream is down,
  refuses the token or answers garbage (recordings.upstream says which).
- import 201 `{"data": {id, status}}`: seed 003's recording document or a plain rrweb
  array as the body (JSON, gzip allowed); 400 malformed, 413 past BCTRL_IMPORT_MAX_BYTES
  or an event past BCTRL_RECORDING_MAX_EVENT_BYTES, 415 not JSON, 422 not a recording.
- list 200; 400 when limit/offset are not non-negative integers or limit > 100.
- download 200 when ready or archived; 202 with the seed's "processing" body while the
  recording is still recording or being processed; 409 when it failed. Its
  `download_url` is the MP4 of the recording's first tab (recordings.video) when the
  recording has video, as in the seed (`duration` and `file_size` then the video's); a
  202 "processing" while that video is being encoded; the rrweb events document (below)
  when the recording has no video (video off) or with `?format=rrweb`. `?format=mp4`
  asks for the video only (404 `recording.no_video` without one); another format is 400.
- file (the signed URL) 200: the events document, or with `target=<tab>` that tab's MP4
  (`video/mp4`, Range requests); 403 for a tampered or foreign token, 410 once expired,
  404 when the recording is gone (deleted, expired), not downloadable, or has no such
  video.
- archive 200; 400 unless ready and in hot storage.
- recover 200; 400 unless processing (our `preparing` counts as processing).
- delete 200 (soft).
"""

from collections.abc import Iterable, Iterator
from datetime import UTC
from typing import Any
from urllib.parse import urlencode

from django.core.handlers.asgi import ASGIRequest
from django.db import transaction
from django.db.models import QuerySet
from django.http import StreamingHttpResponse
from django.urls import reverse
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.permissions import AllowAny
from rest_framework.renderers import BaseRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from recordings import imports, selectors, services
from recordings import storage as files
from recordings.import_body import import_body
from recordings.models import Recording, RecordingVideo
from recordings.video import CONTENT_TYPE as VIDEO_TYPE
from recordings.video import video_filename
from recordings.views import video_response
from runs.api.auth import space_of
from runs.api.throttles import LEASE
from runs.errors import ApiError, Conflict, NotFound, error_body
from runs.live import notify_run_changed
from runs.models import Runtime
from runs.queue import queue
from runs.selectors import ObjectNotFound, active_run_of, run_of, runtime_of

DEFAULT_LIMIT = 20
MAX_LIMIT = 100
PROCESSING_MESSAGE = "Recording is still being processed. Please try again later."
FORMATS = ("mp4", "rrweb")
RECORDING_MESSAGE = "Recording is still in progress. Stop it, then try again later."
RECOVER_MESSAGE = "Recovery initiated. Recording will be reprocessed."

# Seed 004's lifecycle is recording → processing → ready → archived, ↘ failed. Ours has a
# `preparing` step between stop and processing, which this API reports as `processing`.
# Deleted and expired recordings are hidden (404), so they never get an API status.
API_STATUS = {
    Recording.Status.RECORDING: "recording",
    Recording.Status.PREPARING: "processing",
    Recording.Status.PROCESSING: "processing",
    Recording.Status.READY: "ready",
    Recording.Status.ARCHIVED: "archived",
    Recording.Status.FAILED: "failed",
}
PROCESSING_STATUSES = (Recording.Status.PREPARING, Recording.Status.PROCESSING)


def api_status(recording: Recording) -> str:
    """A recording's status in the words of seed 004."""
    try:
        return API_STATUS[Recording.Status(recording.status)]
    except KeyError:
        raise ObjectNotFound(f"No recording {recording.id!r}.") from None


class BadRequest(ApiError):
    status_code = 400
    default_code = "bad_request"


def _timestamp(value: Any) -> str | None:
    """ISO 8601 in UTC with a Z, as in the seed (`2026-01-06T10:30:00Z`)."""
    if value is None:
        return None
    text: str = value.astimezone(UTC).isoformat()
    return text.replace("+00:00", "Z")


def _duration_seconds(recording: Recording) -> int:
    """The replay's length once processed; until then, wall-clock time since the start."""
    if recording.duration_ms is not None:
        return round(recording.duration_ms / 1000)
    end = recording.stopped_at or timezone.now()
    return max(0, round((end - recording.started_at).total_seconds()))


def _room_id(recording: Recording) -> str | None:
    return recording.run.runtime_id


def _data(payload: Any, status: int = 200) -> Response:
    return Response({"data": payload}, status=status)


def _room(request: Request, room_id: str) -> Runtime:
    return runtime_of(space_of(request), room_id)


def _recording(request: Request, recording_id: str) -> Recording:
    recording = (
        selectors.recordings_of(space_of(request))
        .select_related("run__runtime")
        .filter(pk=recording_id)
        .first()
    )
    if recording is None:
        raise ObjectNotFound(f"No recording {recording_id!r}.")
    return recording


def _active_recording_of(room: Runtime) -> Recording | None:
    return (
        Recording.objects.filter(run__runtime=room, status=Recording.Status.RECORDING)
        .select_related("run")
        .order_by("-id")
        .first()
    )


def _query_int(request: Request, name: str, default: int) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    if len(raw) > 12 or not raw.isascii() or not raw.isdigit():
        raise BadRequest(f"{name} must be a non-negative integer.", code="invalid_parameter")
    return int(raw)


def _stream(request: Request, parts: Iterator[bytes], **headers: str) -> StreamingHttpResponse:
    """A streamed JSON body: an async iterator under ASGI, so it is not buffered whole."""
    content: Any = files.as_async(parts) if isinstance(request._request, ASGIRequest) else parts
    response = StreamingHttpResponse(content, content_type="application/json")
    for name, value in headers.items():
        response[name] = value
    return response


OBJECT = {200: OpenApiTypes.OBJECT}


# --- Rooms --------------------------------------------------------------------------------


class RoomRecordingStartView(APIView):
    @extend_schema(operation_id="rooms_recordings_start", request=None, responses=OBJECT)
    def post(self, request: Request, room_id: str) -> Response:
        room = _room(request, room_id)
        if _active_recording_of(room) is not None:
            raise Conflict(
                f"Room {room.id} is already being recorded.",
                code="recording.already_recording",
            )
        run = active_run_of(room)
        if run is None:
            raise Conflict(
                f"Room {room.id} has no active run to record; start the room first.",
                code="room.no_active_run",
            )
        recording = services.recording_start(run=run)
        return _data(
            {
                "id": recording.id,
                "room_id": room.id,
                "status": api_status(recording),
                "started_at": _timestamp(recording.started_at),
            },
            status=201,
        )


class RoomRecordingStopView(APIView):
    @extend_schema(operation_id="rooms_recordings_stop", request=None, responses=OBJECT)
    def post(self, request: Request, room_id: str) -> Response:
        room = _room(request, room_id)
        recording = _active_recording_of(room)
        if recording is None:
            raise NotFound(
                f"Room {room.id} has no active recording.", code="recording.not_recording"
            )
        stopped = services.recording_stop(recording=recording)
        return _data(
            {
                "id": stopped.id,
                "room_id": room.id,
                "status": api_status(stopped),
                "stopped_at": _timestamp(stopped.stopped_at),
            }
        )


def _imported(recordings: list[Recording]) -> list[dict[str, Any]]:
    """`[{id, status}]` as they are now: processing may have finished already."""
    statuses = dict(
        Recording.objects.filter(pk__in=[r.id for r in recordings]).values_list("id", "status")
    )
    return [
        {"id": r.id, "status": API_STATUS[Recording.Status(statuses.get(r.id, r.status))]}
        for r in recordings
    ]


class RoomRecordingSyncView(APIView):
    @extend_schema(operation_id="rooms_recordings_sync", request=None, responses=OBJECT)
    def post(self, request: Request, room_id: str) -> Response:
        room = _room(request, room_id)
        recordings = imports.recordings_sync(room=room)
        return _data({"synced_count": len(recordings), "recordings": _imported(recordings)})


class RoomRecordingImportView(APIView):
    """The body is read as a stream, not parsed by DRF: a recording may be large."""

    parser_classes: list[Any] = []

    @extend_schema(
        operation_id="rooms_recordings_import",
        request={"application/json": OpenApiTypes.OBJECT},
        responses={201: OpenApiTypes.OBJECT},
    )
    def post(self, request: Request, room_id: str) -> Response:
        room = _room(request, room_id)
        recording = imports.recording_import_file(room=room, stream=import_body(request))
        (imported,) = _imported([recording])
        return _data(imported, status=201)


# --- Recordings ---------------------------------------------------------------------------


def _list_item(recording: Recording) -> dict[str, Any]:
    return {
        "id": recording.id,
        "room_id": _room_id(recording),
        "status": api_status(recording),
        "duration_seconds": _duration_seconds(recording),
        "size_bytes": recording.size_bytes,
        "created_at": _timestamp(recording.created_at),
    }


class RecordingListView(APIView):
    @extend_schema(operation_id="recordings_list", responses=OBJECT)
    def get(self, request: Request) -> Response:
        limit = _query_int(request, "limit", DEFAULT_LIMIT)
        offset = _query_int(request, "offset", 0)
        if limit > MAX_LIMIT:
            raise BadRequest(f"limit must be at most {MAX_LIMIT}.", code="invalid_parameter")
        recordings: QuerySet[Recording] = selectors.recordings_of(space_of(request))
        total = recordings.count()
        page = recordings.select_related("run").order_by("-created_at", "-id")[
            offset : offset + limit
        ]
        return Response(
            {
                "data": [_list_item(recording) for recording in page],
                "meta": {"total": total, "limit": limit, "offset": offset},
            }
        )


class RecordingDetailView(APIView):
    @extend_schema(operation_id="recordings_get", responses=OBJECT)
    def get(self, request: Request, recording_id: str) -> Response:
        recording = _recording(request, recording_id)
        room = recording.run.runtime
        return _data(
            {
                "id": recording.id,
                "room_id": room.id if room else None,
                "room": {"id": room.id, "name": room.name} if room else None,
                "status": api_status(recording),
                "duration_seconds": _duration_seconds(recording),
                "size_bytes": recording.size_bytes,
                "started_at": _timestamp(recording.started_at),
                "stopped_at": _timestamp(recording.stopped_at),
            }
        )

    @extend_schema(operation_id="recordings_delete", responses=OBJECT)
    def delete(self, request: Request, recording_id: str) -> Response:
        recording = recording_soft_delete(recording=_recording(request, recording_id))
        return _data(
            {"id": recording.id, "deleted": True, "deleted_at": _timestamp(recording.deleted_at)}
        )


def recording_soft_delete(*, recording: Recording) -> Recording:
    """Hides the recording; the retention task purges its files later.

    A recording still in progress is stopped by the deletion (no processing is queued), so
    its recorder's next batch is refused and the room can be recorded again.
    """
    with transaction.atomic():
        locked = Recording.objects.select_for_update().get(pk=recording.pk)
        if locked.status in selectors.HIDDEN:
            raise ObjectNotFound(f"No recording {locked.id!r}.")
        now = timezone.now()
        if locked.status == Recording.Status.RECORDING:
            locked.stopped_at = now
        locked.status = Recording.Status.DELETED
        locked.deleted_at = now
        locked.save(update_fields=["status", "deleted_at", "stopped_at"])
        notify_run_changed(locked.run_id, "recording", status=locked.status)
    return locked


class DownloadNegotiation(DefaultContentNegotiation):
    """`?format=` says what to download (mp4 or rrweb), not which renderer DRF picks:
    the answer is always JSON."""

    def select_renderer(
        self, request: Request, renderers: Iterable[BaseRenderer], format_suffix: str | None = None
    ) -> tuple[BaseRenderer, str]:
        renderer = next(iter(renderers))
        return renderer, renderer.media_type


class RecordingDownloadView(APIView):
    rate_scope = LEASE  # each answer mints a signed download URL
    content_negotiation_class = DownloadNegotiation

    @extend_schema(operation_id="recordings_download", responses={200: OpenApiTypes.OBJECT})
    def get(self, request: Request, recording_id: str) -> Response:
        wanted = request.query_params.get("format", "")
        if wanted and wanted not in FORMATS:
            raise BadRequest("format must be mp4 or rrweb.", code="invalid_parameter")
        recording = _recording(request, recording_id)
        if recording.status == Recording.Status.FAILED:
            raise Conflict(
                f"Recording {recording.id} failed and cannot be downloaded.",
                code="recording.failed",
            )
        if recording.status not in files.DOWNLOADABLE:
            in_progress = recording.status == Recording.Status.RECORDING
            return Response(
                {
                    "recording_id": recording.id,
                    "status": api_status(recording),
                    "message": RECORDING_MESSAGE if in_progress else PROCESSING_MESSAGE,
                },
                status=202,
            )
        if wanted != "rrweb":
            video = selectors.videos_of(recording).first()
            if video is not None:
                return Response(_video_answer(request, recording, video))
            if selectors.videos_waiting(recording) and not wanted:
                return Response(
                    {
                        "recording_id": recording.id,
                        "status": "processing",
                        "message": PROCESSING_MESSAGE,
                    },
                    status=202,
                )
            if wanted == "mp4":
                raise NotFound(f"Recording {recording.id} has no video.", code="recording.no_video")
        url = files.presigned_download_url(recording, _document_head(recording))
        if url is None:
            path = reverse("seed_api:recording-file", kwargs={"recording_id": recording.id})
            url = (
                request.build_absolute_uri(path)
                + "?"
                + urlencode({"token": files.download_token(recording)})
            )
        return Response(
            {
                "recording_id": recording.id,
                "download_url": url,
                "status": api_status(recording),
                "duration": _duration_seconds(recording),
                "file_size": recording.size_bytes,
                "provider": files.provider_of(recording),
            }
        )


def _video_answer(request: Request, recording: Recording, video: RecordingVideo) -> dict[str, Any]:
    """The seed's download answer for a tab's MP4: a presigned URL on object storage,
    else a signed URL of this server."""
    url = files.recording_files(recording).download_url(
        video.path, filename=video_filename(recording.id, video.target), content_type=VIDEO_TYPE
    )
    if url is None:
        path = reverse("seed_api:recording-file", kwargs={"recording_id": recording.id})
        query = {"token": files.download_token(recording), "target": video.target}
        url = request.build_absolute_uri(path) + "?" + urlencode(query)
    return {
        "recording_id": recording.id,
        "download_url": url,
        "status": api_status(recording),
        "duration": round(video.duration_ms / 1000),
        "file_size": video.size_bytes,
        "provider": files.provider_of(recording),
    }


def _document_head(recording: Recording) -> dict[str, Any]:
    """The fields of a downloaded events document before its `events`."""
    return {"recording_id": recording.id, "duration": _duration_seconds(recording)}


class RecordingFileView(APIView):
    """The signed download URL: no API key, the token is the grant."""

    authentication_classes: list[Any] = []
    permission_classes = [AllowAny]

    @extend_schema(operation_id="recordings_file", auth=[], responses={200: OpenApiTypes.BINARY})
    def get(self, request: Request, recording_id: str) -> Any:
        token = request.query_params.get("token", "")
        try:
            space_id = files.download_token_space(token, recording_id)
        except files.DownloadTokenExpired as exc:
            return Response(error_body("link_expired", str(exc)), status=410)
        except files.DownloadTokenInvalid as exc:
            return Response(error_body("forbidden", str(exc)), status=403)
        recording = (
            Recording.objects.filter(pk=recording_id, space_id=space_id)
            .exclude(status__in=selectors.HIDDEN)
            .first()
        )
        if recording is None or recording.status not in files.DOWNLOADABLE:
            raise ObjectNotFound(f"No recording {recording_id!r} to download.")
        target = request.query_params.get("target")
        if target is not None:
            video = selectors.videos_of(recording).filter(target=target).first()
            if video is None:
                raise ObjectNotFound(f"No video of tab {target!r} in {recording_id!r}.")
            return video_response(request._request, recording, video, attachment=True)
        parts = files.events_document(
            _document_head(recording), recording, files.target_files(recording)
        )
        return _stream(
            request,
            parts,
            **{"Content-Disposition": f'attachment; filename="{recording.id}.json"'},
        )


class RecordingArchiveView(APIView):
    @extend_schema(operation_id="recordings_archive", request=None, responses=OBJECT)
    def post(self, request: Request, recording_id: str) -> Response:
        recording = files.recording_archive(recording=_recording(request, recording_id))
        return _data(
            {
                "id": recording.id,
                "status": api_status(recording),
                "archived_at": _timestamp(recording.archived_at),
            }
        )


class RecordingRecoverView(APIView):
    @extend_schema(operation_id="recordings_recover", request=None, responses=OBJECT)
    def post(self, request: Request, recording_id: str) -> Response:
        recording = _recording(request, recording_id)
        if recording.status not in PROCESSING_STATUSES:
            raise BadRequest(
                f"Recording {recording.id} is {api_status(recording)}; only a recording in "
                "processing can be recovered.",
                code="recording.not_processing",
            )
        # force: an operator asked, so take it even if a worker started it recently.
        transaction.on_commit(
            lambda: queue("recordings.tasks.process_recording", recording.id, True)
        )
        return _data({"id": recording.id, "status": "processing", "message": RECOVER_MESSAGE})


# --- Browser Run compatibility (seed 003) -------------------------------------------------


class BrowserRunRecordingView(APIView):
    """`{"sessionId", "duration" (ms), "events": {target: [rrweb events]}}`, streamed.

    The run's latest visible recording; 404 until it is ready (or archived), and for a
    recording shorter than 1 s, which has nothing to play.
    """

    @extend_schema(operation_id="browser_run_recording_get", responses=OBJECT)
    def get(self, request: Request, space_id: str, run_id: str) -> Any:
        space = space_of(request)
        if space_id != space.id:
            raise ObjectNotFound(f"No account {space_id!r}.")
        run = run_of(space, run_id)
        recording = selectors.latest_recording_of(run)
        if recording is None or recording.status not in files.DOWNLOADABLE:
            raise NotFound(
                f"The recording of {run.id} is not available yet.",
                code="recording.not_ready",
            )
        if selectors.has_nothing_to_view(recording):
            raise NotFound(
                f"The recording of {run.id} is shorter than 1 second.",
                code="recording.too_short",
            )
        head = {"sessionId": run.id, "duration": recording.duration_ms}
        parts = files.events_document(head, recording, files.target_files(recording))
        return _stream(request, parts)
