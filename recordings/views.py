"""The replay page of a run and the data its player reads.

URLs (names in the `replay` namespace; every one scoped to the signed-in user's spaces
through `runs.selectors.run_of_user`, so another space's run is a 404 like a missing one)

- `GET /runs/<run_id>/replay` (`replay:page`): the player page. Login required.
- `GET /runs/<run_id>/replay/manifest` (`replay:manifest`): JSON, everything the page
  needs before it fetches a single recording byte::

    {"run": {id, name, status, startedAt, endedAt},
     "recording": {id, status, apiStatus, durationMs, startedAt, stoppedAt} | null,
     "mode": "chunks" | "live" | "none",
     "targets": [{id, playable, problem, start, end, durationMs, eventCount,
                  index: {chunks, markers, inactivity, pages} | null,
                  chunksUrl | null, liveUrl | null}],
     "activity": [activity items of runs.activity, each with "timeMs" added]}

  `start`/`end`/`time`/`timeMs` are epoch milliseconds (rrweb's clock). `mode` is
  "chunks" once processing wrote RecordingTarget rows; "live" while the recording has
  only batches (recording, preparing, processing); "none" without a recording.
- `GET /runs/<run_id>/replay/<target>/chunks?chunk=<i>`: the bytes of chunk i of the
  target's index alone (200; 404 for no such chunk), `Cache-Control: private, no-store`.
  The replay page preloads the first chunk by this URL (a preload cannot send a Range
  header), together with the manifest, so both download with the page's scripts.
- `GET /runs/<run_id>/replay/<target>/chunks` (`replay:chunks`): the target's chunk file
  (gzip members, one per chunk) with single-range HTTP Range support: `Range:
  bytes=a-b`, `bytes=a-` and `bytes=-n` answer 206 with `Content-Range`; a range that
  starts past the end (or ends before it starts) answers 416 with `Content-Range:
  bytes */<size>`; a header that is not a single byte range is ignored (200, whole
  file), as RFC 9110 asks. Every answer says `Accept-Ranges: bytes`. The bytes go out as
  `application/octet-stream`, not `Content-Encoding: gzip`: the player inflates each
  chunk itself (DecompressionStream), so one chunk can be fetched without the others.
- `GET /runs/<run_id>/replay/inspector` (`replay:inspector`): the inspector's Network,
  Console and Commands rows (recordings/inspector.py), read by the player once the first
  frame shows.
- `GET /runs/<run_id>/replay/<target>/video` (`replay:video`): the tab's MP4
  (recordings.video), `video/mp4` with the same single-range support as the chunk file,
  so a `<video>` element seeks in it; 404 until it is encoded. The manifest's target
  carries it as `video: {url, start, end, durationMs, width, height, bytes} | null`
  (`start`/`end` on the replay's clock: second s of the video is `start + 1000 s`).
- `GET /runs/<run_id>/replay/<target>/live?after=<seq>` (`replay:live`): the rrweb
  events of the target's batches with seq > after (at most LIVE_MAX_BATCHES batches
  per answer, `more` says when there are further ones) as
  `{status, events, seq, more}`; `seq` is the highest seq returned (or `after`). A batch
  that arrives late with a lower seq than one already returned is not sent again:
  live view is best effort, the processed replay is complete.

Data endpoints take a resolved `run` (`manifest_response`, `chunks_response`,
`live_response`) and URL builders (`ReplayUrls`); the session views below wrap them with
`session_run`. An embed that authenticates with a lease token instead of a session
resolves the run its own way and reuses the same functions with its own URLs.

Content Security Policy: the rrweb replayer renders into an `about:blank` iframe that
inherits the page's policy, and recorded pages carry inline styles, so the player page
sends REPLAY_POLICY (inline styles allowed, scripts only from 'self', never inline or
eval) instead of the strict site policy. The iframe is sandboxed by rrweb with
`allow-same-origin` only (no `allow-scripts`), recorded `<script>` elements are rebuilt
as `<noscript>`, and the player never enables `UNSAFE_replayCanvas` nor passes plugins
or style rules: a recording that carries `<script>`, `onerror=` or `javascript:` runs
nothing (tests/test_replay_browser.py checks it in Chromium). Every other response keeps
the strict policy of bctrl_site.middleware.

Player (static/js/replay.js): see the comment at its top: one rrweb Replayer per chunk,
the chunk containing the playhead fetched by Range, the next one prefetched as playback
nears the end of the current one, at most three chunks held; live mode polls the live
endpoint and feeds a live-mode Replayer until the recording is processed.
"""

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Concatenate, ParamSpec

import orjson
from django.contrib.auth.views import redirect_to_login
from django.core.files import File
from django.db.models.fields.json import KT
from django.http import (
    FileResponse,
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseBase,
)
from django.urls import reverse
from django.utils.dateparse import parse_datetime
from django.views.decorators.gzip import gzip_page
from django.views.decorators.http import require_GET

from recordings.inspector import SECTIONS, inspector_data
from recordings.models import Recording, RecordingBatch, RecordingTarget, RecordingVideo
from recordings.rrweb import ChunkIndex, Page, chunk_index_of
from recordings.selectors import latest_recording_of, runs_api_status, targets_of, videos_of
from recordings.storage import recording_files
from recordings.video import CONTENT_TYPE as VIDEO_TYPE
from recordings.video import video_filename
from runs import selectors
from runs.activity import activity_items
from runs.models import Event, Run

REPLAY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob:; font-src 'self' data:; connect-src 'self'; "
    "frame-src 'self' about: blob:; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
LIVE_MAX_BATCHES = 50
# A range read is held in memory while it is sent: chunks are far smaller than this.
MAX_RANGE_BYTES = 64 * 1024 * 1024
LIVE_STATUSES = (
    Recording.Status.RECORDING,
    Recording.Status.PREPARING,
    Recording.Status.PROCESSING,
)
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")

P = ParamSpec("P")


# URLs -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReplayUrls:
    """Where the player fetches a target's chunks, live batches and video (None: the
    player shows no video, as in the offline replay file)."""

    chunks: Callable[[str], str]
    live: Callable[[str], str]
    video: Callable[[str], str] | None = None


def session_urls(run: Run) -> ReplayUrls:
    return ReplayUrls(
        chunks=lambda target: reverse("replay:chunks", args=[run.id, target]),
        live=lambda target: reverse("replay:live", args=[run.id, target]),
        video=lambda target: reverse("replay:video", args=[run.id, target]),
    )


# Data, for any way of resolving the run ---------------------------------------------


def _epoch_ms(value: Any) -> int | None:
    if not isinstance(value, str):
        return None
    parsed = parse_datetime(value)
    return int(parsed.timestamp() * 1000) if parsed is not None else None


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def _timed_activity(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    timed = []
    for item in items:
        children = [
            {**child, "timeMs": _epoch_ms(child.get("time"))}
            for child in item.get("children") or []
        ]
        timed.append({**item, "timeMs": _epoch_ms(item.get("time")), "children": children})
    return timed


def _video_of(video: RecordingVideo | None, urls: ReplayUrls) -> dict[str, Any] | None:
    if video is None or urls.video is None:
        return None
    return {
        "url": urls.video(video.target),
        "start": video.start_ms,
        "end": video.end_ms,
        "durationMs": video.duration_ms,
        "width": video.width,
        "height": video.height,
        "bytes": video.size_bytes,
    }


def _processed_target(
    target: RecordingTarget, urls: ReplayUrls, video: RecordingVideo | None = None
) -> dict[str, Any]:
    index = chunk_index_of(target.index)
    return {
        "id": target.target,
        "playable": target.playable and bool(target.path) and bool(index["chunks"]),
        "problem": target.problem,
        "start": target.start_timestamp,
        "end": target.end_timestamp,
        "durationMs": target.duration_ms,
        "eventCount": target.event_count,
        "index": index,
        "chunksUrl": urls.chunks(target.target) if target.path else None,
        "liveUrl": None,
        "video": _video_of(video, urls),
    }


def _live_targets(recording: Recording, urls: ReplayUrls) -> list[dict[str, Any]]:
    """Targets of a recording that has only batches, from the batch rows (no file read)."""
    spans: dict[str, dict[str, int]] = {}
    rows = RecordingBatch.objects.filter(recording=recording).values_list(
        "target", "first_timestamp", "last_timestamp", "event_count"
    )
    for target, first, last, count in rows:
        span = spans.setdefault(target, {"start": first, "end": last, "events": 0})
        span["start"] = min(span["start"], first)
        span["end"] = max(span["end"], last)
        span["events"] += count
    ordered = sorted(spans.items(), key=lambda item: (item[1]["start"], item[0]))
    return [
        {
            "id": target,
            "playable": True,
            "problem": "",
            "start": span["start"],
            "end": span["end"],
            "durationMs": span["end"] - span["start"],
            "eventCount": span["events"],
            "index": None,
            "chunksUrl": None,
            "liveUrl": urls.live(target),
        }
        for target, span in ordered
    ]


def _pages_from_navigations(run: Run, targets: list[dict[str, Any]]) -> None:
    """Targets processed before their index kept their pages get them from the run's
    navigation events (their URLs; the titles are in the recording only): the player
    names a tab by its address rather than by its number. One query, for those only."""
    missing: dict[str, ChunkIndex] = {
        target["id"]: target["index"] for target in targets if not target["index"]["pages"]
    }
    if not missing:
        return
    rows = (
        Event.objects.filter(run=run, type="navigation", page_id__in=list(missing))
        .order_by("seq")
        .values_list("page_id", "time", "data")
    )
    for page_id, time, data in rows:
        url = data.get("url") if isinstance(data, dict) else None
        if isinstance(url, str) and url:
            page: Page = {"time": int(time.timestamp() * 1000), "url": url, "title": "", "icon": ""}
            missing[page_id].setdefault("pages", []).append(page)


def manifest_data(run: Run, urls: ReplayUrls) -> dict[str, Any]:
    recording = latest_recording_of(run)
    targets: list[dict[str, Any]] = []
    mode = "none"
    if recording is not None:
        processed = list(targets_of(recording))
        if processed:
            mode = "chunks"
            videos = {video.target: video for video in videos_of(recording)}
            targets = [
                _processed_target(target, urls, videos.get(target.target)) for target in processed
            ]
            _pages_from_navigations(run, targets)
        elif recording.status in LIVE_STATUSES:
            mode = "live"
            targets = _live_targets(recording, urls)
    return {
        "run": {
            "id": run.id,
            "name": run.name,
            "status": run.status,
            "startedAt": _iso(run.started_at),
            "endedAt": _iso(run.ended_at),
        },
        "recording": None
        if recording is None
        else {
            "id": recording.id,
            "status": recording.status,
            "apiStatus": runs_api_status(recording),
            "durationMs": recording.duration_ms,
            "startedAt": _iso(recording.started_at),
            "stoppedAt": _iso(recording.stopped_at),
            "failureReason": recording.failure_reason,
        },
        "mode": mode,
        "targets": targets,
        "activity": _timed_activity(activity_items(run)),
    }


def shown_to_viewer(manifest: dict[str, Any], *, activity: bool) -> dict[str, Any]:
    """A manifest as a lease's viewer sees it: the recording, not the names and ids of the
    space's records; the activity only when the lease shows it."""
    manifest["run"] = {key: manifest["run"][key] for key in ("status", "startedAt", "endedAt")}
    if manifest["recording"] is not None:
        manifest["recording"].pop("id", None)
    if not activity:
        manifest["activity"] = []
    return manifest


def private_json(data: Any, status: int = 200) -> HttpResponse:
    """A JSON answer of a viewer's (the replay page's, an embed's): never cached."""
    response = HttpResponse(orjson.dumps(data), content_type="application/json", status=status)
    response["Cache-Control"] = "private, no-store"
    return response


def manifest_response(run: Run, urls: ReplayUrls) -> HttpResponse:
    return private_json(manifest_data(run, urls))


def _processed_target_of(
    run: Run, target: str, *, chunk: int | None = None
) -> tuple[Recording, RecordingTarget]:
    """The run's recording and the target's row without its index (the chunk list and
    markers: ~130 KiB of JSON for a 2 h recording, which a chunk request does not need);
    with `chunk`, that chunk's offset and length read out of the index by the database, as
    `chunk_offset`/`chunk_length` (None when there is no such chunk)."""
    recording = latest_recording_of(run)
    rows = (
        RecordingTarget.objects.filter(recording=recording, target=target)
        .exclude(path="")
        .only("id", "recording_id", "target", "path")
    )
    if chunk is not None:
        rows = rows.annotate(
            chunk_offset=KT(f"index__chunks__{chunk}__offset"),
            chunk_length=KT(f"index__chunks__{chunk}__length"),
        )
    found = rows.first() if recording is not None else None
    if recording is None or found is None:
        raise Http404(f"No processed target {target!r}.")
    return recording, found


def _open(recording: Recording, name: str) -> File:
    try:
        return recording_files(recording).open(name)
    except FileNotFoundError as exc:
        raise Http404("The recording file is missing.") from exc


class RangeNotSatisfiable(Exception):
    """A byte range that starts past the end of the file, or ends before it starts."""


def parse_range(header: str, size: int) -> tuple[int, int] | None:
    """(first, last) byte of a single `bytes=` range, or None when the header is to be ignored.

    Raises RangeNotSatisfiable for a well-formed range that selects no byte of the file.
    """
    match = _RANGE.match(header.strip())
    if match is None:
        return None
    first_raw, last_raw = match.groups()
    if not first_raw and not last_raw:
        return None
    if not first_raw:  # the last n bytes
        suffix = int(last_raw)
        if suffix == 0 or size == 0:
            raise RangeNotSatisfiable(header)
        return max(0, size - suffix), size - 1
    first = int(first_raw)
    last = int(last_raw) if last_raw else size - 1
    if first >= size or last < first:
        raise RangeNotSatisfiable(header)
    return first, min(last, size - 1)


def chunks_response(request: HttpRequest, run: Run, target: str) -> HttpResponseBase:
    if "chunk" in request.GET:
        return _one_chunk_response(run, target, request.GET["chunk"])
    recording, processed = _processed_target_of(run, target)
    response = _range_response(_open(recording, processed.path), request.headers.get("Range", ""))
    response["Accept-Ranges"] = "bytes"
    # Processing writes a target's file once; a reprocessed recording gets a new path.
    response["Cache-Control"] = "private, max-age=3600"
    response["X-Content-Type-Options"] = "nosniff"
    return response


def _one_chunk_response(run: Run, target: str, raw: str) -> HttpResponse:
    """`?chunk=<i>`: the bytes of the index's chunk i alone, 200. A URL without a Range
    header, so that a page can preload it (`<link rel="preload">` sends no Range)."""
    if not raw.isdigit() or len(raw) > 9:
        raise Http404(f"No chunk {raw!r}.")
    recording, processed = _processed_target_of(run, target, chunk=int(raw))
    found = (getattr(processed, "chunk_offset", None), getattr(processed, "chunk_length", None))
    if found[0] is None or found[1] is None:
        raise Http404(f"No chunk {raw!r}.")
    try:
        body = recording_files(recording).read_chunk(
            processed.path, offset=int(found[0]), length=int(found[1])
        )
    except FileNotFoundError as exc:
        raise Http404("The recording file is missing.") from exc
    response = HttpResponse(body, content_type="application/octet-stream")
    response["Content-Length"] = str(len(body))
    # The URL names a chunk of the current index, which a reprocessing replaces.
    response["Cache-Control"] = "private, no-store"
    response["X-Content-Type-Options"] = "nosniff"
    return response


def first_chunk_to_preload(run: Run, urls: ReplayUrls) -> dict[str, str] | None:
    """The chunk the player shows first (chunk 0 of the manifest's first tab, when it can
    be played) as {target, url}, for the page to preload; None otherwise. One query, which
    does not read the index."""
    recording = latest_recording_of(run)
    if recording is None:
        return None
    first = targets_of(recording).values_list("target", "playable", "path").first()
    if first is None or not first[1] or not first[2]:
        return None
    return {"target": first[0], "url": f"{urls.chunks(first[0])}?chunk=0"}


def video_response(
    request: HttpRequest, recording: Recording, video: RecordingVideo, *, attachment: bool = False
) -> HttpResponseBase:
    """A tab's MP4, with Range support (a `<video>` element seeks by range)."""
    response = _range_response(
        _open(recording, video.path), request.headers.get("Range", ""), VIDEO_TYPE
    )
    response["Accept-Ranges"] = "bytes"
    # Encoding writes a video once; a re-encoded one is a new file under the same name.
    response["Cache-Control"] = "private, no-cache"
    response["X-Content-Type-Options"] = "nosniff"
    if attachment:
        filename = video_filename(recording.id, video.target)
        response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


def target_video_response(request: HttpRequest, run: Run, target: str) -> HttpResponseBase:
    recording = latest_recording_of(run)
    video = videos_of(recording).filter(target=target).first() if recording else None
    if recording is None or video is None:
        raise Http404(f"No video of target {target!r}.")
    return video_response(request, recording, video)


def _range_response(
    handle: File, header: str, content_type: str = "application/octet-stream"
) -> HttpResponseBase:
    """The answer for `handle`, an open file, to a request with Range `header`."""
    size = handle.size
    try:
        wanted = parse_range(header, size) if header else None
    except RangeNotSatisfiable:
        handle.close()
        refused = HttpResponse(status=416, content_type="text/plain")
        refused["Content-Range"] = f"bytes */{size}"
        return refused
    if wanted is None:
        whole = FileResponse(handle, content_type=content_type)
        whole["Content-Length"] = str(size)
        return whole
    first, last = wanted
    last = min(last, first + MAX_RANGE_BYTES - 1)
    with handle:
        handle.seek(first)
        body = handle.read(last - first + 1)
    partial = HttpResponse(body, status=206, content_type=content_type)
    partial["Content-Range"] = f"bytes {first}-{first + len(body) - 1}/{size}"
    partial["Content-Length"] = str(len(body))
    return partial


def _after(raw: str | None) -> int:
    try:
        return max(int(raw or "-1"), -1)
    except ValueError:
        return -1


def live_response(request: HttpRequest, run: Run, target: str) -> HttpResponse:
    recording = latest_recording_of(run)
    if recording is None:
        raise Http404("This run has no recording.")
    after = _after(request.GET.get("after"))
    batches = list(
        RecordingBatch.objects.filter(recording=recording, target=target, seq__gt=after)
        .order_by("seq")
        .values_list("seq", "path")[: LIVE_MAX_BATCHES + 1]
    )
    more = len(batches) > LIVE_MAX_BATCHES
    batches = batches[:LIVE_MAX_BATCHES]
    events: list[Any] = []
    seq = after
    files = recording_files(recording)
    for batch_seq, path in batches:
        try:
            events.extend(files.read_batch(path))
        except (OSError, ValueError):
            continue  # processing may have removed it meanwhile; the replay will have it
        seq = batch_seq
    events.sort(key=lambda event: event.get("timestamp", 0) if isinstance(event, dict) else 0)
    return private_json({"status": recording.status, "events": events, "seq": seq, "more": more})


# Session views ----------------------------------------------------------------------


def session_run(
    view: Callable[Concatenate[HttpRequest, Run, P], HttpResponseBase],
) -> Callable[Concatenate[HttpRequest, str, P], HttpResponseBase]:
    """Resolves `run_id` to a run of the signed-in user's spaces (404 otherwise).

    Anonymous requests are sent to the login page; `json` views answer 401 instead.
    """

    @functools.wraps(view)
    def wrapped(
        request: HttpRequest, run_id: str, *args: P.args, **kwargs: P.kwargs
    ) -> HttpResponseBase:
        if not request.user.is_authenticated:
            if getattr(view, "json_view", False):
                return private_json(
                    {"error": {"code": "not_authenticated", "message": "Sign in first."}},
                    status=401,
                )
            return redirect_to_login(request.get_full_path())
        try:
            run = selectors.run_of_user(request.user, run_id)
        except selectors.ObjectNotFound as exc:
            raise Http404(str(exc)) from exc
        return view(request, run, *args, **kwargs)

    return require_GET(wrapped)


def json_view(view: Callable[P, HttpResponseBase]) -> Callable[P, HttpResponseBase]:
    view.json_view = True  # type: ignore[attr-defined]
    return view


@gzip_page  # the chunk index and markers: ~130 KiB of JSON for a 2 h recording, ~6x less
@session_run
@json_view
def replay_manifest(request: HttpRequest, run: Run) -> HttpResponse:
    return manifest_response(run, session_urls(run))


@gzip_page
@session_run
@json_view
def replay_inspector(request: HttpRequest, run: Run) -> HttpResponse:
    return private_json(inspector_data(run, SECTIONS))


@session_run
@json_view
def replay_chunks(request: HttpRequest, run: Run, target: str) -> HttpResponseBase:
    return chunks_response(request, run, target)


@session_run
@json_view
def replay_live(request: HttpRequest, run: Run, target: str) -> HttpResponse:
    return live_response(request, run, target)


@session_run
@json_view
def replay_video(request: HttpRequest, run: Run, target: str) -> HttpResponseBase:
    return target_video_response(request, run, target)
