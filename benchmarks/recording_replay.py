"""Replay of a generated 2 h recording (~1 M rrweb events) in headless Chromium.

    .venv/bin/python -m benchmarks.recording_replay      (or `make benchmark-replay`)

Generates (once; cached under var/bench_replay/ with a marker) a 2 h recording of one page
target through `recordings.services.batch_ingest` in batches of 500 events, stops it and
runs the real `recordings.processing.recording_process` (in a child process, to measure its
time and peak memory). Then serves the app with one daphne process (SQLite, the embedded
default, in var/bench_replay/) and measures in Chromium (Playwright, Debian's Chromium):

- bctrl: the replay page `/runs/<id>/replay` (manifest + one chunk by HTTP Range);
- naive: a benchmark-only page that fetches the whole event array (the signed download URL
  of `/api/v1/recordings/{id}/download`) and gives it to `new rrweb.Replayer(events)`.

Metrics: time to first frame (navigation start → the replayer iframe shows the recording's
heading), recording bytes fetched before the first frame, seek to the end (→ the iframe shows
the last minute's heading), JS heap, and stored size vs the raw JSON. Prints a Markdown table
and writes it to benchmarks/results/recording_replay.md. See benchmarks/README.md.
"""

import argparse
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from bctrl import Bctrl

from benchmarks import write_results
from benchmarks.recording_ingest import (
    PYTHON,
    REPO,
    Daphne,
    batches_of,
    child_env,
    cpu_name,
    load_averages,
    mib,
    rrweb_stream,
    write_child_modules,
)
from runtime_host.flags import CHROMIUM_FLAGS

WORKDIR = REPO / "var" / "bench_replay"
MARKER = WORKDIR / "generated.json"
GENERATOR_VERSION = 2
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", *CHROMIUM_FLAGS]
USERNAME = "bench-replay"
PASSWORD = "bench-replay-password-not-secret"  # noqa: S105 (a throwaway local user)
TARGET = "page-1"
START_MS = int(datetime(2026, 1, 5, 9, 0, tzinfo=UTC).timestamp() * 1000)
# Just under the 2 h capture limit (recordings.models.MAX_CAPTURE_MS): ingest refuses a
# batch whose last event is more than 2 h after the first one.
DURATION_MS = 2 * 60 * 60 * 1000 - 10_000
BATCH_EVENTS = 500
# Seeks go to a second before the last event: rrweb's Replayer paused exactly at the
# timestamp of the last Meta + FullSnapshot (the last chunk here) applies neither, so the
# naive page would keep showing the minute before.
SEEK_BEFORE_END_MS = 1000
PROGRESS_EVERY = 100_000

TARGET_FIRST_FRAME_P50_MS = 700.0
TARGET_SEEK_END_MS = 1000.0
TARGET_SIZE_RATIO = 9.0

SETTINGS_EXTRA = """
# Benchmark only: static files from the finders, plain URLs (no collectstatic needed).
WHITENOISE_USE_FINDERS = True
STORAGES = {
    **STORAGES,  # noqa: F405
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
"""

# Watches the replayer's iframe (in the top frame only) for the recording's heading.
WATCHER = """(() => {
  if (window !== window.top) return;
  const state = { firstFrame: null, text: null, mountedAt: null, timelineAt: null };
  window.__bench = state;
  window.__benchHeading = () => {
    const frame = document.querySelector('.replayer-wrapper iframe');
    const doc = frame && frame.contentDocument;
    const h1 = doc && doc.getElementById('minute');
    return h1 ? h1.textContent : null;
  };
  const poll = () => {
    const now = performance.now();
    if (state.mountedAt === null && document.querySelector('.replayer-wrapper iframe')) {
      state.mountedAt = now;
    }
    const timeline = document.querySelector('[data-timeline]');
    if (state.timelineAt === null && timeline && timeline.children.length) {
      state.timelineAt = now;
    }
    const text = window.__benchHeading();
    if (state.firstFrame === null && text && /^Minute \\d+$/.test(text)) {
      state.firstFrame = now;
      state.text = text;
    }
    // After the first frame, on until the timeline is drawn (the player draws it then).
    const settled = state.timelineAt !== null || now - state.firstFrame > 10000;
    if (state.firstFrame !== null && settled) {
      return;
    }
    setTimeout(poll, 4);
  };
  poll();
})();"""

SEEK_AND_WAIT = """async ([expected, player, t]) => {
  const t0 = performance.now();
  if (player === 'bctrl') window.bctrlReplay.seek(t);
  else window.__naive.replayer.pause(t);
  while (performance.now() - t0 < 60000) {
    if (window.__benchHeading() === expected) return performance.now() - t0;
    await new Promise((resolve) => setTimeout(resolve, 4));
  }
  return null;
}"""

NAIVE_HTML = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Naive replay</title>
<link rel="stylesheet" href="/static/vendor/rrweb/dist/style.css">
<script src="/static/vendor/rrweb/umd/rrweb.min.js" defer></script>
<script src="/bench/naive-replay.js" defer></script>
</head><body><div id="player"></div></body></html>
"""

# The whole event array, then one Replayer: what a page without chunks does.
NAIVE_JS = """(async () => {
  const state = { error: null };
  window.__naive = state;
  try {
    const source = new URLSearchParams(location.search).get('src');
    const response = await fetch(source, { credentials: 'same-origin' });
    const doc = await response.json();
    state.fetchedAt = performance.now();
    const events = Object.values(doc.events)[0];
    state.events = events.length;
    const replayer = new rrweb.Replayer(events, {
      root: document.getElementById('player'),
      skipInactive: false, showWarning: false, showDebug: false, triggerFocus: false,
      pauseAnimation: true, mouseTail: false, UNSAFE_replayCanvas: false,
    });
    state.constructedAt = performance.now();
    state.replayer = replayer;
    replayer.pause(0);
  } catch (error) {
    state.error = String(error);
  }
})();
"""


def naive_urlpatterns() -> list[Any]:
    """The naive page and its script, for the benchmark URLconf only."""
    from django.http import HttpRequest, HttpResponse
    from django.urls import path

    from recordings.views import REPLAY_POLICY

    def page(request: HttpRequest) -> HttpResponse:
        response = HttpResponse(NAIVE_HTML, content_type="text/html; charset=utf-8")
        response["Content-Security-Policy"] = REPLAY_POLICY
        return response

    def script(request: HttpRequest) -> HttpResponse:
        return HttpResponse(NAIVE_JS, content_type="text/javascript; charset=utf-8")

    return [
        path("bench/naive-replay", page),
        path("bench/naive-replay.js", script),
    ]


# --- the recording ----------------------------------------------------------------------------


def environment() -> dict[str, str]:
    WORKDIR.mkdir(parents=True, exist_ok=True)
    settings_module = write_child_modules(
        WORKDIR,
        urlconf_extra=(
            "from benchmarks.recording_replay import naive_urlpatterns\n"
            "urlpatterns = [*naive_urlpatterns(), *_app]"
        ),
        settings_extra=SETTINGS_EXTRA,
    )
    return child_env(WORKDIR, "", settings_module)


def setup_django(env: dict[str, str]) -> None:
    os.environ.update(env)
    sys.path.insert(0, str(WORKDIR))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", interactive=False, verbosity=0)


def cached() -> dict[str, Any] | None:
    if not MARKER.exists():
        return None
    info: dict[str, Any] = json.loads(MARKER.read_text())
    if info.get("version") != GENERATOR_VERSION:
        return None
    from recordings.models import Recording

    ready = Recording.objects.filter(pk=info.get("recording_id"), status="ready").exists()
    return info if ready else None


def generate() -> dict[str, Any]:
    """Ingests the 2 h recording batch by batch, stops it, processes it in a child."""
    from unittest import mock

    from django.contrib.auth import get_user_model

    from recordings import services
    from recordings.models import Recording
    from runs.models import Membership, Run, Space

    Space.objects.filter(slug="bench-replay").delete()
    shutil.rmtree(WORKDIR / "files" / "recordings", ignore_errors=True)
    space = Space.objects.create(name="Replay bench", slug="bench-replay")
    User = get_user_model()
    user = User.objects.filter(username=USERNAME).first() or User.objects.create_user(
        username=USERNAME, password=PASSWORD
    )
    Membership.objects.create(user=user, space=space, role=Membership.Role.OWNER)
    run = Run.objects.create(
        space=space,
        name="2 h recording",
        started_at=datetime.fromtimestamp(START_MS / 1000, tz=UTC),
    )
    print(f"Generating a {DURATION_MS / 3600_000:.2f} h recording through batch_ingest…")
    started = time.perf_counter()
    events = batches = 0
    next_report = PROGRESS_EVERY
    stream = rrweb_stream(seed=2026, start_ms=START_MS, duration_ms=DURATION_MS)
    for seq, batch in enumerate(batches_of(stream, BATCH_EVENTS), start=1):
        services.batch_ingest(run=run, target=TARGET, seq=seq, events=batch)
        events += len(batch)
        batches += 1
        if events >= next_report:
            next_report += PROGRESS_EVERY
            elapsed = time.perf_counter() - started
            print(
                f"  {events:>9,} events  {batches:>5,} batches  {events / elapsed:>8,.0f} "
                f"events/s  {elapsed:6.1f} s",
                flush=True,
            )
    ingest_s = time.perf_counter() - started
    recording = Recording.objects.get(run=run)
    with mock.patch("recordings.tasks.process_recording.delay"):
        services.recording_stop(recording=recording)
    Run.objects.filter(pk=run.pk).update(
        status=Run.Status.COMPLETED,
        ended_at=datetime.fromtimestamp((START_MS + DURATION_MS) / 1000, tz=UTC),
    )
    print(f"  {events:,} events in {batches:,} batches, ingested in {ingest_s:.0f} s.")
    print("Processing (recordings.processing.recording_process, in a child process)…")
    processed = subprocess.run(
        [PYTHON, "-m", "benchmarks.recording_replay", "--child-process", recording.id],
        cwd=REPO,
        env=os.environ.copy(),
        capture_output=True,
        text=True,
        check=False,
    )
    if processed.returncode != 0:
        raise RuntimeError(f"processing failed:\n{processed.stderr[-3000:]}")
    stats = json.loads(processed.stdout.strip().splitlines()[-1])
    print(f"  processed in {stats['seconds']:.1f} s, peak RSS {stats['peak_rss_mb']:.0f} MB.")
    info = {
        "version": GENERATOR_VERSION,
        "run_id": run.id,
        "recording_id": recording.id,
        "space_id": space.id,
        "events_generated": events,
        "batches": batches,
        "ingest_seconds": round(ingest_s, 1),
        "process_seconds": stats["seconds"],
        "process_peak_rss_mb": stats["peak_rss_mb"],
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    MARKER.write_text(json.dumps(info, indent=2))
    return info


def child_process(recording_id: str) -> None:
    """In a child: the real processing, timed, with this process's peak RSS."""
    import django

    sys.path.insert(0, str(WORKDIR))
    django.setup()
    from recordings.processing import recording_process

    started = time.perf_counter()
    recording = recording_process(recording_id=recording_id)
    seconds = time.perf_counter() - started
    if recording is None or recording.status != "ready":
        raise SystemExit(f"processing did not make the recording ready: {recording}")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": round(seconds, 1), "peak_rss_mb": round(peak)}))


@dataclass
class Stored:
    events: int
    duration_ms: int
    raw_bytes: int
    size_bytes: int
    batch_bytes: int
    batches: int
    chunks: int
    chunk_median: int
    chunk_max: int
    chunk_events_median: int
    start: int
    end: int
    first_heading: str
    last_heading: str
    markers: int


def stored(info: dict[str, Any]) -> Stored:
    from django.db.models import Sum

    from recordings.models import Recording, RecordingBatch, RecordingTarget

    recording = Recording.objects.get(pk=info["recording_id"])
    target = RecordingTarget.objects.get(recording=recording, target=TARGET)
    chunks = target.index["chunks"]
    lengths = [chunk["length"] for chunk in chunks]
    batch_bytes = (
        RecordingBatch.objects.filter(recording=recording).aggregate(n=Sum("stored_bytes"))["n"]
        or 0
    )
    start, end = int(target.start_timestamp or 0), int(target.end_timestamp or 0)
    return Stored(
        events=recording.event_count,
        duration_ms=int(recording.duration_ms or 0),
        raw_bytes=recording.raw_bytes,
        size_bytes=target.size_bytes,
        batch_bytes=int(batch_bytes),
        batches=RecordingBatch.objects.filter(recording=recording).count(),
        chunks=len(chunks),
        chunk_median=int(statistics.median(lengths)),
        chunk_max=max(lengths),
        chunk_events_median=int(statistics.median(chunk["events"] for chunk in chunks)),
        start=start,
        end=end,
        first_heading="Minute 0",
        last_heading=f"Minute {(end - START_MS) // 60_000}",
        markers=len(target.index.get("markers") or []),
    )


def warm_run(info: dict[str, Any]) -> str:
    """A run without a recording, whose replay page loads the same static files."""
    from runs.models import Run

    run, _ = Run.objects.get_or_create(
        space_id=info["space_id"], name="no recording (cache warm-up)"
    )
    return run.id


def api_key(info: dict[str, Any]) -> str:
    from runs.models import ApiKey, Space

    space = Space.objects.get(pk=info["space_id"])
    ApiKey.objects.filter(space=space, name="replay bench").delete()
    _, raw = ApiKey.objects.issue(space=space, name="replay bench")
    return raw


def download_url(base: str, key: str, recording_id: str) -> str:
    with Bctrl(api_key=key, base_url=base) as client:
        body = client.get(f"/api/v1/recordings/{recording_id}/download")
    url: str = body["download_url"]
    return url


# --- the browser ------------------------------------------------------------------------------


@dataclass
class Sample:
    first_frame_ms: float
    data_bytes: int  # recording data (manifest + chunks, or the event array) before it
    data_requests: int
    chunk_bytes: int
    manifest_bytes: int
    page_bytes: int  # everything the page fetched before the first frame
    seek_end_ms: float | None
    seek_bytes: int
    heap_first_mb: float
    heap_after_mb: float | None = None
    chunks_held: int | None = None
    chunk_requests: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


TIMELINE = """() => {
  const nav = performance.getEntriesByType('navigation')[0];
  const entries = performance.getEntriesByType('resource');
  const find = (part) => entries.find((e) => e.name.includes(part));
  const span = (e) => (e ? [e.startTime, e.responseEnd] : null);
  const marked = (name) => {
    const found = performance.getEntriesByName(`bctrl-replay:${name}`);
    return found.length ? found[0].startTime : null;
  };
  const statics = entries.filter((e) => /[.](js|css)([?]|$)/.test(e.name));
  return {
    html: nav ? nav.responseEnd : null,
    dcl: nav ? nav.domContentLoadedEventEnd : null,
    script: span(find('rrweb.min.js')),
    staticsEnd: statics.length ? Math.max(...statics.map((e) => e.responseEnd)) : null,
    playerStart: marked('start'),
    manifestParsed: marked('manifest'),
    chunkDecoded: marked('first-chunk'),
    replayerBuilt: marked('mounted'),
    mounted: window.__bench.mountedAt,
    timelineBuilt: window.__bench.timelineAt,
    manifest: span(find('/replay/manifest')),
    chunk: span(find('/chunks')),
    download: span(find('/api/v1/recordings/')),
  };
}"""

RESOURCES = """(until) => performance.getEntriesByType('resource').map((e) => ({
  name: e.name, transfer: e.transferSize, body: e.encodedBodySize, end: e.responseEnd,
})).filter((e) => until === null || e.end <= until)"""


def heap_mb(cdp: Any) -> float:
    cdp.send("HeapProfiler.collectGarbage")
    usage = cdp.send("Runtime.getHeapUsage")
    return float(usage["usedSize"]) / 1024 / 1024


def wait_first_frame(page: Any, timeout_ms: int) -> dict[str, Any]:
    page.wait_for_function(
        "() => window.__bench && window.__bench.firstFrame !== null", timeout=timeout_ms, polling=20
    )
    result: dict[str, Any] = page.evaluate("() => window.__bench")
    return result


def measure_bctrl(
    browser: Any,
    state: dict[str, Any],
    base: str,
    data: Stored,
    run_id: str,
    *,
    play_s: float,
    warm_run_id: str | None = None,
) -> Sample:
    """One load of the replay page in a fresh context; with `warm_run_id`, the replay page
    of a run without a recording is loaded first, so that the page's static files are in
    the browser's cache (as for a returning user) while the recording's data is not."""
    context = browser.new_context(storage_state=state, viewport={"width": 1440, "height": 900})
    try:
        context.add_init_script(WATCHER)
        page = context.new_page()
        cdp = context.new_cdp_session(page)
        if warm_run_id:
            page.goto(f"{base}/runs/{warm_run_id}/replay")
            page.wait_for_function(
                "() => document.querySelector('[data-replay]').dataset.state === 'empty'"
            )
        page.goto(f"{base}/runs/{run_id}/replay", wait_until="commit")
        bench = wait_first_frame(page, 60_000)
        if bench["text"] != data.first_heading:
            raise RuntimeError(f"first frame shows {bench['text']!r}")
        first = float(bench["firstFrame"])
        entries = page.evaluate(RESOURCES, first)
        # The markers and the timeline panel come after the first frame: wait for them
        # (as a user would see the page) before taking the heap and seeking.
        page.wait_for_function(
            "() => window.__bench.timelineAt !== null", timeout=10_000, polling=20
        )
        timeline = page.evaluate(TIMELINE)
        manifest = [e for e in entries if "/replay/manifest" in e["name"]]
        chunks = [e for e in entries if "/chunks" in e["name"]]
        heap_first = heap_mb(cdp)
        before = len(page.evaluate(RESOURCES, None))
        seek = page.evaluate(
            SEEK_AND_WAIT, [data.last_heading, "bctrl", data.end - SEEK_BEFORE_END_MS]
        )
        after_seek = page.evaluate(RESOURCES, None)[before:]
        sample = Sample(
            first_frame_ms=first,
            data_bytes=sum(e["transfer"] for e in manifest + chunks),
            data_requests=len(manifest) + len(chunks),
            chunk_bytes=sum(e["transfer"] for e in chunks),
            manifest_bytes=sum(e["transfer"] for e in manifest),
            page_bytes=sum(e["transfer"] for e in entries),
            seek_end_ms=float(seek) if seek is not None else None,
            seek_bytes=sum(e["transfer"] for e in after_seek if "/chunks" in e["name"]),
            heap_first_mb=heap_first,
            extra={"timeline": timeline},
        )
        if play_s > 0:
            # Play from the start at 8x: crosses a chunk every ~1.3 s of wall time.
            page.evaluate(SEEK_AND_WAIT, [data.first_heading, "bctrl", data.start])
            page.click("[data-speed-value='8']")
            page.click("[data-play]")
            page.wait_for_timeout(play_s * 1000)
            sample.heap_after_mb = heap_mb(cdp)
            sample.chunks_held = len(page.evaluate("() => window.bctrlReplay.chunksHeld()"))
            sample.chunk_requests = len(
                [e for e in page.evaluate(RESOURCES, None) if "/chunks" in e["name"]]
            )
            sample.extra["played_to"] = page.evaluate("() => window.bctrlReplay.time()")
        return sample
    finally:
        context.close()


def measure_naive(browser: Any, base: str, data: Stored, source: str) -> Sample:
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    try:
        context.add_init_script(WATCHER)
        page = context.new_page()
        cdp = context.new_cdp_session(page)
        page.goto(f"{base}/bench/naive-replay?src={quote(source, safe='')}", wait_until="commit")
        try:
            bench = wait_first_frame(page, 300_000)
        except Exception:
            error = page.evaluate("() => window.__naive && window.__naive.error")
            raise RuntimeError(f"naive page did not show a frame: {error}") from None
        first = float(bench["firstFrame"])
        entries = page.evaluate(RESOURCES, first)
        data_entries = [e for e in entries if "/api/v1/recordings/" in e["name"]]
        timeline = page.evaluate(TIMELINE)
        naive = page.evaluate(
            "() => ({fetchedAt: window.__naive.fetchedAt, "
            "constructedAt: window.__naive.constructedAt, events: window.__naive.events})"
        )
        heap_first = heap_mb(cdp)
        total = data.end - data.start
        seek = page.evaluate(
            SEEK_AND_WAIT, [data.last_heading, "naive", total - SEEK_BEFORE_END_MS]
        )
        return Sample(
            first_frame_ms=first,
            data_bytes=sum(e["transfer"] for e in data_entries),
            data_requests=len(data_entries),
            chunk_bytes=0,
            manifest_bytes=0,
            page_bytes=sum(e["transfer"] for e in entries),
            seek_end_ms=float(seek) if seek is not None else None,
            seek_bytes=0,
            heap_first_mb=heap_first,
            heap_after_mb=heap_mb(cdp),
            extra={**naive, "timeline": timeline},
        )
    finally:
        context.close()


def sign_in(browser: Any, base: str) -> dict[str, Any]:
    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(f"{base}/login/")
        page.fill("input[name=username]", USERNAME)
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url(f"{base}/")
        state: dict[str, Any] = context.storage_state()
        return state
    finally:
        context.close()


# --- reporting --------------------------------------------------------------------------------


def pct(values: list[float], q: int) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def kib(value: float) -> str:
    return f"{value / 1024:,.1f} KiB"


def processing_gzip_level() -> str:
    """recordings.chunking.GZIP_LEVEL, read from the source (no Django in this process)."""
    source = (REPO / "recordings" / "chunking.py").read_text()
    found = re.search(r"^GZIP_LEVEL = (\d+)", source, re.MULTILINE)
    return found.group(1) if found else "?"


def report(
    ours: list[Sample],
    warm: list[Sample],
    naive: list[Sample],
    data: Stored,
    info: dict[str, Any],
    load: str,
    chromium_version: str,
) -> tuple[str, bool]:
    import django

    def col(samples: list[Sample], attr: str) -> list[float]:
        return [float(v) for s in samples if (v := getattr(s, attr)) is not None]

    rows = []
    for name, samples in (
        ("bctrl (chunks), cold cache", ours),
        ("bctrl (chunks), static files cached", warm),
        ("naive (whole array), cold cache", naive),
    ):
        if not samples:
            continue
        first, seek = col(samples, "first_frame_ms"), col(samples, "seek_end_ms")
        data_bytes = col(samples, "data_bytes")
        heap = col(samples, "heap_first_mb")
        rows.append(
            f"| {name} | {len(samples)} | {pct(first, 50):,.0f} | {pct(first, 95):,.0f} | "
            f"{pct(seek, 50):,.0f} | {pct(seek, 95):,.0f} | {kib(statistics.median(data_bytes))} | "
            f"{statistics.median(heap):,.1f} MiB |"
        )
    ratio_chunks = data.raw_bytes / data.size_bytes if data.size_bytes else 0.0
    ratio_batches = data.raw_bytes / data.batch_bytes if data.batch_bytes else 0.0
    first_p50 = pct(col(ours, "first_frame_ms"), 50)
    warm_p50 = pct(col(warm, "first_frame_ms"), 50)
    seek_worst = max(col(ours + warm, "seek_end_ms") or [float("inf")])
    chunk_ok = all(s.chunk_bytes <= data.chunk_max and s.data_requests <= 2 for s in ours + warm)
    checks = [
        (
            f"time to first frame p50 ≤ {TARGET_FIRST_FRAME_P50_MS:.0f} ms, cold cache",
            first_p50 <= TARGET_FIRST_FRAME_P50_MS,
            f"{first_p50:,.0f} ms",
        ),
        (
            f"time to first frame p50 ≤ {TARGET_FIRST_FRAME_P50_MS:.0f} ms, static files cached",
            warm_p50 <= TARGET_FIRST_FRAME_P50_MS,
            f"{warm_p50:,.0f} ms",
        ),
        (
            f"seek to the end ≤ {TARGET_SEEK_END_MS:.0f} ms (every repetition)",
            seek_worst <= TARGET_SEEK_END_MS,
            f"worst {seek_worst:,.0f} ms",
        ),
        (
            "recording bytes before the first frame ≤ one chunk (plus the manifest)",
            chunk_ok,
            f"{kib(statistics.median(col(ours, 'chunk_bytes')))} of chunk data in "
            f"{int(statistics.median(col(ours, 'data_requests'))) - 1} request(s), largest "
            f"chunk {kib(data.chunk_max)}; manifest "
            f"{kib(statistics.median(col(ours, 'manifest_bytes')))}",
        ),
        (
            f"stored size ≥ {TARGET_SIZE_RATIO:.0f}x smaller than the raw JSON",
            ratio_chunks >= TARGET_SIZE_RATIO,
            f"{ratio_chunks:.1f}x",
        ),
    ]
    played = [s for s in ours if s.heap_after_mb is not None]
    lines = [
        "# Recording replay benchmark",
        "",
        f"Run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {os.cpu_count()} CPU cores "
        f"({cpu_name()}), {chromium_version} headless (Playwright, 1440x900), one daphne "
        f"process on SQLite (the embedded default), Django {django.get_version()}; browser, "
        f"server and nothing else of ours on the same machine. {load}",
        f"Recording: one page target, {data.duration_ms / 3600_000:.2f} h, "
        f"{data.events:,} events, {mib(data.raw_bytes)} of rrweb JSON as received, a "
        f"Meta + FullSnapshot (~350 nodes) every 10 s and 6 navigations, {data.markers:,} "
        f"markers; {data.chunks} chunks (median {kib(data.chunk_median)}, largest "
        f"{kib(data.chunk_max)}, median {data.chunk_events_median:,} events). Generated "
        f"{info.get('generated_at', '?')}: ingested through batch_ingest in "
        f"{info.get('ingest_seconds', '?')} s ({info.get('batches', '?')} batches of "
        f"{BATCH_EVENTS}), processed by recording_process in {info.get('process_seconds', '?')} s "
        f"(peak RSS {info.get('process_peak_rss_mb', '?')} MB).",
        "",
        "| player | runs | first frame p50 ms | p95 ms | seek to end p50 ms | p95 ms | "
        "recording bytes before first frame | JS heap at first frame |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
        *rows,
        "",
        "First frame: from navigation start (`performance.now()` of the page) until the "
        "replayer's iframe shows the heading of the recording's first minute, polled every "
        "4 ms; a fresh browser context per run (cold: nothing cached; static files cached: "
        "the replay page of a run without a recording was loaded first in that context, so "
        "rrweb.min.js, replay.js and the CSS come from the cache, as for a returning user; "
        "the recording's manifest and chunks never do). Seek to the end (a second before "
        "the last event): "
        "`window.bctrlReplay.seek(end)` (naive: `replayer.pause(totalTime)`) until the iframe "
        f"shows {data.last_heading!r}. Bytes: Resource Timing `transferSize` of the manifest "
        "and chunk requests (naive: the download) that ended before the first frame; the "
        "page's own HTML/JS/CSS are not counted. JS heap: CDP `Runtime.getHeapUsage` after a "
        "forced GC.",
        "",
        "## Storage",
        "",
        "| what | bytes | vs raw JSON |",
        "|---|---:|---:|",
        f"| rrweb JSON as received (`Recording.raw_bytes`) | {mib(data.raw_bytes)} | 1x |",
        f"| batch files, gzip level 1 ({data.batches:,} files) | {mib(data.batch_bytes)} | "
        f"{ratio_batches:.1f}x smaller |",
        f"| replay chunks, gzip level {processing_gzip_level()} (`RecordingTarget.size_bytes`) | "
        f"{mib(data.size_bytes)} "
        f"| {ratio_chunks:.1f}x smaller |",
    ]
    if played:
        sample = played[0]
        played_s = (float(sample.extra.get("played_to", data.start)) - data.start) / 1000
        naive_heap = statistics.median(col(naive, "heap_first_mb")) if naive else float("nan")
        lines += [
            "",
            "## Memory while playing (bctrl)",
            "",
            f"After playing from the start at 8x for {sample.extra.get('play_s', '?')} s of wall "
            f"time ({played_s:,.0f} s "
            f"of recording, {sample.chunk_requests} chunk requests): JS heap "
            f"{sample.heap_after_mb:,.1f} MiB (at the first frame {sample.heap_first_mb:,.1f} "
            f"MiB), {sample.chunks_held} chunks held (replay.js MAX_CHUNKS_HELD = 3). The naive "
            f"page holds the whole array: {naive_heap:,.1f} MiB "
            "at its first frame.",
        ]
    if naive:
        extra = naive[0].extra
        lines += [
            "",
            f"Naive page, first run: download of the whole array finished at "
            f"{float(extra.get('fetchedAt') or 0):,.0f} ms ({extra.get('events', 0):,} events), "
            "`new rrweb.Replayer(events)` returned at "
            f"{float(extra.get('constructedAt') or 0):,.0f} ms.",
        ]
    lines += [
        "",
        "## Where the time to first frame goes (median ms from navigation start)",
        "",
        "| player | HTML received | DOMContentLoaded | data request(s) start → end | "
        "replayer mounted | timeline built | first frame |",
        "|---|---:|---:|---|---:|---:|---:|",
    ]
    for name, samples, parts in (
        ("bctrl, cold", ours, ("manifest", "chunk")),
        ("bctrl, static cached", warm, ("manifest", "chunk")),
        ("naive, cold", naive, ("download",)),
    ):
        if not samples:
            continue
        timelines = [s.extra.get("timeline") or {} for s in samples]

        def med(values: list[Any]) -> float:
            found = [float(v) for v in values if v is not None]
            return statistics.median(found) if found else float("nan")

        spans = []
        for part in parts:
            starts = med([(t.get(part) or [None, None])[0] for t in timelines])
            ends = med([(t.get(part) or [None, None])[1] for t in timelines])
            spans.append(f"{part} {starts:,.0f} → {ends:,.0f}")
        lines.append(
            f"| {name} | {med([t.get('html') for t in timelines]):,.0f} | "
            f"{med([t.get('dcl') for t in timelines]):,.0f} | {'; '.join(spans)} | "
            f"{med([t.get('mounted') for t in timelines]):,.0f} | "
            f"{med([t.get('timelineBuilt') for t in timelines]):,.0f} | "
            f"{med(col(samples, 'first_frame_ms')):,.0f} |"
        )
    lines += [
        "",
        "Inside the bctrl page (median ms from navigation start; User Timing marks of "
        "static/js/replay.js): the page's scripts and styles all received, replay.js "
        "started, manifest parsed, first chunk inflated and parsed, rrweb Replayer built.",
        "",
        "| player | JS/CSS received | replay.js starts | manifest parsed | first chunk "
        "decoded | Replayer built | first frame |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, samples in (("bctrl, cold", ours), ("bctrl, static cached", warm)):
        if not samples:
            continue
        timelines = [s.extra.get("timeline") or {} for s in samples]

        def middle(key: str, timelines: list[dict[str, Any]] = timelines) -> str:
            found = [float(t[key]) for t in timelines if t.get(key) is not None]
            return f"{statistics.median(found):,.0f}" if found else "-"

        lines.append(
            f"| {name} | {middle('staticsEnd')} | {middle('playerStart')} | "
            f"{middle('manifestParsed')} | {middle('chunkDecoded')} | "
            f"{middle('replayerBuilt')} | {med(col(samples, 'first_frame_ms')):,.0f} |"
        )
    lines += ["", "## Targets (bctrl)", ""]
    ok = True
    for label, holds, value in checks:
        ok &= holds
        lines.append(
            f"- {label}: " + ("**holds**" if holds else "**does not hold**") + f" ({value})"
        )
    return "\n".join(lines) + "\n", ok


# --- main ---------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=7, help="page loads of the replay page")
    parser.add_argument("--naive-runs", type=int, default=2, help="page loads of the naive page")
    parser.add_argument("--play", type=float, default=20.0, help="seconds of play at 8x (0: skip)")
    parser.add_argument("--regenerate", action="store_true", help="generate the recording again")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target fails")
    parser.add_argument("--child-process", metavar="RECORDING_ID", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    env = environment()
    if args.child_process:
        os.environ.update(env)
        child_process(args.child_process)
        return 0
    if not os.path.exists(CHROMIUM):
        sys.exit(f"Chromium is not installed at {CHROMIUM}; `make chromium` installs it.")
    setup_django(env)
    info = None if args.regenerate else cached()
    if info is None:
        info = generate()
    else:
        print(f"Recording: cached ({MARKER.relative_to(REPO)}, generated {info['generated_at']}).")
    data = stored(info)
    key = api_key(info)
    warm_run_id = warm_run(info)
    from django.db import connections

    connections.close_all()
    load_before = load_averages()
    server = Daphne(env, WORKDIR / "daphne.log")
    ours: list[Sample] = []
    warm: list[Sample] = []
    naive: list[Sample] = []
    try:
        print(f"daphne on {server.base}; Chromium {CHROMIUM}", flush=True)
        source = download_url(server.base, key, info["recording_id"])
        from playwright.sync_api import sync_playwright

        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            chromium_version = f"Chromium {browser.version}"
            state = sign_in(browser, server.base)
            # One untimed load so the server's first-request costs are not in the numbers.
            measure_bctrl(browser, state, server.base, data, info["run_id"], play_s=0)
            for index in range(args.runs):
                play = args.play if index == args.runs - 1 else 0.0
                sample = measure_bctrl(
                    browser, state, server.base, data, info["run_id"], play_s=play
                )
                sample.extra["play_s"] = play
                ours.append(sample)
                cached_static = measure_bctrl(
                    browser,
                    state,
                    server.base,
                    data,
                    info["run_id"],
                    play_s=0,
                    warm_run_id=warm_run_id,
                )
                warm.append(cached_static)
                print(
                    f"  bctrl #{index + 1}: first frame {sample.first_frame_ms:,.0f} ms cold, "
                    f"{cached_static.first_frame_ms:,.0f} ms with static files cached; "
                    f"{kib(sample.data_bytes)} in {sample.data_requests} requests, seek to end "
                    f"{sample.seek_end_ms or float('nan'):,.0f} ms, "
                    f"heap {sample.heap_first_mb:,.1f} MiB"
                    + (
                        f"; after {play:.0f} s at 8x heap {sample.heap_after_mb:,.1f} MiB, "
                        f"{sample.chunks_held} chunks held"
                        if sample.heap_after_mb is not None
                        else ""
                    ),
                    flush=True,
                )
            for index in range(args.naive_runs):
                sample = measure_naive(browser, server.base, data, source)
                naive.append(sample)
                print(
                    f"  naive #{index + 1}: first frame {sample.first_frame_ms:,.0f} ms, "
                    f"{mib(sample.data_bytes)}, seek to end "
                    f"{sample.seek_end_ms or float('nan'):,.0f} ms, heap "
                    f"{sample.heap_first_mb:,.1f} MiB",
                    flush=True,
                )
            browser.close()
    finally:
        server.stop()
    load = f"Load averages (1, 5, 15 min): {load_before} before, {load_averages()} after."
    text, ok = report(ours, warm, naive, data, info, load, chromium_version)
    print()
    print(text)
    write_results("recording_replay.md", text)
    return 1 if args.strict and not ok else 0


if __name__ == "__main__":
    sys.exit(main())
