"""Video of recorded tabs (recordings.video, runtime_host.video): frames taken in while a
run records, the MP4 the Celery task encodes per tab once the recording is ready, and
where people get it: seed 004's download, `POST /v1/runs/{id}/recording`, the replay
page. The real browser's way (a canvas that turns from red to blue) is at the end."""

import io
import json
import threading
import time
import zipfile
from collections.abc import Iterator
from fractions import Fraction
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import av
import httpx
import pytest
from bctrl import Bctrl
from django.core.files.storage import default_storage
from django.test import Client

from recordings.models import Recording, RecordingFrames, RecordingVideo
from recordings.services import batch_ingest, recording_stop
from recordings.storage import recording_files
from recordings.video import frames_ingest, read_frames
from runs.models import Run
from runs.services import run_create
from runtime_host.host import RuntimeHost

from .conftest import Tenant, db, start_runtime, started_at_ms, stop_runtime, wait_for
from .test_recording_processing import custom, mutation, page_start

RED = (230, 20, 20)
BLUE = (20, 40, 230)
TARGET = "TAB1"


def solid_jpeg(width: int, height: int, rgb: tuple[int, int, int]) -> bytes:
    """A JPEG of one colour, as Chromium's screencast sends a canvas filled with it."""
    frame = av.VideoFrame(width, height, "rgb24")
    line = frame.planes[0].line_size
    frame.planes[0].update((bytes(rgb) * width + b"\0" * (line - 3 * width)) * height)
    encoder = av.CodecContext.create("mjpeg", "w")
    encoder.width, encoder.height, encoder.pix_fmt = width, height, "yuvj420p"
    encoder.time_base = Fraction(1, 25)
    packets = encoder.encode(frame.reformat(format="yuvj420p")) + encoder.encode(None)
    return b"".join(bytes(packet) for packet in packets)


def mp4_bytes(recording: Recording, video: RecordingVideo) -> bytes:
    with recording_files(recording).open(video.path) as handle:
        return bytes(handle.read())


def middle_pixel(frame: Any) -> tuple[int, int, int]:
    rgb = frame.reformat(format="rgb24")
    plane = rgb.planes[0]
    offset = (rgb.height // 2) * plane.line_size + 3 * (rgb.width // 2)
    pixel = bytes(plane)[offset : offset + 3]
    return pixel[0], pixel[1], pixel[2]


def colour_at(data: bytes, seconds: float) -> tuple[int, int, int]:
    """The colour of the middle pixel of the first frame shown at `seconds`."""
    with av.open(io.BytesIO(data), "r") as container:
        for frame in container.decode(video=0):
            if frame.time is not None and frame.time + 1e-6 >= seconds:
                return middle_pixel(frame)
    raise AssertionError(f"no frame at {seconds} s")


def duration_s(data: bytes) -> float:
    with av.open(io.BytesIO(data), "r") as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        assert stream.codec_context.pix_fmt == "yuv420p"
        assert stream.duration is not None and stream.time_base is not None
        return float(stream.duration * stream.time_base)


def near(pixel: tuple[int, int, int], colour: tuple[int, int, int], tolerance: int = 40) -> bool:
    return all(abs(a - b) <= tolerance for a, b in zip(pixel, colour, strict=True))


def recorded_run(
    tenant: Tenant, *, video: bool = True, start: int | None = None
) -> tuple[Run, Recording]:
    """A run whose tab was red for 2 s, then blue for 3 s, with its rrweb events and (with
    `video`) its frames as a host sends them, stopped and processed."""
    start = start or int(time.time() * 1000) - 20_000
    run = started_at_ms(run_create(space=tenant.space, name="video"), start - 1000)
    events = [*page_start(start), mutation(start + 2000), custom(start + 2000, "turned blue")]
    events.append(custom(start + 5000, "bctrl.end"))
    batch_ingest(run=run, target=TARGET, seq=1, events=events)
    if video:
        red, blue = solid_jpeg(640, 400, RED), solid_jpeg(640, 400, BLUE)
        # Before the first snapshot (about:blank), a burst, and then nothing: still.
        frames_ingest(run=run, target=TARGET, seq=1, frames=[(start - 300, red)])
        frames_ingest(run=run, target=TARGET, seq=2, frames=[(start + 2000, blue)])
    recording = Recording.objects.get(run=run)
    recording_stop(recording=recording)
    recording.refresh_from_db()
    return run, recording


@pytest.fixture
def on_commit(django_capture_on_commit_callbacks: Any) -> Any:
    """Stops and processing run their queued tasks (eager Celery) as a commit would."""
    return django_capture_on_commit_callbacks


def processed(tenant: Tenant, on_commit: Any, **options: Any) -> tuple[Run, Recording]:
    with on_commit(execute=True):
        run, recording = recorded_run(tenant, **options)
    recording.refresh_from_db()
    assert recording.status == Recording.Status.READY
    return run, recording


# --- Encoding -------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_celery_task_encodes_each_tab_at_the_times_its_picture_changed(
    tenant: Tenant, on_commit: Any
) -> None:
    _run, recording = processed(tenant, on_commit)
    video = RecordingVideo.objects.get(recording=recording, target=TARGET)
    assert video.status == RecordingVideo.Status.READY, video.problem
    assert (video.width, video.height, video.frame_count) == (640, 400, 2)
    data = mp4_bytes(recording, video)
    assert video.size_bytes == len(data)
    # The tab's whole time on the replay's timeline, held still at the end.
    assert recording.duration_ms == 5000 and video.duration_ms == 5000
    assert abs(duration_s(data) - 5.0) <= 0.05 * 5.0
    assert near(colour_at(data, 1.0), RED)
    assert near(colour_at(data, 2.6), BLUE)
    assert near(colour_at(data, 4.8), BLUE)
    # The frames are gone once the video holds them.
    assert not RecordingFrames.objects.filter(recording=recording).exists()


@pytest.mark.django_db
def test_frames_change_size_and_keep_the_first_pictures_size(
    tenant: Tenant, on_commit: Any
) -> None:
    start = int(time.time() * 1000) - 20_000
    run = started_at_ms(run_create(space=tenant.space, name="resize"), start - 1000)
    batch_ingest(run=run, target=TARGET, seq=1, events=[*page_start(start), mutation(start + 3000)])
    frames = [(start, solid_jpeg(641, 401, RED)), (start + 1500, solid_jpeg(1000, 300, BLUE))]
    frames_ingest(run=run, target=TARGET, seq=1, frames=frames)
    with on_commit(execute=True):
        recording_stop(recording=Recording.objects.get(run=run))
    video = RecordingVideo.objects.get(recording__run=run)
    assert (video.width, video.height) == (640, 400)  # even, from the first picture
    data = mp4_bytes(video.recording, video)
    assert near(colour_at(data, 0.5), RED)
    assert near(colour_at(data, 2.5), BLUE)  # scaled to fit, padded above and below


@pytest.mark.django_db
def test_frames_are_refused_once_the_recording_stopped_and_leave_nothing(
    tenant: Tenant,
) -> None:
    from runs.errors import Conflict, Invalid

    run, recording = recorded_run(tenant, video=False)
    before = set(default_storage.listdir(f"recordings/{recording.id}")[0])
    now = int(time.time() * 1000)
    with pytest.raises(Conflict):
        frames_ingest(run=run, target=TARGET, seq=9, frames=[(now, b"jpeg")])
    with pytest.raises(Invalid):
        frames_ingest(run=run, target="../x", seq=9, frames=[(now, b"jpeg")])
    with pytest.raises(Invalid):  # a time outside the run
        frames_ingest(run=run, target=TARGET, seq=9, frames=[(1, b"jpeg")])
    assert not RecordingFrames.objects.filter(recording=recording).exists()
    assert set(default_storage.listdir(f"recordings/{recording.id}")[0]) == before


def test_a_frames_file_reads_back_frame_by_frame() -> None:
    from recordings.video import pack_frames

    packed = pack_frames([(1, b"a"), (2, b"bc")])
    assert list(read_frames(io.BytesIO(packed))) == [(1, b"a"), (2, b"bc")]
    with pytest.raises(ValueError):
        list(read_frames(io.BytesIO(packed[:-1])))


# --- Seed 004's download, the runs API ----------------------------------------------------


def download(tenant: Tenant, recording: Recording, query: str = "") -> Any:
    return tenant.client.get(f"/api/v1/recordings/{recording.id}/download{query}")


@pytest.mark.django_db
def test_download_answers_the_mp4_and_rrweb_on_request(tenant: Tenant, on_commit: Any) -> None:
    _run, recording = processed(tenant, on_commit)
    video = RecordingVideo.objects.get(recording=recording)
    answer = download(tenant, recording)
    assert answer.status_code == 200
    body = answer.json()
    assert set(body) == {
        "recording_id",
        "download_url",
        "status",
        "duration",
        "file_size",
        "provider",
    }
    assert (body["status"], body["duration"], body["file_size"]) == ("ready", 5, video.size_bytes)
    assert body["provider"] == "local"
    fetched = Client().get(body["download_url"])
    assert fetched.status_code == 200 and fetched["Content-Type"] == "video/mp4"
    data = streamed(fetched)
    assert data == mp4_bytes(recording, video)
    assert near(colour_at(data, 1.0), RED)
    ranged = Client().get(body["download_url"], HTTP_RANGE="bytes=0-99")
    assert ranged.status_code == 206 and len(ranged.content) == 100

    assert download(tenant, recording, "?format=mp4").json()["file_size"] == video.size_bytes
    events = download(tenant, recording, "?format=rrweb")
    assert events.status_code == 200 and events.json()["file_size"] == recording.size_bytes
    document = Client().get(events.json()["download_url"])
    assert document["Content-Type"] == "application/json"
    assert TARGET in orjson_loads(streamed(document))["events"]

    bad = download(tenant, recording, "?format=webm")
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_parameter"


def streamed(response: Any) -> bytes:
    return b"".join(response.streaming_content)


def orjson_loads(data: bytes) -> Any:
    import orjson

    return orjson.loads(data)


@pytest.mark.django_db
def test_another_spaces_recording_and_video_are_404(
    tenant: Tenant, other_tenant: Tenant, on_commit: Any
) -> None:
    run, recording = processed(tenant, on_commit)
    for query in ("", "?format=mp4", "?format=rrweb"):
        refused = download(other_tenant, recording, query)
        assert refused.status_code == 404 and refused.json()["error"]["code"] == "not_found"
    refused = other_tenant.client.post(f"/v1/runs/{run.id}/recording", {}, format="json")
    assert refused.status_code == 404
    # A signed URL of the space's MP4 names only that recording's tabs.
    url = download(tenant, recording).json()["download_url"]
    assert Client().get(url.replace(TARGET, "OTHER")).status_code == 404
    assert Client().get(url.replace("token=", "token=x")).status_code == 403


@pytest.mark.django_db
def test_video_off_has_no_video_and_download_falls_back_to_the_events(
    tenant: Tenant, on_commit: Any
) -> None:
    run, recording = processed(tenant, on_commit, video=False)
    assert not RecordingVideo.objects.filter(recording=recording).exists()
    answer = download(tenant, recording)
    assert answer.status_code == 200
    events = download(tenant, recording, "?format=rrweb").json()
    # The same answer (its signed URL carries the second it was signed in).
    assert {**answer.json(), "download_url": ""} == {**events, "download_url": ""}
    assert answer.json()["file_size"] == recording.size_bytes
    assert Client().get(answer.json()["download_url"])["Content-Type"] == "application/json"
    missing = download(tenant, recording, "?format=mp4")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "recording.no_video"
    viewer = tenant.client.post(f"/v1/runs/{run.id}/recording", {}, format="json")
    assert viewer.json()["videos"] == []


@pytest.mark.django_db
def test_download_waits_while_the_video_is_encoded(tenant: Tenant, on_commit: Any) -> None:
    from recordings.processing import recording_process

    _run, recording = recorded_run(tenant)  # stopped; its queued tasks never ran
    recording_process(recording_id=recording.id)
    assert RecordingVideo.objects.get(recording=recording).status == "pending"
    waiting = download(tenant, recording)
    assert waiting.status_code == 202
    assert waiting.json() == {
        "recording_id": recording.id,
        "status": "processing",
        "message": "Recording is still being processed. Please try again later.",
    }
    assert download(tenant, recording, "?format=rrweb").status_code == 200
    # The sweep queues it again (here at once: the task ran eagerly).
    RecordingVideo.objects.filter(recording=recording).update(
        created_at=recording.created_at.replace(year=2020)
    )
    from recordings.sweeps import recordings_sweep_stuck

    assert recordings_sweep_stuck().videos == [recording.id]
    assert download(tenant, recording).json()["file_size"] > 0


@pytest.mark.django_db(transaction=True)
def test_the_runs_api_and_the_client_list_each_tabs_video(tenant: Tenant, asgi_server: str) -> None:
    import asyncio
    from urllib.parse import urlsplit

    import httpx
    from bctrl import AsyncBctrl
    from bctrl import RecordingVideo as VideoModel

    run, recording = recorded_run(tenant)  # committed: the stop's tasks ran at once
    video = RecordingVideo.objects.get(recording=recording)
    assert video.status == RecordingVideo.Status.READY
    with Bctrl(api_key=tenant.raw_key, base_url=asgi_server) as client:
        viewer = client.runs.recording(run.id)

    async def async_videos() -> list[VideoModel]:
        async with AsyncBctrl(api_key=tenant.raw_key, base_url=asgi_server) as client:
            return (await client.runs.recording(run.id)).videos or []

    assert viewer.videos[0].url == f"{viewer.iframe_url}/video/{TARGET}"  # the same lease
    assert viewer.replay_file_url == f"{viewer.iframe_url}/replay.html"
    for listed in [*viewer.videos, *asyncio.run(async_videos())]:
        assert isinstance(listed, VideoModel)
        assert listed.target == TARGET and listed.duration_ms == 5000
        assert listed.bytes == video.size_bytes and (listed.width, listed.height) == (640, 400)
        assert "/embed/replay/" in listed.url and listed.url.endswith(f"/video/{TARGET}")
        fetched = httpx.get(asgi_server + urlsplit(listed.url).path)
        assert fetched.status_code == 200 and fetched.headers["Content-Type"] == "video/mp4"
        assert near(colour_at(fetched.content, 1.0), RED)


# --- The real browser's way -----------------------------------------------------------------

CANVAS_PAGE = b"""<!doctype html><html><head><title>start</title></head>
<body style="margin:0;overflow:hidden">
<canvas id="c" width="640" height="400" style="display:block;width:100vw;height:100vh"></canvas>
<script>
const context = document.getElementById("c").getContext("2d");
window.turns = {};
function fill(colour, name) {
  context.fillStyle = colour;
  context.fillRect(0, 0, 640, 400);
  requestAnimationFrame(() => { window.turns[name] = Date.now(); document.title = name; });
}
fill("rgb(230,20,20)", "red");
setTimeout(() => fill("rgb(20,40,230)", "blue"), 2000);
</script></body></html>"""


# A canvas repainted at every animation frame for 3 s (its red going up, its blue down),
# then green and still: a busy tab, which the host takes in pulses, not on the screencast.
BUSY_PAGE = b"""<!doctype html><html><head><title>busy</title></head>
<body style="margin:0;overflow:hidden">
<canvas id="c" width="640" height="400" style="display:block;width:100vw;height:100vh"></canvas>
<script>
const context = document.getElementById("c").getContext("2d");
const began = Date.now();
window.span = {began};
function paint() {
  const part = (Date.now() - began) / 3000;
  if (part >= 1) {
    context.fillStyle = "rgb(20,200,40)";
    context.fillRect(0, 0, 640, 400);
    requestAnimationFrame(() => { window.span.ended = Date.now(); document.title = "done"; });
    return;
  }
  const red = Math.round(20 + 220 * part);
  context.fillStyle = `rgb(${red},20,${240 - red})`;
  context.fillRect(0, 0, 640, 400);
  requestAnimationFrame(paint);
}
requestAnimationFrame(paint);
</script></body></html>"""
GREEN = (20, 200, 40)


class CanvasHandler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        page = BUSY_PAGE if self.path == "/busy" else CANVAS_PAGE
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(page)))
        self.end_headers()
        self.wfile.write(page)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def canvas_site() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), CanvasHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/canvas"
    server.shutdown()


async def record_canvas(
    asgi_server: str, tenant: Tenant, url: str, title: str, told: str
) -> tuple[Run, Any]:
    """A real runtime's tab on `url` (640x400) until its title is `title` and then still
    for 1.5 s; the run stopped with the page open (the recording ends when the run does).
    Answers the run and what the page holds in `told`."""
    from playwright.async_api import async_playwright

    started = await start_runtime(asgi_server, tenant)
    async with async_playwright() as playwright:
        browser = await playwright.chromium.connect_over_cdp(started.connect_url)
        context = await browser.new_context(viewport={"width": 640, "height": 400})
        page = await context.new_page()
        await page.goto(url)
        await page.wait_for_function(f"document.title === '{title}'", timeout=15_000)
        await page.wait_for_timeout(1500)  # still for a while
        value = await page.evaluate(told)
        run = await stop_runtime(asgi_server, tenant, started)
    return run, value


async def tab_video(run: Run) -> tuple[Recording, RecordingVideo, bytes]:
    """The run's processed recording, its tab's video once the Celery task encoded it,
    and the MP4."""
    from recordings.tasks import process_recording

    recording = await db(lambda: Recording.objects.get(run=run))()
    if recording.status != Recording.Status.READY:  # the stop's own processing raced
        await db(lambda: process_recording.delay(recording.id, True))()
    video = await wait_for(
        lambda: RecordingVideo.objects.filter(
            recording__run=run, status=RecordingVideo.Status.READY
        ).first(),
        timeout=60,
        message="the tab's video",
    )
    recording = await db(lambda: Recording.objects.get(run=run))()
    return recording, video, await db(mp4_bytes)(recording, video)


@pytest.mark.browser
@pytest.mark.timeout(180)
async def test_a_canvas_that_turns_blue_is_red_then_blue_in_the_runs_mp4(
    asgi_server: str, host_thread: RuntimeHost, tenant: Tenant, canvas_site: str
) -> None:
    """rrweb cannot see a canvas; the video does. A real runtime records the page, the
    run ends, the recording is processed and the Celery task encodes the tab's MP4."""
    run, turns = await record_canvas(asgi_server, tenant, canvas_site, "blue", "window.turns")
    recording, video, data = await tab_video(run)
    assert recording.duration_ms
    assert abs(duration_s(data) * 1000 - recording.duration_ms) <= 0.05 * recording.duration_ms
    assert video.start_ms is not None
    red_at = (turns["red"] + 700 - video.start_ms) / 1000
    blue_at = (turns["blue"] + 1000 - video.start_ms) / 1000
    assert red_at < (turns["blue"] - video.start_ms) / 1000
    assert near(colour_at(data, red_at), RED), colour_at(data, red_at)
    assert near(colour_at(data, blue_at), BLUE), colour_at(data, blue_at)

    # The run's Playwright trace pictures the tab from its video: screencast frames of the
    # page its steps name, red then blue as the page was.
    headers = {"Authorization": f"Bearer {tenant.raw_key}"}
    async with httpx.AsyncClient(base_url=asgi_server, headers=headers, timeout=60) as http:
        answer = await http.get(f"/v1/runs/{run.id}/trace.zip")
    assert answer.status_code == 200, answer.text
    archive = zipfile.ZipFile(io.BytesIO(answer.content))
    lines = [json.loads(line) for line in archive.read("trace.trace").splitlines()]
    frames = [line for line in lines if line["type"] == "screencast-frame"]
    assert len(frames) >= 3 and {frame["pageId"] for frame in frames} == {video.target}
    assert video.target in {line.get("pageId") for line in lines if line["type"] == "before"}
    began = run.started_at.timestamp() * 1000

    def picture_at(epoch_ms: float) -> tuple[int, int, int]:
        shown = [f for f in frames if f["timestamp"] <= epoch_ms - began]
        assert shown, f"no picture before {epoch_ms}"
        return colour_at(archive.read(f"resources/{shown[-1]['sha1']}"), 0)

    assert near(picture_at(turns["blue"] - 100), RED), picture_at(turns["blue"] - 100)
    assert near(picture_at(turns["blue"] + 1200), BLUE), picture_at(turns["blue"] + 1200)


def colours_between(data: bytes, start_s: float, end_s: float) -> list[tuple[int, int, int]]:
    """The middle pixel of each frame shown from `start_s` to `end_s`, in order."""
    with av.open(io.BytesIO(data), "r") as container:
        return [
            middle_pixel(frame)
            for frame in container.decode(video=0)
            if frame.time is not None and start_s <= frame.time <= end_s
        ]


@pytest.mark.browser
@pytest.mark.timeout(180)
async def test_a_canvas_repainted_every_frame_is_in_the_video_at_its_rate_then_still(
    asgi_server: str,
    host_thread: RuntimeHost,
    tenant: Tenant,
    canvas_site: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A tab that paints at every animation frame for 3 s: the host takes its video in
    pulses (runtime_host/live.py), and the video shows the canvas changing through those
    seconds at about the video's rate (5 pictures a second), in order, and then the green
    it stopped on; once still, the tab is back on the screencast."""
    caplog.set_level("DEBUG", logger="runtime_host.live")
    busy = canvas_site.replace("/canvas", "/busy")
    run, span = await record_canvas(asgi_server, tenant, busy, "done", "window.span")
    _, video, data = await tab_video(run)
    assert video.start_ms is not None
    began = (span["began"] - video.start_ms) / 1000
    ended = (span["ended"] - video.start_ms) / 1000
    painted = colours_between(data, began + 0.3, ended - 0.3)
    pictures = [colour for index, colour in enumerate(painted) if colour != painted[index - 1]]
    # 2.4 s of a canvas that changes at every frame: ~12 pictures at 5 a second; at least
    # half of them even on a loaded machine, each redder than the one before.
    assert len(pictures) >= 6, painted
    reds = [colour[0] for colour in pictures]
    assert reds == sorted(reds), pictures
    assert near(colour_at(data, ended + 1.0), GREEN), colour_at(data, ended + 1.0)
    said = [record.getMessage() for record in caplog.records if record.name == "runtime_host.live"]
    assert any("its video in pulses" in line for line in said), said
    assert any("its video on the screencast" in line for line in said), said
