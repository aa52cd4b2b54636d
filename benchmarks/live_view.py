"""Live view with 50 viewers on one run: frame latency, frames delivered, input round
trip, and what watching costs the browser.

    .venv/bin/python -m benchmarks.live_view      (or `make benchmark-live`)

Starts a real daphne and a real runtime host (`manage.py runtime_host`, its live link to
that daphne, as `manage.py serve` does) for each channel layer: the embedded in-memory
layer, and, when Redis answers at BENCH_REDIS_URL (default redis://127.0.0.1:6379/0),
channels_redis' pub/sub and core layers. An automation script connects through the
connectUrl with Playwright; 50 viewers connect to the live websocket with live leases
(Python websocket clients that ack each frame on receipt, as a fast page would).

(a) frame latency: from the host sending a frame (`sentAt` of its header, the host's
    clock) to a viewer receiving it (same machine, same clock), over every frame every
    viewer got while the page animated;
(b) frames per second each viewer received while the page animated (BCTRL_LIVE_MAX_FPS
    caps the host, 15 per tab by default; set it in the environment to compare);
(c) input round trip: the controlling viewer clicks in the picture of an idle page
    whose click handler changes its colour; time to the next frame (an idle page sends
    none until it changes), with the other 49 watching;
(d) the page's own frame rate (requestAnimationFrame callbacks per second) with no
    viewer (no screencast) and with 50.

Prints a Markdown table and writes it to benchmarks/results/live_view.md. See
benchmarks/README.md.
"""

import argparse
import asyncio
import os
import platform
import socket
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import orjson
import websockets

from benchmarks import write_results
from benchmarks.recording_ingest import cpu_name, load_average
from benchmarks.runtimes import Bench, Servers, p50, p95, tenant

TARGET_LATENCY_P95_MS = 50.0
TARGET_INPUT_P95_MS = 150.0
ANIMATED_PAGE = """<!doctype html><title>Animated</title>
<style>body{margin:0} #box{width:300px;height:300px;background:#4f46e5;position:absolute}</style>
<div id="box"></div>
<script>
  const box = document.getElementById("box");
  function step(t) { box.style.left = (Math.sin(t / 300) * 300 + 400) + "px";
    box.style.top = (Math.cos(t / 400) * 150 + 200) + "px"; requestAnimationFrame(step); }
  requestAnimationFrame(step);
</script>"""
IDLE_PAGE = """<!doctype html><title>Idle</title>
<style>body{margin:0;background:#fff}
  button{position:absolute;left:0;top:0;width:600px;height:400px}</style>
<button id="b">Toggle</button>
<script>
  let on = false;
  document.getElementById("b").addEventListener("click", () => {
    on = !on; document.body.style.background = on ? "#0a0" : "#fff";
    document.getElementById("b").textContent = on ? "On" : "Off"; });
</script>"""
FPS_SCRIPT = """(ms) => new Promise((done) => { let n = 0; const t0 = performance.now();
  function tick(t) { n += 1;
    if (t - t0 < ms) requestAnimationFrame(tick); else done(n * 1000 / (t - t0)); }
  requestAnimationFrame(tick); })"""


@dataclass
class Viewer:
    ws: Any
    latencies: list[float] = field(default_factory=list)
    frames: int = 0
    next_frame: "asyncio.Future[float] | None" = None


async def read_frames(viewer: Viewer) -> None:
    async for message in viewer.ws:
        if isinstance(message, bytes):
            received = time.time() * 1000
            length = int.from_bytes(message[:4], "big")
            header = orjson.loads(message[4 : 4 + length])
            viewer.frames += 1
            viewer.latencies.append(received - header["sentAt"])
            await viewer.ws.send('{"type":"ack"}')
            if viewer.next_frame is not None and not viewer.next_frame.done():
                viewer.next_frame.set_result(time.perf_counter())


def redis_answers(url: str) -> bool:
    parsed = urlparse(url)
    try:
        with socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or 6379), 1):
            return True
    except OSError:
        return False


async def watch(
    base: str, tokens: list[str], seconds: float, page: Any = None
) -> tuple[list[Viewer], list[asyncio.Task[None]]]:
    ws_base = base.replace("http://", "ws://", 1)
    viewers = []
    for token in tokens:
        ws = await websockets.connect(
            f"{ws_base}/ws/live/{token}", additional_headers={"Origin": base}, max_size=None
        )
        viewers.append(Viewer(ws))
    readers = [asyncio.ensure_future(read_frames(v)) for v in viewers]
    return viewers, readers


async def close(viewers: list[Viewer], readers: list[asyncio.Task[None]]) -> None:
    for reader in readers:
        reader.cancel()
    await asyncio.gather(*readers, return_exceptions=True)
    await asyncio.gather(*(v.ws.close() for v in viewers), return_exceptions=True)


def mint_tokens(run_id: str, count: int) -> list[str]:
    from django.db import close_old_connections

    from runs.models import Run
    from viewers.leases import lease_mint
    from viewers.models import ViewerLease

    close_old_connections()
    run = Run.objects.get(pk=run_id)
    tokens = [lease_mint(run=run, kind=ViewerLease.Kind.LIVE).token for _ in range(count - 1)]
    return [lease_mint(run=run, kind=ViewerLease.Kind.LIVE, control="input").token, *tokens]


async def measure_layer(
    bench: Bench, playwright: Any, viewers_n: int, animate_s: float, clicks: int
) -> dict[str, Any]:
    started, _ = await asyncio.to_thread(bench.start)
    browser = await playwright.chromium.connect_over_cdp(started["connectUrl"])
    try:
        return await _measure(bench, started, browser, viewers_n, animate_s, clicks)
    finally:
        await browser.close()
        await asyncio.to_thread(bench.stop, None)


async def _measure(
    bench: Bench,
    started: dict[str, Any],
    browser: Any,
    viewers_n: int,
    animate_s: float,
    clicks: int,
) -> dict[str, Any]:
    context = await browser.new_context(viewport={"width": 1280, "height": 720})
    page = await context.new_page()
    await page.set_content(ANIMATED_PAGE)
    fps_alone = await page.evaluate(FPS_SCRIPT, 3000)
    tokens = await asyncio.to_thread(mint_tokens, started["runId"], viewers_n)

    viewers, readers = await watch(bench.base, tokens, animate_s)
    await asyncio.sleep(2)  # screencast starts, viewers warm up
    for viewer in viewers:
        viewer.latencies.clear()
        viewer.frames = 0
    t0 = time.perf_counter()
    fps_watched = await page.evaluate(FPS_SCRIPT, int(animate_s * 1000))
    elapsed = time.perf_counter() - t0
    latencies = [lat for v in viewers for lat in v.latencies]
    per_viewer_fps = [v.frames / elapsed for v in viewers]

    # Input round trip on an idle page.
    await page.set_content(IDLE_PAGE)
    controller = viewers[0]
    await controller.ws.send('{"type":"control","action":"request"}')
    await asyncio.sleep(1.5)  # the grant, and the idle page's first pictures
    round_trips = []
    for index in range(clicks):
        loop = asyncio.get_running_loop()
        controller.next_frame = loop.create_future()
        t_send = time.perf_counter()
        for action in ("down", "up"):
            await controller.ws.send(
                orjson.dumps(
                    {"type": "mouse", "action": action, "x": 0.1, "y": 0.1, "button": "left"}
                ).decode()
            )
        try:
            t_frame = await asyncio.wait_for(controller.next_frame, 5)
            round_trips.append((t_frame - t_send) * 1000)
        except TimeoutError:
            print(f"  click {index + 1}: no frame within 5 s", flush=True)
        await asyncio.sleep(0.25)  # let the page settle: the next frame is the next click's
    await close(viewers, readers)
    return {
        "frames": len(latencies),
        "latency_p50": p50(latencies) if latencies else float("nan"),
        "latency_p95": p95(latencies) if latencies else float("nan"),
        "fps_p50": p50(per_viewer_fps),
        "fps_min": min(per_viewer_fps),
        "input_p50": p50(round_trips) if round_trips else float("nan"),
        "input_p95": p95(round_trips) if round_trips else float("nan"),
        "clicks": len(round_trips),
        "page_fps_alone": fps_alone,
        "page_fps_watched": fps_watched,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--viewers", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=10.0, help="animation measured")
    parser.add_argument("--clicks", type=int, default=30)
    parser.add_argument("--layers", default="memory,pubsub,core", help="of memory,pubsub,core")
    parser.add_argument(
        "--redis-url", default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
    )
    args = parser.parse_args()

    prefix = f"bench-live-{os.getpid()}"
    redis = {"REDIS_URL": args.redis_url, "CHANNELS_PREFIX": prefix}
    known = {
        "memory": ("in-memory (embedded default)", {}),
        "pubsub": ("Redis pub/sub", redis),
        "core": ("Redis core", {**redis, "BCTRL_CHANNEL_LAYER": "core"}),
    }
    wanted = [name.strip() for name in args.layers.split(",") if name.strip()]
    if not redis_answers(args.redis_url) and wanted != ["memory"]:
        print(f"Redis does not answer at {args.redis_url}: measuring the in-memory layer only")
        wanted = ["memory"]
    layers: list[tuple[str, dict[str, str]]] = [known[name] for name in wanted]

    load_before = load_average()
    results = asyncio.run(measure_all(layers, args))
    load_after = load_average()
    table = render(results, args, load_before, load_after)
    print(table)
    write_results("live_view.md", table)


async def measure_all(
    layers: list[tuple[str, dict[str, str]]], args: Any
) -> list[tuple[str, dict[str, Any]]]:
    from playwright.async_api import async_playwright

    results = []
    with tempfile.TemporaryDirectory(prefix="bctrl-bench-live-") as folder:
        async with async_playwright() as playwright:
            workdir = Path(folder)  # one database for every layer's servers
            for name, env in layers:
                print(f"{name}: starting daphne and a runtime host…", flush=True)
                # Django's ORM refuses to run on the event loop's thread: set-up in a thread.
                servers = await asyncio.to_thread(Servers, workdir, env)
                try:
                    raw_key, runtime_id = await asyncio.to_thread(tenant_once)
                    bench = Bench(servers.base, raw_key, runtime_id, None)
                    result = await measure_layer(
                        bench, playwright, args.viewers, args.seconds, args.clicks
                    )
                except Exception:
                    for log in ("daphne.log", "runtime_host.log"):
                        text = (workdir / log).read_text(errors="replace")
                        print(f"--- {log} (end) ---\n{text[-3000:]}", flush=True)
                    raise
                finally:
                    await asyncio.to_thread(servers.stop)
                results.append((name, result))
                print(f"  {name}: {result}", flush=True)
    return results


_tenant: tuple[str, str] | None = None


def tenant_once() -> tuple[str, str]:
    """One space, key and runtime for every layer (the servers share the database)."""
    global _tenant
    if _tenant is None:
        _tenant = tenant()
    return _tenant


def render(
    results: list[tuple[str, dict[str, Any]]], args: Any, load_before: float, load_after: float
) -> str:
    from django.conf import settings

    lines = [
        f"Live view, {args.viewers} viewers on one run, at most "
        f"{settings.BCTRL_LIVE_MAX_FPS:g} frames/s per tab (BCTRL_LIVE_MAX_FPS), "
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, "
        f"{cpu_name()} ({os.cpu_count()} cores), Python {platform.python_version()}, "
        f"load average before {load_before:.2f}, after {load_after:.2f}.",
        "",
        "| channel layer | frame latency p50 / p95 (target p95 ≤ 50 ms) "
        "| frames/s per viewer p50 (min) "
        "| input round trip p50 / p95 (target p95 ≤ 150 ms) | page frame rate alone → watched |",
        "|---|---|---|---|---|",
    ]
    for name, r in results:
        lines.append(
            f"| {name} | {r['latency_p50']:.1f} / {r['latency_p95']:.1f} ms "
            f"({r['frames']:,} frames) | "
            f"{r['fps_p50']:.1f} ({r['fps_min']:.1f}) | "
            f"{r['input_p50']:.0f} / {r['input_p95']:.0f} ms ({r['clicks']} clicks) | "
            f"{r['page_fps_alone']:.0f} → {r['page_fps_watched']:.0f} fps |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
