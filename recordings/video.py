"""Video of recorded tabs: the screencast frames a runtime host sends while a run records,
and the H.264 MP4 of each page target encoded from them once the recording is ready.

Frames (`frames_ingest`): a batch of one target's JPEG pictures, each with the time it
was shown (ms since the epoch, the browser's clock, as rrweb's), taken only while the
recording records (409 otherwise, as a batch of rrweb events) and stored as one file in
the default (hot) storage, `recordings/<rec>/frames/<target>/<seq>.frames`: FRAMES_MAGIC,
then per frame an 8-byte time and a 4-byte length (big-endian) and the JPEG. A host sends
a frame only when the picture changed; nothing is sent while a tab stands still.

Videos (`recording_encode_videos`, the Celery task `encode_recording_videos`): when
processing makes a recording ready it adds a `pending` RecordingVideo per target that has
frames and queues the task. The task takes each pending video (one conditional UPDATE, so
two workers never encode the same one), and writes an MP4 with PyAV (libx264, yuv420p,
preset veryfast, `+faststart` so a browser plays it before the end arrives) at a constant
BCTRL_VIDEO_FPS: output frame i shows the newest picture taken before the middle of its
slot (the last one, before the end), the first picture until then, so a still tab holds
its last picture and the video spans the tab's time on the replay's timeline (the
processed target's start to its end, or to its last picture when a canvas changed after
the page's last DOM event; a tab without a replay, its first frame to the recording's
stop). Every picture is
scaled and padded to the first one's size (even dimensions): a viewport may change.
The MP4 goes to the storage of the recording's tier under a fixed name; the frames are
deleted once it is there. A failure leaves the video `pending` for the sweep
(`videos_sweep`) until BCTRL_RECORDING_MAX_ATTEMPTS, then `failed` with the reason.

Memory: frames are read one file at a time and decoded one picture at a time; the MP4 is
written to a temporary file and streamed to storage.
"""

import contextlib
import logging
import struct
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from typing import IO, Any

from django.conf import settings
from django.core.files import File
from django.core.files.base import ContentFile
from django.db import IntegrityError, transaction
from django.db.models import F, Max, Min, Q, Sum
from django.utils import timezone

from recordings.models import MAX_CAPTURE_MS, Recording, RecordingFrames, RecordingVideo
from recordings.rrweb import recording_dir
from recordings.selectors import latest_recording_of
from recordings.services import (
    TARGET_PATTERN,
    active_recording_for_ingest,
    timestamp_window,
)
from recordings.storage import hot_storage, recording_files, storage_of
from runs.errors import Conflict, Invalid, PayloadTooLarge
from runs.exports.trace import ScreencastFrame
from runs.models import Run
from runs.queue import queue

logger = logging.getLogger(__name__)

FRAMES_MAGIC = b"BCTRLFR1"
FRAME_HEADER = struct.Struct(">QI")  # ms since the epoch, JPEG length
MAX_FRAMES_BYTES = 16 * 1024 * 1024  # one batch: far more than a host sends at once
MAX_FRAME_BYTES = 4 * 1024 * 1024
DEFAULT_FPS = 5.0  # what the encoder uses when BCTRL_VIDEO_FPS turns capture off
LOST_AFTER = timedelta(minutes=1)
CONTENT_TYPE = "video/mp4"


def _pyav() -> Any:
    """PyAV, imported when a video is encoded or decoded: it loads FFmpeg (~0.1 s), which
    the web processes and hosts that import this module for its names need not pay."""
    import av

    return av


def video_fps() -> float:
    """Frames per second a host keeps of a recorded tab; 0 when video is off."""
    return max(float(settings.BCTRL_VIDEO_FPS), 0.0)


def frames_path(recording_id: str, target: str, seq: int) -> str:
    return f"{recording_dir(recording_id)}/frames/{target}/{seq:010d}.frames"


def video_path(recording_id: str, target: str) -> str:
    return f"{recording_dir(recording_id)}/videos/{target}.mp4"


def video_filename(recording_id: str, target: str) -> str:
    return f"{recording_id}-{target}.mp4"


# --- Frames -------------------------------------------------------------------------------


def pack_frames(frames: list[tuple[int, bytes]]) -> bytes:
    parts = [FRAMES_MAGIC]
    for time_ms, jpeg in frames:
        parts.append(FRAME_HEADER.pack(time_ms, len(jpeg)))
        parts.append(jpeg)
    return b"".join(parts)


def read_frames(handle: IO[bytes]) -> Iterator[tuple[int, bytes]]:
    """The (time, JPEG) of each frame of a frames file, one at a time."""
    if handle.read(len(FRAMES_MAGIC)) != FRAMES_MAGIC:
        raise ValueError("not a frames file")
    while header := handle.read(FRAME_HEADER.size):
        if len(header) < FRAME_HEADER.size:
            raise ValueError("a frames file ends inside a frame header")
        time_ms, length = FRAME_HEADER.unpack(header)
        jpeg = handle.read(length)
        if len(jpeg) < length:
            raise ValueError("a frames file ends inside a frame")
        yield time_ms, jpeg


def frames_ingest(
    *, run: Run, target: str, seq: int, frames: list[tuple[int, bytes]]
) -> RecordingFrames | None:
    """Stores a batch of a target's frames in the run's recording (started by its first
    batch, as rrweb batches start it). The same (target, seq) twice keeps the first. 409
    once the recording stopped or past its 2 hour limit; a refused batch leaves nothing."""
    if not TARGET_PATTERN.match(target):
        raise Invalid("target must be 1-100 letters, digits, '.', '_' or '-'.")
    if not frames:
        raise Invalid("A batch of frames holds at least one frame.")
    total = sum(len(jpeg) for _, jpeg in frames)
    if total > MAX_FRAMES_BYTES or any(len(jpeg) > MAX_FRAME_BYTES for _, jpeg in frames):
        raise PayloadTooLarge(f"A batch of frames holds at most {MAX_FRAMES_BYTES} bytes.")
    earliest, latest = timestamp_window(run)
    times = [time_ms for time_ms, _ in frames]
    if not all(earliest <= time_ms <= latest for time_ms in times):
        raise Invalid("A frame's time is outside this run's time.")
    recording = active_recording_for_ingest(run=run)
    storage = hot_storage()
    path = storage.save(frames_path(recording.id, target, seq), ContentFile(pack_frames(frames)))
    try:
        with transaction.atomic():
            locked = Recording.objects.select_for_update().get(pk=recording.pk)
            first = locked.first_timestamp
            if locked.status != Recording.Status.RECORDING:
                raise Conflict(
                    f"Recording {locked.id} is {locked.status}; it takes no more frames.",
                    code="recording.not_recording",
                )
            if first is not None and max(times) - first > MAX_CAPTURE_MS:
                raise Conflict(
                    "The recording reached its 2 hour limit.", code="recording.limit_reached"
                )
            return RecordingFrames.objects.create(
                recording=locked,
                target=target,
                seq=seq,
                frame_count=len(frames),
                first_ms=min(times),
                last_ms=max(times),
                size_bytes=total,
                path=path,
            )
    except IntegrityError:
        storage.delete(path)
        return None
    except Exception:
        storage.delete(path)
        raise


# --- Videos -------------------------------------------------------------------------------


def videos_prepare(recording_id: str) -> bool:
    """A pending video for each target of the recording that has frames and no video
    yet; True when there is one to encode (the caller queues the task on commit)."""
    targets = set(
        RecordingFrames.objects.filter(recording_id=recording_id)
        .values_list("target", flat=True)
        .distinct()
    )
    known = set(
        RecordingVideo.objects.filter(recording_id=recording_id).values_list("target", flat=True)
    )
    RecordingVideo.objects.bulk_create(
        [RecordingVideo(recording_id=recording_id, target=t) for t in targets - known],
        ignore_conflicts=True,
    )
    return RecordingVideo.objects.filter(
        recording_id=recording_id, status=RecordingVideo.Status.PENDING
    ).exists()


def queue_encoding(recording_id: str) -> None:
    # robust: a queue that is down is logged; the sweep queues the videos again.
    transaction.on_commit(
        lambda: queue("recordings.tasks.encode_recording_videos", recording_id), robust=True
    )


def _stale() -> Any:
    return timezone.now() - timedelta(seconds=int(settings.BCTRL_RECORDING_PROCESSING_TIMEOUT_S))


def _takeable() -> Q:
    return Q(status=RecordingVideo.Status.PENDING) | Q(
        status=RecordingVideo.Status.ENCODING, encoding_started_at__lt=_stale()
    )


def recording_encode_videos(*, recording_id: str) -> list[RecordingVideo]:
    """Encodes every pending video of the recording (see the module docstring); returns
    the videos this call settled."""
    settled = []
    for video_id in RecordingVideo.objects.filter(
        _takeable(), recording_id=recording_id
    ).values_list("pk", flat=True):
        started = timezone.now()
        taken = RecordingVideo.objects.filter(
            _takeable(), pk=video_id, attempts__lt=int(settings.BCTRL_RECORDING_MAX_ATTEMPTS)
        ).update(
            status=RecordingVideo.Status.ENCODING,
            encoding_started_at=started,
            attempts=F("attempts") + 1,
        )
        if not taken:
            _fail_exhausted(video_id)
            continue
        video = RecordingVideo.objects.select_related("recording").get(pk=video_id)
        try:
            settled.append(_encode(video, started))
        except Exception as exc:
            logger.exception("Encoding the video of %s/%s failed", recording_id, video.target)
            exhausted = video.attempts >= int(settings.BCTRL_RECORDING_MAX_ATTEMPTS)
            RecordingVideo.objects.filter(pk=video_id, encoding_started_at=started).update(
                status=RecordingVideo.Status.FAILED if exhausted else RecordingVideo.Status.PENDING,
                problem=f"{type(exc).__name__}: {exc}"[:2000],
            )
    return settled


def _fail_exhausted(video_id: int) -> None:
    RecordingVideo.objects.filter(
        _takeable(), pk=video_id, attempts__gte=int(settings.BCTRL_RECORDING_MAX_ATTEMPTS)
    ).update(status=RecordingVideo.Status.FAILED, problem="encoding did not finish")


@dataclass(frozen=True)
class Span:
    start_ms: int
    end_ms: int
    frame_count: int  # the frames the host captured in it


def video_span(video: RecordingVideo) -> Span | None:
    """The part of the replay's timeline the target's video covers: its processed
    target's span (to its last frame, if later), else its frames' first time to the
    recording's stop. None when the target has no frames."""
    times = RecordingFrames.objects.filter(
        recording_id=video.recording_id, target=video.target
    ).aggregate(first=Min("first_ms"), last=Max("last_ms"), count=Sum("frame_count"))
    if times["first"] is None or not times["count"]:
        return None
    count = int(times["count"])
    row = video.recording.targets.filter(target=video.target, playable=True).first()
    if row is not None and row.start_timestamp is not None and row.end_timestamp is not None:
        # A canvas may go on changing after the page's last DOM event.
        return Span(row.start_timestamp, max(row.end_timestamp, times["last"]), count)
    stopped = video.recording.stopped_at
    end = int(stopped.timestamp() * 1000) if stopped is not None else times["last"]
    return Span(times["first"], max(end, times["last"]), count)


def _frames_of(video: RecordingVideo) -> Iterator[tuple[int, bytes]]:
    files = recording_files(video.recording)
    for path in (
        RecordingFrames.objects.filter(recording_id=video.recording_id, target=video.target)
        .order_by("seq")
        .values_list("path", flat=True)
    ):
        try:
            handle = files.open_frames(path)
        except FileNotFoundError:
            logger.warning("Frames %s are missing; the video holds the picture before", path)
            continue
        with handle:
            yield from read_frames(handle)


def _encode(video: RecordingVideo, started: Any) -> RecordingVideo:
    span = video_span(video)
    if span is None:
        raise ValueError("the target has no frames")
    with tempfile.NamedTemporaryFile(suffix=".mp4") as spool:
        width, height = encode_mp4(
            _frames_of(video), spool.name, span.start_ms, span.end_ms, video_fps() or DEFAULT_FPS
        )
        size = spool.seek(0, 2)
        spool.seek(0)
        recording = video.recording
        storage = storage_of(recording)
        name = video_path(recording.id, video.target)
        storage.delete(name)
        path = storage.save(name, File(spool, name=name))
    changes = {
        "status": RecordingVideo.Status.READY,
        "start_ms": span.start_ms,
        "end_ms": span.end_ms,
        "frame_count": span.frame_count,
        "width": width,
        "height": height,
        "size_bytes": size,
        "path": path,
        "encoded_at": timezone.now(),
        "problem": "",
    }
    if not RecordingVideo.objects.filter(
        pk=video.pk, status=RecordingVideo.Status.ENCODING, encoding_started_at=started
    ).update(**changes):
        logger.warning("The video of %s/%s was taken over", recording.id, video.target)
        return video
    _delete_frames(recording.id, video.target)
    video.refresh_from_db()
    return video


def _delete_frames(recording_id: str, target: str) -> None:
    rows = RecordingFrames.objects.filter(recording_id=recording_id, target=target)
    storage = hot_storage()
    for path in rows.values_list("path", flat=True):
        with contextlib.suppress(OSError):
            storage.delete(path)
    rows.delete()


def encode_mp4(
    frames: Iterator[tuple[int, bytes]], path: str, start_ms: int, end_ms: int, fps: float
) -> tuple[int, int]:
    """Writes the H.264 MP4 of `frames` ((time, JPEG), in time order) to `path`: a
    constant `fps` from start_ms to end_ms, each output frame the newest picture shown
    before the middle of its slot. Returns the video's (width, height)."""
    av = _pyav()

    step_ms = 1000.0 / fps
    count = max(1, round((end_ms - start_ms) / step_ms))
    rate = Fraction(fps).limit_denominator(1000)
    decoder = av.CodecContext.create("mjpeg", "r")
    upcoming = enumerate(frames)  # numbered: a picture is decoded once, however long held
    pending = next(upcoming, None)
    if pending is None:
        raise ValueError("no frames to encode")
    current: tuple[int, tuple[int, bytes]] | None = None
    shown: Any = None  # the picture of `current`, converted to the video's size
    shown_number = -1
    graphs: dict[tuple[int, int, str], Any] = {}
    container = av.open(path, "w", format="mp4", options={"movflags": "+faststart"})
    try:
        stream: Any = None
        for index in range(count):
            # The last slot shows the last picture up to the end: a change there is kept.
            slot_ms = end_ms if index == count - 1 else start_ms + (index + 0.5) * step_ms
            while pending is not None and pending[1][0] <= slot_ms:
                current, pending = pending, next(upcoming, None)
            number, (_, jpeg) = current or pending  # type: ignore[misc]
            if number != shown_number:
                shown_number = number
                decoded = _decode(decoder, jpeg)
                if decoded is not None:  # an unreadable picture: the last one is held
                    if stream is None:
                        stream = _stream(container, decoded, rate)
                    shown = _fit(graphs, decoded, stream, rate)
            if shown is None:
                continue
            shown.pts = index
            shown.time_base = Fraction(1) / rate
            container.mux(stream.encode(shown))
        if stream is None:
            raise ValueError("no frame could be decoded")
        container.mux(stream.encode(None))
        return stream.width, stream.height
    finally:
        container.close()


def _decode(decoder: Any, jpeg: bytes) -> Any:
    av = _pyav()

    try:
        decoded = decoder.decode(av.Packet(jpeg))
    except av.error.FFmpegError:
        return None
    return decoded[0] if decoded else None


def _stream(container: Any, first: Any, rate: Fraction) -> Any:
    stream = container.add_stream("libx264", rate=rate)
    stream.width = max(2, first.width - first.width % 2)
    stream.height = max(2, first.height - first.height % 2)
    stream.pix_fmt = "yuv420p"
    stream.options = {"preset": "veryfast"}
    return stream


def _fit(graphs: dict[tuple[int, int, str], Any], frame: Any, stream: Any, rate: Fraction) -> Any:
    """`frame` scaled (aspect kept) and padded to the stream's size, in yuv420p."""
    av = _pyav()

    key = (frame.width, frame.height, frame.format.name)
    graph = graphs.get(key)
    if graph is None:
        graph = av.filter.Graph()
        source = graph.add_buffer(
            width=frame.width, height=frame.height, format=frame.format, time_base=1 / rate
        )
        width, height = stream.width, stream.height
        scale = graph.add("scale", f"{width}:{height}:force_original_aspect_ratio=decrease")
        pad = graph.add("pad", f"{width}:{height}:(ow-iw)/2:(oh-ih)/2")
        convert = graph.add("format", "yuv420p")
        sink = graph.add("buffersink")
        source.link_to(scale)
        scale.link_to(pad)
        pad.link_to(convert)
        convert.link_to(sink)
        graph.configure()
        graphs[key] = graph
    graph.push(frame)
    return graph.pull()


# --- Sweep ---------------------------------------------------------------------------------


def videos_sweep() -> list[str]:
    """Queues again the recordings whose videos wait: pending for more than a minute (the
    task was lost or failed once) or encoding for longer than the processing timeout (its
    worker died). Returns their ids."""
    lost = Q(status=RecordingVideo.Status.PENDING, created_at__lt=timezone.now() - LOST_AFTER)
    lost |= Q(status=RecordingVideo.Status.ENCODING, encoding_started_at__lt=_stale())
    ids = sorted(set(RecordingVideo.objects.filter(lost).values_list("recording_id", flat=True)))
    for recording_id in ids:
        queue("recordings.tasks.encode_recording_videos", recording_id)
    return ids


# The pictures of a run's Playwright trace (runs/exports/trace.py): one a second of each
# tab, further apart when the videos are long, this many at most.
TRACE_FRAME_EVERY_MS = 1000
TRACE_FRAMES_MAX = 900


def screencast_frames(run: Run) -> Iterator[ScreencastFrame]:
    """Pictures of the run's tabs taken from their videos (a JPEG every
    TRACE_FRAME_EVERY_MS or more), decoded one at a time from the recording's storage."""
    av = _pyav()

    recording = latest_recording_of(run)
    if recording is None:
        return
    videos = list(recording.videos.filter(status=RecordingVideo.Status.READY).exclude(path=""))
    total_ms = sum(video.duration_ms for video in videos)
    every_ms = max(TRACE_FRAME_EVERY_MS, total_ms / TRACE_FRAMES_MAX)
    files = recording_files(recording)
    for video in videos:
        if video.start_ms is None:
            continue
        with files.open(video.path) as handle, av.open(handle, "r") as container:
            encoder: Any = None
            due = float(video.start_ms)
            for picture in container.decode(video=0):
                at = video.start_ms + float(picture.time or 0) * 1000
                if at < due:
                    continue
                due = at + every_ms
                if encoder is None:
                    encoder = av.CodecContext.create("mjpeg", "w")
                    encoder.width, encoder.height = picture.width, picture.height
                    encoder.pix_fmt = "yuvj420p"
                    encoder.time_base = Fraction(1, 1000)
                still = picture.reformat(format="yuvj420p")
                still.pts = int(at)
                packets = encoder.encode(still)
                if not packets:
                    continue
                yield ScreencastFrame(
                    page_id=video.target,
                    time=datetime.fromtimestamp(at / 1000, tz=UTC),
                    jpeg=bytes(packets[0]),
                    width=picture.width,
                    height=picture.height,
                )
