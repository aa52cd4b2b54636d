"""Video of recorded tabs: what it costs a real client, what it weighs, how long it encodes.

    .venv/bin/python -m benchmarks.video      (or `make benchmark-video`)

The servers of benchmarks/runtimes.py (a real daphne and runtime host as subprocesses, on
SQLite in a temporary folder) and its demo flow (`manage.py demo`'s: ten pages, typing,
two form submits, a download, a new tab and a pop-up), driven through `connect_over_cdp`:

(a) the host with video off (BCTRL_VIDEO_FPS=0): the flow with recording off and with
    rrweb recording, alternated, N runs each;
(b) the same host restarted with video on (BCTRL_VIDEO_FPS=5, the default): recording off
    and recording with video, alternated, N runs each;
(c) each recorded tab of (b) encoded here, as the Celery task does
    (recordings.video.recording_encode_videos, on this process's one core at a time):
    MP4 bytes per minute of video and encoding time per minute of video.

Prints a Markdown table and writes it to benchmarks/results/video.md.
"""

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks import write_results
from benchmarks.capacity import tree_cpu_seconds
from benchmarks.recording_ingest import load_averages
from benchmarks.runtimes import TARGET_FLOW_RATIO, Bench, Sample, Servers, p50, p95, tenant

# Where a flow's CPU goes, by process: the part's name → its CPU seconds now.
PARTS = ("Chromium", "runtime host", "web process", "client")


def cpu_now(servers: Servers) -> dict[str, float]:
    """The CPU seconds so far of each part; the client is this process and its children
    (Playwright's driver) other than the servers."""
    host, browsers = tree_cpu_seconds(servers.host.pid)
    web = sum(tree_cpu_seconds(servers.daphne.process.pid))
    everything = sum(tree_cpu_seconds(os.getpid()))
    return {
        "Chromium": browsers,
        "runtime host": host,
        "web process": web,
        "client": everything - browsers - host - web,
    }


def flows(bench: Bench, count: int, label: str, servers: Servers) -> dict[bool, list[Sample]]:
    from demo.management.commands.demo import drive_demo

    def flow(browser: Any) -> float:
        before = cpu_now(servers)
        t0 = time.perf_counter()
        drive_demo(browser, bench.base)
        seconds = time.perf_counter() - t0
        after = cpu_now(servers)
        cpu.update({part: after[part] - before[part] for part in PARTS})
        return seconds

    cpu: dict[str, float] = {}

    samples: dict[bool, list[Sample]] = {True: [], False: []}
    for index in range(count):
        for recording in (True, False) if index % 2 == 0 else (False, True):
            sample = bench.with_runtime(recording, flow)
            sample.extra.update(cpu)
            samples[recording].append(sample)
            print(
                f"  {label} {index + 1}/{count} recording={'on ' if recording else 'off'}: "
                f"{sample.seconds:.2f} s",
                flush=True,
            )
    return samples


def encode_all(run_ids: list[str]) -> list[dict[str, float]]:
    """Processes each run's recording and encodes its tabs' videos here, timed."""
    from django.db import close_old_connections

    from recordings.models import Recording, RecordingFrames, RecordingVideo
    from recordings.processing import recording_process
    from recordings.video import recording_encode_videos

    close_old_connections()
    tabs = []
    for run_id in run_ids:
        recording = Recording.objects.filter(run_id=run_id).first()
        if recording is None:
            continue
        captured: dict[str, int] = {}
        for target, count in RecordingFrames.objects.filter(recording=recording).values_list(
            "target", "frame_count"
        ):
            captured[target] = captured.get(target, 0) + count
        recording_process(recording_id=recording.id)
        t0 = time.perf_counter()
        recording_encode_videos(recording_id=recording.id)
        seconds = time.perf_counter() - t0
        videos = list(
            RecordingVideo.objects.filter(recording=recording, status=RecordingVideo.Status.READY)
        )
        total_ms = sum(video.duration_ms for video in videos) or 1
        for video in videos:
            tabs.append(
                {
                    "minutes": video.duration_ms / 60_000,
                    "bytes": video.size_bytes,
                    "frames": captured.get(video.target, 0),
                    # The run's encode time shared by its tabs in proportion to length.
                    "encode_s": seconds * video.duration_ms / total_ms,
                    "width": video.width,
                    "height": video.height,
                }
            )
    return tabs


def report(
    block_a: dict[bool, list[Sample]],
    block_b: dict[bool, list[Sample]],
    tabs: list[dict[str, float]],
    load_before: str,
    load_after: str,
) -> str:
    off_a, rrweb = [s.seconds for s in block_a[False]], [s.seconds for s in block_a[True]]
    off_b, video = [s.seconds for s in block_b[False]], [s.seconds for s in block_b[True]]
    rrweb_ratio = p50(rrweb) / p50(off_a)
    video_ratio = p50(video) / p50(off_b)
    minutes = sum(tab["minutes"] for tab in tabs) or 1e-9
    mp4_per_min = sum(tab["bytes"] for tab in tabs) / minutes
    encode_per_min = sum(tab["encode_s"] for tab in tabs) / minutes
    frames_per_min = sum(tab["frames"] for tab in tabs) / minutes
    sizes = sorted({f"{int(tab['width'])}x{int(tab['height'])}" for tab in tabs})
    holds = "holds" if video_ratio <= TARGET_FLOW_RATIO else "does not hold"
    lines = [
        "| demo flow | n | p50 | p95 | vs. off in the same block |",
        "|---|---:|---:|---:|---|",
        f"| video off: recording off | {len(off_a)} | {p50(off_a):.2f} s | {p95(off_a):.2f} s | |",
        f"| video off: rrweb recording | {len(rrweb)} | {p50(rrweb):.2f} s "
        f"| {p95(rrweb):.2f} s | {rrweb_ratio:.2f}x |",
        f"| video on: recording off | {len(off_b)} | {p50(off_b):.2f} s | {p95(off_b):.2f} s | |",
        f"| video on: rrweb + video | {len(video)} | {p50(video):.2f} s | {p95(video):.2f} s "
        f"| {video_ratio:.2f}x (target ≤ {TARGET_FLOW_RATIO:g}x: **{holds}**) |",
        "",
        "| video of the recorded tabs | value |",
        "|---|---:|",
        f"| tabs encoded | {len(tabs)} ({minutes * 60:.0f} s of video; {', '.join(sizes)}) |",
        f"| frames kept per minute of video (changes only, ≤ 5/s) | {frames_per_min:,.0f} |",
        f"| MP4 per minute of video | {mp4_per_min / 1024 / 1024:.2f} MiB |",
        f"| encoding time per minute of video (one core) | {encode_per_min:.2f} s |",
        "",
        "| CPU seconds per flow, p50 | " + " | ".join(PARTS) + " | all |",
        "|---|" + "---:|" * (len(PARTS) + 1),
        *(
            f"| {name} | "
            + " | ".join(f"{p50([s.extra[part] for s in samples]):.2f}" for part in PARTS)
            + f" | {p50([sum(s.extra[part] for part in PARTS) for s in samples]):.2f} |"
            for name, samples in (
                ("video off: recording off", block_a[False]),
                ("video off: rrweb recording", block_a[True]),
                ("video on: recording off", block_b[False]),
                ("video on: rrweb + video", block_b[True]),
            )
        ),
        "",
        f"Load average before: {load_before}; after: {load_after}.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--flows", type=int, default=3, help="runs of the flow per mode")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args(argv)

    workdir = Path(tempfile.mkdtemp(prefix="bctrl-bench-video-"))
    print(f"Working in {workdir}", flush=True)
    load_before = load_averages()
    servers = Servers(workdir, {"BCTRL_VIDEO_FPS": "0"})
    try:
        from playwright.sync_api import sync_playwright

        raw_key, runtime_id = tenant()
        os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        with sync_playwright() as playwright:
            bench = Bench(servers.base, raw_key, runtime_id, playwright)
            print("Warm-up: one demo flow…", flush=True)
            flows(bench, 1, "warm-up", servers)
            print(f"(a) video off: recording off/on alternated, {args.flows} each", flush=True)
            block_a = flows(bench, args.flows, "video off", servers)
            print("    restarting the runtime host with BCTRL_VIDEO_FPS=5…", flush=True)
            servers.restart_host({"BCTRL_VIDEO_FPS": "5"})
            flows(bench, 1, "warm-up", servers)
            print(f"(b) video on: recording off/on alternated, {args.flows} each", flush=True)
            block_b = flows(bench, args.flows, "video on", servers)
        print("(c) encoding the recorded tabs…", flush=True)
        tabs = encode_all([sample.run_id for sample in block_b[True]])
    finally:
        servers.stop()
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    text = report(block_a, block_b, tabs, load_before, load_averages())
    print("\n" + text)
    write_results("video.md", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
