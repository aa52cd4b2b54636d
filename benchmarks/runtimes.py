"""Runtimes end to end: start-to-connectUrl time, and what recording costs a real client.

    .venv/bin/python -m benchmarks.runtimes      (or `make benchmark-runtimes`)

Starts a real daphne and a real runtime host (`manage.py runtime_host`) as subprocesses,
with the embedded defaults (SQLite in WAL mode, in-memory channel layer, filesystem Celery
broker with no worker) in a temporary BCTRL_VAR_DIR, and drives them over HTTP and the
CDP proxy exactly as a user's script would (Playwright `connect_over_cdp(connectUrl)`):

(a) start-to-ready: `POST /v1/runtimes/{id}/start` until the answer with `connectUrl`,
    and until `connect_over_cdp(connectUrl)` has returned; then stop. N times with the
    host's warm pool (BCTRL_RUNTIME_WARM_BROWSERS=1, the default), then the host is
    restarted without it (0: every start launches Chromium) and N times again.
(b) the demo flow of `manage.py demo` (demo.management.commands.demo.drive_demo: ten
    pages, typing, two form submits, a download, a new tab and a pop-up) with recording on
    and off (`{"recording": false}` at start and `?recording=false` on the connectUrl),
    alternated, N runs each; time of the flow as the client sees it.
(c) the worst case: `/demo/stress`, where the client's `page.evaluate` makes a fixed number
    of DOM mutations (`window.demoStress.run`, a few hundred per macrotask) and awaits
    them; recorded vs not, and the rrweb events that the recording stored.

Prints a Markdown table and writes it to benchmarks/results/runtimes.md. See
benchmarks/README.md.
"""

import argparse
import contextlib
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks import write_results
from benchmarks.recording_ingest import (
    PYTHON,
    REPO,
    Daphne,
    child_env,
    cpu_name,
    load_average,
    write_child_modules,
)

TARGET_START_P50_S = 1.5  # without the warm pool
TARGET_WARM_START_P50_S = 0.150
TARGET_FLOW_RATIO = 1.2
SETTINGS_EXTRA = """
# Benchmark only: static files from the finders, plain URLs (no collectstatic needed).
WHITENOISE_USE_FINDERS = True
STORAGES = {
    **STORAGES,  # noqa: F405
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
"""


@dataclass
class Sample:
    run_id: str
    seconds: float
    rrweb_events: int = 0
    rrweb_bytes: int = 0
    run_events: int = 0
    extra: dict[str, float] = field(default_factory=dict)


def p50(values: list[float]) -> float:
    """The median; NaN for a part of the run that was skipped (`--flows 0`)."""
    return statistics.median(values) if values else math.nan


def p95(values: list[float]) -> float:
    if len(values) < 2:
        return values[0] if values else math.nan
    return statistics.quantiles(values, n=100, method="inclusive")[94]


# --- the servers -------------------------------------------------------------------------


class Servers:
    """daphne + runtime host on a fresh SQLite database in a temporary folder."""

    def __init__(self, workdir: Path, env_extra: dict[str, str] | None = None) -> None:
        self.workdir = workdir
        settings_module = write_child_modules(
            workdir, urlconf_extra="", settings_extra=SETTINGS_EXTRA
        )
        self.env = {**child_env(workdir, "", settings_module), **(env_extra or {})}
        os.environ.update(self.env)
        sys.path.insert(0, str(workdir))
        import django

        django.setup()
        from django.conf import settings
        from django.core.management import call_command

        print("Migrating a fresh SQLite database…", flush=True)
        call_command("migrate", interactive=False, verbosity=0)
        for folder in ("queue", "control"):  # the broker of runs' recording tasks (no worker)
            (settings.CELERY_BROKER_DIR / folder).mkdir(parents=True, exist_ok=True)
        self.daphne = Daphne(self.env, workdir / "daphne.log")
        # As `manage.py serve`: the host's live link goes to this web server.
        self.env["BCTRL_HOST_LINK_URL"] = self.daphne.base.replace("http://", "ws://", 1)
        self.host_log = (workdir / "runtime_host.log").open("wb")
        self.host = self._start_host({})
        self.wait_for_host()

    def wait_for_host(self) -> None:
        """Until the runtime host has heartbeated (a start answers 503 before) and, with a
        warm pool, launched its warm browser."""
        from runs.models import RuntimeHost

        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            pool = int(self.host_env.get("BCTRL_RUNTIME_WARM_BROWSERS", "1"))
            hosts = RuntimeHost.objects.filter(pid=self.host.pid)
            if hosts.filter(warm__gte=pool).exists():
                return
            time.sleep(0.2)
        raise RuntimeError("the runtime host did not come up within 60 s")

    def _start_host(self, env_extra: dict[str, str]) -> subprocess.Popen[bytes]:
        self.host_env = {**self.env, **env_extra}
        return subprocess.Popen(
            [PYTHON, str(REPO / "manage.py"), "runtime_host"],
            cwd=REPO,
            env=self.host_env,
            stdout=self.host_log,
            stderr=subprocess.STDOUT,
        )

    def restart_host(self, env_extra: dict[str, str]) -> None:
        """A new runtime host with other settings (the old one stops first)."""
        self.host.terminate()
        self.host.wait(30)
        self.host = self._start_host(env_extra)
        self.wait_for_host()

    @property
    def base(self) -> str:
        return self.daphne.base

    def stop(self) -> None:
        if self.host.poll() is None:
            self.host.terminate()
            try:
                self.host.wait(30)
            except subprocess.TimeoutExpired:
                self.host.kill()
                self.host.wait(5)
        self.host_log.close()
        self.daphne.stop()


def tenant() -> tuple[str, str]:
    """A space, an API key (raw) and a runtime, in the benchmark's database."""
    from runs.models import ApiKey, Space
    from runtimes.services import runtime_create

    space = Space.objects.create(name="Bench", slug="bench")
    _, raw_key = ApiKey.objects.issue(space=space, name="bench")
    runtime = runtime_create(space=space, name="bench")
    return raw_key, runtime.id


def recorded(run_id: str) -> tuple[int, int, int]:
    """rrweb events and raw bytes stored for the run, and its run events."""
    from django.db import close_old_connections
    from django.db.models import Sum

    from recordings.models import RecordingBatch
    from runs.models import Event

    close_old_connections()
    totals = RecordingBatch.objects.filter(recording__run_id=run_id).aggregate(
        events=Sum("event_count"), raw=Sum("raw_bytes")
    )
    return totals["events"] or 0, totals["raw"] or 0, Event.objects.filter(run_id=run_id).count()


# --- one runtime start --------------------------------------------------------------------


class Bench:
    def __init__(self, base: str, raw_key: str, runtime_id: str, playwright: Any) -> None:
        from bctrl import Bctrl

        self.base = base
        self.client = Bctrl(api_key=raw_key, base_url=base, timeout=120.0)
        self.runtime_id = runtime_id
        self.playwright = playwright

    def start(self, recording: bool = True) -> tuple[dict[str, Any], float]:
        t0 = time.perf_counter()
        started = self.client.runtimes.start(self.runtime_id, recording=recording)
        return started.raw, time.perf_counter() - t0

    def connect(self, started: dict[str, Any], recording: bool = True) -> tuple[Any, float]:
        from demo.management.commands.demo import with_query

        url = with_query(started["connectUrl"], "" if recording else "recording=false")
        t0 = time.perf_counter()
        browser = self.playwright.chromium.connect_over_cdp(url, timeout=30_000)
        return browser, time.perf_counter() - t0

    def stop(self, browser: Any) -> None:
        from demo.management.commands.demo import BUSY, wait_until

        self.client.runtimes.stop(self.runtime_id)
        wait_until(
            lambda: self.client.runtimes.retrieve(self.runtime_id).status not in BUSY,
            60,
            "the runtime to stop",
            interval_s=0.05,
        )
        with contextlib.suppress(Exception):  # already disconnected by the stop
            browser.close()

    def with_runtime(self, recording: bool, work: Callable[[Any], float]) -> Sample:
        started, _ = self.start(recording)
        browser, _ = self.connect(started, recording)
        try:
            seconds = work(browser)
        finally:
            self.stop(browser)
        events, raw, run_events = recorded(started["runId"])
        return Sample(started["runId"], seconds, events, raw, run_events)


def measure_start(bench: Bench, count: int) -> list[Sample]:
    samples = []
    for index in range(count):
        started, answer_s = bench.start()
        browser, connect_s = bench.connect(started)
        bench.stop(browser)
        samples.append(Sample(started["runId"], answer_s + connect_s, extra={"answer": answer_s}))
        print(
            f"  start {index + 1}/{count}: connectUrl {answer_s * 1000:.0f} ms, "
            f"+ connect_over_cdp {connect_s * 1000:.0f} ms",
            flush=True,
        )
    return samples


def measure_flows(bench: Bench, count: int) -> dict[bool, list[Sample]]:
    from demo.management.commands.demo import drive_demo

    def flow(browser: Any) -> float:
        t0 = time.perf_counter()
        drive_demo(browser, bench.base)
        return time.perf_counter() - t0

    samples: dict[bool, list[Sample]] = {True: [], False: []}
    for index in range(count):
        for recording in (True, False) if index % 2 == 0 else (False, True):
            sample = bench.with_runtime(recording, flow)
            samples[recording].append(sample)
            print(
                f"  flow {index + 1}/{count} recording={'on ' if recording else 'off'}: "
                f"{sample.seconds:.2f} s, {sample.rrweb_events:,} rrweb events, "
                f"{sample.run_events} run events",
                flush=True,
            )
    return samples


def measure_stress(
    bench: Bench, count: int, mutations: int, per_tick: int
) -> dict[bool, list[Sample]]:
    def stress(browser: Any) -> float:
        context = browser.new_context(viewport={"width": 1280, "height": 800})
        page = context.new_page()
        page.goto(bench.base + "/demo/stress")
        page.wait_for_selector("body[data-ready=true]")
        t0 = time.perf_counter()
        page.evaluate("([n, k]) => window.demoStress.run(n, k)", [mutations, per_tick])
        return time.perf_counter() - t0

    samples: dict[bool, list[Sample]] = {True: [], False: []}
    for index in range(count):
        for recording in (True, False) if index % 2 == 0 else (False, True):
            sample = bench.with_runtime(recording, stress)
            samples[recording].append(sample)
            print(
                f"  stress {index + 1}/{count} recording={'on ' if recording else 'off'}: "
                f"{sample.seconds * 1000:.0f} ms, {sample.rrweb_events:,} rrweb events "
                f"({sample.rrweb_bytes / 1024 / 1024:.1f} MiB)",
                flush=True,
            )
    return samples


# --- report -------------------------------------------------------------------------------


def chromium_version() -> str:
    from django.conf import settings

    try:
        out = subprocess.run(
            [settings.BCTRL_CHROMIUM_PATH, "--version"],
            capture_output=True,
            text=True,
            timeout=20,
            check=False,
        )
        return out.stdout.strip() or "unknown"
    except OSError:
        return "unknown"


def report(
    warm_starts: list[Sample],
    starts: list[Sample],
    flows: dict[bool, list[Sample]],
    stress: dict[bool, list[Sample]],
    *,
    mutations: int,
    per_tick: int,
    load_before: float,
    load_after: float,
) -> tuple[str, bool]:
    answer = [s.extra["answer"] for s in starts]
    ready = [s.seconds for s in starts]
    warm_answer = [s.extra["answer"] for s in warm_starts]
    warm_ready = [s.seconds for s in warm_starts]
    warm_ok = p50(warm_ready) <= TARGET_WARM_START_P50_S
    on = [s.seconds for s in flows[True]]
    off = [s.seconds for s in flows[False]]
    flow_ratio = p50(on) / p50(off)
    s_on = [s.seconds for s in stress[True]]
    s_off = [s.seconds for s in stress[False]]
    stress_ratio = p50(s_on) / p50(s_off)
    start_ok = p50(ready) <= TARGET_START_P50_S
    # A part skipped (--flows 0, --stress 0) has no rows and no verdict.
    flow_ok = not (on and off) or flow_ratio <= TARGET_FLOW_RATIO
    lines = [
        "# Runtimes benchmark",
        "",
        f"Run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {os.cpu_count()} CPU cores ({cpu_name()}), "
        f"Python {platform.python_version()}, {chromium_version()}; embedded defaults "
        f"(SQLite WAL, in-memory channel layer), one daphne process and one runtime host on "
        f"the same machine as the client. Load average {load_before:.1f} before, "
        f"{load_after:.1f} after.",
        "",
        "| measure | n | p50 | p95 | target |",
        "|---|---:|---:|---:|---|",
        f"| warm pool: start → `connectUrl` answer | {len(warm_answer)} "
        f"| {p50(warm_answer) * 1000:.0f} ms | {p95(warm_answer) * 1000:.0f} ms | |",
        f"| warm pool: start → `connect_over_cdp` done | {len(warm_ready)} "
        f"| {p50(warm_ready) * 1000:.0f} ms | {p95(warm_ready) * 1000:.0f} ms "
        f"| p50 ≤ {TARGET_WARM_START_P50_S * 1000:.0f} ms: "
        f"**{'holds' if warm_ok else 'does not hold'}** |",
        f"| no pool: start → `connectUrl` answer | {len(answer)} | {p50(answer) * 1000:.0f} ms "
        f"| {p95(answer) * 1000:.0f} ms | |",
        f"| no pool: start → `connect_over_cdp` done | {len(ready)} "
        f"| {p50(ready) * 1000:.0f} ms | {p95(ready) * 1000:.0f} ms "
        f"| p50 ≤ {TARGET_START_P50_S:g} s: **{'holds' if start_ok else 'does not hold'}** |",
    ]
    if on and off:
        lines += [
            f"| demo flow, recording off | {len(off)} | {p50(off):.2f} s | {p95(off):.2f} s | |",
            f"| demo flow, recording on | {len(on)} | {p50(on):.2f} s | {p95(on):.2f} s "
            f"| ≤ {TARGET_FLOW_RATIO:g}x off: {flow_ratio:.2f}x "
            f"**{'holds' if flow_ok else 'does not hold'}** |",
        ]
    if s_on and s_off:
        lines += [
            f"| stress, {mutations:,} mutations, off | {len(s_off)} "
            f"| {p50(s_off) * 1000:.0f} ms | {p95(s_off) * 1000:.0f} ms | |",
            f"| stress, {mutations:,} mutations, on | {len(s_on)} | {p50(s_on) * 1000:.0f} ms "
            f"| {p95(s_on) * 1000:.0f} ms | {stress_ratio:.2f}x off (worst case, no target) |",
        ]
    recorded = [
        (label, group)
        for label, group in (
            ("demo flow, on", flows[True]),
            ("demo flow, off", flows[False]),
            ("stress, on", stress[True]),
            ("stress, off", stress[False]),
        )
        if group  # skipped (--flows 0, --stress 0)
    ]
    if recorded:
        lines += [
            "",
            "| recorded per run (median) | rrweb events | rrweb raw JSON | run events |",
            "|---|---:|---:|---:|",
        ]
    for label, group in recorded:
        lines.append(
            f"| {label} | {statistics.median(s.rrweb_events for s in group):,.0f} "
            f"| {statistics.median(s.rrweb_bytes for s in group) / 1024:,.0f} KiB "
            f"| {statistics.median(s.run_events for s in group):,.0f} |"
        )
    if s_on and s_off:
        lines += [
            "",
            f"Stress: `window.demoStress.run({mutations}, {per_tick})` awaited by "
            f"`page.evaluate`: {per_tick} mutations (text, class, insert, remove in turn) per "
            "macrotask.",
        ]
    return "\n".join(lines) + "\n", warm_ok and start_ok and flow_ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--starts", type=int, default=10)
    parser.add_argument("--flows", type=int, default=5, help="runs of the demo flow per mode")
    parser.add_argument("--stress", type=int, default=5, help="stress runs per mode")
    parser.add_argument("--mutations", type=int, default=20_000)
    parser.add_argument("--per-tick", type=int, default=200)
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target fails")
    args = parser.parse_args(argv)

    workdir = Path(tempfile.mkdtemp(prefix="bctrl-bench-runtimes-"))
    print(f"Working in {workdir}", flush=True)
    load_before = load_average()
    servers = Servers(workdir)
    try:
        from playwright.sync_api import sync_playwright

        raw_key, runtime_id = tenant()
        os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # ORM reads under Playwright
        with sync_playwright() as playwright:
            bench = Bench(servers.base, raw_key, runtime_id, playwright)
            print("Warm-up: one start, one demo flow…", flush=True)
            measure_start(bench, 1)
            measure_flows(bench, 1)
            print(f"(a) start-to-ready with the warm pool, {args.starts} times", flush=True)
            warm_starts = measure_start(bench, args.starts)
            print("    restarting the runtime host without a warm pool…", flush=True)
            servers.restart_host({"BCTRL_RUNTIME_WARM_BROWSERS": "0"})
            print(f"(a) start-to-ready without it, {args.starts} times", flush=True)
            starts = measure_start(bench, args.starts)
            print(f"(b) demo flow, recording on/off alternated, {args.flows} each", flush=True)
            flows = measure_flows(bench, args.flows)
            print(f"(c) stress page, {args.mutations:,} mutations, {args.stress} each", flush=True)
            stress = measure_stress(bench, args.stress, args.mutations, args.per_tick)
    finally:
        servers.stop()
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    text, ok = report(
        warm_starts,
        starts,
        flows,
        stress,
        mutations=args.mutations,
        per_tick=args.per_tick,
        load_before=load_before,
        load_after=load_average(),
    )
    print("\n" + text)
    write_results("runtimes.md", text)
    return 1 if args.strict and not ok else 0


if __name__ == "__main__":
    sys.exit(main())
